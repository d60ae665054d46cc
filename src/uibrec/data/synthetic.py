"""Synthetic interactions of any size, with long-tailed item popularity, for benchmarks.

Item popularity follows a Zipf-like law: the item of popularity rank ``r`` (from 1) is
drawn with probability proportional to ``r ** -zipf`` (``zipf = 0`` is uniform). Users
differ in activity: each has ``min_per_user`` interactions plus a share of the rest drawn
with log-normal weights. No (user, item) pair repeats. Every step is vectorised: rows are
drawn all at once, repeats are removed by sorting keys, and only the shortfall is drawn
again, so 100 million rows take seconds to minutes, not hours.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from uibrec.data.interactions import IdMap, Interactions, sorted_unique

logger = logging.getLogger(__name__)

_MAX_ROUNDS = 200  # popularity-weighted redraws before the remaining shortfall is uniform


def user_counts(num_users: int, rows: int, max_per_user: int, min_per_user: int,
                sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Interactions per user, ``(num_users,)``: each in ``[min_per_user, max_per_user]``,
    summing to ``rows``; above the minimum they follow log-normal weights."""
    if not num_users * min_per_user <= rows <= num_users * max_per_user:
        raise ValueError(f"{rows:,} rows do not fit {num_users:,} users with "
                         f"{min_per_user} to {max_per_user:,} interactions each")
    weights = rng.lognormal(0.0, sigma, num_users)
    counts = np.full(num_users, min_per_user, dtype=np.int64)
    left = rows - counts.sum()
    while left:
        # Users at the cap take no more; what they would have taken is drawn again.
        room = counts < max_per_user
        share = np.where(room, weights, 0.0)
        counts += rng.multinomial(left, share / share.sum())
        over = np.maximum(counts - max_per_user, 0)
        counts -= over
        left = int(over.sum())
    return counts


def item_probabilities(num_items: int, zipf: float, rng: np.random.Generator) -> np.ndarray:
    """Probability of each item index, ``(num_items,)``: ``rank ** -zipf`` normalised, with
    popularity ranks assigned to item indices in a random order."""
    if zipf < 0:
        raise ValueError(f"zipf must be non-negative, got {zipf}")
    by_rank = np.arange(1, num_items + 1, dtype=np.float64) ** -zipf
    probs = np.empty(num_items)
    probs[rng.permutation(num_items)] = by_rank / by_rank.sum()
    return probs


def _draw(users: np.ndarray, cdf: np.ndarray | None, num_items: int,
          rng: np.random.Generator) -> np.ndarray:
    """Keys ``user * num_items + item`` of one item per entry of ``users``; items by the
    popularity ``cdf``, or uniform when it is None."""
    if cdf is None:
        items = rng.integers(0, num_items, len(users))
    else:
        items = np.searchsorted(cdf, rng.random(len(users)), side="right")
        np.minimum(items, num_items - 1, out=items)  # a draw of exactly cdf[-1] (rounding)
    return users * num_items + items


def _merge(keys: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Sorted ``keys`` plus those of ``new`` (distinct, not in ``keys``), still sorted."""
    new = sorted_unique(new)
    new = new[~_contains(keys, new)]
    return np.insert(keys, np.searchsorted(keys, new), new)


def _contains(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    pos = np.searchsorted(keys, values).clip(max=max(len(keys) - 1, 0))
    return keys[pos] == values if len(keys) else np.zeros(len(values), dtype=bool)


def synthetic_keys(num_users: int, num_items: int, rows: int, zipf: float = 1.0,
                   seed: int = 0, min_per_user: int = 5, activity_sigma: float = 1.0,
                   max_share: float = 0.5) -> np.ndarray:
    """Sorted distinct keys ``user_idx * num_items + item_idx``: ``(rows,)`` int64.

    ``max_share`` caps a user's interactions at that share of the items, so that drawing
    distinct popular items for the most active users ends quickly.
    """
    rng = np.random.default_rng(seed)
    max_per_user = max(min_per_user, int(max_share * num_items))
    if min_per_user > num_items:
        raise ValueError(f"min_per_user={min_per_user} exceeds the {num_items} items")
    counts = user_counts(num_users, rows, max_per_user, min_per_user, activity_sigma, rng)
    cdf = np.cumsum(item_probabilities(num_items, zipf, rng))

    users = np.repeat(np.arange(num_users, dtype=np.int64), counts)
    keys = sorted_unique(_draw(users, cdf, num_items, rng))
    del users
    rounds = 1
    short = counts - np.bincount(keys // num_items, minlength=num_users)  # (num_users,)
    while short.any():
        # Tail items are slow to hit by chance: after a while, draw the rest uniformly.
        weights = cdf if rounds <= _MAX_ROUNDS else None
        users = np.repeat(np.arange(num_users, dtype=np.int64), short)
        keys = _merge(keys, _draw(users, weights, num_items, rng))
        short = counts - np.bincount(keys // num_items, minlength=num_users)
        rounds += 1
    logger.debug("synthetic data: %d rows in %d rounds", len(keys), rounds)
    return keys


def synthetic_interactions(num_users: int, num_items: int, rows: int, zipf: float = 1.0,
                           seed: int = 0, **options) -> Interactions:
    """:func:`synthetic_keys` as :class:`Interactions`, rows sorted by user then item.

    Raw IDs are the indices themselves (``0..n-1``); items that drew no interaction stay in
    the item map (``prepare`` drops them).
    """
    keys = synthetic_keys(num_users, num_items, rows, zipf, seed, **options)
    return Interactions(keys // num_items, keys % num_items,
                        IdMap(np.arange(num_users)), IdMap(np.arange(num_items)),
                        name=f"synthetic-{num_users}x{num_items}-{rows}")


def write_csv(data: Interactions, path, chunk: int = 1_000_000) -> Path:
    """Write ``user,item`` lines (raw IDs, no header), readable as ``--dataset PATH``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    users, items = data.user_map.to_id(data.user_idx), data.item_map.to_id(data.item_idx)
    with open(path, "w") as out:
        for start in range(0, len(data), chunk):
            # Formatting Python ints measured faster than np.savetxt or pandas' to_csv.
            pairs = zip(users[start:start + chunk].tolist(), items[start:start + chunk].tolist())
            out.write("".join(f"{user},{item}\n" for user, item in pairs))
    return path
