"""Cleaning and leave-one-out splitting, as in the paper's protocol (NOTES section 3).

Every row a step removes is counted in the log and in the returned report.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import numpy as np

from uibrec.data.interactions import Interactions

logger = logging.getLogger(__name__)


def drop_duplicates(data: Interactions, report: dict | None = None) -> Interactions:
    """Collapse repeated (user, item) rows into one: the earliest if timestamps exist."""
    key = data.user_idx * data.num_items + data.item_idx
    sorted_key = np.sort(key)
    if not (sorted_key[1:] == sorted_key[:-1]).any():  # the usual case, without the sorts below
        _log_removed(report, "duplicate rows", 0)
        return data
    order = np.arange(len(data))
    if data.timestamp is not None:
        order = np.lexsort((order, data.timestamp))  # stable: earliest first
    key = data.user_idx[order] * data.num_items + data.item_idx[order]
    _, first = np.unique(key, return_index=True)
    keep = np.sort(order[first])
    removed = len(data) - len(keep)
    _log_removed(report, "duplicate rows", removed)
    return data.take(keep) if removed else data


def filter_min_interactions(
    data: Interactions, min_user: int = 5, min_item: int = 0, report: dict | None = None
) -> Interactions:
    """Keep users with at least ``min_user`` and items with at least ``min_item`` rows.

    With both thresholds set, the filter repeats until both hold (a k-core). The result is
    compacted: users and items left without rows are dropped from the ID maps.
    """
    before_users, before_items = data.num_users, data.num_items
    _log_removed(report, "rows of filtered users/items", 0)  # listed even when none
    while True:
        user_counts = np.bincount(data.user_idx, minlength=data.num_users)
        item_counts = np.bincount(data.item_idx, minlength=data.num_items)
        keep = user_counts[data.user_idx] >= min_user
        if min_item > 0:
            keep &= item_counts[data.item_idx] >= min_item
        if keep.all():
            break
        _log_removed(report, "rows of filtered users/items", int((~keep).sum()))
        data = data.take(keep)
        if min_item <= 0:
            break
    data = data.compact()
    _log_removed(report, "users filtered out", before_users - data.num_users)
    _log_removed(report, "items left without interactions", before_items - data.num_items)
    return data


def k_core(data: Interactions, k: int, report: dict | None = None) -> Interactions:
    """The ``k``-core: repeat until every user and every item has at least ``k`` distinct
    interactions. Used on raw files (e.g. Amazon's ratings-only csv) to rebuild a
    published k-core; counts go to ``report`` under ``"{k}-core: ..."`` keys."""
    counts: dict = {}
    data = drop_duplicates(data, counts)
    data = filter_min_interactions(data, min_user=k, min_item=k, report=counts)
    if report is not None:
        for what, count in counts.items():
            report[f"{k}-core: {what}"] = count
    return data


def _log_removed(report: dict | None, what: str, count: int) -> None:
    if count:
        logger.info("removed %s: %d", what, count)
    if report is not None:
        report[what] = report.get(what, 0) + int(count)


@dataclass
class Split:
    """Train / validation / test interactions over one set of users and items.

    ``valid_items[k]`` and ``test_items[k]`` are the held-out items of user
    ``eval_users[k]``; users with too few interactions to hold two out appear only in
    training.
    """

    train: Interactions
    eval_users: np.ndarray  # (n_eval,) int64, sorted
    valid_items: np.ndarray  # (n_eval,) int64
    test_items: np.ndarray  # (n_eval,) int64
    seed: int
    order: str
    report: dict = field(default_factory=dict)

    @property
    def num_users(self) -> int:
        return self.train.num_users

    @property
    def num_items(self) -> int:
        return self.train.num_items

    @property
    def user_map(self):
        return self.train.user_map

    @property
    def item_map(self):
        return self.train.item_map

    def fingerprint(self) -> str:
        """A short hash of the split's contents, to key cached candidates."""
        digest = hashlib.sha1()
        for array in (self.train.user_idx, self.train.item_idx, self.eval_users,
                      self.valid_items, self.test_items):
            digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(f"{self.num_users},{self.num_items}".encode())
        return digest.hexdigest()[:16]

    def stats(self) -> dict:
        n_users, n_items = self.num_users, self.num_items
        total = len(self.train) + 2 * len(self.eval_users)
        return {
            "users": n_users,
            "items": n_items,
            "train": len(self.train),
            "valid": len(self.eval_users),
            "test": len(self.eval_users),
            "density": total / (n_users * n_items) if n_users and n_items else 0.0,
        }


def leave_one_out(data: Interactions, seed: int = 0, order: str = "random") -> Split:
    """Hold out one validation and one test interaction per user.

    Args:
        data: cleaned interactions (see :func:`prepare`).
        seed: seeds the random order (and breaks timestamp ties in the temporal order).
        order: ``"random"``, a seeded per-user shuffle as in the paper; or
            ``"temporal"``, the latest interaction for test and the one before it for
            validation.
    """
    if order not in ("random", "temporal"):
        raise ValueError(f"order must be 'random' or 'temporal', got {order!r}")
    if order == "temporal" and data.timestamp is None:
        raise ValueError(f"{data.name}: a temporal split needs timestamps, and this data has none")
    rng = np.random.default_rng(seed)
    tie_break = rng.random(len(data))
    keys = [tie_break] if order == "random" else [data.timestamp, tie_break]
    counts = np.bincount(data.user_idx, minlength=data.num_users)
    eligible = np.flatnonzero(counts >= 3)
    if len(eligible) < data.num_users:
        logger.warning("%d users have fewer than 3 interactions: kept for training only",
                       data.num_users - len(eligible))
    test_rows = _last_rows(data.user_idx, keys, data.num_users)[eligible]
    held_out = np.zeros(len(data), dtype=bool)
    held_out[test_rows] = True
    valid_rows = _last_rows(data.user_idx, keys, data.num_users, exclude=held_out)[eligible]
    held_out[valid_rows] = True
    assert (data.user_idx[test_rows] == eligible).all()

    split = Split(
        train=data.take(~held_out),
        eval_users=eligible.astype(np.int64),
        valid_items=data.item_idx[valid_rows],
        test_items=data.item_idx[test_rows],
        seed=seed,
        order=order,
    )
    logger.info("split %s: %d train, %d validation, %d test interactions",
                data.name, len(split.train), len(eligible), len(eligible))
    return split


def _last_rows(user_idx: np.ndarray, keys: list, num_users: int,
               exclude: np.ndarray | None = None) -> np.ndarray:
    """Each user's row that sorts last by ``keys`` (compared in order), ties going to the
    later row: the same row as the end of the user's group in
    ``np.lexsort(keys[::-1] + [user_idx])``, found in linear time instead of by sorting.

    Returns ``(num_users,)`` row numbers, -1 for users without a (non-excluded) row.
    """
    rows = np.arange(len(user_idx))
    candidate = np.ones(len(user_idx), dtype=bool) if exclude is None else ~exclude
    for key in [*keys, rows]:
        users, values = user_idx[candidate], key[candidate]
        best = np.full(num_users, _lowest(values.dtype), dtype=values.dtype)
        np.maximum.at(best, users, values)
        candidate[candidate] = values == best[users]
    last = np.full(num_users, -1, dtype=np.int64)
    last[user_idx[candidate]] = rows[candidate]
    return last


def _lowest(dtype: np.dtype):
    return -np.inf if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).min


def no_users_left(min_user: int, report: dict) -> str:
    """What :func:`prepare` removed when it left no user, for errors and warnings."""
    users = report.get("users filtered out", 0)
    rows = report.get("rows of filtered users/items", 0)
    return (f"no users left after min_user_interactions={min_user} (removed "
            f"{_count(users, 'user')}, {_count(rows, 'row')})")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def prepare(data: Interactions, min_user: int = 5, min_item: int = 0,
            report: dict | None = None) -> Interactions:
    """The paper's cleaning: duplicates collapsed, then users under ``min_user`` removed.

    ``report`` receives the counts of every step, starting with what the reader counted
    (``data.report``: rows read, blank lines, rows the reader dropped).
    """
    report = {} if report is None else report
    report["raw rows"] = data.report.get("rows read", len(data))
    report.update((key, value) for key, value in data.report.items() if key != "rows read")
    data = drop_duplicates(data, report)
    data = filter_min_interactions(data, min_user=min_user, min_item=min_item, report=report)
    return data
