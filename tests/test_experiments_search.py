import optuna
import pytest
import torch
from optuna.trial import TrialState
from synthetic_experiment import write_experiment

import uibrec.experiments.search as search_module
from uibrec.experiments.search import open_study, search
from uibrec.experiments.spec import load_experiments
from uibrec.training import fit as real_fit

torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def experiment(tmp_path):
    # Grid: lr {0.1, 0.5} x weight_decay {0, 0.01} = 4 points.
    return load_experiments(write_experiment(tmp_path / "exp"))[("mf", "native")]


class CountingFit:
    """Wraps ``training.fit``; raises ``KeyboardInterrupt`` on call number ``fail_at``."""

    def __init__(self, fail_at=None):
        self.calls, self.fail_at = 0, fail_at

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt("interrupted on purpose")
        return real_fit(*args, **kwargs)


@pytest.fixture
def counting(monkeypatch):
    def install(fail_at=None):
        counter = CountingFit(fail_at)
        monkeypatch.setattr(search_module, "fit", counter)
        return counter
    return install


def _states(study):
    out = {}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def _grid_keys(study, state=TrialState.COMPLETE):
    return sorted((t.params["lr"], t.params["weight_decay"])
                  for t in study.get_trials(deepcopy=False, states=(state,)))


def test_search_interrupted_then_resumed_covers_the_grid_once(tmp_path, experiment, counting):
    out = tmp_path / "out"
    fit = counting(fail_at=3)
    with pytest.raises(KeyboardInterrupt):
        search(experiment, out)
    study = open_study(experiment, search_module.default_storage(out))
    assert _states(study) == {"COMPLETE": 2, "FAIL": 1}

    fit = counting()
    result = search(experiment, out)
    # Only the failed point and the one never started were trained.
    assert fit.calls == 2
    assert result.trials == {"complete": 4, "fail": 1}
    assert _grid_keys(study) == [(0.1, 0.0), (0.1, 0.01), (0.5, 0.0), (0.5, 0.01)]
    best = max(study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.value)
    assert (result.best_value, result.best_params) == (best.value, best.params)
    assert result.settings["lr"] == best.params["lr"]
    assert best.user_attrs["best_epoch"] >= 1 and "ndcg@10" in best.user_attrs["valid"]
    assert (out / "studies.db").is_file() and any((out / ".cache").iterdir())

    fit = counting()
    assert search(experiment, out).best_params == result.best_params
    assert fit.calls == 0  # a finished study trains nothing more


def _hold_a_point(experiment, storage):
    """Start a trial as another worker would, and leave it running."""
    other = open_study(experiment, storage)
    with pytest.warns(UserWarning, match="Heartbeat"):
        held = other.ask()
    for name, values in sorted(experiment.grid.items()):
        held.suggest_categorical(name, values)
    other._storage.record_heartbeat(held._trial_id)
    return other


def test_workers_share_a_study_through_its_database(tmp_path, experiment, counting):
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    other = _hold_a_point(experiment, storage)

    fit = counting()
    result = search(experiment, tmp_path / "w1", storage=storage, wait=False)
    assert fit.calls == 3 and result.trials == {"complete": 3, "running": 1}

    # That worker was killed: with reset_running its point is failed and tried again.
    fit = counting()
    result = search(experiment, tmp_path / "w2", storage=storage, reset_running=True)
    assert fit.calls == 1 and result.trials == {"complete": 4, "fail": 1}
    assert len(_grid_keys(other)) == 4


def test_a_dead_workers_trial_is_retried_once_its_heartbeat_is_stale(
        tmp_path, experiment, counting, monkeypatch):
    monkeypatch.setattr(search_module, "GRACE_SECONDS", 1)
    monkeypatch.setattr(search_module, "POLL_SECONDS", 0.5)
    storage = f"sqlite:///{tmp_path / 'shared.db'}"
    _hold_a_point(experiment, storage)
    # The search runs the three free points, waits for the held one, sees its worker's
    # heartbeat go stale, fails it and runs that point itself.
    fit = counting()
    result = search(experiment, tmp_path, storage=storage)
    assert fit.calls == 4 and result.trials == {"complete": 4, "fail": 1}


