"""Shared test settings, real-data lookup, and tiny synthetic datasets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from uibrec.config import make_config
from uibrec.data.interactions import Interactions
from uibrec.data.split import leave_one_out
from uibrec.training import build_components

# On a small shared machine, torch's default of one thread per core makes the tiny tensors
# of these tests many times slower (threads wait on each other); one thread is enough.
torch.set_num_threads(1)

# Model options that keep the synthetic runs small.
SMALL_OPTIONS = {"ncf": {"layers": [16, 8]}, "lightgcn": {"layers": 2}}


def two_cluster_rows(num_users: int = 16, per_user: int = 6, seed: int = 0):
    """Users 0..7 like items 0..9, users 8..15 items 10..19: (user_ids, item_ids)."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for user in range(num_users):
        cluster = 0 if user < num_users // 2 else 10
        picked = rng.choice(10, size=per_user, replace=False) + cluster
        users += [user] * per_user
        items += picked.tolist()
    return np.array(users), np.array(items)


@pytest.fixture
def cluster_rows():
    return two_cluster_rows()


@pytest.fixture
def synthetic_split():
    """Leave-one-out split of the two-cluster data: 16 users, 20 items, 64 training rows."""
    users, items = two_cluster_rows()
    return leave_one_out(Interactions.from_raw(users, items, name="two-clusters"), seed=0)


def _make_components(model: str, loss: str, split, seed: int = 0, **settings):
    torch.manual_seed(seed)
    settings = {"dim": 8, "lr": 0.1, "alpha": 0.5,
                "model_options": SMALL_OPTIONS.get(model, {}), **settings}
    config = make_config({"model": model, "loss": loss, **settings})
    comp = build_components(config, split.num_users, split.num_items,
                            split.train.user_idx, split.train.item_idx)
    return config, comp


@pytest.fixture
def small_options():
    return SMALL_OPTIONS


@pytest.fixture
def make_components():
    """``make_components(model, loss, split, seed=0, **settings) -> (config, components)``,
    small (dim 8) and seeded."""
    return _make_components


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
