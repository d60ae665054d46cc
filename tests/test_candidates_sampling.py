import numpy as np
import pytest
import torch

from uibrec import Interactions, leave_one_out, sample_candidates
from uibrec.data.candidates import load_or_sample_candidates, seen_items_csr
from uibrec.data.interactions import csr_gather
from uibrec.sampling import NegativeSampler, pack_bits


def _random_data(num_users=50, num_items=300, per_user=20, seed=0):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(num_users), per_user)
    items = np.concatenate([rng.choice(num_items, per_user, replace=False)
                            for _ in range(num_users)])
    return Interactions.from_raw(users, items)


def test_candidates_exclude_every_interaction_and_have_no_duplicates():
    split = leave_one_out(_random_data(), seed=1)
    cands = sample_candidates(split, n=100, seed=3)
    assert cands.shape == (50, 100)
    indptr, indices = seen_items_csr(split)
    owner, seen = csr_gather(indptr, indices, split.eval_users)
    seen_pairs = set(zip(owner.tolist(), seen.tolist()))
    for row, items in enumerate(cands):
        assert len(set(items.tolist())) == 100
        assert not any((row, int(i)) in seen_pairs for i in items)
    # the held-out items are among what is excluded
    assert not (cands == split.test_items[:, None]).any()
    assert not (cands == split.valid_items[:, None]).any()


def test_candidates_are_seeded_and_cached(tmp_path):
    split = leave_one_out(_random_data(), seed=1)
    first = load_or_sample_candidates(split, 100, seed=3, cache_root=tmp_path)
    again = load_or_sample_candidates(split, 100, seed=3, cache_root=tmp_path)
    assert np.array_equal(first, again)
    assert len(list(tmp_path.glob("candidates-*.npy"))) == 1
    assert not np.array_equal(first, sample_candidates(split, 100, seed=4))


def test_candidates_are_uniform_over_unseen_items():
    # One user who saw items 0..4 of 10: each of the 5 others is drawn with p = 3/5.
    data = Interactions.from_raw(np.zeros(5, int), np.arange(5))
    data = Interactions(data.user_idx, data.item_idx, data.user_map,
                        type(data.item_map)(np.arange(10)))
    split = leave_one_out(data, seed=0)
    counts = np.zeros(10)
    for seed in range(2000):
        counts[sample_candidates(split, n=3, seed=seed)[0]] += 1
    assert counts[:5].sum() == 0
    assert np.allclose(counts[5:] / 2000, 0.6, atol=0.05)


def test_too_small_catalogue_is_a_clear_error():
    split = leave_one_out(_random_data(num_items=110, per_user=20), seed=0)
    with pytest.raises(ValueError, match="fewer than 100 unseen items"):
        sample_candidates(split, n=100)


@pytest.mark.parametrize("table", ["bits", "sorted"])
def test_sampler_never_returns_a_training_positive(table, monkeypatch):
    if table == "sorted":
        monkeypatch.setattr("uibrec.sampling._BITMAP_MAX_CELLS", 0)
    # Users own most of a small catalogue, so many draws are rejected and redrawn.
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(20), 15)
    items = np.concatenate([rng.choice(20, 15, replace=False) for _ in range(20)])
    sampler = NegativeSampler(users, items, 20, 20, seed=0)
    batch = torch.arange(20).repeat(10)
    negatives = sampler.sample(batch, 32)
    assert negatives.shape == (200, 32)
    owned = set(zip(users.tolist(), items.tolist()))
    pairs = zip(batch.repeat_interleave(32).tolist(), negatives.reshape(-1).tolist())
    assert not any(pair in owned for pair in pairs)
    # each user has 5 free items and all of them are reached
    assert len(set(negatives[batch == 0].reshape(-1).tolist())) == 5


