import os
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """The real datasets: $UIBREC_DATA_DIR, else ../shared/data beside the repository."""
    env = os.environ.get("UIBREC_DATA_DIR")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture
def data_dir():
    path = shared_data_dir()
    if path is None:
        pytest.skip("real datasets not found (set UIBREC_DATA_DIR)")
    return path


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    """Keep every test's downloads and caches in its own folder."""
    monkeypatch.setenv("UIBREC_CACHE_DIR", str(tmp_path / "cache"))


def write_synthetic(path: Path, num_users=30, num_items=40, per_user=8, seed=0) -> Path:
    """A small interaction csv with a learnable structure: user u likes items near u."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(num_users):
        centre = (u * num_items) // num_users
        near = (centre + rng.choice(12, size=per_user, replace=False)) % num_items
        rows += [f"u{u},i{i},1,{1000 + k}" for k, i in enumerate(near)]
    path.write_text("user,item,rating,timestamp\n" + "\n".join(rows) + "\n")
    return path


@pytest.fixture
def synthetic_csv(tmp_path):
    return write_synthetic(tmp_path / "synthetic.csv")
