"""A tiny synthetic dataset and experiment file for the experiment tests (seconds to run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

NUM_USERS, NUM_ITEMS, PER_USER = 40, 60, 12


def write_dataset(folder: Path) -> Path:
    """Two taste groups: even users pick among items 0-29, odd users among 30-59."""
    rng = np.random.default_rng(0)
    rows = []
    for user in range(NUM_USERS):
        items = rng.choice(np.arange(30) + 30 * (user % 2), PER_USER, replace=False)
        rows += [f"u{user},i{item}" for item in items]
    path = folder / "tiny.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def write_experiment(folder: Path, grid: str = "{lr: [0.1, 0.5]}",
                     uib_grid: str = "{alpha: [1.0, 2.0]}") -> Path:
    """``tiny.yaml``: MF with the native loss and UIB on the synthetic dataset."""
    folder.mkdir(parents=True, exist_ok=True)
    data = write_dataset(folder)
    path = folder / "tiny.yaml"
    path.write_text(f"""\
dataset: {data}
common:
  num_candidates: 20
  epochs: 3
  eval_every: 1
  patience: 2
  dim: 8
  batch_size: 64
  threads: 1
  progress: false
grid:
  weight_decay: [0.0, 0.01]
configurations:
  mf:
    native:
      settings: {{lr: 0.5}}
      grid: {grid}
    uib:
      settings: {{lr: 0.5, alpha: 1.0}}
      grid: {uib_grid}
""")
    return path
