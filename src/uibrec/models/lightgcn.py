"""LightGCN: embeddings smoothed over the user-item graph, scored by a dot product.

X. He et al., "LightGCN: Simplifying and Powering Graph Convolution Network for
Recommendation", SIGIR 2020. Layer k+1 of a user is the sum of its items' layer-k
embeddings weighted by ``1 / sqrt(deg u * deg i)``, and symmetrically for items; the final
embedding is the mean of layers 0..K. The graph holds the training interactions only.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from uibrec import kernels
from uibrec.models.base import Recommender
from uibrec.ops import batch_dot


def normalized_adjacency(train_users, train_items, num_users: int, num_items: int):
    """The user-item block ``R`` of the symmetric-normalised graph and its transpose.

    ``R[u, i] = 1 / sqrt(deg u * deg i)`` for each distinct training pair; both are
    float32 CSR tensors, ``(num_users, num_items)`` and ``(num_items, num_users)``.
    """
    users = np.asarray(train_users, dtype=np.int64)
    items = np.asarray(train_items, dtype=np.int64)
    if len(users) != len(items):
        raise ValueError("train_users and train_items must have the same length")
    keys = np.unique(users * num_items + items)  # repeated pairs count once
    users, items = keys // num_items, keys % num_items
    user_deg = np.bincount(users, minlength=num_users)
    item_deg = np.bincount(items, minlength=num_items)
    values = 1.0 / np.sqrt(user_deg[users].astype(np.float64) * item_deg[items])
    return (_csr(users, items, values, (num_users, num_items)),
            _csr(items, users, values, (num_items, num_users)))


def _csr(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape) -> torch.Tensor:
    # 32-bit indices: with 64-bit ones, every product first converts them (10% of its time).
    order = np.lexsort((cols, rows))
    indptr = np.zeros(shape[0] + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(indptr), torch.from_numpy(cols[order].astype(np.int32)),
            torch.from_numpy(values[order].astype(np.float32)), size=shape,
            check_invariants=False)  # built sorted and in range just above


def sparse_mm(matrix: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
    """``matrix @ dense`` for a CSR ``matrix``: PyTorch's own product on every device.

    On the CPU, with the 32-bit indices built here, it took 1.9 ms for an ML-1M-sized
    product (d = 32, one thread) against 3.8 ms for a Numba row loop (benchmarks/README),
    with the same results up to rounding."""
    return torch.sparse.mm(matrix, dense)


def _fast_path(matrix: torch.Tensor, dense: torch.Tensor) -> bool:
    """Whether the compiled CPU kernels take this product (float32 on the CPU)."""
    return (kernels.AVAILABLE and dense.device.type == "cpu"
            and dense.dtype == torch.float32 and matrix.dtype == torch.float32)


def _csr_arrays(matrix: torch.Tensor):
    return matrix.crow_indices().numpy(), matrix.col_indices().numpy(), matrix.values().numpy()


def sparse_mm_rows(matrix: torch.Tensor, dense: torch.Tensor, rows: np.ndarray):
    """``matrix @ dense`` where only ``rows`` of the result are needed: on the CPU, when
    they are fewer than ``ROWS_MAX_SHARE`` of all rows, those are computed (the same
    sums as :func:`sparse_mm` up to rounding) and the others left zero; otherwise the
    whole product."""
    if not _fast_path(matrix, dense) or len(rows) >= ROWS_MAX_SHARE * matrix.shape[0]:
        return sparse_mm(matrix, dense)
    out = torch.zeros(matrix.shape[0], dense.shape[1])
    kernels.set_threads(torch.get_num_threads())
    kernels.csr_matmul_rows(*_csr_arrays(matrix), dense.contiguous().numpy(), rows,
                            out.numpy())
    return out


def sparse_mm_from_rows(matrix: torch.Tensor, transpose: torch.Tensor, dense: torch.Tensor,
                        rows: np.ndarray):
    """``transpose @ dense`` (``transpose`` being ``matrix.T``) when ``dense`` is zero
    outside ``rows``: on the CPU, only those rows of ``matrix`` are read."""
    if not _fast_path(matrix, dense):
        return torch.sparse.mm(transpose, dense)
    out = torch.empty(transpose.shape[0], dense.shape[1])
    kernels.csr_scatter_rows(*_csr_arrays(matrix), dense.contiguous().numpy(), rows,
                             out.numpy())
    return out


# The compiled row kernels take about twice PyTorch's time per matrix entry (3.8 against
# 1.9 ms for all of ML-1M), so they serve a layer only when it needs fewer than half of
# its rows: the last layer (rows of the batch), and the backward's first layer (reading
# only the gradient's non-zero rows; that scatter also runs on one thread only).
ROWS_MAX_SHARE = 0.5
SCATTER_MAX_SHARE = 0.5


def mean_of_layers(adjacency: torch.Tensor, transpose: torch.Tensor, users: torch.Tensor,
                   items: torch.Tensor, layers: int, out_rows=None, in_rows=None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``P [users; items]`` with ``P = mean(I, A, ..., A^layers)``, where ``A`` is the
    symmetric graph whose user-item block is ``adjacency`` (``transpose`` its transpose).

    ``out_rows``, a pair of sorted index arrays (users, items): only those rows of the
    result are needed; the last layer computes only them, so the other rows lack it.
    ``in_rows``, the same for the input: ``users`` and ``items`` are zero outside them;
    the first layer reads only them.
    """
    user_sum, item_sum = users, items
    for layer in range(layers):
        if layer == 0 and in_rows is not None:
            user_rows, item_rows = in_rows
            new_users = (sparse_mm_from_rows(transpose, adjacency, items, item_rows)
                         if len(item_rows) < SCATTER_MAX_SHARE * len(items)
                         else sparse_mm(adjacency, items))
            new_items = (sparse_mm_from_rows(adjacency, transpose, users, user_rows)
                         if len(user_rows) < SCATTER_MAX_SHARE * len(users)
                         else sparse_mm(transpose, users))
        elif layer == layers - 1 and out_rows is not None:
            new_users = sparse_mm_rows(adjacency, items, out_rows[0])
            new_items = sparse_mm_rows(transpose, users, out_rows[1])
        else:
            new_users, new_items = sparse_mm(adjacency, items), sparse_mm(transpose, users)
        users, items = new_users, new_items
        user_sum, item_sum = user_sum + users, item_sum + items
    return user_sum / (layers + 1), item_sum / (layers + 1)


