import numpy as np
import torch

from uibrec.ops import Dropout, batch_dot


def test_batch_dot_matches_autograd():
    torch.manual_seed(0)
    users = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    items = torch.randn(4, 5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(batch_dot, (users, items))
    expected = (items * users.unsqueeze(1)).sum(-1)
    assert torch.allclose(batch_dot(users, items), expected)


def test_dropout_keeps_expected_share_and_rescales():
    drop = Dropout(0.25, seed=0)
    out = drop(torch.ones(200_000), training=True)
    kept = out > 0
    # p = 64/256 exactly; kept values are 1 / (1 - p)
    assert abs(kept.float().mean().item() - 0.75) < 0.005
    assert torch.allclose(out[kept], torch.tensor(1 / 0.75))
    assert torch.equal(drop(torch.ones(5), training=False), torch.ones(5))


def test_dropout_is_seeded():
    a = Dropout(0.1, seed=3)(torch.ones(1000), True)
    b = Dropout(0.1, seed=3)(torch.ones(1000), True)
    assert torch.equal(a, b)


import pytest  # noqa: E402

from uibrec import ops  # noqa: E402


@pytest.mark.parametrize("p", [0.0, 0.3])
def test_compiled_gather_dot_matches_tensor_path(p, monkeypatch):
    torch.manual_seed(0)
    users = torch.randn(6, 8, requires_grad=True)
    table = torch.randn(20, 8, requires_grad=True)
    idx = torch.randint(0, 20, (6, 5))
    weights = torch.randn(6, 5)
    results = []
    for use_kernels in (True, False):
        monkeypatch.setattr(ops, "USE_KERNELS", use_kernels)
        users.grad = table.grad = None
        scores = ops.gather_dot(users, table, idx, Dropout(p, seed=1))
        (scores * weights).sum().backward()
        results.append((scores.detach(), users.grad.clone(), table.grad.clone()))
    for compiled, tensor in zip(*results):
        assert torch.allclose(compiled, tensor, atol=1e-5)


def test_gather_dot_gradient_is_right():
    torch.manual_seed(0)
    users = torch.randn(3, 4, requires_grad=True)
    table = torch.randn(7, 4, requires_grad=True)
    idx = torch.tensor([[0, 6, 6], [1, 2, 3], [4, 5, 0]])
    scores = ops.gather_dot(users, table, idx)
    expected = (table[idx] * users.unsqueeze(1)).sum(-1)
    assert torch.allclose(scores, expected, atol=1e-6)
    weights = torch.randn(3, 3)
    g_users, g_table = torch.autograd.grad((scores * weights).sum(), (users, table))
    e_users, e_table = torch.autograd.grad((expected * weights).sum(), (users, table))
    assert torch.allclose(g_users, e_users, atol=1e-5)
    assert torch.allclose(g_table, e_table, atol=1e-5)


@pytest.mark.parametrize("p", [0.0, 0.3])
def test_parallel_gather_dot_matches_serial(p, monkeypatch):
    # Two threads split the batch; table rows shared by both halves are summed from two
    # partial buffers, so the gradients agree to rounding, the scores exactly.
    torch.manual_seed(0)
    users = torch.randn(300, 8, requires_grad=True)
    table = torch.randn(20, 8, requires_grad=True)  # few rows: every row in both halves
    idx = torch.randint(0, 20, (300, 5))
    weights = torch.randn(300, 5)
    results = []
    for threads in (1, 2):
        monkeypatch.setattr(torch, "get_num_threads", lambda threads=threads: threads)
        users.grad = table.grad = None
        scores = ops.gather_dot(users, table, idx, Dropout(p, seed=1))
        (scores * weights).sum().backward()
        results.append((scores.detach(), users.grad.clone(), table.grad.clone()))
    (s1, u1, t1), (s2, u2, t2) = results
    assert torch.equal(s1, s2) and torch.equal(u1, u2)
    torch.testing.assert_close(t1, t2, rtol=1e-5, atol=1e-5)
    assert ops._kernel_threads(idx) == 2
    assert ops._kernel_threads(idx[:100]) == 1  # under 64 rows a thread: not worth it


def _reference_words(count, key):
    # The stream in NumPy's wrapping uint32 arithmetic, written out from its definition.
    def mix(x):
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(0x21F0AAAD)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(0x735A2D97)
        return x ^ (x >> np.uint32(15))

    lo, hi = np.uint32(key & 0xFFFFFFFF), np.uint32(key >> 32)
    with np.errstate(over="ignore"):
        return mix(mix(np.arange(count, dtype=np.uint32) ^ lo) + hi)


@pytest.mark.parametrize("use_kernels", [True, False])
def test_mask_bytes_are_the_little_endian_bytes_of_the_hashed_words(use_kernels, monkeypatch):
    monkeypatch.setattr(ops.kernels, "AVAILABLE", use_kernels)
    key = 0x9E3779B97F4A7C15
    got = ops.mask_bytes(key, (3, 7)).numpy()
    words = _reference_words(6, key)  # 21 bytes take 6 words
    expected = np.stack([(words >> np.uint32(s)) & np.uint32(255) for s in (0, 8, 16, 24)], 1)
    np.testing.assert_array_equal(got.reshape(-1), expected.reshape(-1)[:21])
    # mix32(0) = 0: key 0 maps word 0 to 0, so its first four bytes are 0.
    assert ops.mask_bytes(0, (4,)).tolist() == [0, 0, 0, 0]


def test_mask_bytes_are_uniform_and_differ_between_keys():
    a = ops.mask_bytes(1, (1 << 18,)).numpy()
    b = ops.mask_bytes(2, (1 << 18,)).numpy()
    counts = np.bincount(a, minlength=256)
    # 1024 expected per value; a chi-square over 255 degrees of freedom stays under 330
    # with probability above 0.999.
    assert ((counts - 1024) ** 2 / 1024).sum() < 330
    assert abs((a == b).mean() - 1 / 256) < 0.001  # unrelated streams agree by chance


def test_dropout_draws_one_key_per_block():
    drop = Dropout(0.1, seed=5)
    keys = np.random.default_rng(5).bit_generator.random_raw(2)
    assert torch.equal(drop.bytes((2, 3)), ops.mask_bytes(int(keys[0]), (2, 3)))
    assert drop.draw_key() == int(keys[1])
