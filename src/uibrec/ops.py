"""Small tensor operations shared by models, tuned for the CPU hot path."""

from __future__ import annotations

import numpy as np
import torch


class Dropout:
    """Inverted dropout whose masks come from NumPy's PCG64 stream.

    ``torch.nn.functional.dropout`` draws one Bernoulli variable per element with a
    generator that costs several nanoseconds per draw; at 32 negatives per positive the
    item vectors of one batch hold a million elements and dropout alone took longer than
    the rest of the step. Here one 64-bit draw yields eight bytes, each kept when it is at
    least ``round(p * 256)``: the drop probability is quantised to 1/256 (0.1 -> 0.1016).
    The same seed gives the same masks.
    """

    def __init__(self, p: float, seed: int = 0):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.threshold = int(round(p * 256))
        self.p = self.threshold / 256
        self.scale = 1.0 / (1.0 - self.p)
        self.rng = np.random.default_rng(seed)

    def mask(self, shape) -> torch.Tensor:
        n = int(np.prod(shape))
        raw = self.rng.bit_generator.random_raw((n + 7) // 8).view(np.uint8)[:n]
        keep = (raw >= self.threshold).astype(np.float32)
        keep *= self.scale
        return torch.from_numpy(keep).view(shape)

    def __call__(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        if not training or self.threshold == 0:
            return x
        return x * self.mask(x.shape).to(x.device)


def _rowwise_dot(item_vecs: torch.Tensor, user_vecs: torch.Tensor) -> torch.Tensor:
    """``(B, K, d) . (B, d) -> (B, K)``. A product and a sum: at d = 32 this measured 5x
    faster than ``bmm`` with a (B, d, 1) right-hand side on the CPU."""
    return (item_vecs * user_vecs.unsqueeze(1)).sum(-1)


class _BatchDot(torch.autograd.Function):
    """``scores[b, k] = items[b, k] . users[b]`` with a hand-written backward.

    Autograd's own backward of the broadcast product multiplies a stride-0 expanded
    gradient, which PyTorch's CPU kernels do not vectorise (measured: 7.6 ms for a
    (1024, 33, 32) batch against 0.1 ms here).
    """

    @staticmethod
    def forward(ctx, user_vecs, item_vecs):
        ctx.save_for_backward(user_vecs, item_vecs)
        return _rowwise_dot(item_vecs, user_vecs)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()  # a stride-0 gradient (from a sum) takes slow kernels
        user_vecs, item_vecs = ctx.saved_tensors
        grad_users = grad_items = None
        if ctx.needs_input_grad[0]:
            grad_users = torch.bmm(grad.unsqueeze(1), item_vecs).squeeze(1)  # (B, d)
        if ctx.needs_input_grad[1]:
            grad_items = grad.unsqueeze(-1) * user_vecs.unsqueeze(1)  # (B, K, d)
        return grad_users, grad_items


def batch_dot(user_vecs: torch.Tensor, item_vecs: torch.Tensor) -> torch.Tensor:
    """Dot product of each user ``(B, d)`` with its items ``(B, K, d)``: ``(B, K)``."""
    return _BatchDot.apply(user_vecs, item_vecs)


class _GatherDot(torch.autograd.Function):
    """``scores[b, k] = (table[idx[b, k]] * mask[b, k]) . users[b]`` in one node.

    Gathering rows, dropping out, and the dot product are fused so that the (B, K, d)
    item block is allocated once forward and once backward, and the table's gradient is
    one ``index_add_`` (autograd's chain of three nodes allocated it five times).
    """

    @staticmethod
    def forward(ctx, user_vecs, table, idx, mask):
        rows = table.index_select(0, idx.reshape(-1)).view(*idx.shape, table.shape[1])
        if mask is not None:
            rows.mul_(mask)
        ctx.save_for_backward(user_vecs, rows, idx, mask)
        ctx.table_shape = table.shape
        return _rowwise_dot(rows, user_vecs)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()  # a stride-0 gradient (from a sum) takes slow kernels
        user_vecs, rows, idx, mask = ctx.saved_tensors
        grad_users = grad_table = None
        if ctx.needs_input_grad[0]:
            grad_users = torch.bmm(grad.unsqueeze(1), rows).squeeze(1)  # (B, d)
        if ctx.needs_input_grad[1]:
            grad_rows = grad.unsqueeze(-1) * user_vecs.unsqueeze(1)  # (B, K, d)
            if mask is not None:
                grad_rows.mul_(mask)
            grad_table = torch.zeros(ctx.table_shape, dtype=grad.dtype, device=grad.device)
            grad_table.index_add_(0, idx.reshape(-1), grad_rows.view(-1, grad_rows.shape[-1]))
        return grad_users, grad_table, None, None


def gather_dot(user_vecs: torch.Tensor, table: torch.Tensor, idx: torch.Tensor,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """Dot products of users ``(B, d)`` with rows ``idx`` ``(B, K)`` of ``table``
    ``(N, d)``, each row multiplied by ``mask`` ``(B, K, d)`` if given: ``(B, K)``."""
    return _GatherDot.apply(user_vecs, table, idx, mask)
