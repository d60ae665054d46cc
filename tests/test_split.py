import logging

import numpy as np
import pytest

from uibrec import Interactions, leave_one_out, prepare
from uibrec.data.split import drop_duplicates, filter_min_interactions


def _data():
    # users a (6 rows, one duplicate), b (4 rows), c (5 rows); items x0..x7
    users = ["a"] * 6 + ["b"] * 4 + ["c"] * 5
    items = ["x0", "x1", "x2", "x3", "x4", "x0", "x1", "x2", "x3", "x7",
             "x1", "x2", "x3", "x4", "x5"]
    times = [5, 4, 3, 2, 1, 9, 1, 2, 3, 4, 10, 20, 30, 40, 50]
    return Interactions.from_raw(users, items, timestamp=times, name="toy")


def test_duplicates_collapse_to_earliest_and_are_counted():
    report = {}
    data = drop_duplicates(_data(), report)
    assert report["duplicate rows"] == 1
    assert len(data) == 14
    # user a keeps (a, x0) at time 5, not the later repeat at 9
    a, x0 = 0, 0
    rows = (data.user_idx == a) & (data.item_idx == x0)
    assert data.timestamp[rows].tolist() == [5]


def test_five_interaction_filter_counts_what_it_removes(caplog):
    report = {}
    with caplog.at_level(logging.INFO, logger="uibrec.data.split"):
        data = prepare(_data(), min_user=5, report=report)
    # b has 4 rows and goes; a (5 after dedup) and c (5) stay; x7 was b's alone.
    assert report == {"raw rows": 15, "duplicate rows": 1, "rows of filtered users/items": 4,
                      "users filtered out": 1, "items left without interactions": 1}
    assert data.num_users == 2 and data.num_items == 6
    assert list(data.user_map.ids) == ["a", "c"]
    assert "users filtered out: 1" in caplog.text


def test_k_core_filter_repeats_until_stable():
    # min 3 per user, 2 per item. Round 1 drops user w (2 rows); round 2 then drops item z
    # (only v left on it); round 3 drops v (2 rows left). x and y on p, q, s remain.
    users = ["v"] * 3 + ["w"] * 2 + ["y"] * 3 + ["x"] * 3
    items = ["p", "q", "z", "z", "p", "p", "q", "s", "q", "p", "s"]
    report = {}
    data = filter_min_interactions(Interactions.from_raw(users, items), min_user=3,
                                   min_item=2, report=report)
    assert sorted(data.user_map.ids) == ["x", "y"]
    assert sorted(data.item_map.ids) == ["p", "q", "s"]
    assert len(data) == 6
    assert report["rows of filtered users/items"] == 5
    assert report["users filtered out"] == 2 and report["items left without interactions"] == 1


def test_random_split_is_identical_for_a_seed_and_differs_across_seeds():
    rng = np.random.default_rng(0)
    data = Interactions.from_raw(np.repeat(np.arange(100), 10), rng.integers(0, 500, 1000))
    data = prepare(data)
    a, b, c = leave_one_out(data, seed=1), leave_one_out(data, seed=1), leave_one_out(data, 2)
    assert np.array_equal(a.test_items, b.test_items)
    assert np.array_equal(a.valid_items, b.valid_items)
    assert np.array_equal(a.train.item_idx, b.train.item_idx)
    assert not np.array_equal(a.test_items, c.test_items)
    # every interaction is in exactly one part
    assert len(a.train) + 2 * len(a.eval_users) == len(data)


def test_temporal_split_holds_out_the_latest():
    data = prepare(_data(), min_user=5)
    split = leave_one_out(data, order="temporal")
    items = data.item_map.ids
    # a: times x0=5, x1=4, x2=3, x3=2, x4=1 -> test x0, valid x1; c: latest x5, then x4
    assert [items[i] for i in split.test_items] == ["x0", "x5"]
    assert [items[i] for i in split.valid_items] == ["x1", "x4"]


def test_temporal_split_needs_timestamps():
    data = Interactions.from_raw([1, 1, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="needs timestamps"):
        leave_one_out(data, order="temporal")


def test_users_under_three_interactions_only_train(caplog):
    data = Interactions.from_raw([1, 1, 2, 2, 2], [1, 2, 1, 2, 3])
    split = leave_one_out(data, seed=0)
    assert split.eval_users.tolist() == [1]
    assert len(split.train) == 3
    assert "1 users have fewer than 3 interactions" in caplog.text
