"""The fused MF step trains exactly as the general step does, up to float32 rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import uibrec.training
from uibrec import fused
from uibrec.config import make_config
from uibrec.data.interactions import Interactions
from uibrec.data.split import leave_one_out
from uibrec.training import make_optimizer, setup_training, train_epoch


@pytest.fixture(scope="module")
def random_split():
    """40 users with 6 to 15 of 60 items each: batches of 16 repeat users and items."""
    rng = np.random.default_rng(0)
    users, items = [], []
    for user in range(40):
        picked = rng.choice(60, size=rng.integers(6, 16), replace=False)
        users += [user] * len(picked)
        items += picked.tolist()
    return leave_one_out(Interactions.from_raw(np.array(users), np.array(items)), seed=0)


def _train(split, use_fused: bool, monkeypatch, epochs: int = 3, **settings):
    monkeypatch.setattr(fused, "ENABLED", use_fused)
    config = make_config({"model": "mf", "loss": "uib", "dim": 8, "lr": 1.0, "alpha": 2.0,
                          "dropout": 0.1, "batch_size": 16, "num_negatives": 8,
                          **settings})
    comp, optimizer, sampler, _, users, items = setup_training(
        config, split, np.zeros((split.num_users, 1), dtype=np.int64))
    assert (fused.make_fused_step(comp, optimizer, config.weight_decay) is not None) is use_fused
    generator = torch.Generator().manual_seed(0)
    stats = [train_epoch(comp, optimizer, sampler, users, items, config.batch_size,
                         config.weight_decay, generator) for _ in range(epochs)]
    return comp, optimizer, stats


SETTINGS = {
    "uib": {},
    "uib, no dropout": {"dropout": 0.0},
    "uib, weight decay, Adagrad start 0.1": {"weight_decay": 0.01, "adagrad_init": 0.1},
    "uib, lr 0.3, alpha 8": {"lr": 0.3, "alpha": 8.0},
    "bpr, 1 negative": {"loss": "bpr", "num_negatives": 1},
    "bpr, 4 negatives, weight decay": {"loss": "bpr", "num_negatives": 4, "weight_decay": 0.1},
}


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse users"])
@pytest.mark.parametrize("settings", SETTINGS.values(), ids=SETTINGS.keys())
def test_fused_step_trains_as_the_general_step(random_split, settings, sparse, monkeypatch):
    # Sparse: the user table takes row-sparse gradients and its own Adagrad part.
    monkeypatch.setattr(uibrec.training, "SPARSE_MIN_USERS_PER_ROW", 1 if sparse else 10**9)
    general, general_opt, general_stats = _train(random_split, False, monkeypatch, **settings)
    fast, fast_opt, fast_stats = _train(random_split, True, monkeypatch, **settings)

    # Float32 rounding differs (summation order, exp and log1p): after 3 epochs of 6 steps
    # at lr 1 the weights agree to about 1e-6 relative.
    for name, tensor in general.state_dict().items():
        for key, value in tensor.items():
            torch.testing.assert_close(fast.state_dict()[name][key], value, rtol=1e-5,
                                       atol=1e-5, msg=f"{name}.{key}")
    for ours, theirs in zip(fast_stats, general_stats, strict=True):
        assert ours.loss == pytest.approx(theirs.loss, rel=1e-5)
        assert ours.corrupted == pytest.approx(theirs.corrupted, abs=1e-12)
        assert ours.corrupted_pairs == pytest.approx(theirs.corrupted_pairs, abs=1e-12)
    fast_state, general_state = fast_opt.state_dict(), general_opt.state_dict()
    parts = fast_state.get("parts", [fast_state])
    for ours, theirs in zip(parts, general_state.get("parts", [general_state]), strict=True):
        for index, state in theirs["state"].items():
            torch.testing.assert_close(ours["state"][index]["sum"], state["sum"], rtol=1e-5,
                                       atol=1e-6)
            assert ours["state"][index]["step"] == state["step"]  # one per batch


def test_fused_step_keeps_the_loss_and_rates_of_its_batches(random_split, monkeypatch):
    # The loss the fused step reports is the general step's on the same weights: one
    # epoch of one batch, before its update.
    monkeypatch.setattr(fused, "ENABLED", True)
    config = make_config({"model": "mf", "loss": "uib", "dim": 8, "alpha": 2.0,
                          "batch_size": 10_000, "num_negatives": 8})
    comp, optimizer, sampler, _, users, items = setup_training(
        config, random_split, np.zeros((random_split.num_users, 1), dtype=np.int64))
    twin = uibrec.training.NegativeSampler(random_split.train.user_idx,
                                           random_split.train.item_idx,
                                           random_split.num_users, random_split.num_items)
    order = torch.randperm(len(users), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        loss, wrong, (samples, pairs) = uibrec.training._batch_loss(
            comp, users[order], items[order], twin.sample(users[order], 8), 0.0)
    stats = train_epoch(comp, optimizer, sampler, users, items, config.batch_size, 0.0,
                        torch.Generator().manual_seed(0))
    assert stats.loss == pytest.approx(loss.item(), rel=1e-6)
    assert stats.corrupted == wrong[0].item() / samples
    assert stats.corrupted_pairs == wrong[1].item() / pairs


@pytest.mark.parametrize("settings", [
    {"model": "ncf"}, {"loss": "bce"}, {"boundary": "free"}, {"optimizer": "adam"},
    {"model": "lightgcn"}, {"loss": "native", "model": "sml"},
])
def test_other_settings_take_the_general_step(random_split, settings):
    config = make_config({"model": "mf", "loss": "uib", "dim": 8, **settings})
    comp, optimizer, *_ = setup_training(
        config, random_split, np.zeros((random_split.num_users, 1), dtype=np.int64))
    assert fused.make_fused_step(comp, optimizer, 0.0) is None


def test_optimizer_with_decay_takes_the_general_step(random_split):
    config = make_config({"model": "mf", "loss": "uib", "dim": 8})
    comp, optimizer, *_ = setup_training(
        config, random_split, np.zeros((random_split.num_users, 1), dtype=np.int64))
    assert fused.make_fused_step(comp, optimizer, 0.0) is not None
    decayed = torch.optim.Adagrad(comp.parameters(), lr_decay=0.1)
    assert fused.make_fused_step(comp, decayed, 0.0) is None
    partial = make_optimizer(config, comp.model.parameters())  # the boundary left out
    assert fused.make_fused_step(comp, partial, 0.0) is None
