"""The corrupted rate: training samples on the wrong side, counted from the batch's scores."""

import numpy as np
import pytest
import torch

from uibrec.config import make_config
from uibrec.sampling import NegativeSampler
from uibrec.training import build_components, count_corrupted, make_optimizer, train_epoch

POS = torch.tensor([1.0, 0.0])
NEG = torch.tensor([[0.5, 2.0, 1.0],
                    [-1.0, 0.5, -0.5]])


def test_pairwise_counts_negatives_above_their_positive():
    wrong, total = count_corrupted(POS, NEG)
    # row 0: only 2.0 > 1.0 (the tie 1.0 is not wrong); row 1: 0.5 > 0.0
    assert (int(wrong), total) == (2, 6)


def test_boundary_counts_positives_below_and_negatives_above():
    wrong, total = count_corrupted(POS, NEG, torch.tensor([0.5, 0.0]))
    # positives: 1.0 < 0.5 no, 0.0 < 0.0 no (a tie); negatives above b: 2.0, 1.0 | 0.5
    assert (int(wrong), total) == (3, 8)
    wrong, _ = count_corrupted(POS, NEG, torch.tensor([1.5, 0.6]))
    # positives: both below; negatives above: 2.0 | none
    assert int(wrong) == 3


def test_train_epoch_records_the_rate_of_its_own_batch():
    # One batch: the recorded rate must be the count on the scores before the step.
    torch.manual_seed(0)
    users = torch.tensor([0, 0, 1, 1, 2])
    items = torch.tensor([0, 1, 1, 2, 3])
    config = make_config({"model": "mf", "loss": "uib", "num_negatives": 3, "dim": 4})
    comp = build_components(config, 3, 6)
    sampler = NegativeSampler(users.numpy(), items.numpy(), 3, 6, seed=1)
    twin = NegativeSampler(users.numpy(), items.numpy(), 3, 6, seed=1)
    order = torch.randperm(5, generator=torch.Generator().manual_seed(4))
    u, p = users[order], items[order]
    negatives = twin.sample(u, 3)
    with torch.no_grad():
        vecs = comp.model.users(u)
        scores = comp.model.score(u, torch.cat([p.unsqueeze(1), negatives], 1))
        wrong, total = count_corrupted(scores[:, 0], scores[:, 1:], comp.boundary(vecs, u))
    stats = train_epoch(comp, make_optimizer(config, comp.parameters()), sampler, users,
                        items, batch_size=8, weight_decay=0.0,
                        generator=torch.Generator().manual_seed(4))
    assert total == 20 and 0 < int(wrong) < total
    assert stats.corrupted == pytest.approx(int(wrong) / total)
    assert np.isfinite(stats.loss)