def test_max_trials_takes_a_subset_and_tpe_needs_a_number(tmp_path, experiment, counting):
    fit = counting()
    result = search(experiment, tmp_path, max_trials=2)
    assert fit.calls == 2 and result.trials == {"complete": 2}

    result = search(experiment, tmp_path, sampler="tpe", max_trials=3)
    assert result.trials == {"complete": 3} and result.study_name.startswith("tiny-mf-native-tpe")
    with pytest.raises(ValueError, match="needs a number of trials"):
        search(experiment, tmp_path, sampler="tpe")

    # Other settings (here a smoke run's epochs) start a study of their own.
    smoke = search(experiment, tmp_path, max_trials=1, overrides={"epochs": 2})
    assert smoke.study_name.startswith("tiny-mf-native-grid")
    assert smoke.study_name != search(experiment, tmp_path, max_trials=2).study_name


def test_hopeless_trials_are_pruned_at_a_validation(tmp_path, experiment, monkeypatch):
    # A pruner that finds every trial hopeless: each stops at its first validation.
    monkeypatch.setattr(search_module, "make_pruner",
                        lambda name, eval_every: optuna.pruners.ThresholdPruner(lower=2.0))
    with pytest.raises(RuntimeError, match="no trial completed .*4 pruned"):
        search(experiment, tmp_path, max_trials=4)
    study = open_study(experiment, search_module.default_storage(tmp_path))
    for trial in study.get_trials():
        assert trial.state == TrialState.PRUNED
        assert list(trial.intermediate_values) == [1]  # reported at epoch 1, then stopped


def test_zero_trials_is_an_error_not_the_whole_grid(tmp_path, experiment, counting):
    # "max_trials or experiment.max_trials" turned 0 into the default: `uibrec search
    # --trials 0` searched the whole grid.
    fit = counting()
    with pytest.raises(ValueError, match="max_trials must be at least 1, got 0"):
        search(experiment, tmp_path / "out", max_trials=0)
    assert fit.calls == 0


def test_quiet_silences_optuna_trial_lines():
    import logging

    from uibrec.commands_experiments import _route_optuna_logs

    # `uibrec -q search` still printed "INFO optuna...: Trial 0 finished ...".
    root, optuna_root = logging.getLogger(), logging.getLogger("optuna")
    saved = root.level, optuna_root.level
    try:
        root.setLevel(logging.WARNING)  # what -q sets
        optuna_root.setLevel(logging.INFO)  # what Optuna sets for itself
        _route_optuna_logs()
        study_logger = logging.getLogger("optuna.study.study")
        assert not study_logger.isEnabledFor(logging.INFO)
        assert study_logger.isEnabledFor(logging.WARNING)
    finally:
        root.setLevel(saved[0])
        optuna_root.setLevel(saved[1])


@pytest.mark.parametrize("url, message", [
    ("bogus://x", "storage 'bogus://x': unknown database kind 'bogus'"),
    ("sqlite:////nonexistent/dir/x.db", "storage 'sqlite:////nonexistent/dir/x.db': cannot "
     "create the database file: no folder /nonexistent/dir"),
    ("notaurl", "storage 'notaurl': not a database URL"),
])
def test_bad_storage_url_is_a_one_line_error(tmp_path, monkeypatch, capsys, url, message):
    # These were sqlalchemy tracebacks (NoSuchModuleError, OperationalError, ArgumentError).
    import sys

    from uibrec.cli import run

    experiment = str(write_experiment(tmp_path / "exp"))
    monkeypatch.setattr(sys, "argv", ["uibrec", "-q", "search", "--dataset", experiment,
                                      "--model", "mf", "--loss", "native", "--storage", url,
                                      "--output", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exited:
        run()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and "Traceback" not in err


def test_bad_grid_value_fails_before_the_study_is_made(tmp_path, monkeypatch, capsys):
    import sys

    from uibrec.cli import run

    experiment = write_experiment(tmp_path / "exp", grid='{lr: [0.1, "x"]}')
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["uibrec", "-q", "search", "--dataset", str(experiment),
                                      "--model", "mf", "--loss", "native", "--output", str(out)])
    with pytest.raises(SystemExit) as exited:
        run()
    assert exited.value.code == 2
    assert capsys.readouterr().err == (f"error: {experiment}: configurations.mf.native: grid "
                                       "lr: value 'x': lr must be float, got 'x'\n")
    assert not out.exists()  # no study, so no failed trial left in it
