"""The interaction table: who interacted with what, with raw IDs kept apart from indices.

Raw IDs (``user_id``, ``item_id``) are whatever the file held: numbers or strings, in any
order, with gaps. Internal indices (``user_idx``, ``item_idx``) are contiguous ``0..n-1``
and are what models and samplers see. ``IdMap`` converts both ways.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IdMap:
    """Raw ID <-> internal index for one kind of entity (users or items)."""

    ids: np.ndarray  # (n,) raw ID of each index
    _lookup: dict = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ids)

    def _table(self) -> dict:
        if self._lookup is None:
            object.__setattr__(self, "_lookup", {_plain(v): i for i, v in enumerate(self.ids)})
        return self._lookup

    def to_idx(self, raw_ids, kind: str = "ID") -> np.ndarray:
        """Indices of ``raw_ids``; an unknown ID raises ``KeyError`` naming it."""
        table = self._table()
        scalar = np.ndim(raw_ids) == 0
        out = []
        for raw in np.atleast_1d(np.asarray(raw_ids, dtype=object)):
            key = _plain(raw)
            if key not in table:
                # A number typed as text (or the reverse) is the usual mistake: try the other.
                key = _coerce_like(key, self.ids)
            if key not in table:
                raise KeyError(f"unknown {kind} {raw!r}: not in this dataset")
            out.append(table[key])
        result = np.asarray(out, dtype=np.int64)
        return result[0] if scalar else result

    def to_id(self, idx) -> np.ndarray:
        return self.ids[np.asarray(idx)]


def _plain(value):
    """A hashable Python scalar for numpy scalars, so 5, np.int64(5) and 5.0 match."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value


def _coerce_like(key, ids: np.ndarray):
    if len(ids) == 0:
        return key
    if np.issubdtype(ids.dtype, np.number) and isinstance(key, str):
        try:
            return _plain(float(key))
        except ValueError:
            return key
    if not np.issubdtype(ids.dtype, np.number) and not isinstance(key, str):
        return str(key)
    return key


@dataclass
class Interactions:
    """A table of (user, item[, rating][, timestamp]) rows over indexed users and items.

    Every user and item in ``user_map``/``item_map`` need not appear in the rows (a split
    keeps the maps of the whole dataset), but every row's indices are inside the maps.
    """

    user_idx: np.ndarray  # (n,) int64
    item_idx: np.ndarray  # (n,) int64
    user_map: IdMap
    item_map: IdMap
    rating: np.ndarray | None = None  # (n,) float32
    timestamp: np.ndarray | None = None  # (n,) int64
    name: str = "interactions"
    # What reading the file counted: rows read, blank lines, rows dropped and why.
    report: dict = field(default_factory=dict)

    def __post_init__(self):
        self.user_idx = np.asarray(self.user_idx, dtype=np.int64)
        self.item_idx = np.asarray(self.item_idx, dtype=np.int64)
        n = len(self.user_idx)
        if len(self.item_idx) != n:
            raise ValueError("user_idx and item_idx must have the same length")
        for col in ("rating", "timestamp"):
            value = getattr(self, col)
            if value is not None and len(value) != n:
                raise ValueError(f"{col} must have one value per interaction")

    @classmethod
    def from_raw(
        cls,
        user_ids,
        item_ids,
        rating=None,
        timestamp=None,
        name: str = "interactions",
    ) -> Interactions:
        """Index raw IDs: indices follow the sorted order of the raw IDs."""
        user_idx, users = pd.factorize(np.asarray(user_ids), sort=True)
        item_idx, items = pd.factorize(np.asarray(item_ids), sort=True)
        return cls(
            user_idx=user_idx,
            item_idx=item_idx,
            user_map=IdMap(np.asarray(users)),
            item_map=IdMap(np.asarray(items)),
            rating=None if rating is None else np.asarray(rating, dtype=np.float32),
            timestamp=None if timestamp is None else np.asarray(timestamp, dtype=np.int64),
            name=name,
        )

    def __len__(self) -> int:
        return len(self.user_idx)

    @property
    def num_users(self) -> int:
        return len(self.user_map)

    @property
    def num_items(self) -> int:
        return len(self.item_map)

    def take(self, rows: np.ndarray) -> Interactions:
        """The rows selected by a boolean mask or an index array; maps are kept as they are."""
        return Interactions(
            user_idx=self.user_idx[rows],
            item_idx=self.item_idx[rows],
            user_map=self.user_map,
            item_map=self.item_map,
            rating=None if self.rating is None else self.rating[rows],
            timestamp=None if self.timestamp is None else self.timestamp[rows],
            name=self.name,
            report=self.report,
        )

    def compact(self) -> Interactions:
        """Re-index so that only users and items present in the rows remain."""
        user_idx, users = pd.factorize(self.user_idx, sort=True)
        item_idx, items = pd.factorize(self.item_idx, sort=True)
        return Interactions(
            user_idx=user_idx,
            item_idx=item_idx,
            user_map=IdMap(self.user_map.ids[users]),
            item_map=IdMap(self.item_map.ids[items]),
            rating=self.rating,
            timestamp=self.timestamp,
            name=self.name,
            report=self.report,
        )

    def to_frame(self, raw_ids: bool = True) -> pd.DataFrame:
        data = {
            "user_id" if raw_ids else "user_idx": (
                self.user_map.to_id(self.user_idx) if raw_ids else self.user_idx
            ),
            "item_id" if raw_ids else "item_idx": (
                self.item_map.to_id(self.item_idx) if raw_ids else self.item_idx
            ),
        }
        if self.rating is not None:
            data["rating"] = self.rating
        if self.timestamp is not None:
            data["timestamp"] = self.timestamp
        return pd.DataFrame(data)

    def __repr__(self) -> str:
        return (
            f"Interactions({self.name!r}: {len(self):,} rows, "
            f"{self.num_users:,} users, {self.num_items:,} items)"
        )


def user_item_csr(user_idx: np.ndarray, item_idx: np.ndarray, num_users: int):
    """Row pointers and sorted item indices of each user's items (a CSR layout).

    Returns ``(indptr, indices)``: user ``u``'s items are ``indices[indptr[u]:indptr[u+1]]``.
    """
    order = np.lexsort((item_idx, user_idx))
    indptr = np.zeros(num_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(user_idx, minlength=num_users), out=indptr[1:])
    return indptr, np.asarray(item_idx)[order].astype(np.int64)


def csr_gather(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray):
    """Entries of the given CSR rows, as ``(position in rows, column)`` arrays."""
    rows = np.asarray(rows, dtype=np.int64)
    lengths = indptr[rows + 1] - indptr[rows]
    total = int(lengths.sum())
    owner = np.repeat(np.arange(len(rows)), lengths)
    row_start = np.cumsum(lengths) - lengths
    positions = np.repeat(indptr[rows], lengths) + (np.arange(total) - row_start[owner])
    return owner, indices[positions]


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted: ``np.unique(values)`` by one sort.

    NumPy 2.3+ answers a plain ``np.unique`` of integers with a hash table; on 5 million
    int64 keys here it took 22 s against 1.3 s for a sort.
    """
    values = np.sort(values)
    keep = np.empty(len(values), dtype=bool)
    keep[:1] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]
