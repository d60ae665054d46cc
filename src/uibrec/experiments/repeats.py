"""Repeats: one setting trained with several seeds on the same split and candidates.

Finished runs are kept in a ledger (``runs.jsonl``, one JSON record a line, appended when
a run has been saved), keyed by dataset, model, loss, seed and settings hash. A repeat
whose key is in the ledger is skipped, so an interrupted reproduction resumes without
redoing finished runs; a run killed midway left no record and simply runs again.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from uibrec.config import Config
from uibrec.experiments.spec import Experiment, settings_hash
from uibrec.experiments.stats import paired_bootstrap, paired_t_test, per_user_metric

logger = logging.getLogger(__name__)

METRICS = ("hit@1", "hit@10", "ndcg@10", "mrr@10")
PROTOCOLS = {"sampled": "test", "full": "test_full"}  # protocol -> metrics.json key
KEY_FIELDS = ("dataset", "model", "loss", "seed", "settings_hash")
SETTING_COLUMNS = ("lr", "dropout", "alpha", "weight_decay", "batch_size", "num_negatives",
                   "epochs", "model_options", "loss_options")


class RunLimitReached(RuntimeError):
    """The reproduction stopped after its allowed number of new runs (``max_runs``)."""


class Ledger:
    """The finished runs of a reproduction, one JSON record per line."""

    def __init__(self, path):
        self.path = Path(path)

    def records(self) -> list[dict]:
        if not self.path.is_file():
            return []
        out = []
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                # A line cut short by a kill while writing: that run will run again.
                logger.warning("%s, line %d: unreadable record skipped", self.path, number)
        return out

    def keys(self) -> set[tuple]:
        return {run_key(r) for r in self.records()}

    def append(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(json.dumps(record, default=float) + "\n")


def run_key(record: dict) -> tuple:
    return tuple(record[k] for k in KEY_FIELDS)


def make_record(experiment: Experiment, config: Config, metrics: dict, root: Path,
                wall_seconds: float) -> dict:
    """A flat record of a finished run: its key, settings, metrics and timings."""
    record = {"dataset": experiment.name, "model": experiment.model, "loss": experiment.loss,
              "seed": config.seed, "settings_hash": settings_hash(config)}
    for name in SETTING_COLUMNS:
        value = getattr(config, name)
        record[name] = json.dumps(value, sort_keys=True) if isinstance(value, dict) else value
    record["num_negatives"] = metrics.get("num_negatives", config.num_negatives)
    for which in ("valid", "test", "test_full"):
        for metric, value in metrics.get(which, {}).items():
            record[f"{which}_{metric}"] = value
    for name in ("best_epoch", "epochs", "seconds_per_epoch", "train_seconds", "data_seconds"):
        record[name if name != "epochs" else "epochs_run"] = metrics.get(name)
    # A resumed run's wall time counts its training before the interruption too (records
    # written before resumed_seconds existed count only their last process's time).
    record["resumed_seconds"] = metrics.get("resumed_seconds", 0.0)
    record["wall_seconds"] = wall_seconds + record["resumed_seconds"]
    record["run_dir"] = str(Path(metrics["run_dir"]).resolve().relative_to(root.resolve()))
    record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    return record


@dataclass
class RunCounter:
    """New and skipped runs of a reproduction, and how many new runs may still start."""

    limit: int | None = None
    new: int = 0
    skipped: int = 0


def run_repeats(experiment: Experiment, config: Config, seeds, ledger: Ledger, root,
                counter: RunCounter | None = None, progress: bool = False) -> RunCounter:
    """Train ``config`` once per seed unless the ledger has that run already.

    Run folders go under ``<root>/runs``. When ``counter.limit`` new runs have started,
    :class:`RunLimitReached` is raised before the next one.
    """
    from uibrec.runs import train

    root = Path(root)
    counter = counter or RunCounter()
    finished = ledger.keys()
    for seed in seeds:
        seeded = Config(**{**config.to_dict(), "seed": int(seed)})
        key = (experiment.name, experiment.model, experiment.loss, int(seed),
               settings_hash(seeded))
        if key in finished:
            counter.skipped += 1
            continue
        if counter.limit is not None and counter.new >= counter.limit:
            raise RunLimitReached(f"{counter.new} new run(s) done, the limit")
        seeded.output = str(root / "runs")
        seeded.run_name = f"{experiment.label}-{key[-1]}-seed{seed}"
        start = time.perf_counter()
        metrics = train(seeded, progress=progress)
        ledger.append(make_record(experiment, seeded, metrics, root,
                                  time.perf_counter() - start))
        counter.new += 1
    return counter


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if len(values) == 0:
        return math.nan, math.nan
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def load_ranks(root: Path, record: dict, protocol: str) -> np.ndarray | None:
    path = Path(root) / record["run_dir"] / "ranks.npz"
    if not path.is_file():
        return None
    with np.load(path) as data:
        key = PROTOCOLS[protocol]
        return data[key] if key in data else None


def compare(root, native: list[dict], boosted: list[dict], protocol: str, metric: str,
            n_boot: int = 1000) -> dict:
    """Native against UIB on one metric: means, spreads, improvement and both p-values.

    The per-seed t-test pairs runs of equal seed; the per-user bootstrap pairs users on
    their metric averaged over each loss's runs (NaN when a run has no ranks saved).
    """
    column = f"{PROTOCOLS[protocol]}_{metric}"
    a_mean, a_std = mean_std(r.get(column) for r in native)
    b_mean, b_std = mean_std(r.get(column) for r in boosted)
    out = {"native_mean": a_mean, "native_std": a_std, "uib_mean": b_mean, "uib_std": b_std,
           "improvement": (b_mean - a_mean) / a_mean * 100 if a_mean else math.nan,
           "runs_native": len(native), "runs_uib": len(boosted)}
    by_seed_a = {r["seed"]: r.get(column) for r in native}
    by_seed_b = {r["seed"]: r.get(column) for r in boosted}
    seeds = sorted(set(by_seed_a) & set(by_seed_b))
    out["p_seed"] = paired_t_test([by_seed_a[s] for s in seeds], [by_seed_b[s] for s in seeds])
    out["p_user"] = _user_bootstrap(root, native, boosted, protocol, metric, n_boot)
    return out


def _user_bootstrap(root, native, boosted, protocol, metric, n_boot) -> float:
    per_loss = []
    for records in (native, boosted):
        ranks = [load_ranks(root, r, protocol) for r in records]
        if not ranks or any(r is None for r in ranks):
            return math.nan
        per_loss.append(np.mean([per_user_metric(r, metric) for r in ranks], axis=0))
    if per_loss[0].shape != per_loss[1].shape:
        return math.nan
    return paired_bootstrap(per_loss[0], per_loss[1], n_boot=n_boot)
