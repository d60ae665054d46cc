"""Training checkpoints: an interrupted run resumes at its last validation, bit for bit.

A checkpoint holds everything :func:`uibrec.training.fit` carries from one epoch to the
next: the weights and optimiser state, the best state so far and the early-stopping
counters, the history, and every random stream the run draws from (the epoch order, the
negative sampler, torch's global generator, the model's dropout masks), one set per
training process. It also holds the run's settings: a checkpoint resumes only the run
that wrote it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from uibrec.config import Config

# Settings that change where a run writes or how fast it goes, not what it computes
# (another thread count may change the last bits of torch's sums). full_ranking only adds
# an evaluation after training.
HARMLESS = frozenset({"output", "run_name", "cache_dir", "threads", "progress",
                      "full_ranking"})


def training_settings(config: Config) -> dict:
    """The settings a checkpoint must agree with: all but the :data:`HARMLESS` ones."""
    return {k: v for k, v in config.to_dict().items() if k not in HARMLESS}


def checkpoint_path(config: Config) -> Path:
    """``<output>/.checkpoints/<run name>-<hash of the settings>.pt``: the same command
    finds the same file, whatever run folder its earlier attempt would have made."""
    text = json.dumps(training_settings(config), sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    name = config.run_name or config.run_label()
    return Path(config.output) / ".checkpoints" / f"{name}-{digest}.pt"


def random_states(model, sampler, generator: torch.Generator) -> dict:
    """Every random stream a training process draws from between two epochs."""
    states = {"order": generator.get_state(), "sampler": sampler.rng.bit_generator.state,
              "torch": torch.get_rng_state(), "model": model.random_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def set_random_states(states: dict, model, sampler, generator: torch.Generator) -> None:
    generator.set_state(states["order"])
    sampler.rng.bit_generator.state = states["sampler"]
    torch.set_rng_state(states["torch"])
    model.set_random_state(states["model"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state(states["cuda"])


def save_checkpoint(path, config: Config, state: dict, random: dict, parallel=None) -> None:
    """Save a run's ``state`` and every process's ``random`` streams to ``path``.

    With ``parallel`` every process must call this; process 0 gathers the random streams
    and alone writes. The write is atomic: a crash mid-write leaves the previous file.
    """
    randoms = [random] if parallel is None else parallel.gather_objects(random)
    if parallel is not None and not parallel.is_main:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"config": config.to_dict(), **state, "random": randoms}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, config: Config, parallel=None) -> tuple[dict, dict] | None:
    """The run state at ``path`` (tensors on the CPU) and this process's random streams,
    or None if there is no checkpoint.

    Raises ValueError, naming the file, when it was written by a run with other settings
    (it names them) or by another number of processes. With ``parallel``, process 0 reads
    the file and sends it to the others (on several machines only its disk has it).
    """
    if parallel is None:
        found, error = _read(path, config)
    else:
        found, error = parallel.broadcast_from_main(
            _read(path, config) if parallel.is_main else None)
    if error:
        raise ValueError(error)
    if found is None:
        return None
    processes = 1 if parallel is None else parallel.world_size
    randoms = found.pop("random")
    if len(randoms) != processes:
        raise ValueError(f"{path}: checkpoint of a run on {len(randoms)} process(es); this "
                         f"one has {processes}. Resume it with {len(randoms)}, or delete it")
    return found, randoms[0 if parallel is None else parallel.rank]


def _read(path, config: Config) -> tuple[dict | None, str | None]:
    """``(checkpoint, None)``, ``(None, None)`` when there is none, or ``(None, error)``."""
    path = Path(path)
    if not path.is_file():
        return None, None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load fails on junk in many ways (KeyError, EOFError..)
        return None, (f"{path}: not a readable checkpoint ({exc}); delete it to start "
                      "this run afresh")
    saved, current = state["config"], training_settings(config)
    differ = sorted(k for k in set(saved) | set(current)
                    if k not in HARMLESS and saved.get(k) != current.get(k))
    if differ:
        details = "; ".join(f"{k}: {saved.get(k)!r} there, {current.get(k)!r} here"
                            for k in differ)
        return None, (f"{path}: checkpoint of a run with other settings ({details}); "
                      "delete it to start this run afresh")
    return state, None


def remove_checkpoint(path) -> None:
    Path(path).unlink(missing_ok=True)
