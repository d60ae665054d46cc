"""Compiled CPU kernels (Numba) for the hottest step: scoring sampled items by a dot product.

``gather_dot`` in :mod:`uibrec.ops` calls these on the CPU; elsewhere (CUDA) it runs the
same computation as PyTorch tensor code. Both give the same numbers up to float rounding,
which a test checks. Dropout masks arrive as bytes: a byte at least ``threshold`` keeps its
element, scaled by ``scale``; ``threshold = 0`` keeps everything.
"""

from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; this guards odd installs
    numba = None

AVAILABLE = numba is not None


def _jit(func):
    if numba is None:
        return func
    return numba.njit(cache=True, nogil=True, fastmath=True, boundscheck=False)(func)


@_jit
def gather_dot_forward(users, table, idx, mask, threshold, scale, out):
    """``out[b, k] = sum_j users[b, j] * table[idx[b, k], j] * keep(b, k, j)``."""
    batch, width = idx.shape
    dim = users.shape[1]
    for b in range(batch):
        for k in range(width):
            row = idx[b, k]
            acc = np.float32(0.0)
            if threshold == 0:
                for j in range(dim):
                    acc += users[b, j] * table[row, j]
            else:
                # Branch-free so that the loop vectorises.
                for j in range(dim):
                    keep = np.float32(mask[b, k, j] >= threshold)
                    acc += users[b, j] * table[row, j] * keep
                acc *= scale
            out[b, k] = acc


@_jit
def gather_dot_backward(grad, users, table, idx, mask, threshold, scale,
                        grad_users, grad_table):
    """Accumulate ``d out / d users`` into ``grad_users`` and ``d out / d table`` into
    ``grad_table`` (both zeroed by the caller)."""
    batch, width = idx.shape
    dim = users.shape[1]
    for b in range(batch):
        for k in range(width):
            row = idx[b, k]
            g = grad[b, k]
            if threshold != 0:
                g *= scale
            # Two loops of one store each: each vectorises.
            if threshold == 0:
                for j in range(dim):
                    grad_users[b, j] += g * table[row, j]
                for j in range(dim):
                    grad_table[row, j] += g * users[b, j]
            else:
                for j in range(dim):
                    keep = np.float32(mask[b, k, j] >= threshold)
                    grad_users[b, j] += g * keep * table[row, j]
                for j in range(dim):
                    keep = np.float32(mask[b, k, j] >= threshold)
                    grad_table[row, j] += g * keep * users[b, j]
