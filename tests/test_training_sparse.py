"""Row-sparse user gradients: the same training as dense ones, on large user tables."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import uibrec.fused
import uibrec.training
from uibrec.config import make_config
from uibrec.training import (
    SplitOptimizer,
    make_optimizer,
    setup_training,
    train_epoch,
    use_sparse_gradients,
)


def _train(split, sparse: bool, monkeypatch, epochs: int = 3):
    # Batch 4 over 16 users: 4 users a batch row, so the rule picks sparse at its default
    # threshold of 8 only when lowered; force each way through the threshold.
    monkeypatch.setattr(uibrec.training, "SPARSE_MIN_USERS_PER_ROW", 1 if sparse else 10**9)
    # The general step, whose gradients these are (the fused one: tests/test_fused.py).
    monkeypatch.setattr(uibrec.fused, "ENABLED", False)
    config = make_config({"model": "mf", "loss": "uib", "dim": 8, "lr": 0.5, "alpha": 2.0,
                          "dropout": 0.1, "batch_size": 4, "weight_decay": 0.01})
    comp, optimizer, sampler, _, users, items = setup_training(
        config, split, np.zeros((split.num_users, 1), dtype=np.int64))
    assert comp.model.sparse_gradients is sparse
    assert isinstance(optimizer, SplitOptimizer) is sparse
    generator = torch.Generator().manual_seed(0)
    losses = [train_epoch(comp, optimizer, sampler, users, items, config.batch_size,
                          config.weight_decay, generator).loss for _ in range(epochs)]
    return comp, losses


def test_sparse_and_dense_gradients_train_alike(synthetic_split, monkeypatch):
    sparse, sparse_losses = _train(synthetic_split, True, monkeypatch)
    dense, dense_losses = _train(synthetic_split, False, monkeypatch)
    # The same Adagrad updates; only the summation order of repeated rows may differ.
    np.testing.assert_allclose(sparse_losses, dense_losses, rtol=1e-5)
    for name, tensor in dense.model.state_dict().items():
        torch.testing.assert_close(sparse.model.state_dict()[name], tensor,
                                   rtol=1e-5, atol=1e-6)
    assert sparse.model.user_embedding.grad.is_sparse  # the last step's, kept
    assert not dense.model.user_embedding.grad.is_sparse


def test_sparse_gradients_rule():
    config = make_config({"batch_size": 1024})
    assert use_sparse_gradients(config, 70_000)
    assert use_sparse_gradients(config, 8 * 1024)
    assert not use_sparse_gradients(config, 8 * 1024 - 1)  # ML-1M's 6,040 users: dense
    assert not use_sparse_gradients(dataclasses.replace(config, optimizer="adam"), 70_000)
    assert not use_sparse_gradients(config, 70_000, parallel=object())


def test_only_adagrad_takes_sparse_gradients():
    table = torch.nn.Parameter(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="'adam' takes no sparse gradients"):
        make_optimizer(make_config({"optimizer": "adam"}), [table], [table])
