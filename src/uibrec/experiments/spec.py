"""Experiment files: the paper's chosen settings and the search grid of each configuration.

One YAML file per dataset (``experiments/<name>.yaml``) holds its configurations::

    dataset: ml-1m               # a registered name or the path of an interaction file
    max_trials: 40               # optional: most grid points a search visits (a random subset)
    common: {epochs: 500, ...}   # settings shared by every configuration
    grid: {weight_decay: [...]}  # search values shared by every configuration
    configurations:
      mf:
        native: {settings: {lr: 1.0, dropout: 0.1}, grid: {lr: [0.3, 1.0, 3.0]}}
        uib: {settings: {...}, grid: {...}}

Settings and grid keys are :class:`~uibrec.config.Config` fields; a dotted key such as
``model_options.layers`` or ``loss_options.gamma`` reaches into an option mapping. A
configuration's own settings and grid override the shared ones of the same key.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from uibrec.config import FIELDS, Config, make_config

# Config fields that say where or how a run happens, not what it computes.
NON_SETTINGS = ("seed", "output", "run_name", "cache_dir", "data_dir", "progress", "device",
                "threads")
TOP_KEYS = {"dataset", "name", "description", "max_trials", "common", "grid", "configurations"}
NESTED = ("model_options", "loss_options", "read_options")


class ExperimentFileError(ValueError):
    """An experiment file is missing or malformed; the message names the file and key."""


@dataclass(frozen=True)
class Experiment:
    """One configuration (dataset x model x loss): its settings and its search grid."""

    name: str  # the experiment file's name (its ``name:`` key or file stem), e.g. "ml-1m"
    model: str
    loss: str
    settings: dict  # Config fields, shared ones merged in
    grid: dict  # parameter (dotted for options) -> list of values
    max_trials: int | None
    source: str

    @property
    def label(self) -> str:
        return f"{self.name}-{self.model}-{self.loss}"

    def config(self, overrides: dict | None = None, params: dict | None = None) -> Config:
        """The settings, with search ``params`` applied, then ``overrides`` on top."""
        settings = apply_params(self.settings, params or {})
        settings.update({"model": self.model, "loss": self.loss})
        try:
            return make_config(settings, overrides)
        except ValueError as exc:
            raise ExperimentFileError(f"{self.source}: configurations.{self.model}."
                                      f"{self.loss}: {exc}") from exc

    def grid_size(self) -> int:
        size = 1
        for values in self.grid.values():
            size *= len(values)
        return size


def apply_params(settings: dict, params: dict) -> dict:
    """A copy of ``settings`` with ``params`` set; ``a.b`` sets key ``b`` of mapping ``a``."""
    out = copy.deepcopy(settings)
    for key, value in params.items():
        if "." in key:
            outer, inner = key.split(".", 1)
            out[outer] = {**(out.get(outer) or {}), inner: value}
        else:
            out[key] = value
    return out


def settings_hash(config: Config) -> str:
    """A short hash of everything that decides a run's result except its seed."""
    data = {k: v for k, v in config.to_dict().items() if k not in NON_SETTINGS}
    text = json.dumps(data, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


def default_experiments_dir() -> Path:
    """``$UIBREC_EXPERIMENTS``, else ``./experiments``, else the source checkout's folder."""
    if os.environ.get("UIBREC_EXPERIMENTS"):
        return Path(os.environ["UIBREC_EXPERIMENTS"])
    here = Path("experiments")
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[3] / "experiments"


def find_experiment_file(name_or_path, directory=None) -> Path:
    """The file of a dataset's experiments: a ``.yaml`` path, or ``<directory>/<name>.yaml``."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")):
        path = Path(text)
        if not path.is_file():
            raise ExperimentFileError(f"{path}: no such experiment file")
        return path
    folder = Path(directory) if directory else default_experiments_dir()
    path = folder / f"{text}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        raise ExperimentFileError(
            f"no experiment file {path}; known in {folder}: {', '.join(known) or 'none'} "
            "(give the path of a .yaml experiment file, --experiments DIR, or set "
            "$UIBREC_EXPERIMENTS; the repository's experiments/ folder holds the paper's)")
    return path


def load_experiments(name_or_path, directory=None) -> dict[tuple[str, str], Experiment]:
    """Every configuration of one experiment file, keyed by ``(model, loss)``."""
    path = find_experiment_file(name_or_path, directory)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ExperimentFileError(f"{path}: expected a mapping at the top level")
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise ExperimentFileError(f"{path}: unknown key(s) {', '.join(unknown)}; "
                                  f"known: {', '.join(sorted(TOP_KEYS))}")
    if "dataset" not in data:
        raise ExperimentFileError(f"{path}: missing key 'dataset'")
    name = str(data.get("name") or path.stem)
    common = _mapping(data, "common", path)
    shared_grid = _grid(data.get("grid"), path, "grid")
    max_trials = data.get("max_trials")
    if max_trials is not None and (not isinstance(max_trials, int) or max_trials < 1):
        raise ExperimentFileError(f"{path}: max_trials must be a positive integer")

    out = {}
    for model, losses in _mapping(data, "configurations", path).items():
        if not isinstance(losses, dict):
            raise ExperimentFileError(f"{path}: configurations.{model}: expected a mapping "
                                      "of loss -> {settings, grid}")
        for loss, entry in losses.items():
            where = f"configurations.{model}.{loss}"
            entry = entry or {}
            if not isinstance(entry, dict):
                raise ExperimentFileError(f"{path}: {where}: expected a mapping with "
                                          "settings and grid")
            extra = sorted(set(entry) - {"settings", "grid"})
            if extra:
                raise ExperimentFileError(f"{path}: {where}: unknown key(s) {', '.join(extra)};"
                                          " expected settings and grid")
            settings = {"dataset": data["dataset"], **copy.deepcopy(common)}
            settings = apply_params(settings, _mapping(entry, "settings", path, where))
            grid = {**shared_grid, **_grid(entry.get("grid"), path, f"{where}.grid")}
            experiment = Experiment(name, str(model), str(loss), settings, grid, max_trials,
                                    str(path))
            experiment.config()  # fails early, naming the file, on a bad setting
            _check_grid_values(experiment, where)
            out[(str(model), str(loss))] = experiment
    return out


def _check_grid_values(experiment: Experiment, where: str) -> None:
    """Every grid value makes a valid configuration on its own: a bad one failed only
    when a search reached it, as an Optuna traceback and a failed trial in the study."""
    for key, values in experiment.grid.items():
        for value in values:
            # Optuna's categorical choices: a list or mapping cannot be a grid value.
            if value is not None and not isinstance(value, (bool, int, float, str)):
                raise ExperimentFileError(
                    f"{experiment.source}: {where}: grid {key}: value {value!r} is not a "
                    "number, string, boolean or null")
            try:
                experiment.config(params={key: value})
            except ExperimentFileError as exc:
                reason = str(exc.__cause__ or exc)
                raise ExperimentFileError(f"{experiment.source}: {where}: grid {key}: value "
                                          f"{value!r}: {reason}") from exc


def _mapping(data: dict, key: str, path, where: str = "") -> dict:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise ExperimentFileError(f"{path}: {where + '.' if where else ''}{key}: "
                                  "expected a mapping")
    return value


def _grid(grid, path, where: str) -> dict:
    grid = grid or {}
    if not isinstance(grid, dict):
        raise ExperimentFileError(f"{path}: {where}: expected a mapping of setting -> values")
    for key, values in grid.items():
        field = key.split(".", 1)[0]
        if field not in FIELDS or ("." in key and field not in NESTED):
            raise ExperimentFileError(f"{path}: {where}.{key}: not a setting (dotted keys "
                                      f"must start with {', '.join(NESTED)})")
        if not isinstance(values, list) or not values:
            raise ExperimentFileError(f"{path}: {where}.{key}: expected a non-empty list")
    return {str(k): list(v) for k, v in grid.items()}
