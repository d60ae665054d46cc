"""Run configuration: one flat dataclass, read from YAML or TOML, overridden from the CLI."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import tomllib
import yaml


@dataclass
class Config:
    # data
    dataset: str = "ml-1m"  # a registered name or the path of an interaction file
    data_dir: str | None = None
    min_user_interactions: int = 5
    split_order: str = "random"  # or "temporal"
    split_seed: int = 0
    num_candidates: int = 100
    candidate_seed: int = 0
    read_options: dict = field(default_factory=dict)  # sep, header, columns for own files
    # model
    model: str = "mf"
    dim: int = 32
    dropout: float = 0.0
    model_options: dict = field(default_factory=dict)  # model-specific, e.g. layers
    boundary: str = "linear"  # or "free"
    # loss and sampling
    loss: str = "native"  # "native", "uib", or a loss name
    alpha: float = 1.0
    num_negatives: int | None = None  # None: 32 for UIB, 1 for pairwise, 4 for BCE
    loss_options: dict = field(default_factory=dict)
    # optimisation
    optimizer: str = "adagrad"  # or "adam"
    lr: float = 1.0
    # Adagrad's starting accumulator: 0 is PyTorch's default and the authors' (their first
    # step moves each weight by lr); TensorFlow starts at 0.1, which tames the first steps.
    # Our losses are batch means: at large batches their gradients are ~1e-4 and 0.1 then
    # freezes training (AIV, batch 13500, 20 epochs: MF and NCF stay at chance).
    adagrad_init: float = 0.0
    weight_decay: float = 0.0  # L2 on the batch's embedding rows, decay/2 * sum of squares
    batch_size: int = 1024
    epochs: int = 500
    eval_every: int = 10
    patience: int = 5  # validations without a better validation metric before stopping
    metric: str = "ndcg@10"
    seed: int = 0
    device: str = "cpu"
    # torch intra-op threads (None: torch's default, one per core). 1 by default: a training
    # step is many small operations, and on ML-1M an epoch of BPR+UIB took 3.5 s on one
    # thread against 5.2 s on two (idle 2-core machine).
    threads: int | None = 1
    # output
    output: str = "runs"  # runs are written in a new folder under this one
    run_name: str | None = None
    cache_dir: str | None = None  # split candidates; default <output>/.cache
    full_ranking: bool = True  # also evaluate the test set by full ranking
    progress: bool = True

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def run_label(self) -> str:
        loss = self.loss if self.loss != "native" else "native"
        return f"{Path(self.dataset).name}-{self.model}-{loss}-seed{self.seed}"


FIELDS = {f.name: f for f in dataclasses.fields(Config)}


class SettingError(ValueError):
    """A bad setting; ``keys`` are the settings at fault, for callers that say where."""

    def __init__(self, message: str, keys=()):
        super().__init__(message)
        self.keys = list(keys)


def read_config_file(path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text file ({exc.reason})") from exc
    try:
        if path.suffix in (".toml", ".tml"):
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml", ".json"):
            data = yaml.safe_load(text) or {}
        else:
            raise ValueError(f"{path}: config files must be .yaml, .yml, .toml or .json")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: not valid {path.suffix[1:].upper()}: "
                         f"{' '.join(str(exc).split())}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of settings at the top level")
    return data


def parse_value(text: str):
    """A command-line value: YAML scalars and flow collections (``8``, ``true``, ``[64,32]``)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def make_config(base: dict | None = None, overrides: dict | None = None) -> Config:
    """A ``Config`` from a mapping plus overrides; unknown keys raise with the known ones.

    An override of ``None`` sets the setting to ``None`` (``--set threads=null`` is torch's
    default thread count); callers leave out the options they were not given.
    """
    merged = dict(base or {})
    merged.update(overrides or {})
    unknown = sorted(set(merged) - set(FIELDS))
    if unknown:
        raise SettingError(f"unknown setting(s) {', '.join(unknown)}; known settings: "
                           f"{', '.join(sorted(FIELDS))}", unknown)
    config = Config(**_coerce_floats(merged))
    try:
        _check(config)
    except ValueError as exc:  # every check's message starts with its setting's name
        raise SettingError(str(exc), [str(exc).split()[0]]) from None
    return config


