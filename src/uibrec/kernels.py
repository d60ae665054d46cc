"""Compiled CPU kernels (Numba) for the hottest step: scoring sampled items by a dot product.

``gather_dot`` in :mod:`uibrec.ops` calls these on the CPU; elsewhere (CUDA) it runs the
same computation as PyTorch tensor code. Both give the same numbers up to float rounding,
which a test checks. Dropout masks arrive as a 64-bit key: element ``n`` of a masked block
is kept when byte ``n`` of the counter-based stream :func:`mask_word` is at least
``threshold`` (and then scaled by ``scale``); ``threshold = 0`` keeps everything. The
kernels compute the bytes they need where they need them, so no mask ever goes through
memory, and :func:`uibrec.ops.mask_bytes` computes the same bytes as tensor code.
"""

from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; this guards odd installs
    numba = None

AVAILABLE = numba is not None


# error_model="numpy": a float division by zero gives inf or nan, as in NumPy, instead of
# a check for it that keeps the loop from vectorising.
_OPTIONS = {"cache": True, "nogil": True, "boundscheck": False, "error_model": "numpy"}


def _jit(func):
    if numba is None:
        return func
    return numba.njit(fastmath=True, **_OPTIONS)(func)


def _jit_exact(func):
    """Like ``_jit`` without fastmath: square roots and divisions stay IEEE, as torch's."""
    if numba is None:
        return func
    return numba.njit(**_OPTIONS)(func)


def _jit_parallel(func):
    """Like ``_jit``, with ``numba.prange`` loops split over Numba's threads."""
    if numba is None:
        return func
    return numba.njit(fastmath=True, parallel=True, **_OPTIONS)(func)


prange = numba.prange if numba is not None else range


def set_threads(count: int) -> None:
    """Use ``count`` threads in the parallel kernels (at most Numba's pool size).

    Every parallel kernel is launched after a call to this, which starts Numba's thread
    pool first if it is not running. Numba's OpenMP pool shares the OpenMP runtime with
    torch, and its start sets that runtime's thread count to the pool size: torch, set to
    one thread, then ran its own operations on every core. The start is made here, with
    torch's count restored after it."""
    global _pool_started
    if numba is None:
        return
    if not _pool_started:
        import torch

        torch_threads = torch.get_num_threads()
        _start_pool(np.zeros(1))
        torch.set_num_threads(torch_threads)
        _pool_started = True
    numba.set_num_threads(max(1, min(count, numba.config.NUMBA_NUM_THREADS)))


_pool_started = False


@_jit_parallel
def _start_pool(scratch):
    for k in prange(len(scratch)):
        scratch[k] = 0.0


def _word_ops():
    """Wrapping 32-bit ``+``, ``*`` and ``x ^ (x >> shift)`` on uint32. Numba widens
    integer arithmetic to 64 bits; these keep the hash in 32-bit vector lanes (twice as
    many per instruction, and a 32-bit multiply where a 64-bit one is slow)."""
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    word = types.uint32

    @intrinsic
    def add(typingctx, a, b):
        return word(word, word), lambda context, builder, sig, args: builder.add(*args)

    @intrinsic
    def mul(typingctx, a, b):
        return word(word, word), lambda context, builder, sig, args: builder.mul(*args)

    @intrinsic
    def xorshift(typingctx, x, shift):
        def codegen(context, builder, sig, args):
            x, shift = args
            shift = builder.trunc(shift, ir.IntType(32))
            return builder.xor(x, builder.lshr(x, shift))
        return word(word, types.int64), codegen

    return add, mul, xorshift


if numba is not None:
    _add32, _mul32, _xorshift32 = _word_ops()
else:  # pragma: no cover - plain Python stand-ins
    def _add32(a, b):
        return np.uint32((int(a) + int(b)) & 0xFFFFFFFF)

    def _mul32(a, b):
        return np.uint32((int(a) * int(b)) & 0xFFFFFFFF)

    def _xorshift32(x, shift):
        return np.uint32(int(x) ^ (int(x) >> shift))


@_jit
def _mix32(x):
    """A bijection of 32-bit words whose output bits each depend on every input bit: two
    xor-shift-multiply rounds, with the shifts and multipliers that C. Wellons' hash
    prospector found for its low-bias 32-bit hash."""
    x = _mul32(_xorshift32(x, 16), np.uint32(0x21F0AAAD))
    x = _mul32(_xorshift32(x, 15), np.uint32(0x735A2D97))
    return _xorshift32(x, 15)


