"""Tiny synthetic datasets and seconds-long runs shared by the analysis tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

NUM_USERS, NUM_ITEMS, PER_USER = 24, 15, 6


def write_tiny_csv(folder: Path) -> Path:
    """``user,item`` rows: raw user IDs 100.., item IDs 1000.., 6 distinct items each."""
    rng = np.random.default_rng(7)
    lines = []
    for user in range(NUM_USERS):
        for item in rng.choice(NUM_ITEMS, PER_USER, replace=False):
            lines.append(f"{100 + user},{1000 + item}")
    path = folder / "tiny.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def train_tiny(folder: Path, loss: str = "uib", **overrides) -> Path:
    """Train mf on the tiny data for 2 epochs; return the run folder."""
    import torch

    from uibrec.runs import train

    torch.set_num_threads(1)
    data = folder / "tiny.csv"
    if not data.is_file():
        write_tiny_csv(folder)
    settings = dict(dataset=str(data), model="mf", loss=loss, alpha=2.0, epochs=2,
                    eval_every=1, output=str(folder / "runs"), num_candidates=5,
                    progress=False, batch_size=32, run_name=f"tiny-{loss}")
    settings.update(overrides)
    return Path(train(**settings)["run_dir"])
