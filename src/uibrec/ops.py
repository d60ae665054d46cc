"""Small tensor operations shared by models, tuned for the CPU hot path."""

from __future__ import annotations

import numpy as np
import torch

from uibrec import kernels


class Dropout:
    """Inverted dropout whose masks come from NumPy's PCG64 stream, as bytes.

    ``torch.nn.functional.dropout`` draws one Bernoulli variable per element with a
    generator that costs several nanoseconds per draw; at 32 negatives per positive the
    item vectors of one batch hold a million elements and dropout alone took longer than
    the rest of the step. Here one 64-bit draw yields eight bytes, each kept when it is at
    least ``threshold = round(p * 256)``: the drop probability is quantised to 1/256
    (0.1 -> 0.1016). The same seed gives the same masks.
    """

    def __init__(self, p: float, seed: int = 0):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.threshold = int(round(p * 256))
        self.p = self.threshold / 256
        self.scale = 1.0 / (1.0 - self.p)
        self.rng = np.random.default_rng(seed)

    def bytes(self, shape) -> torch.Tensor:
        """Random bytes of ``shape``: an element is kept where its byte >= threshold."""
        n = int(np.prod(shape))
        raw = self.rng.bit_generator.random_raw((n + 7) // 8).view(np.uint8)[:n]
        return torch.from_numpy(raw.reshape(shape))

    def mask(self, shape) -> torch.Tensor:
        """A float mask of ``shape``: 0 where dropped, ``1 / (1 - p)`` where kept."""
        return mask_from_bytes(self.bytes(shape), self.threshold, self.scale)

    def __call__(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        if not training or self.threshold == 0:
            return x
        return x * self.mask(x.shape).to(x.device)

    def get_state(self) -> dict:
        """The state of the mask stream, for checkpoints."""
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        """Continue the mask stream from a :meth:`get_state`."""
        self.rng.bit_generator.state = state


def mask_from_bytes(mask_bytes: torch.Tensor, threshold: int, scale: float) -> torch.Tensor:
    """The float dropout mask of drawn bytes: ``scale`` where byte >= threshold, else 0."""
    if mask_bytes.device.type == "cpu":  # NumPy's comparison is faster on small CPU arrays
        keep = torch.from_numpy((mask_bytes.numpy() >= threshold).astype(np.float32))
    else:
        keep = (mask_bytes >= threshold).float()
    return keep.mul_(scale)


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
    """``scores[b, k] = (table[idx[b, k]] * keep[b, k]) . users[b]`` in one node.

    On the CPU the work runs in compiled kernels (:mod:`uibrec.kernels`) that never build
    the (B, K, d) block of item vectors: forward and backward each read the table rows
    once. Elsewhere it runs as tensor code that builds the block once forward and once
    backward. ``mask_bytes`` ``(B, K, d)`` uint8 (or None) holds the dropout draws.
    """

    @staticmethod
    def forward(ctx, user_vecs, table, idx, mask_bytes, threshold, scale):
        ctx.save_for_backward(user_vecs, table, idx, mask_bytes)
        ctx.threshold, ctx.scale = threshold, scale
        if _use_kernels(user_vecs):
            out = torch.empty(idx.shape, dtype=user_vecs.dtype)
            args = (user_vecs.numpy(), table.detach().numpy(), idx.numpy(),
                    _mask_array(mask_bytes, idx), threshold, scale, out.numpy())
            threads = _kernel_threads(idx)
            if threads == 1:
                kernels.gather_dot_forward(*args)
            else:
                kernels.gather_dot_forward_parallel(*args, threads)
            return out
        rows = _masked_rows(table, idx, mask_bytes, threshold, scale)
        return _rowwise_dot(rows, user_vecs)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()  # a stride-0 gradient (from a sum) takes slow kernels
        user_vecs, table, idx, mask_bytes = ctx.saved_tensors
        threshold, scale = ctx.threshold, ctx.scale
        if _use_kernels(user_vecs):
            grad_users = torch.zeros_like(user_vecs)
            grad_table = torch.zeros_like(table)
            args = (grad.numpy(), user_vecs.numpy(), table.detach().numpy(), idx.numpy(),
                    _mask_array(mask_bytes, idx), threshold, scale, grad_users.numpy(),
                    grad_table.numpy())
            threads = _kernel_threads(idx)
            if threads == 1:
                kernels.gather_dot_backward(*args)
            else:
                partial = np.empty((threads, *table.shape), dtype=np.float32)
                kernels.gather_dot_backward_parallel(*args, partial)
            return grad_users, grad_table, None, None, None, None
        rows = _masked_rows(table, idx, mask_bytes, threshold, scale)
        grad_users = torch.bmm(grad.unsqueeze(1), rows).squeeze(1)  # (B, d)
        grad_rows = grad.unsqueeze(-1) * user_vecs.unsqueeze(1)  # (B, K, d)
        if mask_bytes is not None and threshold:
            grad_rows.mul_(mask_from_bytes(mask_bytes, threshold, scale))
        grad_table = torch.zeros_like(table)
        grad_table.index_add_(0, idx.reshape(-1), grad_rows.view(-1, grad_rows.shape[-1]))
        return grad_users, grad_table, None, None, None, None


USE_KERNELS = kernels.AVAILABLE  # tests switch this off to compare with the tensor path


def _kernel_threads(idx: torch.Tensor) -> int:
    """Threads for the compiled kernels: torch's count, for batches worth splitting."""
    threads = torch.get_num_threads()
    if threads > 1 and idx.shape[0] >= 64 * threads:
        kernels.set_threads(threads)
        return threads
    return 1


def _use_kernels(user_vecs: torch.Tensor) -> bool:
    return USE_KERNELS and user_vecs.device.type == "cpu" and user_vecs.dtype == torch.float32


_NO_MASK = np.zeros((1, 1, 1), dtype=np.uint8)


def _mask_array(mask_bytes, idx):
    return _NO_MASK if mask_bytes is None else mask_bytes.numpy()


def _masked_rows(table, idx, mask_bytes, threshold, scale):
    rows = table.detach().index_select(0, idx.reshape(-1)).view(*idx.shape, table.shape[1])
    if mask_bytes is not None and threshold:
        rows.mul_(mask_from_bytes(mask_bytes, threshold, scale))
    return rows


def gather_dot(user_vecs: torch.Tensor, table: torch.Tensor, idx: torch.Tensor,
               dropout: Dropout | None = None) -> torch.Tensor:
    """Dot products of users ``(B, d)`` with rows ``idx`` ``(B, K)`` of ``table``
    ``(N, d)``: ``(B, K)``. With ``dropout``, each gathered row is dropped out first."""
    if dropout is None or dropout.threshold == 0:
        return _GatherDot.apply(user_vecs, table, idx, None, 0, 1.0)
    mask_bytes = dropout.bytes((*idx.shape, table.shape[1])).to(user_vecs.device)
    return _GatherDot.apply(user_vecs, table, idx, mask_bytes, dropout.threshold,
                            dropout.scale)
