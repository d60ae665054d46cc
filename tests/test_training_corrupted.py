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
    wrong, samples, pairs = count_corrupted(POS, NEG)
    # row 0: only 2.0 > 1.0 (the tie 1.0 is not wrong); row 1: 0.5 > 0.0
    assert (wrong.tolist(), samples, pairs) == ([2, 2], 6, 6)


def test_boundary_counts_positives_below_and_negatives_above():
    wrong, samples, pairs = count_corrupted(POS, NEG, torch.tensor([0.5, 0.0]))
    # positives: 1.0 < 0.5 no, 0.0 < 0.0 no (a tie); negatives above b: 2.0, 1.0 | 0.5
    # pairs: the same three, as no positive is below its boundary
    assert (wrong.tolist(), samples, pairs) == ([3, 3], 8, 6)
    wrong, _, _ = count_corrupted(POS, NEG, torch.tensor([1.5, 0.6]))
    # samples: both positives below, negative 2.0 above: 3 of 8
    # pairs: every pair holds a positive below its boundary: 6 of 6
    assert wrong.tolist() == [3, 6]


def test_train_epoch_records_the_rates_of_its_own_batch():
    # One batch: the recorded rates must be the counts on the scores before the step.
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
        wrong, samples, pairs = count_corrupted(scores[:, 0], scores[:, 1:],
                                                comp.boundary(vecs, u))
    stats = train_epoch(comp, make_optimizer(config, comp.parameters()), sampler, users,
                        items, batch_size=8, weight_decay=0.0,
                        generator=torch.Generator().manual_seed(4))
    assert (samples, pairs) == (20, 15)
    assert 0 < wrong[0] < samples
    assert stats.corrupted == pytest.approx(int(wrong[0]) / samples)
    assert stats.corrupted_pairs == pytest.approx(int(wrong[1]) / pairs)
    assert np.isfinite(stats.loss)
