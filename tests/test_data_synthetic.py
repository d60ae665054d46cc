import numpy as np
import pytest
from click.testing import CliRunner

from uibrec.cli import main
from uibrec.data.registry import load_dataset
from uibrec.data.synthetic import (
    item_probabilities,
    synthetic_interactions,
    synthetic_keys,
    user_counts,
)


def test_sizes_and_no_repeated_pairs():
    data = synthetic_interactions(300, 200, 12_000, zipf=1.0, seed=3)
    assert len(data) == 12_000
    assert (data.num_users, data.num_items) == (300, 200)
    keys = data.user_idx * 200 + data.item_idx
    assert len(np.unique(keys)) == 12_000
    per_user = np.bincount(data.user_idx, minlength=300)
    assert per_user.min() >= 5  # every user survives the paper's filter
    assert per_user.max() <= 100  # at most half of the items (max_share)
    assert per_user.std() > 5  # activity varies


def test_same_seed_same_data_other_seed_other_data():
    first = synthetic_keys(50, 40, 900, seed=1)
    assert np.array_equal(first, synthetic_keys(50, 40, 900, seed=1))
    assert not np.array_equal(first, synthetic_keys(50, 40, 900, seed=2))


def test_popularity_is_long_tailed_and_zipf_0_is_flat():
    data = synthetic_interactions(2000, 1000, 60_000, zipf=1.0, seed=0)
    counts = np.sort(np.bincount(data.item_idx, minlength=1000))[::-1]
    # Under r^-1 over 1000 items the top 1% hold H(10)/H(1000) = 2.93/7.49 = 39% of the
    # draws; distinctness per user caps the most popular items, so expect well above 10%.
    assert counts[:10].sum() / len(data) > 0.15
    assert counts[:10].mean() > 20 * np.median(counts)
    flat = synthetic_interactions(2000, 1000, 60_000, zipf=0.0, seed=0)
    flat_counts = np.bincount(flat.item_idx, minlength=1000)
    assert flat_counts.max() < 2 * flat_counts.mean()


def test_item_probabilities_follow_rank_power():
    probs = item_probabilities(3, 1.0, np.random.default_rng(0))
    # Weights 1, 1/2, 1/3 normalised by 11/6: 6/11, 3/11, 2/11, in a shuffled order.
    assert np.allclose(np.sort(probs), [2 / 11, 3 / 11, 6 / 11])


def test_user_counts_fill_to_the_cap_and_reject_impossible_sizes():
    rng = np.random.default_rng(0)
    counts = user_counts(3, 30, max_per_user=10, min_per_user=5, sigma=2.0, rng=rng)
    assert counts.tolist() == [10, 10, 10]
    counts = user_counts(4, 27, max_per_user=10, min_per_user=5, sigma=1.0, rng=rng)
    assert counts.sum() == 27 and counts.min() >= 5 and counts.max() <= 10
    with pytest.raises(ValueError, match="31 rows do not fit 3 users"):
        user_counts(3, 31, max_per_user=10, min_per_user=5, sigma=1.0, rng=rng)


def test_synth_command_writes_a_readable_csv(tmp_path):
    out = tmp_path / "syn.csv"
    result = CliRunner().invoke(main, ["data", "synth", "--users", "40", "--items", "30",
                                       "--rows", "500", "--out", str(out), "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert "wrote 500 interactions" in result.output
    data = load_dataset(out)
    assert len(data) == 500 and data.num_users == 40
    expected = synthetic_keys(40, 30, 500, seed=4)
    got = np.sort(data.user_map.ids[data.user_idx].astype(np.int64) * 30
                  + data.item_map.ids[data.item_idx].astype(np.int64))
    assert np.array_equal(got, expected)
