"""LightGCN: the normalised graph, its propagation and its hand-written backward."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from uibrec import kernels
from uibrec.data.candidates import sample_candidates
from uibrec.evaluation import Evaluator
from uibrec.models.lightgcn import (
    LightGCN,
    normalized_adjacency,
    propagate,
    sparse_mm,
    sparse_mm_from_rows,
    sparse_mm_rows,
)

# Users 0..2, items 0..3; the pair (0, 0) is given twice and counts once.
# deg u = 2, 3, 1; deg i = 1, 2, 1, 2.
EDGES_USERS = np.array([0, 0, 0, 1, 1, 1, 2])
EDGES_ITEMS = np.array([0, 0, 1, 1, 2, 3, 3])
R_BY_HAND = np.array([
    [1 / np.sqrt(2 * 1), 1 / np.sqrt(2 * 2), 0, 0],  # 0.7071, 0.5
    [0, 1 / np.sqrt(3 * 2), 1 / np.sqrt(3 * 1), 1 / np.sqrt(3 * 2)],  # 0.4082, 0.5774, 0.4082
    [0, 0, 0, 1 / np.sqrt(1 * 2)],  # 0.7071
])


def test_normalized_adjacency_by_hand():
    matrix, transpose = normalized_adjacency(EDGES_USERS, EDGES_ITEMS, 3, 4)
    assert matrix.layout == torch.sparse_csr and transpose.layout == torch.sparse_csr
    np.testing.assert_allclose(matrix.to_dense().numpy(), R_BY_HAND, rtol=1e-6)
    np.testing.assert_allclose(transpose.to_dense().numpy(), R_BY_HAND.T, rtol=1e-6)


def test_held_out_edges_are_not_in_the_graph(synthetic_split, make_components):
    split = synthetic_split
    _, comp = make_components("lightgcn", "native", split)
    dense = comp.model.adjacency.to_dense()  # (num_users, num_items)
    users = torch.as_tensor(split.eval_users)
    assert (dense[users, torch.as_tensor(split.valid_items)] == 0).all()
    assert (dense[users, torch.as_tensor(split.test_items)] == 0).all()
    train = torch.zeros_like(dense, dtype=torch.bool)
    train[split.train.user_idx, split.train.item_idx] = True
    assert torch.equal(dense != 0, train)


def test_propagation_is_the_mean_of_layers():
    model = LightGCN(3, 4, dim=2, layers=2, train_users=EDGES_USERS, train_items=EDGES_ITEMS)
    model.eval()
    r = torch.as_tensor(R_BY_HAND, dtype=torch.float32)
    graph = torch.zeros(7, 7)
    graph[:3, 3:], graph[3:, :3] = r, r.T  # the full symmetric (users + items) matrix
    layer0 = torch.cat([model.user_embedding, model.item_embedding]).detach()
    expected = (layer0 + graph @ layer0 + graph @ graph @ layer0) / 3
    users, items = model.propagate()
    torch.testing.assert_close(torch.cat([users, items]), expected)


def _graph(dtype=torch.float64):
    matrix, transpose = normalized_adjacency(EDGES_USERS, EDGES_ITEMS, 3, 4)
    return matrix.to(dtype), transpose.to(dtype)


def test_propagation_backward_matches_autograd():
    # The backward reuses the forward map (the graph is symmetric); compare it with
    # autograd through dense products, and with finite differences.
    matrix, transpose = _graph()
    gen = torch.Generator().manual_seed(0)
    users = torch.randn(3, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    items = torch.randn(4, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda u, i: propagate(matrix, transpose, u, i, 2), (users, items))
    r = matrix.to_dense()
    graph = torch.zeros(7, 7, dtype=torch.float64)
    graph[:3, 3:], graph[3:, :3] = r, r.T
    grad_out = torch.randn(7, 2, generator=gen, dtype=torch.float64)
    mine = torch.autograd.grad(torch.cat(propagate(matrix, transpose, users, items, 2)),
                               (users, items), grad_out)
    layer0 = torch.cat([users, items])
    dense = (layer0 + graph @ layer0 + graph @ graph @ layer0) / 3
    reference = torch.autograd.grad(dense, (users, items), grad_out)
    torch.testing.assert_close(mine, reference)


@pytest.mark.parametrize("threads", [1, 2])
def test_row_kernel_matches_the_full_product(threads, monkeypatch):
    # The compiled row product, asked for every row, gives PyTorch's full product on any
    # thread count (up to rounding: the two may contract multiply-adds differently), and
    # both give the dense one.
    gen = torch.Generator().manual_seed(1)
    dense = torch.rand(50, 40, generator=gen)
    dense[dense < 0.8] = 0.0
    matrix = dense.to_sparse_csr()
    x = torch.randn(40, 8, generator=gen)
    kernels.set_threads(1)  # the pool started first, with torch's real thread count
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    monkeypatch.setattr("uibrec.models.lightgcn.ROWS_MAX_SHARE", 2.0)  # the kernel always
    full = sparse_mm(matrix, x)
    torch.testing.assert_close(full, dense @ x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sparse_mm_rows(matrix, x, np.arange(50)), full)


def test_cache_follows_the_weights():
    model = LightGCN(3, 4, dim=2, layers=1, train_users=EDGES_USERS, train_items=EDGES_ITEMS)
    model.eval()
    model.prepare()
    users = torch.arange(3)
    before = model.score_all(users)
    with torch.no_grad():
        model.item_embedding.add_(1.0)  # as an optimiser step or a load would
    after = model.score_all(users)
    expected_users, expected_items = model.propagate()
    torch.testing.assert_close(after, expected_users @ expected_items.T)
    assert not torch.allclose(before, after)


def test_evaluation_propagates_once(monkeypatch, synthetic_split, make_components):
    split = synthetic_split
    _, comp = make_components("lightgcn", "uib", split)
    calls = []
    original = LightGCN.propagate
    monkeypatch.setattr(LightGCN, "propagate",
                        lambda self, *rows: calls.append(1) or original(self, *rows))
    evaluator = Evaluator(split, sample_candidates(split, 5), batch_size=3)  # several batches
    evaluator.evaluate(comp.model, "valid")
    evaluator.evaluate(comp.model, "test", "full")
    assert len(calls) == 2


def test_needs_training_data():
    with pytest.raises(ValueError, match="train_users"):
        LightGCN(3, 4)
    with pytest.raises(ValueError, match="layers"):
        LightGCN(3, 4, layers=-1, train_users=EDGES_USERS, train_items=EDGES_ITEMS)


def test_regularization_reads_layer_zero():
    model = LightGCN(3, 4, dim=2, layers=2, train_users=EDGES_USERS, train_items=EDGES_ITEMS)
    with torch.no_grad():
        model.user_embedding.fill_(1.0)  # |P_u|^2 = 2
        model.item_embedding.fill_(2.0)  # |Q_i|^2 = 8
    value = model.regularization(torch.tensor([0, 1]), torch.tensor([0, 1]),
                                 torch.tensor([[2, 3], [3, 3]]))
    # per positive: 2 + 8 + mean(8, 8) = 18
    assert value.item() == pytest.approx(18.0)


def test_moving_the_model_drops_the_cache():
    model = LightGCN(3, 4, dim=2, layers=1, train_users=EDGES_USERS, train_items=EDGES_ITEMS)
    model.eval()
    model.prepare()
    model.to(torch.float64)
    assert model.score_all(torch.arange(3)).dtype == torch.float64


def test_row_kernels_by_hand():
    matrix, transpose = normalized_adjacency(EDGES_USERS, EDGES_ITEMS, 3, 4)
    items = torch.arange(8, dtype=torch.float32).reshape(4, 2)  # item i = (2i, 2i + 1)
    # Only user 1's row: R[1] @ items = 0.4082 * (2, 3) + 0.5774 * (4, 5) + 0.4082 * (6, 7).
    out = sparse_mm_rows(matrix, items, np.array([1]))
    expected = np.sqrt(1 / 6) * np.array([8.0, 10.0]) + np.sqrt(1 / 3) * np.array([4.0, 5.0])
    np.testing.assert_allclose(out[1].numpy(), expected, rtol=1e-6)
    assert (out[[0, 2]] == 0).all()
    # Users 0 and 2 hold (1, 1) and (2, 0), user 1 zero: R.T @ users read from their rows.
    users = torch.tensor([[1.0, 1.0], [0.0, 0.0], [2.0, 0.0]])
    out = sparse_mm_from_rows(matrix, transpose, users, np.array([0, 2]))
    expected = [[np.sqrt(1 / 2)] * 2, [0.5, 0.5], [0, 0], [np.sqrt(1 / 2) * 2, 0]]
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("negatives", [1, 6], ids=["few items (scatter)", "most items"])
def test_a_step_that_names_its_rows_trains_as_a_full_one(negatives):
    # The last layer computed for the batch's rows only, and the backward's first layer
    # reading only them, give the batch the same scores and the weights the same gradient
    # (up to rounding: the row kernel and PyTorch's product may contract differently).
    rng = np.random.default_rng(3)
    users, items = rng.integers(0, 40, 400), rng.integers(0, 30, 400)
    batch_users = torch.tensor([0, 5, 5, 17])
    batch_items = torch.as_tensor(rng.integers(0, 30, (4, 1 + negatives)))
    results = []
    for named in (False, True):
        torch.manual_seed(0)
        model = LightGCN(40, 30, dim=4, layers=3, train_users=users, train_items=items)
        model.train()
        model.prepare(batch_users, batch_items) if named else model.prepare()
        scores = model.score_items(model.users(batch_users), batch_items)
        (scores * torch.linspace(-1, 1, scores.numel()).view_as(scores)).sum().backward()
        results.append((scores.detach(), model.user_embedding.grad, model.item_embedding.grad))
    (full_scores, full_users, full_items), (scores, grad_users, grad_items) = results
    torch.testing.assert_close(scores, full_scores, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad_users, full_users, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad_items, full_items, rtol=1e-5, atol=1e-7)
    assert grad_users.abs().sum() > 0 and grad_items.abs().sum() > 0


def test_the_first_parallel_kernel_keeps_torchs_thread_count():
    # Bug: starting Numba's OpenMP pool set the shared OpenMP runtime to the pool size, so
    # a run set to one torch thread ran torch on every core after its first LightGCN step.
    # A fresh interpreter, since this process's pool is already running.
    script = (
        "import numpy as np, torch\n"
        "torch.set_num_threads(1)\n"
        "from uibrec.models.lightgcn import sparse_mm_rows\n"
        "matrix = torch.eye(3).to_sparse_csr()\n"
        "sparse_mm_rows(matrix, torch.ones(3, 2), np.array([0, 2]))\n"
        "print(torch.get_num_threads())\n"
    )
    env = {**os.environ, "NUMBA_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, check=True)
    assert done.stdout.split() == ["1"]
