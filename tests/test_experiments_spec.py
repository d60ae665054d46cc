from pathlib import Path

import pytest

from uibrec.experiments.spec import (
    ExperimentFileError,
    apply_params,
    load_experiments,
    settings_hash,
)

REPO_EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
DATASETS = ("ml-10m", "ml-1m", "aiv", "lastfm")
CONFIGURATIONS = [(m, loss) for m in ("mf", "ncf", "sml", "lightgcn") for loss in ("native", "uib")]


@pytest.mark.parametrize("dataset", DATASETS)
def test_every_dataset_has_the_eight_configurations(dataset):
    found = load_experiments(dataset, REPO_EXPERIMENTS)
    assert sorted(found) == sorted(CONFIGURATIONS)
    for experiment in found.values():
        config = experiment.config()
        assert config.dataset == dataset
        assert (config.eval_every, config.patience, config.dim) == (10, 5, 32)
        assert config.epochs == (100 if dataset == "ml-10m" else 500)
        assert {"weight_decay", "batch_size"} <= set(experiment.grid)
        # The paper's chosen value is one of the grid's.
        for key, values in experiment.grid.items():
            if "." not in key and key not in ("weight_decay", "batch_size"):
                assert getattr(config, key) in values, (experiment.label, key)


# (dataset, model, loss) -> lr, dropout, alpha, as in NOTES section 5. SML+UIB's alpha is
# the paper's turned to the negative side: 1 / alpha (ml-10m 0.2 -> 5, lastfm 2 -> 0.5).
PAPER = {
    ("ml-10m", "mf", "native"): (1.0, 0.0, None), ("ml-1m", "mf", "uib"): (1.0, 0.1, 8),
    ("aiv", "mf", "native"): (3.0, 0.3, None), ("aiv", "mf", "uib"): (3.0, 0.2, 1),
    ("lastfm", "mf", "uib"): (3.0, 0.2, 2), ("aiv", "ncf", "uib"): (1.0, 0.4, 0.1),
    ("lastfm", "ncf", "native"): (1.0, 0.3, None), ("ml-10m", "sml", "uib"): (0.1, 0.0, 5),
    ("lastfm", "sml", "uib"): (0.3, 0.0, 0.5), ("aiv", "lightgcn", "native"): (0.03, 0.0, None),
    ("ml-1m", "lightgcn", "uib"): (0.3, 0.0, 8), ("lastfm", "lightgcn", "uib"): (0.1, 0.0, 0.2),
}


@pytest.mark.parametrize("key", sorted(PAPER))
def test_paper_settings(key):
    dataset, model, loss = key
    config = load_experiments(dataset, REPO_EXPERIMENTS)[(model, loss)].config()
    lr, dropout, alpha = PAPER[key]
    assert (config.lr, config.dropout) == (lr, dropout)
    if alpha is not None:
        assert config.alpha == alpha


def test_options_and_decay_land_where_the_models_read_them():
    aiv = load_experiments("aiv", REPO_EXPERIMENTS)
    assert aiv[("sml", "native")].config().loss_options == {"lam": 0.3, "gamma": 256}
    assert aiv[("lightgcn", "uib")].config().weight_decay == 0.0001
    # The authors' AIV files: decay 0.003 and batches of about half the training set.
    assert (aiv[("mf", "native")].config().weight_decay,
            aiv[("mf", "native")].config().batch_size) == (0.003, 13500)
    ml1m = load_experiments("ml-1m", REPO_EXPERIMENTS)
    assert ml1m[("lightgcn", "native")].grid["model_options.layers"] == [1, 2, 3]
    assert ml1m[("mf", "uib")].grid_size() == 3 * 3 * 3 * 2 * 2


def test_apply_params_reaches_into_options_without_touching_the_original():
    settings = {"lr": 1.0, "loss_options": {"lam": 0.3, "gamma": 128}}
    out = apply_params(settings, {"lr": 3.0, "loss_options.gamma": 64, "model_options.layers": 2})
    assert out == {"lr": 3.0, "loss_options": {"lam": 0.3, "gamma": 64},
                   "model_options": {"layers": 2}}
    assert settings["loss_options"]["gamma"] == 128


def test_settings_hash_ignores_seed_and_places_only(tmp_path):
    experiment = load_experiments("ml-1m", REPO_EXPERIMENTS)[("mf", "native")]
    base = settings_hash(experiment.config())
    assert settings_hash(experiment.config({"seed": 3, "output": "x", "device": "cuda"})) == base
    assert settings_hash(experiment.config({"lr": 3.0})) != base


def _write(tmp_path, text):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("configurations: {}\n", "missing key 'dataset'"),
    ("dataset: x\ngrids: {}\n", "unknown key(s) grids"),
    ("dataset: x\nconfigurations: {mf: {native: {grid: {lr: 0.1}}}}\n",
     "configurations.mf.native.grid.lr: expected a non-empty list"),
    ("dataset: x\nconfigurations: {mf: {native: {grid: {foo.bar: [1]}}}}\n",
     "configurations.mf.native.grid.foo.bar: not a setting"),
    ("dataset: x\nconfigurations: {mf: {native: {settings: {lrate: 1}}}}\n",
     "configurations.mf.native: unknown setting(s) lrate"),
    ("dataset: x\nmax_trials: 0\n", "max_trials must be a positive integer"),
    # Bad grid values failed only when a search reached them, in an Optuna traceback.
    ("dataset: x\ngrid: {lr: [0.1, \"x\"]}\nconfigurations: {mf: {native: {}}}\n",
     "configurations.mf.native: grid lr: value 'x': lr must be float, got 'x'"),
    ("dataset: x\nconfigurations: {mf: {uib: {grid: {dropout: [0.1, 1.5]}}}}\n",
     "configurations.mf.uib: grid dropout: value 1.5: dropout must be in [0, 1), got 1.5"),
    ("dataset: x\nconfigurations: {mf: {uib: {grid: {model_options.layers: [[8, 4]]}}}}\n",
     "configurations.mf.uib: grid model_options.layers: value [8, 4] is not a number"),
])
def test_bad_files_name_file_and_key(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ExperimentFileError) as info:
        load_experiments(path)
    assert str(path) in str(info.value) and message in str(info.value)


def test_unknown_experiment_lists_the_known_ones(tmp_path):
    with pytest.raises(ExperimentFileError, match="known in .*: aiv, lastfm, ml-10m, ml-1m"):
        load_experiments("ml-20m", REPO_EXPERIMENTS)
