"""Uniform negative sampling that never returns one of the user's training items.

All draws are vectorised: a batch's negatives are drawn at once, checked against the
training set in one gather, and only the rejected ones are drawn again. Sampling runs in
NumPy on the host (its PCG64 stream and integer kernels are several times faster than
PyTorch's on small CPU tensors); the result is moved to the training device.
"""

from __future__ import annotations

import numpy as np
import torch

from uibrec.data.interactions import sorted_unique

# Membership of (user, item) cells: a byte per cell up to _BYTES_MAX_CELLS (one gather per
# lookup), a packed bit per cell up to _BITMAP_MAX_CELLS (2 GiB), else a sorted array of
# keys searched by bisection.
_BYTES_MAX_CELLS = 1 << 28
_BITMAP_MAX_CELLS = 1 << 34


def pack_bits(sorted_keys: np.ndarray, num_cells: int) -> np.ndarray:
    """``np.packbits(cells, bitorder="little")`` of the boolean cells that are ``True`` at
    ``sorted_keys`` (distinct, sorted), without building the ``(num_cells,)`` cells: for
    700,000 users and 10,677 items they alone would take 7.5 GB."""
    bits = np.zeros((num_cells + 7) // 8, dtype=np.uint8)
    if not len(sorted_keys):
        return bits
    byte = sorted_keys >> 3
    starts = np.flatnonzero(np.concatenate([[True], byte[1:] != byte[:-1]]))
    values = np.left_shift(np.uint8(1), (sorted_keys & 7).astype(np.uint8))
    # The keys of one byte set distinct bits: their sum is their OR.
    bits[byte[starts]] = np.add.reduceat(values, starts)
    return bits


class NegativeSampler:
    """Draws negatives uniformly among the items a user has no training interaction with.

    Args:
        train_users, train_items: the training interactions, as index arrays.
        num_users, num_items: sizes of the index spaces.
        seed: seeds the sampler's own random stream.
        device: where the returned tensors live.
    """

    def __init__(self, train_users, train_items, num_users: int, num_items: int,
                 seed: int = 0, device: str | torch.device = "cpu"):
        users = np.asarray(train_users, dtype=np.int64)
        items = np.asarray(train_items, dtype=np.int64)
        self.num_users, self.num_items = num_users, num_items
        counts = np.bincount(users, minlength=num_users)
        full = int((counts >= num_items).sum())
        if full:
            raise ValueError(f"{full} users have interacted with every one of the {num_items} "
                             "items: no negative can be sampled for them; remove them first")
        keys = sorted_unique(users * num_items + items)
        self._cells = self._bits = self._sorted_keys = None
        if num_users * num_items <= _BYTES_MAX_CELLS:
            self._cells = np.zeros(num_users * num_items, dtype=bool)
            self._cells[keys] = True
        elif num_users * num_items <= _BITMAP_MAX_CELLS:
            self._bits = pack_bits(keys, num_users * num_items)
        else:
            self._sorted_keys = keys
        self.rng = np.random.default_rng(seed)
        self.device = torch.device(device)

    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each (user, item) pair is a training interaction; shapes broadcast."""
        keys = np.asarray(users, dtype=np.int64) * self.num_items + items
        if self._cells is not None:
            return self._cells[keys]
        if self._bits is not None:
            return ((self._bits[keys >> 3] >> (keys & 7).astype(np.uint8)) & 1).astype(bool)
        pos = np.searchsorted(self._sorted_keys, keys).clip(max=len(self._sorted_keys) - 1)
        return self._sorted_keys[pos] == keys

    def sample_numpy(self, users: np.ndarray, num_negatives: int) -> np.ndarray:
        """Negatives for each user, as an ``(len(users), num_negatives)`` int64 array."""
        users = np.asarray(users, dtype=np.int64)
        negatives = self.rng.integers(0, self.num_items, (len(users), num_negatives))
        rows, cols = np.nonzero(self.is_positive(users[:, None], negatives))
        while len(rows):
            redraw = self.rng.integers(0, self.num_items, len(rows))
            negatives[rows, cols] = redraw
            still = self.is_positive(users[rows], redraw)
            rows, cols = rows[still], cols[still]
        return negatives

    def sample(self, users: torch.Tensor, num_negatives: int) -> torch.Tensor:
        """Negatives for each user: a ``(len(users), num_negatives)`` int64 tensor."""
        negatives = self.sample_numpy(users.cpu().numpy(), num_negatives)
        return torch.from_numpy(negatives).to(self.device)