@_jit
def mask_word(word, key_lo, key_hi):
    """Word ``word`` of the random stream of key ``(key_hi, key_lo)``: its four bytes,
    lowest first, are the dropout bytes of elements ``4 word`` to ``4 word + 3``."""
    inner = _mix32(np.uint32(word) ^ np.uint32(key_lo))
    return _mix32(_add32(inner, np.uint32(key_hi)))


@_jit
def keep_block(start, key_lo, key_hi, threshold, scale, words, keep):
    """``keep[t] = scale`` where byte ``start + t`` of the key's stream is at least
    ``threshold``, else 0, for every ``t < len(keep)``; ``words`` is scratch space of at
    least ``len(keep) // 4 + 2`` words."""
    first, offset = start >> 2, start & 3
    count = (offset + len(keep) + 3) >> 2
    for w in range(count):
        words[w] = mask_word(first + w, key_lo, key_hi)
    stream = words.view(np.uint8)  # little-endian: byte t of the stream is byte t here
    cut = np.uint8(threshold)  # below 256: Dropout keeps p under 1 - 1/512
    for t in range(len(keep)):
        keep[t] = np.float32(stream[offset + t] >= cut) * scale


@_jit
def fill_mask_bytes(key_lo, key_hi, out):
    """``out[n]`` = byte ``n`` of the key's stream, for the tensor path on the CPU."""
    words = np.empty((len(out) + 3) >> 2, dtype=np.uint32)
    for w in range(len(words)):
        words[w] = mask_word(w, key_lo, key_hi)
    out[:] = words.view(np.uint8)[:len(out)]