def config_from_file(path, overrides: dict | None = None) -> Config:
    """``make_config`` of a config file and overrides; an error caused by a setting of the
    file names the file and, where the format tells it, the setting's line."""
    data = read_config_file(path)
    try:
        return make_config(data, overrides)
    except SettingError as exc:
        keys = [key for key in exc.keys if key in data and key not in (overrides or {})]
        if not keys:
            raise
        line = _key_line(Path(path), keys[0])
        where = f"{path}, line {line}" if line else f"{path}"
        raise SettingError(f"{where}: {exc}", exc.keys) from None


def _key_line(path: Path, key: str) -> int | None:
    """The 1-based line of a top-level key of a YAML, JSON or TOML file, if found."""
    text = path.read_text()
    if path.suffix in (".toml", ".tml"):
        for number, line in enumerate(text.splitlines(), 1):
            if line.lstrip().startswith("["):
                return None  # past the top-level table
            if line.split("=", 1)[0].strip().strip("\"'") == key:
                return number
        return None
    node = yaml.compose(text)
    for key_node, _ in getattr(node, "value", []):
        if getattr(key_node, "value", None) == key:
            return key_node.start_mark.line + 1
    return None


def _coerce_floats(settings: dict) -> dict:
    """Strings that read as numbers become floats for float settings: YAML 1.1 reads
    ``1e-3`` (no dot) as a string, in config files, experiment files and ``--set``."""
    out = dict(settings)
    for name, value in settings.items():
        if isinstance(value, str) and "float" in str(FIELDS[name].type):
            try:
                out[name] = float(value)
            except ValueError:
                pass  # left for the type check, which names the setting
    return out


_KINDS = {"int": int, "float": (int, float), "str": str, "bool": bool, "dict": dict}
METRICS = tuple(f"{name}@{k}" for k in (1, 10) for name in ("hit", "ndcg", "mrr"))


def _matches(value, kind: str) -> bool:
    if isinstance(value, bool):  # a bool is an int to Python, never to a setting
        return kind == "bool"
    return isinstance(value, _KINDS[kind])


def _check_types(config: Config) -> None:
    """Each setting has its field's type (``epochs=abc`` is an error, not a crash later)."""
    for name, spec in FIELDS.items():
        value = getattr(config, name)
        kinds = [part.strip() for part in str(spec.type).split("|")]
        if value is None and "None" in kinds:
            continue
        if not any(_matches(value, kind) for kind in kinds if kind in _KINDS):
            expected = " or ".join(k for k in kinds if k != "None")
            raise ValueError(f"{name} must be {expected}, got {value!r}")


def _check(config: Config) -> None:
    _check_types(config)
    if config.metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {config.metric!r}")
    positive = ("dim", "batch_size", "epochs", "eval_every", "patience", "num_candidates")
    for name in positive:
        if getattr(config, name) is None or getattr(config, name) < 1:
            raise ValueError(f"{name} must be at least 1, got {getattr(config, name)!r}")
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {config.dropout}")
    # nan passes "< 0", and inf trains until the loss is NaN: both must be caught here.
    if not (math.isfinite(config.lr) and config.lr > 0):
        raise ValueError(f"lr must be a finite number above 0, got {config.lr}")
    for name in ("weight_decay", "alpha", "adagrad_init"):
        value = getattr(config, name)
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"{name} must be a finite number of at least 0, got {value}")
    if config.num_negatives is not None and config.num_negatives < 1:
        raise ValueError(f"num_negatives must be at least 1, got {config.num_negatives}")
    if config.threads is not None and config.threads < 1:
        raise ValueError(f"threads must be at least 1 (null for torch's default), "
                         f"got {config.threads}")
    for name in ("seed", "split_seed", "candidate_seed"):
        if not 0 <= getattr(config, name) < 2**32:  # NumPy's seed range
            raise ValueError(f"{name} must be in [0, 2**32), got {getattr(config, name)}")
    if config.min_user_interactions < 0:
        raise ValueError(f"min_user_interactions must be at least 0, "
                         f"got {config.min_user_interactions}")
    if config.split_order not in ("random", "temporal"):
        raise ValueError(f"split_order must be 'random' or 'temporal', "
                         f"got {config.split_order!r}")


def save_config(config: Config, path) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def load_config(path) -> Config:
    return config_from_file(path)


def to_json(data) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=float)