def _words(items, num_items):
    """Raw 64-bit words whose 32-bit halves map to ``items`` under ``num_items``."""
    halves = [(item * 2**32 + num_items - 1) // num_items for item in items]
    halves += [0] * (len(halves) % 2)
    return np.array([lo + (hi << 32) for lo, hi in zip(halves[::2], halves[1::2])],
                    dtype=np.uint64)


@pytest.mark.parametrize("table", ["bits", "sorted"])
def test_compiled_draw_matches_its_python_source(table):
    # The compiled pass and the same function run as Python turn the same words into the
    # same negatives; spares replace rejected cells in row-major order.
    from uibrec import kernels

    keys = np.array([0 * 4 + 1, 0 * 4 + 2, 1 * 4 + 0])  # user 0 owns items 1, 2; user 1 item 0
    bits = pack_bits(keys, 8) if table == "bits" else np.zeros(0, np.uint8)
    sorted_keys = keys if table == "sorted" else np.zeros(0, np.int64)
    users = np.array([0, 1])
    # first 6 items are the draws, then the spares 2, 3, 0, 1, 1
    words = _words([0, 1, 2, 1, 0, 3] + [2, 3, 0, 1, 1], 4)
    # (0, 1): spare 2 is owned too, then 3; (0, 2): spare 0; (1, 1) owns 0: spare 1
    expected = [[0, 3, 0], [1, 1, 3]]
    for run in (kernels.draw_negatives, getattr(kernels.draw_negatives, "py_func",
                                                kernels.draw_negatives)):
        out = np.zeros((2, 3), dtype=np.int64)
        assert run(users, words, 4, bits, sorted_keys, out) == 6 + 4
        assert out.tolist() == expected
    # too few spares to finish: -1
    assert kernels.draw_negatives(np.array([0]), _words([1, 2], 4), 4, bits, sorted_keys,
                                  np.zeros((1, 2), dtype=np.int64)) == -1


def test_sampler_is_seeded():
    users, items = np.array([0, 0, 1]), np.array([0, 1, 2])
    a = NegativeSampler(users, items, 2, 50, seed=7).sample(torch.tensor([0, 1]), 16)
    b = NegativeSampler(users, items, 2, 50, seed=7).sample(torch.tensor([0, 1]), 16)
    assert torch.equal(a, b)


def test_sampler_refuses_a_catalogue_beyond_32_bits():
    with pytest.raises(ValueError, match="fewer than 2\\*\\*32 items"):
        NegativeSampler(np.array([0]), np.array([0]), 1, 2**32)


def test_sampler_draws_are_uniform_over_free_items():
    # One user owns items 0..2 of 8: each of the 5 free items gets a fifth of the draws.
    sampler = NegativeSampler(np.zeros(3, int), np.arange(3), 1, 8, seed=0)
    draws = sampler.sample(torch.zeros(2000, dtype=torch.int64), 10).reshape(-1)
    counts = np.bincount(draws.numpy(), minlength=8)
    assert counts[:3].sum() == 0
    np.testing.assert_allclose(counts[3:] / draws.numel(), 0.2, atol=0.01)


def test_sampler_rejects_user_with_every_item():
    with pytest.raises(ValueError, match="1 users have interacted with every one of the 3"):
        NegativeSampler(np.array([0, 0, 0, 1]), np.array([0, 1, 2, 0]), 2, 3)


def test_pack_bits_matches_numpy_packbits():
    # Keys 0, 3, 8, 9, 15 of 17 cells: byte 0 = bits 0, 3 = 1 + 8 = 9; byte 1 = bits 0, 1,
    # 7 = 1 + 2 + 128 = 131; byte 2 (cell 16) empty.
    keys = np.array([0, 3, 8, 9, 15])
    assert pack_bits(keys, 17).tolist() == [9, 131, 0]
    cells = np.zeros(1000, dtype=bool)
    cells[np.random.default_rng(0).choice(1000, 300, replace=False)] = True
    assert np.array_equal(pack_bits(np.flatnonzero(cells), 1000),
                          np.packbits(cells, bitorder="little"))
    assert pack_bits(np.array([], dtype=np.int64), 9).tolist() == [0, 0]