@_jit
def _scratch(width):
    """Words and float keep factors for one masked block of ``width`` elements."""
    return np.empty(width // 4 + 2, dtype=np.uint32), np.ones(width, dtype=np.float32)


@_jit
def _forward_rows(lo, hi, users, table, idx, key_lo, key_hi, threshold, scale, out):
    batch_width, dim = idx.shape[1], users.shape[1]
    words, keep = _scratch(batch_width * dim)
    for b in range(lo, hi):
        if threshold != 0:
            keep_block(b * batch_width * dim, key_lo, key_hi, threshold, scale, words, keep)
        for k in range(batch_width):
            row = idx[b, k]
            acc = np.float32(0.0)
            at = k * dim
            for j in range(dim):
                acc += users[b, j] * table[row, j] * keep[at + j]
            out[b, k] = acc


@_jit
def _backward_rows(lo, hi, grad, users, table, idx, key_lo, key_hi, threshold, scale,
                   grad_users, grad_table):
    batch_width, dim = idx.shape[1], users.shape[1]
    words, keep = _scratch(batch_width * dim)
    for b in range(lo, hi):
        if threshold != 0:
            keep_block(b * batch_width * dim, key_lo, key_hi, threshold, scale, words, keep)
        for k in range(batch_width):
            row = idx[b, k]
            g = grad[b, k]
            at = k * dim
            # Two loops of one store each: each vectorises.
            for j in range(dim):
                grad_users[b, j] += g * keep[at + j] * table[row, j]
            for j in range(dim):
                grad_table[row, j] += g * keep[at + j] * users[b, j]


@_jit
def gather_dot_forward(users, table, idx, key_lo, key_hi, threshold, scale, out):
    """``out[b, k] = sum_j users[b, j] * table[idx[b, k], j] * keep(b, k, j)``."""
    _forward_rows(0, idx.shape[0], users, table, idx, key_lo, key_hi, threshold, scale, out)


@_jit
def gather_dot_backward(grad, users, table, idx, key_lo, key_hi, threshold, scale,
                        grad_users, grad_table):
    """Accumulate ``d out / d users`` into ``grad_users`` and ``d out / d table`` into
    ``grad_table`` (both zeroed by the caller)."""
    _backward_rows(0, idx.shape[0], grad, users, table, idx, key_lo, key_hi, threshold,
                   scale, grad_users, grad_table)


@_jit_parallel
def gather_dot_forward_parallel(users, table, idx, key_lo, key_hi, threshold, scale, out,
                                chunks):
    """:func:`gather_dot_forward` with the batch cut into ``chunks`` spans of rows, run
    on Numba's threads; the same numbers, since every output is one thread's."""
    batch = idx.shape[0]
    for c in prange(chunks):
        _forward_rows(c * batch // chunks, (c + 1) * batch // chunks, users, table, idx,
                      key_lo, key_hi, threshold, scale, out)


@_jit_parallel
def gather_dot_backward_parallel(grad, users, table, idx, key_lo, key_hi, threshold, scale,
                                 grad_users, grad_table, partial):
    """:func:`gather_dot_backward` over ``chunks = len(partial)`` spans of the batch on
    Numba's threads. Rows of the table shared by two spans would be written by two
    threads, so each span adds into its own ``partial[c]`` ``(N, d)`` and the spans are
    summed in chunk order: the result depends on the chunk count, not on scheduling."""
    batch = idx.shape[0]
    chunks = partial.shape[0]
    for c in prange(chunks):
        partial[c] = 0.0
        _backward_rows(c * batch // chunks, (c + 1) * batch // chunks, grad, users, table,
                       idx, key_lo, key_hi, threshold, scale, grad_users, partial[c])
    for row in prange(grad_table.shape[0]):
        for c in range(chunks):
            for j in range(grad_table.shape[1]):
                grad_table[row, j] += partial[c, row, j]


@_jit
def _is_training_item(bits, sorted_keys, key):
    if len(bits):
        return (bits[key >> 3] >> (key & 7)) & 1 == 1
    at = np.searchsorted(sorted_keys, key)
    return at < len(sorted_keys) and sorted_keys[at] == key


@_jit
def _item_of(words, k, num_items):
    """Item number ``k`` of a stream of 32-bit halves of ``words`` (low half first),
    mapped onto ``[0, num_items)`` by a multiply and shift (bias below ``num_items /
    2**32``). Branch-free, so that a loop over ``k`` vectorises."""
    half = (words[k >> 1] >> np.uint64((k & 1) << 5)) & np.uint64(0xFFFFFFFF)
    return np.int64((half * np.uint64(num_items)) >> np.uint64(32))


@_jit
def draw_negatives(users, words, num_items, bits, sorted_keys, out):
    """Fill ``out`` ``(B, M)`` with uniform items that are not training items of their
    user; return how many random items were used, or -1 when ``words`` ran out.

    Item ``b * M + m`` of the stream in ``words`` (random 64-bit words, two items each)
    goes to ``out[b, m]``; whenever it is a training item of ``users[b]``, the next
    unused item after the first ``B * M`` replaces it, in row-major order. Membership of
    key ``user * num_items + item`` is read from ``bits`` (packed, little bit order) when
    it is not empty, else from ``sorted_keys``.
    """
    batch, width = out.shape
    total = 2 * len(words)
    used = batch * width
    for b in range(batch):  # first every row's own items, in a loop that vectorises
        for m in range(width):
            out[b, m] = _item_of(words, b * width + m, num_items)
    for b in range(batch):
        base = users[b] * num_items
        for m in range(width):
            if len(bits):  # the common case first: its loads overlap, no call between
                key = base + out[b, m]
                if (bits[key >> 3] >> (key & 7)) & 1 == 0:
                    continue
            while _is_training_item(bits, sorted_keys, base + out[b, m]):
                if used == total:
                    return -1
                out[b, m] = _item_of(words, used, num_items)
                used += 1
    return used


@_jit_parallel
def csr_matmul_rows(indptr, indices, values, dense, rows, out):
    """``out[r] = M[r] @ dense`` for each ``r`` in ``rows`` (other rows of ``out`` are
    left as they are) for the CSR matrix ``M`` (``indptr``, ``indices``, ``values``),
    each row's terms added in order. Rows are split over threads with no locks (each
    output row is one thread's), so the result does not depend on the thread count."""
    dim = dense.shape[1]
    for k in prange(len(rows)):
        row = rows[k]
        for j in range(dim):
            out[row, j] = 0.0
        for at in range(indptr[row], indptr[row + 1]):
            col = indices[at]
            weight = values[at]
            for j in range(dim):
                out[row, j] += weight * dense[col, j]


@_jit
def csr_scatter_rows(indptr, indices, values, src, rows, out):
    """``out = M.T @ src`` when ``src`` is zero outside ``rows``: each listed row of ``M``
    adds ``M[r, c] * src[r]`` into ``out[c]``. It reads only those rows, where the product
    with ``M.T`` in CSR form reads all of it; one thread (the writes collide)."""
    dim = src.shape[1]
    for i in range(out.shape[0]):
        for j in range(dim):
            out[i, j] = 0.0
    for k in range(len(rows)):
        row = rows[k]
        for at in range(indptr[row], indptr[row + 1]):
            col = indices[at]
            weight = values[at]
            for j in range(dim):
                out[col, j] += weight * src[row, j]
