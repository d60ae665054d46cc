"""Negative candidates for sampled evaluation: drawn once per split, cached, reused.

Each evaluated user gets ``n`` distinct items drawn uniformly from the items the user never
interacted with (in training, validation or test), so every model and repeat is compared on
the same candidates (NOTES section 3).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from uibrec.data.interactions import csr_gather, user_item_csr
from uibrec.data.split import Split

logger = logging.getLogger(__name__)

_CHUNK_CELLS = 1 << 24  # random keys drawn per chunk of users, to bound memory


def seen_items_csr(split: Split):
    """CSR of every item each user interacted with: train, validation and test."""
    users = np.concatenate([split.train.user_idx, split.eval_users, split.eval_users])
    items = np.concatenate([split.train.item_idx, split.valid_items, split.test_items])
    return user_item_csr(users, items, split.num_users)


def sample_candidates(split: Split, n: int = 100, seed: int = 0) -> np.ndarray:
    """``n`` distinct unseen items for each of ``split.eval_users``.

    Sampling is uniform without replacement: each user's unseen items get random keys and
    the ``n`` smallest keys win. Returns an ``(n_eval, n)`` int64 array, rows sorted.
    """
    indptr, indices = seen_items_csr(split)
    users = split.eval_users
    seen_counts = np.diff(indptr)[users]
    unseen = split.num_items - seen_counts
    short = unseen < n
    if short.any():
        raise ValueError(
            f"{int(short.sum())} of {len(users)} users have fewer than {n} unseen items "
            f"(smallest: {int(unseen.min())} of a catalogue of {split.num_items}); "
            "lower num_candidates (--set num_candidates=N)"
        )
    rng = np.random.default_rng(seed)
    out = np.empty((len(users), n), dtype=np.int64)
    chunk = max(1, _CHUNK_CELLS // max(split.num_items, 1))
    for start in range(0, len(users), chunk):
        block = users[start:start + chunk]
        keys = rng.random((len(block), split.num_items), dtype=np.float32)
        rows, cols = csr_gather(indptr, indices, block)
        keys[rows, cols] = 2.0  # above every random key: never chosen
        picked = np.argpartition(keys, n - 1, axis=1)[:, :n]
        out[start:start + len(block)] = np.sort(picked, axis=1)
    return out


def load_or_sample_candidates(split: Split, n: int = 100, seed: int = 0,
                              cache_root=None) -> np.ndarray:
    """Candidates for ``split`` from the cache folder, sampled and saved on first use."""
    if cache_root is None:
        return sample_candidates(split, n, seed)
    path = Path(cache_root) / f"candidates-{split.fingerprint()}-n{n}-seed{seed}.npy"
    if path.is_file():
        cached = np.load(path)
        if cached.shape == (len(split.eval_users), n):
            logger.info("candidates loaded from %s", path)
            return cached
    candidates = sample_candidates(split, n, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, candidates)
    tmp.replace(path)
    logger.info("candidates sampled and saved to %s", path)
    return candidates
