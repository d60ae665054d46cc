"""Hyperparameter search with Optuna, on validation NDCG@10, stored in a database.

Each trial trains one configuration with early stopping (``training.fit``); after every
validation it reports the validation metric, and the pruner stops trials that are hopeless
next to earlier ones. The study lives in a database (an SQLite file by default, any URL
Optuna accepts), so a search that was interrupted resumes where it stopped, and several
processes, or machines sharing one database, can work on one study at once.

The grid sampler visits the experiment file's grid (a random subset of ``max_trials``
points when the grid is larger); the TPE sampler, Optuna's default, picks among the same
values. A grid point whose trial failed or was killed is tried again once it is seen to
have failed: at the next start of a search, or, for a killed worker, once its heartbeat
has been silent for ``GRACE_SECONDS``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from uibrec.experiments.spec import Experiment, apply_params, settings_hash
from uibrec.training import TrainingDivergedError, fit, load_split, resolve_device

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 60
GRACE_SECONDS = 180
POLL_SECONDS = 10
MAX_RETRIES = 2  # a grid point failing more often than this is left out
SAMPLERS = ("grid", "tpe")
PRUNERS = ("percentile", "median", "none")


@dataclass
class SearchResult:
    study_name: str
    storage: str
    best_params: dict
    best_value: float
    settings: dict  # the experiment's settings with the best parameters applied
    trials: dict = field(default_factory=dict)  # state -> count
    seconds: float = 0.0  # summed duration of every trial, over all sessions and workers


def default_storage(output) -> str:
    path = Path(output).resolve() / "studies.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def make_storage(url: str):
    """Optuna's database storage of ``url``; a URL it cannot open is a ``ValueError``."""
    import optuna
    import sqlalchemy.exc

    # Wait for a busy SQLite file rather than fail when several workers share it.
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                              heartbeat_interval=HEARTBEAT_SECONDS,
                                              grace_period=GRACE_SECONDS)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as exc:
        raise ValueError(f"storage {url!r}: {_storage_problem(url, exc)}") from exc


def _storage_problem(url: str, exc: Exception) -> str:
    import sqlalchemy.exc

    if isinstance(exc, sqlalchemy.exc.NoSuchModuleError):
        return (f"unknown database kind {url.split(':', 1)[0]!r} (expected a database URL "
                "such as sqlite:///path/studies.db or postgresql://user@host/db)")
    if isinstance(exc, sqlalchemy.exc.ArgumentError):
        return "not a database URL (expected e.g. sqlite:///path/studies.db)"
    if isinstance(exc, ImportError):
        return "the Python driver of this database is not installed"
    if url.startswith("sqlite:///"):
        folder = Path(url[len("sqlite:///"):]).parent
        if not folder.is_dir():
            return f"cannot create the database file: no folder {folder}"
    reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    return f"cannot open the database ({reason})"


def study_name(experiment: Experiment, overrides: dict | None, sampler: str) -> str:
    """The experiment's label plus a hash of its settings, grid and sampler: a changed
    grid or setting starts a new study instead of mixing with the old one."""
    config = experiment.config(overrides)
    text = json.dumps([settings_hash(config), config.seed, experiment.grid, sampler],
                      sort_keys=True, default=str)
    return f"{experiment.label}-{sampler}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def make_sampler(name: str, grid: dict, seed: int):
    import optuna

    if name == "grid":
        # The same seed in every worker shuffles the grid alike, so they do not collide.
        return optuna.samplers.GridSampler(grid, seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=None)
    raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {name!r}")


def make_pruner(name: str, eval_every: int):
    import optuna

    # Judge no trial before its third validation: early epochs rank settings poorly, and
    # large batches (few steps per epoch) start slowly but may end best.
    warmup = 3 * eval_every
    if name == "percentile":  # prune a trial in the bottom quarter at the same epoch
        return optuna.pruners.PercentilePruner(25.0, n_startup_trials=5, n_warmup_steps=warmup)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"pruner must be one of {', '.join(PRUNERS)}, got {name!r}")


def open_study(experiment: Experiment, storage, sampler: str = "grid",
               pruner: str = "percentile", overrides: dict | None = None):
    """Create or load the study; ``storage`` is a URL or a storage from :func:`make_storage`."""
    import optuna

    config = experiment.config(overrides)
    if isinstance(storage, str):
        storage = make_storage(storage)
    return optuna.create_study(
        study_name=study_name(experiment, overrides, sampler), storage=storage,
        sampler=make_sampler(sampler, experiment.grid, config.seed),
        pruner=make_pruner(pruner, config.eval_every), direction="maximize",
        load_if_exists=True)


def _key(params: dict) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def _grid_points(grid: dict) -> list[dict]:
    names = sorted(grid)
    products = itertools.product(*(grid[n] for n in names))
    return [dict(zip(names, values, strict=True)) for values in products]


def _plan(study, experiment: Experiment, sampler: str, max_trials: int | None) -> int:
    """Queue again what failed, then say how many trials this worker should start.

    Trials other workers run count as taken. The grid sampler counts a failed point as
    visited, so points whose trials failed (an error, a killed worker) and that nothing
    has covered since are queued again, up to ``MAX_RETRIES`` times each.
    """
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    running = [t for t in trials if t.state == TrialState.RUNNING]
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    limit = None if max_trials is None else max(0, max_trials - len(done) - len(running))
    if sampler != "grid":
        return limit

    covered = {_key(t.params) for t in done + running + waiting}
    failures: dict[str, list] = {}
    for t in trials:
        if t.state == TrialState.FAIL and t.params and _key(t.params) not in covered:
            failures.setdefault(_key(t.params), []).append(t)
    for key, failed in failures.items():
        if len(failed) > MAX_RETRIES:
            logger.warning("%s: parameters %s failed %d times; not tried again",
                           study.study_name, key, len(failed))
            continue
        study.enqueue_trial(failed[-1].params, user_attrs={"retry_of": failed[-1].number})
        waiting.append(failed[-1])
    covered.update(failures)
    missing = sum(_key(p) not in covered for p in _grid_points(experiment.grid))
    wanted = missing + len(waiting)
    return wanted if limit is None else min(wanted, limit)


