import math

import numpy as np
import pytest
import torch

from uibrec import rank_metrics
from uibrec.evaluation import Evaluator, metrics_from_ranks


def test_all_equal_scores_rank_last_and_miss_hit_at_10():
    # Ties count against the positive: 100 candidates tying with it put it at rank 100.
    metrics = rank_metrics(np.zeros(3), np.zeros((3, 100)), ks=(1, 10))
    assert metrics["hit@1"] == 0.0
    assert metrics["hit@10"] == 0.0
    assert metrics["ndcg@10"] == 0.0
    assert metrics["mrr@10"] == 0.0


def test_one_tie_costs_one_rank():
    # Positive 0.5; candidates 0.5 (tie), 0.9 (above), 0.1 (below): rank 2.
    metrics = rank_metrics([0.5], [[0.5, 0.9, 0.1]], ks=(1, 3))
    assert metrics["hit@1"] == 0.0
    assert metrics["hit@3"] == 1.0
    assert metrics["ndcg@3"] == pytest.approx(1 / math.log2(4))
    assert metrics["mrr@3"] == pytest.approx(1 / 3)


def test_metrics_at_known_ranks():
    # Ranks 0, 1, 9, 10 for four users.
    # hit@10 = 3/4; ndcg@10 = (1 + 1/log2(3) + 1/log2(11) + 0) / 4; mrr@10 = (1 + 1/2 + 1/10) / 4
    m = metrics_from_ranks([0, 1, 9, 10], ks=(1, 10))
    assert m["hit@1"] == pytest.approx(0.25)
    assert m["ndcg@1"] == m["mrr@1"] == pytest.approx(0.25)
    assert m["hit@10"] == pytest.approx(0.75)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(11)) / 4)
    assert m["mrr@10"] == pytest.approx((1 + 0.5 + 0.1) / 4)


def test_rank_metrics_checks_shapes():
    with pytest.raises(ValueError, match="expected pos_scores"):
        rank_metrics(np.zeros(3), np.zeros((2, 5)))