class _Propagate(torch.autograd.Function):
    """LightGCN's propagation as one autograd node. It is the linear map ``P`` above, and
    ``P`` is symmetric because ``A`` is: the backward propagates the gradient exactly as
    the forward propagates the embeddings, with no autograd graph of the ``2K`` sparse
    products kept in between. With ``rows`` (the batch's users and items), the forward
    computes the last layer for those rows only, and the backward, whose gradient is zero
    outside them, reads only them in its first layer."""

    @staticmethod
    def forward(ctx, users, items, adjacency, transpose, layers, rows):
        ctx.graph = (adjacency, transpose, layers, rows)
        return mean_of_layers(adjacency, transpose, users.detach(), items.detach(), layers,
                              out_rows=rows)

    @staticmethod
    def backward(ctx, grad_users, grad_items):
        adjacency, transpose, layers, rows = ctx.graph
        grad_users, grad_items = mean_of_layers(adjacency, transpose, grad_users.contiguous(),
                                                grad_items.contiguous(), layers, in_rows=rows)
        return grad_users, grad_items, None, None, None, None


def propagate(adjacency, transpose, users, items, layers: int, rows=None):
    """Final user and item embeddings of layer-0 ``users`` and ``items``, differentiable;
    with ``rows`` (sorted user and item indices), only those rows are right."""
    return _Propagate.apply(users, items, adjacency, transpose, layers, rows)


def _distinct(idx: torch.Tensor, size: int) -> np.ndarray:
    """The distinct values of ``idx`` in ``[0, size)``, sorted, as int64 NumPy."""
    seen = torch.zeros(size, dtype=torch.bool, device=idx.device)
    seen[idx.reshape(-1)] = True
    return seen.nonzero().squeeze(1).cpu().numpy()


