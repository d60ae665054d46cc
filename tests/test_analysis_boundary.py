"""Offset sweep and pre-ranking filter on hand-made scores."""

import numpy as np
import pytest
import torch
from torch import nn

from uibrec.analysis.boundary import analyze_boundary, offset_counts, precision_recall_f1
from uibrec.data.interactions import IdMap, Interactions
from uibrec.data.split import Split
from uibrec.models.base import BoundaryHead, Recommender

# margin = s(u, i) - b_u for 2 users and 4 items
MARGIN = torch.tensor([[2.5, 0.5, -0.5, -2.0],
                       [1.0, -1.0, 3.0, 0.0]])
RELEVANT = torch.tensor([[True, True, False, False],
                         [False, True, True, False]])


def test_offset_counts_by_hand():
    hits, predicted, relevant = offset_counts(MARGIN, RELEVANT, [-1, 0, 1])
    # offset -1: u0 wants items 0,1,2 (2 relevant); u1 wants 0,2,3 (-1 > -1 is false; 1 hit)
    # offset 0: u0 wants 0,1 (2 hits); u1 wants 0,2 (0 > 0 is false; 1 hit)
    # offset 1: u0 wants 0 (1 hit); u1 wants 2 (1 > 1 is false; 1 hit)
    assert hits.tolist() == [[2, 1], [2, 1], [1, 1]]
    assert predicted.tolist() == [[3, 3], [2, 2], [1, 1]]
    assert relevant.tolist() == [2, 2]


def test_precision_recall_f1_by_hand():
    hits, predicted, relevant = offset_counts(MARGIN, RELEVANT, [-1, 0, 1])
    table = precision_recall_f1(hits, predicted, relevant, [-1, 0, 1])
    # pooled: -1: 3/6, 3/4, F1 2*.5*.75/1.25 = .6;  0: 3/4, 3/4;  1: 2/2, 2/4, F1 2/3
    np.testing.assert_allclose(table["precision"], [0.5, 0.75, 1.0])
    np.testing.assert_allclose(table["recall"], [0.75, 0.75, 0.5])
    np.testing.assert_allclose(table["f1"], [0.6, 0.75, 2 / 3])
    # per user at -1: p = (2/3, 1/3), r = (1, 1/2), F1 = (0.8, 0.4)
    np.testing.assert_allclose(table["user_precision"], [0.5, 0.75, 1.0])
    np.testing.assert_allclose(table["user_recall"], [0.75, 0.75, 0.5])
    np.testing.assert_allclose(table["user_f1"], [0.6, 0.75, 2 / 3])
    np.testing.assert_allclose(table["wanted_per_user"], [3, 2, 1])


def test_only_candidates_are_classified():
    candidates = torch.tensor([[False, True, True, True],
                               [True, True, True, True]])
    hits, predicted, relevant = offset_counts(MARGIN, RELEVANT, [0], candidates)
    # u0's item 0 is not a candidate: neither wanted nor relevant any more
    assert hits.tolist() == [[1, 1]]
    assert predicted.tolist() == [[1, 2]]
    assert relevant.tolist() == [1, 2]


def test_nothing_wanted_gives_zero_precision_and_users_without_relevant_are_left_out():
    hits = torch.tensor([[0, 0]])
    predicted = torch.tensor([[0, 3]])
    table = precision_recall_f1(hits, predicted, torch.tensor([1, 0]), [5])
    assert table.loc[0, ["precision", "recall", "f1", "user_f1"]].tolist() == [0, 0, 0, 0]
    assert table.loc[0, "users"] == 1
    assert table.loc[0, "wanted_per_user"] == 0  # user 1 (no relevant item) is left out


class FixedScores(Recommender):
    """Scores from a fixed (num_users, num_items) table."""

    def __init__(self, scores):
        super().__init__()
        self.table = nn.Parameter(torch.as_tensor(scores, dtype=torch.float32))
        self.num_users, self.num_items = self.table.shape
        self.dim = 1

    def users(self, user_idx):
        return torch.zeros(*user_idx.shape, 1)

    def score_all(self, user_idx):
        return self.table[user_idx]

    def score(self, user_idx, item_idx):
        return self.table[user_idx.unsqueeze(1), item_idx]


def _hand_split() -> Split:
    # user 0: train {0, 1}, valid 2, test 3;  user 1: train {4}, valid 0, test 1
    train = Interactions(np.array([0, 0, 1]), np.array([0, 1, 4]),
                         IdMap(np.array(["a", "b"])), IdMap(np.arange(5) + 10))
    return Split(train, np.array([0, 1]), np.array([2, 0]), np.array([3, 1]), seed=0,
                 order="random")


@pytest.fixture
def hand_model():
    scores = [[2.0, -1.0, 0.5, 1.0, -2.0],
              [0.0, 3.0, 1.0, 2.5, 1.5]]
    head = BoundaryHead(1, 2, "free")
    with torch.no_grad():
        head.offset.weight.copy_(torch.tensor([[0.0], [1.0]]))
    return FixedScores(scores), head


def test_analyze_boundary_by_hand(hand_model):
    model, head = hand_model
    result = analyze_boundary(model, head, _hand_split(), offsets=[0], batch_size=1)
    sweep = result.sweep.set_index("scope")
    # margins: u0 [2, -1, .5, 1, -2], u1 [-1, 2, 0, 1.5, .5]
    # known: u0 wants 0,2,3, all known (3 hits); u1 wants 1,3,4, known {0,1,4} (2 hits)
    assert sweep.loc["known", "precision"] == pytest.approx(5 / 6)
    assert sweep.loc["known", "recall"] == pytest.approx(5 / 7)
    assert sweep.loc["known", "f1"] == pytest.approx(10 / 13)
    # test: u0 classifies {3, 4}, wants 3 (its test item); u1 classifies {1, 2, 3},
    # wants 1 (its test item) and 3 (2 scores exactly b_u)
    assert sweep.loc["test", "precision"] == pytest.approx(2 / 3)
    assert sweep.loc["test", "recall"] == pytest.approx(1.0)
    assert sweep.loc["test", "f1"] == pytest.approx(0.8)

    users = result.per_user
    assert users["boundary"].tolist() == [0.0, 1.0]
    assert users["num_known"].tolist() == [4, 3]
    assert users["num_above"].tolist() == [3, 3]
    np.testing.assert_allclose(users["filtered_share"], [0.4, 0.4])
    # among items not trained on: u0 {2,3,4} keeps 2,3; u1 {0,1,2,3} keeps 1,3
    np.testing.assert_allclose(users["filtered_share_unseen"], [1 / 3, 0.5])
    np.testing.assert_allclose(users["test_margin"], [1.0, 2.0])
    summary = result.summary()
    assert summary["test_survival"] == 1.0
    assert summary["filtered_share_mean"] == pytest.approx(0.4)
    assert summary["known_f1@0"] == pytest.approx(10 / 13)


def test_test_item_below_the_boundary_is_lost(hand_model):
    model, head = hand_model
    with torch.no_grad():
        head.offset.weight[1] = 2.5  # u1's test item (score 3) stays above; raise more
        head.offset.weight[0] = 1.5  # u0's test item scores 1 < 1.5: filtered out
    result = analyze_boundary(model, head, _hand_split(), offsets=[0])
    assert result.per_user["test_above"].tolist() == [False, True]
    assert result.summary()["test_survival"] == 0.5