class FixedScores(torch.nn.Module):
    """A model whose score table is given: scores[user, item]."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.as_tensor(table, dtype=torch.float32)
        self.num_users, self.num_items = self.table.shape

    def prepare(self):
        pass

    def score(self, user_idx, item_idx):
        return self.table[user_idx.unsqueeze(1), item_idx]

    def score_all(self, user_idx):
        return self.table[user_idx].clone()


def _tiny_split():
    from uibrec.data.interactions import IdMap, Interactions
    from uibrec.data.split import Split

    # 2 users, 6 items. User 0 trained on items 0, 1; valid 2, test 3.
    # User 1 trained on item 4; valid 5, test 0.
    train = Interactions(np.array([0, 0, 1]), np.array([0, 1, 4]),
                         IdMap(np.array([10, 11])), IdMap(np.arange(6)))
    return Split(train, np.array([0, 1]), np.array([2, 5]), np.array([3, 0]), seed=0,
                 order="random")


def test_full_ranking_masks_training_and_other_held_out_items():
    split = _tiny_split()
    # User 0 scores its train items (0, 1) and valid item (2) highest: masked for test.
    # Test item 3 scores 0.5; item 4 scores 0.6 (above), item 5 scores 0.5 (tie): rank 2.
    table = [[9.0, 9.0, 9.0, 0.5, 0.6, 0.5],
             # User 1: test item 0 scores 1.0, beaten by nothing unmasked: rank 0.
             [1.0, 0.0, 0.0, 0.0, 5.0, 5.0]]
    evaluator = Evaluator(split, candidates=None)
    ranks = evaluator.ranks(FixedScores(table), "test", "full")
    assert ranks.tolist() == [2, 0]


def test_sampled_ranks_use_candidates():
    split = _tiny_split()
    table = [[0, 0, 0.7, 0.5, 0.6, 0.8], [0.2, 0, 0, 0.3, 0, 0.1]]
    candidates = np.array([[4, 5], [1, 3]])
    evaluator = Evaluator(split, candidates)
    # valid: user 0 item 2 (0.7) vs 0.6, 0.8 -> rank 1; user 1 item 5 (0.1) vs 0, 0.3 -> 1
    assert evaluator.ranks(FixedScores(table), "valid").tolist() == [1, 1]
    # test: user 0 item 3 (0.5) vs 0.6, 0.8 -> 2; user 1 item 0 (0.2) vs 0, 0.3 -> 1
    assert evaluator.ranks(FixedScores(table), "test").tolist() == [2, 1]


def test_rows_evaluate_a_share_of_the_users():
    split = _tiny_split()
    table = [[9.0, 9.0, 9.0, 0.5, 0.6, 0.5], [1.0, 0.0, 0.0, 0.0, 5.0, 5.0]]
    candidates = np.array([[4, 5], [1, 3]])
    # Row 1 alone (user 1): the same ranks as in test_full_ranking... and sampled: test
    # item 0 (1.0) against items 1 (0.0) and 3 (0.0) -> rank 0.
    evaluator = Evaluator(split, candidates, rows=np.array([1]))
    assert evaluator.ranks(FixedScores(table), "test", "full").tolist() == [0]
    assert evaluator.ranks(FixedScores(table), "test").tolist() == [0]


def test_metrics_from_ranks_takes_tensors():
    ranks = [0, 3, 12]
    assert metrics_from_ranks(torch.tensor(ranks)) == metrics_from_ranks(ranks)


@pytest.mark.parametrize("limit", [2**24, 0])  # float32 counting, and the integer sum
def test_ranks_count_ties_against_the_positive(limit, monkeypatch):
    import uibrec.evaluation

    monkeypatch.setattr(uibrec.evaluation, "FLOAT_COUNT_LIMIT", limit)
    pos = torch.tensor([0.5, 2.0, -torch.inf])
    others = torch.tensor([[0.5, 0.4, 0.9],  # one tie, one above: rank 2
                           [1.0, 1.5, 1.9],  # all below: rank 0
                           [-torch.inf, 0.0, -1.0]])  # -inf ties -inf: rank 3
    ranks = uibrec.evaluation.ranks_against(pos, others)
    assert ranks.dtype == torch.int64
    assert ranks.tolist() == [2, 0, 3]


@pytest.mark.parametrize("pos, cand, ks, message", [
    # A NaN positive compares false with every candidate: rank 0, a perfect hit@1.
    ([np.nan], np.zeros((1, 100)), (1,), "pos_scores holds NaN at 1 place"),
    # A NaN candidate never counts against the positive.
    ([0.0, 1.0], [[np.nan, 2.0], [np.nan, np.nan]], (1,), "candidate_scores holds NaN at 3"),
    # hit@0 is always 0 and was returned as a metric.
    ([1.0], [[0.0]], (0,), r"ks must be cut-offs of at least 1, got \(0,\)"),
    ([1.0], [[0.0]], (10, -1), r"ks must be cut-offs of at least 1, got \(10, -1\)"),
    ([1.0], [[0.0]], (), r"ks must be cut-offs of at least 1, got \(\)"),
    # Empty input gave NaN metrics.
    (np.zeros(0), np.zeros((0, 100)), (1,), r"at least one user .* shape \(0, 100\)"),
    ([1.0], np.zeros((1, 0)), (1,), r"at least one user and one candidate"),
])
def test_rank_metrics_rejects_nan_scores_bad_cutoffs_and_empty_input(pos, cand, ks, message):
    with pytest.raises(ValueError, match=message):
        rank_metrics(np.asarray(pos), np.asarray(cand), ks=ks)


def test_metrics_from_ranks_rejects_empty_ranks_and_bad_cutoffs():
    with pytest.raises(ValueError, match="no ranks to average"):
        metrics_from_ranks(np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError, match="ks must be cut-offs of at least 1"):
        metrics_from_ranks(np.zeros(2, dtype=np.int64), ks=(0,))
    # Ranks 0 and 3 at k = 10: hit 1, ndcg (1 + 1/log2(5)) / 2, mrr (1 + 1/4) / 2.
    got = metrics_from_ranks(np.array([0, 3]), ks=(10,))
    assert got == pytest.approx({"hit@10": 1.0, "ndcg@10": (1 + 1 / math.log2(5)) / 2,
                                 "mrr@10": 0.625})
