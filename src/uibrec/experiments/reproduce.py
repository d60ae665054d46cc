"""The paper's main experiment: every chosen dataset x model, native loss and UIB.

For each configuration: the settings (the paper's, from the experiment file, or the best
of a search on request), then one run per seed on the same split and candidates, then the
report. Everything finished is kept (the study database, the run ledger), so running the
same command again after an interruption continues where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from uibrec.experiments.repeats import Ledger, RunCounter, RunLimitReached, run_repeats
from uibrec.experiments.report import PLAN_FILE, write_report
from uibrec.experiments.search import search as run_search
from uibrec.experiments.spec import (
    Experiment,
    ExperimentFileError,
    find_experiment_file,
    load_experiments,
    settings_hash,
)
from uibrec.models import get_model_class
from uibrec.training import resolve_device

logger = logging.getLogger(__name__)

LOSSES = ("native", "uib")


@dataclass
class ReproduceResult:
    report: Path
    complete: bool
    new_runs: int
    skipped_runs: int


def plan_experiments(datasets, models, losses=LOSSES, experiments_dir=None) -> list[Experiment]:
    """Every requested configuration, checked before anything runs."""
    for model in models:
        get_model_class(model)  # raises with the known models
    out = []
    for dataset in datasets:
        found = load_experiments(dataset, experiments_dir)
        for model in models:
            for loss in losses:
                if (model, loss) not in found:
                    path = find_experiment_file(dataset, experiments_dir)
                    raise ExperimentFileError(f"{path}: no configuration {model} / {loss} "
                                              f"(configurations.{model}.{loss})")
                out.append(found[(model, loss)])
    return out


def _save_plan(root: Path, plan: dict) -> None:
    """Write ``plan`` over its own entries of the folder's plan, keeping the others: a
    reproduction of some models (or another process on the same folder) leaves the
    configurations it does not run as they were."""
    path = root / PLAN_FILE
    merged = json.loads(path.read_text()) if path.is_file() else {}
    merged.update(plan)
    tmp = root / f"{PLAN_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(merged, indent=2, default=float))
    tmp.replace(path)


def reproduce(datasets, models, losses=LOSSES, seeds=5, output="results/reproduce",
              search: bool = False, sampler: str = "grid", max_trials: int | None = None,
              storage: str | None = None, pruner: str = "percentile",
              overrides: dict | None = None, experiments_dir=None, max_runs: int | None = None,
              progress: bool = False, n_boot: int = 1000, test: str = "user",
              reset_running: bool = False) -> ReproduceResult:
    """Run (or resume) the main experiment and write its report into ``output``.

    Args:
        datasets: experiment names (``ml-1m``, ...) or paths of experiment files.
        models, losses: what to run of each dataset's configurations.
        seeds: how many seeds (0, 1, ...), or the seeds themselves.
        output: the report folder; it also holds the run folders, the run ledger, the
            candidate cache and (by default) the study database.
        search: search each configuration's grid first and use its best settings;
            otherwise use the paper's settings from the experiment file.
        sampler, max_trials, storage, pruner, reset_running: passed to the search.
        overrides: settings put over every configuration (e.g. ``{"epochs": 4}``).
        max_runs: stop after this many new runs (the report says what is missing).
        n_boot, test: resamples of the per-user bootstrap, and which test marks the table
            (``user``: the bootstrap, ``seed``: the paired t-test).
    """
    seeds = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seeds:  # nothing would run, and the report would call it complete
        raise ValueError("seeds: give at least one seed")
    for name, values in (("datasets", datasets), ("models", models), ("losses", losses)):
        if len(values) == 0:  # the same: an empty plan, called complete
            raise ValueError(f"{name}: give at least one")
    root = Path(output)
    experiments = plan_experiments(datasets, models, losses, experiments_dir)
    overrides = {"cache_dir": str(root / ".cache"), **(overrides or {})}
    # A device torch cannot use fails every run: say so before any folder or search.
    for device in {e.config(overrides).device for e in experiments}:
        resolve_device(device)
    root.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(root / "runs.jsonl")
    counter = RunCounter(limit=max_runs)
    plan: dict = {}
    for experiment in experiments:
        plan[experiment.label] = {
            "dataset": experiment.name, "model": experiment.model, "loss": experiment.loss,
            "source": "search" if search else "paper", "runs_planned": len(seeds),
            "runs_done": 0}
        if not search:
            plan[experiment.label]["settings_hash"] = settings_hash(experiment.config(overrides))

    complete = True
    try:
        for experiment in experiments:
            entry = plan[experiment.label]
            params = {}
            if search:
                found = run_search(experiment, root, storage, sampler, max_trials, pruner,
                                   overrides, reset_running)
                params = found.best_params
                entry["search"] = {"study": found.study_name, "best_params": params,
                                   "best_value": found.best_value, "trials": found.trials,
                                   "seconds": found.seconds}
            config = experiment.config(overrides, params)
            entry["settings_hash"] = settings_hash(config)
            _save_plan(root, plan)
            logger.info("%s: %d seed(s) with settings %s", experiment.label, len(seeds),
                        entry["settings_hash"])
            run_repeats(experiment, config, seeds, ledger, root, counter, progress)
            entry["runs_done"] = len(seeds)
            _save_plan(root, plan)
    except RunLimitReached:
        complete = False
        logger.warning("stopped after %d new run(s) (max_runs); run the same command again "
                       "to continue", counter.new)
        _count_done(plan, ledger, seeds)
        _save_plan(root, plan)
    report = write_report(root, n_boot=n_boot, test=test)  # reads the merged plan
    return ReproduceResult(report, complete, counter.new, counter.skipped)


def _count_done(plan: dict, ledger: Ledger, seeds) -> None:
    keys = ledger.keys()
    for entry in plan.values():
        if "settings_hash" in entry:
            entry["runs_done"] = sum(
                (entry["dataset"], entry["model"], entry["loss"], s, entry["settings_hash"])
                in keys for s in seeds)