class LightGCN(Recommender):
    """``s(u, i) = G(u) . G(i)``, G the mean of the K+1 propagated layers.

    Args:
        train_users, train_items: index arrays of the training interactions (never the
            held-out ones), from which the graph is built.
        layers: K, the number of propagation layers (the paper does not state it).
    """

    native_loss = "bpr"
    needs_training_data = True

    def __init__(self, num_users: int, num_items: int, dim: int = 32, layers: int = 3,
                 train_users=None, train_items=None, init_std: float = 0.1):
        super().__init__()
        if train_users is None or train_items is None:
            raise ValueError("LightGCN is built from the training interactions: pass "
                             "train_users and train_items")
        if not isinstance(layers, int) or layers < 0:
            raise ValueError(f"LightGCN layers must be a non-negative integer, got {layers!r}")
        self.num_users, self.num_items, self.dim, self.layers = num_users, num_items, dim, layers
        self.user_embedding = nn.Parameter(torch.randn(num_users, dim) * init_std)
        self.item_embedding = nn.Parameter(torch.randn(num_items, dim) * init_std)
        adjacency, transpose = normalized_adjacency(train_users, train_items, num_users,
                                                    num_items)
        # Rebuilt from the split when a run is loaded, so not saved with the weights.
        self.register_buffer("adjacency", adjacency, persistent=False)
        self.register_buffer("adjacency_t", transpose, persistent=False)
        self._cache = None
        self._rows = None  # (users, items) the next training step reads, set by prepare

    def propagate(self, rows=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Final user ``(num_users, d)`` and item ``(num_items, d)`` embeddings; with
        ``rows`` (sorted user and item indices), only those rows are right."""
        if torch.is_grad_enabled():
            return propagate(self.adjacency, self.adjacency_t, self.user_embedding,
                             self.item_embedding, self.layers, rows)
        return mean_of_layers(self.adjacency, self.adjacency_t, self.user_embedding,
                              self.item_embedding, self.layers, out_rows=rows)

    def prepare(self, user_idx=None, item_idx=None):
        # In a training step that names its rows, the propagation serves those rows only
        # (until the weights change): the step reads no others.
        self._cache = None
        self._rows = None
        if user_idx is not None and item_idx is not None and self.training:
            self._rows = (_distinct(user_idx, self.num_users),
                          _distinct(item_idx, self.num_items))
        self._propagated()

    def _propagated(self):
        # Valid until the weights change (an optimiser step or a load bumps their
        # version) or autograd is switched on or off; while evaluating, no graph is kept.
        grad = self.training and torch.is_grad_enabled()
        key = (self.user_embedding._version, self.item_embedding._version, grad)
        if self._cache is None or self._cache[0] != key:
            rows = self._rows if self._cache is None else None
            with torch.set_grad_enabled(grad):
                self._cache = (key, *self.propagate(rows))
        return self._cache[1], self._cache[2]

    def users(self, user_idx):
        final = self._propagated()[0]
        return final.index_select(0, user_idx.reshape(-1)).view(*user_idx.shape, self.dim)

    def items(self, item_idx):
        final = self._propagated()[1]
        return final.index_select(0, item_idx.reshape(-1)).view(*item_idx.shape, self.dim)

    def interact(self, user_vecs, item_vecs):
        return batch_dot(user_vecs, item_vecs)  # (B, K)

    def score_all(self, user_idx):
        return self.users(user_idx) @ self._propagated()[1].T  # (B, num_items)

    def after_step(self):
        self._cache = None  # frees the batch's autograd graph
        self._rows = None

    def train(self, mode: bool = True):
        self._cache = None
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        self._cache = None  # .to(device) and friends swap the weights' storage
        return super()._apply(fn, *args, **kwargs)

    def regularization(self, user_idx, pos_items, neg_items):
        # The layer-0 rows, as the LightGCN paper regularises.
        users = self.user_embedding[user_idx].pow(2).sum()
        pos = self.item_embedding[pos_items].pow(2).sum()
        neg = self.item_embedding[neg_items].pow(2).sum() / neg_items.shape[-1]
        return (users + pos + neg) / len(user_idx)
