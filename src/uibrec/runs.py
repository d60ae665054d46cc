"""Run folders: everything a training run did, saved so that it can be scored again.

A run folder holds ``config.yaml`` (the resolved settings), ``history.csv`` (one row per
epoch), ``metrics.json`` (best validation and test metrics, sampled and full ranking),
``data.json`` (what cleaning removed, the split's sizes and fingerprint), ``model.pt``
(the weights), ``ids.npz`` (raw user and item IDs of every index) and ``ranks.npz`` (the
0-based rank of each evaluated user's held-out item, per evaluation, for paired tests
between runs).
"""

from __future__ import annotations

import json
import logging
import pickle
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from uibrec.checkpoint import checkpoint_path
from uibrec.config import Config, load_config, save_config, to_json
from uibrec.data.interactions import IdMap
from uibrec.data.split import Split
from uibrec.evaluation import Evaluator, metrics_from_ranks
from uibrec.models import get_model_class
from uibrec.training import (
    Components,
    build_components,
    fit,
    load_candidates,
    load_data_split,
    load_split,
    resolve_device,
)

logger = logging.getLogger(__name__)


def new_run_dir(config: Config) -> Path:
    root = Path(config.output)
    base = config.run_name or config.run_label()
    path, n = root / base, 1
    while path.exists():
        n += 1
        path = root / f"{base}-{n}"
    path.mkdir(parents=True)
    return path


def evaluate_components(comp: Components, split: Split, candidates, full: bool = True,
                        device="cpu", ranks: dict | None = None, parallel=None) -> dict:
    """Validation and test metrics, sampled (and full ranking when ``full``).

    ``ranks``, if given, receives the per-user ranks behind each set of metrics; with
    ``parallel``, each process ranks its share of the users and the ranks are gathered.
    """
    if parallel is None:
        evaluator = Evaluator(split, candidates, device=device)
    else:
        evaluator = parallel.evaluator(split, candidates)
    ranks = {} if ranks is None else ranks
    ranks["valid"] = evaluator.ranks(comp.model, "valid")
    ranks["test"] = evaluator.ranks(comp.model, "test")
    if full:
        ranks["test_full"] = evaluator.ranks(comp.model, "test", "full")
    return {which: metrics_from_ranks(r, evaluator.ks) for which, r in ranks.items()}


def train(config: Config | None = None, progress: bool = False,
          distributed: bool | None = None, **overrides) -> dict:
    """Train, evaluate and save one run; return its metrics (and ``run_dir``).

    ``uibrec.train(dataset="ml-1m", model="mf", loss="uib", alpha=8)`` is the same as
    the CLI's ``uibrec train`` with those options. ``distributed``: train together with
    the other processes torchrun started (see :mod:`uibrec.distributed`); by default
    whenever torchrun's ``WORLD_SIZE`` is above 1. Only process 0 writes the run folder
    (the others return their metrics without ``run_dir``).

    While it trains, the run keeps a checkpoint of its last validation in
    ``<output>/.checkpoints/`` (see :func:`uibrec.checkpoint.checkpoint_path`): the same
    call after an interruption resumes there, and ends with the same results.
    """
    from uibrec.config import make_config
    from uibrec.distributed import Parallel, launched

    config = make_config(config.to_dict() if config else {}, overrides)
    resolve_device(config.device)  # a missing GPU is an error before the data is read
    if config.threads:
        torch.set_num_threads(config.threads)
    parallel = Parallel.start(config.device) if (
        launched() if distributed is None else distributed) else None
    if parallel is None:
        return _train(config, progress, None)
    with parallel:  # leaves the process group, with the others unless training failed
        return _train(config, progress, parallel)


def _train(config: Config, progress: bool, parallel) -> dict:
    start = time.perf_counter()
    report: dict = {}
    if parallel is None:
        split, candidates = load_split(config, report)
    else:
        with parallel.main_first():  # process 0 alone writes the candidate cache
            split, candidates = load_split(config, report)
    data_seconds = time.perf_counter() - start

    # Named by the settings, not the run folder (a new one each time): the same command
    # run again finds the checkpoint of its interrupted attempt and resumes it.
    result = fit(config, split, candidates, progress=progress, parallel=parallel,
                 checkpoint=checkpoint_path(config))
    # With the training done before an interruption, when this run resumed one.
    train_seconds = time.perf_counter() - start - data_seconds + result.resumed_seconds
    ranks: dict = {}
    metrics = evaluate_components(result.components, split, candidates, config.full_ranking,
                                  config.device, ranks, parallel)
    epochs = len(result.history)
    metrics.update({
        "best_epoch": result.best_epoch,
        "epochs": epochs,
        "seconds_per_epoch": float(np.mean([r["seconds"] for r in result.history])),
        "train_seconds": train_seconds,
        "resumed_seconds": result.resumed_seconds,
        "data_seconds": data_seconds,
        "loss": result.components.loss_name,
        "num_negatives": result.components.num_negatives,
        "processes": 1 if parallel is None else parallel.world_size,
    })
    if parallel is not None and not parallel.is_main:
        return metrics
    run_dir = save_run(config, result.components, split, result.history, metrics, report, ranks)
    metrics["run_dir"] = str(run_dir)
    logger.info("run saved in %s; test %s", run_dir, _short(metrics["test"]))
    return metrics


def _short(metrics: dict) -> str:
    keys = ("hit@1", "hit@10", "ndcg@10", "mrr@10")
    return " ".join(f"{k}={metrics[k]:.4f}" for k in keys if k in metrics)


