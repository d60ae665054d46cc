"""Linear-time leave-one-out, the duplicate fast path and the k-core filter."""

import numpy as np
import pytest

from uibrec.data.interactions import Interactions
from uibrec.data.split import drop_duplicates, k_core, leave_one_out


def lexsort_reference(data: Interactions, seed: int, order: str):
    """The held-out rows by a full sort: each user's last row, then the one before it."""
    tie_break = np.random.default_rng(seed).random(len(data))
    keys = (tie_break,) if order == "random" else (tie_break, data.timestamp)
    rows = np.lexsort(keys + (data.user_idx,))
    ends = np.cumsum(np.bincount(data.user_idx, minlength=data.num_users))
    eligible = np.flatnonzero(np.bincount(data.user_idx, minlength=data.num_users) >= 3)
    return data.item_idx[rows[ends[eligible] - 2]], data.item_idx[rows[ends[eligible] - 1]]


@pytest.mark.parametrize("order", ["random", "temporal"])
def test_leave_one_out_matches_a_full_sort(order):
    rng = np.random.default_rng(5)
    for _ in range(20):
        n = int(rng.integers(30, 400))
        data = Interactions.from_raw(rng.integers(0, 25, n), rng.integers(0, 60, n),
                                     timestamp=rng.integers(0, 6, n))  # many timestamp ties
        split = leave_one_out(data, seed=3, order=order)
        valid, test = lexsort_reference(data, 3, order)
        assert np.array_equal(split.valid_items, valid)
        assert np.array_equal(split.test_items, test)
        assert len(split.train) == len(data) - 2 * len(split.eval_users)


def test_temporal_holds_out_the_latest_two():
    # User 0: times 5, 9, 1, 7 -> test at time 9 (item 1), validation at time 7 (item 3).
    data = Interactions.from_raw([0, 0, 0, 0], [0, 1, 2, 3], timestamp=[5, 9, 1, 7])
    split = leave_one_out(data, order="temporal")
    assert split.test_items.tolist() == [1] and split.valid_items.tolist() == [3]


def test_drop_duplicates_counts_zero_without_duplicates():
    data = Interactions.from_raw([1, 1, 2], [5, 6, 5])
    report = {}
    assert drop_duplicates(data, report) is data
    assert report == {"duplicate rows": 0}


def test_k_core_by_hand():
    # u0: a, b, c; u1: a, b; u2: c. 2-core: u2 goes (1 rating), then c has only u0's -> goes.
    data = Interactions.from_raw(["u0", "u0", "u0", "u1", "u1", "u2"],
                                 ["a", "b", "c", "a", "b", "c"])
    report = {}
    core = k_core(data, 2, report)
    assert list(core.user_map.ids) == ["u0", "u1"] and list(core.item_map.ids) == ["a", "b"]
    assert len(core) == 4
    assert report == {"2-core: duplicate rows": 0, "2-core: rows of filtered users/items": 2,
                      "2-core: users filtered out": 1,
                      "2-core: items left without interactions": 1}