def fail_running(study, storage) -> int:
    """Mark every running trial failed: for when no worker is alive (a killed search)."""
    from optuna.trial import TrialState

    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in running:
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return len(running)


def _fail_stale(study) -> None:
    """Fail the running trials of workers whose heartbeat stopped (killed, crashed)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def make_objective(experiment: Experiment, overrides: dict | None):
    """The trial function: train with the trial's parameters, report, return the best
    validation metric. The split and candidates are loaded once."""
    import optuna

    base = experiment.config(overrides)
    split, candidates = load_split(base)

    def objective(trial) -> float:
        params = {name: trial.suggest_categorical(name, values)
                  for name, values in sorted(experiment.grid.items())}
        config = experiment.config(overrides, params)

        def on_validation(epoch: int, metrics: dict) -> None:
            trial.report(metrics[config.metric], epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {epoch}: {config.metric} "
                                         f"{metrics[config.metric]:.4f}")

        start = time.perf_counter()
        try:
            result = fit(config, split, candidates, on_validation=on_validation)
        except TrainingDivergedError as exc:
            trial.set_user_attr("diverged", str(exc))
            raise optuna.TrialPruned(str(exc)) from exc
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("epochs", len(result.history))
        trial.set_user_attr("seconds", time.perf_counter() - start)
        trial.set_user_attr("valid", result.best_valid)
        return result.best_valid[config.metric]

    return objective


def search(experiment: Experiment, output, storage: str | None = None, sampler: str = "grid",
           max_trials: int | None = None, pruner: str = "percentile",
           overrides: dict | None = None, reset_running: bool = False,
           wait: bool = True) -> SearchResult:
    """Run (or resume, or join) the search of one configuration; return its best settings.

    Args:
        experiment: the configuration and its grid.
        output: folder of the default storage (``<output>/studies.db``) and of the
            candidate cache.
        storage: a database URL Optuna accepts; default an SQLite file in ``output``.
        sampler: ``grid`` or ``tpe``.
        max_trials: most finished (complete or pruned) trials in the study; default the
            experiment's ``max_trials``, and for the grid sampler at most the whole grid.
        pruner: ``percentile`` (bottom quarter), ``median`` or ``none``.
        overrides: settings put over the experiment's (e.g. ``{"epochs": 4}``); they
            change the study's name.
        reset_running: fail every running trial first (no other worker may be alive).
        wait: when nothing is left to start, wait for the trials other workers run (and
            retry those of dead workers) so that the result is the whole study's.
    """
    from optuna.trial import TrialState

    overrides = dict(overrides or {})
    overrides.setdefault("cache_dir", str(Path(output) / ".cache"))
    resolve_device(experiment.config(overrides).device)  # before a trial fails on it
    url = storage or default_storage(output)
    if max_trials is None:  # 0 must not fall through to the experiment's default
        max_trials = experiment.max_trials
    elif max_trials < 1:
        raise ValueError(f"max_trials must be at least 1, got {max_trials}")
    if sampler != "grid" and max_trials is None:
        raise ValueError(f"the {sampler} sampler needs a number of trials (max_trials)")
    storage = make_storage(url)
    study = open_study(experiment, storage, sampler, pruner, overrides)
    if reset_running:
        logger.info("%s: %d running trial(s) marked failed", study.study_name,
                    fail_running(study, storage))
    objective, waited = None, False
    while True:
        _fail_stale(study)
        budget = _plan(study, experiment, sampler, max_trials)
        if budget > 0:
            logger.info("%s: %d trial(s) to run (grid of %d)", study.study_name, budget,
                        experiment.grid_size())
            objective = objective or make_objective(experiment, overrides)
            before = len(study.get_trials(deepcopy=False))
            study.optimize(objective, n_trials=budget, gc_after_trial=False)
            if len(study.get_trials(deepcopy=False)) == before:
                break
            continue
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if not running or not wait:
            break
        # Another worker's trials decide the best too; a dead worker's trial turns
        # failed once its heartbeat is older than the grace period, and is then retried.
        (logger.debug if waited else logger.info)(
            "%s: waiting for %d running trial(s) of other workers (a dead worker's trial "
            "is failed after %d s without heartbeat)", study.study_name, len(running),
            GRACE_SECONDS)
        waited = True
        time.sleep(POLL_SECONDS)
    return summarize(study, experiment, url)


def summarize(study, experiment: Experiment, storage: str) -> SearchResult:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts: dict[str, int] = {}
    seconds = 0.0
    for t in trials:
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
        if t.datetime_start and t.datetime_complete:
            seconds += (t.datetime_complete - t.datetime_start).total_seconds()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise RuntimeError(f"study {study.study_name}: no trial completed "
                           f"({', '.join(f'{n} {s}' for s, n in counts.items()) or 'none run'})")
    best = max(complete, key=lambda t: (t.value, -t.number))
    return SearchResult(study.study_name, storage, dict(best.params), float(best.value),
                        apply_params(experiment.settings, best.params), counts, seconds)