def save_run(config: Config, comp: Components, split: Split, history, metrics, report,
             ranks: dict | None = None) -> Path:
    run_dir = new_run_dir(config)
    save_config(config, run_dir / "config.yaml")
    pd.DataFrame(history).to_csv(run_dir / "history.csv", index=False)
    (run_dir / "metrics.json").write_text(to_json(metrics))
    # The fingerprint lets a later evaluate or recommend refuse data that has changed.
    (run_dir / "data.json").write_text(to_json({"removed": report, **split.stats(),
                                                "data_fingerprint": split.fingerprint()}))
    torch.save({"state": comp.state_dict(), "num_users": split.num_users,
                "num_items": split.num_items}, run_dir / "model.pt")
    np.savez_compressed(run_dir / "ids.npz", user_ids=split.user_map.ids,
                        item_ids=split.item_map.ids)
    if ranks:
        arrays = {which: np.asarray(r.cpu(), dtype=np.int32) for which, r in ranks.items()}
        np.savez_compressed(run_dir / "ranks.npz", user_idx=split.eval_users, **arrays)
    return run_dir


@dataclass
class Run:
    """A saved run: its settings, model (with boundary head), and ID maps."""

    path: Path
    config: Config
    components: Components
    user_map: IdMap
    item_map: IdMap
    _split: tuple | None = field(default=None, repr=False, compare=False)

    @property
    def model(self):
        return self.components.model

    @property
    def boundary(self):
        return self.components.boundary

    def metrics(self) -> dict:
        return json.loads((self.path / "metrics.json").read_text())

    def history(self) -> pd.DataFrame:
        return pd.read_csv(self.path / "history.csv")

    def split(self) -> tuple[Split, np.ndarray]:
        """The run's split and cached candidates, rebuilt from its data once, then kept."""
        if self._split is None:
            split = load_data_split(self.config)
            check_same_data(self.path, self.config, split, self.user_map, self.item_map)
            self._split = (split, load_candidates(self.config, split))
        return self._split


def check_same_data(path: Path, config: Config, split: Split, user_map: IdMap,
                    item_map: IdMap) -> None:
    """Raise a ValueError naming the run folder and the data when ``split`` is not the split
    the run in ``path`` was trained on: other sizes, other raw IDs, or (for runs that saved
    one) another fingerprint, which also catches rows moved between users of the same IDs."""
    changed = None
    if (split.num_users, split.num_items) != (len(user_map), len(item_map)):
        changed = f"{split.num_users} users, {split.num_items} items now"
    elif not (_same_ids(split.user_map.ids, user_map.ids)
              and _same_ids(split.item_map.ids, item_map.ids)):
        changed = "other raw user or item IDs now"
    else:
        saved = _saved_fingerprint(path)
        if saved is not None and saved != split.fingerprint():
            changed = "same sizes and IDs, but other interactions now"
    if changed:
        raise ValueError(f"{path}: the data no longer matches the run ({changed}) in "
                         f"{_data_source(config)}; restore the data the run was trained on, "
                         "or train a new run")


def _same_ids(now: np.ndarray, saved: np.ndarray) -> bool:
    return len(now) == len(saved) and all(
        a == b for a, b in zip(now.tolist(), saved.tolist(), strict=True))


def _saved_fingerprint(path: Path) -> str | None:
    try:
        return json.loads((path / "data.json").read_text()).get("data_fingerprint")
    except (OSError, ValueError):
        return None  # runs saved before fingerprints: the sizes and IDs were compared


def _data_source(config: Config) -> str:
    from uibrec.data.registry import DATASETS, locate

    if config.dataset in DATASETS:
        found = locate(config.dataset, config.data_dir)
        return f"{config.dataset} ({found[0]})" if found else config.dataset
    return str(config.dataset)


def load_run(run_dir) -> Run:
    """Load a run folder written by :func:`train`."""
    path = Path(run_dir)
    # save_run writes these one after another: a run killed while saving lacks some.
    missing = [name for name in _RUN_FILES if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{path}: not a run folder, or one whose saving was "
                                f"interrupted: no {', '.join(missing)}")
    config = load_config(path / "config.yaml")
    saved = _read_saved(path / "model.pt", lambda file: torch.load(
        file, map_location=config.device, weights_only=True))
    ids = _read_saved(path / "ids.npz", lambda file: dict(np.load(file, allow_pickle=True)))
    user_map, item_map = IdMap(ids["user_ids"]), IdMap(ids["item_ids"])
    comp = _components_for(config, saved, path, user_map, item_map)
    comp.load_state_dict(saved["state"])
    comp.model.eval()
    return Run(path, config, comp, user_map, item_map)


_RUN_FILES = ("config.yaml", "model.pt", "ids.npz")


def _read_saved(file: Path, read):
    """``read(file)``, with a cut-short or damaged file named in a ValueError."""
    try:
        return read(file)
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile,
            pickle.UnpicklingError) as exc:
        reason = " ".join(str(exc).split()).split(". ")[0][:120]  # torch's runs on
        raise ValueError(f"{file}: damaged or cut short, cannot be read ({reason})") from exc


def _components_for(config: Config, saved: dict, path: Path, user_map: IdMap,
                    item_map: IdMap) -> Components:
    # Graph models rebuild their graph from the training split; others need only sizes.
    if get_model_class(config.model).needs_training_data:
        split = load_data_split(config)
        check_same_data(path, config, split, user_map, item_map)
        return build_components(config, saved["num_users"], saved["num_items"],
                                split.train.user_idx, split.train.item_idx)
    return build_components(config, saved["num_users"], saved["num_items"])


def evaluate_run(run_dir, full: bool = True) -> dict:
    """Score a saved run again on its split and cached candidates, without training."""
    run = load_run(run_dir)
    split, candidates = run.split()  # checks the data before sampling any candidates
    return evaluate_components(run.components, split, candidates, full, run.config.device)
