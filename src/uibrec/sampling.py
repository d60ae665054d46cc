"""Uniform negative sampling that never returns one of the user's training items.

A batch's negatives come from raw draws of NumPy's PCG64 stream (several times faster
than PyTorch's generator, or NumPy's own bounded integers, on batch-sized arrays), mapped
to items, checked against the training set and redrawn where rejected in one compiled
pass (:func:`uibrec.kernels.draw_negatives`), then moved to the training device.
"""

from __future__ import annotations

import numpy as np
import torch

from uibrec import kernels
from uibrec.data.interactions import sorted_unique

# Membership of (user, item) cells: a packed bit per cell up to _BITMAP_MAX_CELLS (2 GiB),
# else a sorted array of keys searched by bisection. Bits beat a byte per cell even when
# bytes would fit: a user's row of bits spans a few cache lines, so the 32 lookups of one
# user's negatives mostly hit the cache.
_BITMAP_MAX_CELLS = 1 << 34
_EMPTY = np.zeros(0, dtype=np.uint8)


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
        if num_items >= 2**32:  # items come from 32-bit halves of the raw draws
            raise ValueError(f"the sampler draws among fewer than 2**32 items; got {num_items}")
        counts = np.bincount(users, minlength=num_users)
        full = int((counts >= num_items).sum())
        if full:
            raise ValueError(f"{full} users have interacted with every one of the {num_items} "
                             "items: no negative can be sampled for them; remove them first")
        keys = sorted_unique(users * num_items + items)
        self._bits, self._sorted_keys = _EMPTY, np.zeros(0, dtype=np.int64)
        if num_users * num_items <= _BITMAP_MAX_CELLS:
            self._bits = pack_bits(keys, num_users * num_items)
        else:
            self._sorted_keys = keys
        self.rng = np.random.default_rng(seed)
        self.device = torch.device(device)

    def sample_numpy(self, users: np.ndarray, num_negatives: int) -> np.ndarray:
        """Negatives for each user, as an ``(len(users), num_negatives)`` int64 array.

        One compiled pass maps raw 64-bit draws to items (two per draw) and replaces each
        that is a training item of its user by the next spare draw that is not. Spares
        are a quarter of the batch; in the rare batch that needs more, it is drawn again
        with four times as many.
        """
        users = np.asarray(users, dtype=np.int64)
        negatives = np.empty((len(users), num_negatives), dtype=np.int64)
        spare = max(64, negatives.size // 4)
        while True:
            words = self.rng.bit_generator.random_raw((negatives.size + spare + 1) // 2)
            if kernels.draw_negatives(users, words, self.num_items, self._bits,
                                      self._sorted_keys, negatives) >= 0:
                return negatives
            spare *= 4

    def sample(self, users: torch.Tensor, num_negatives: int) -> torch.Tensor:
        """Negatives for each user: a ``(len(users), num_negatives)`` int64 tensor."""
        negatives = self.sample_numpy(users.cpu().numpy(), num_negatives)
        return torch.from_numpy(negatives).to(self.device)
