"""Published benchmark splits read as they are: NCF's files and RecBole's ``.inter`` files.

A published split is comparable only when every model is scored on exactly its held-out
items and, for sampled metrics, exactly its candidates. These readers build a
:class:`~uibrec.data.split.Split` (and NCF's candidates) so that
``Evaluator(split, candidates)`` scores that split as published: nothing is re-indexed
away, filtered or re-sampled.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from uibrec.data.formats import read_recbole_inter
from uibrec.data.interactions import IdMap, Interactions
from uibrec.data.readers import read_delimited
from uibrec.data.split import Split
from uibrec.data.textfiles import DataFormatError, TextFile

logger = logging.getLogger(__name__)

_NCF_COLUMNS = {"user": 0, "item": 1, "rating": 2, "timestamp": 3}
_PAIR = re.compile(r"^\(\s*(\d+)\s*,\s*(\d+)\s*\)$")


def _find(folder_or_prefix, suffix: str, required: bool = True) -> Path | None:
    """``PREFIX + suffix``, or the one file in a folder whose name ends with ``suffix``."""
    base = Path(folder_or_prefix)
    if base.is_dir():
        found = sorted(base.glob(f"*{suffix}"))
        if len(found) > 1:
            raise ValueError(f"{base}: several *{suffix} files ({[p.name for p in found]}); "
                             "give the path prefix of one split")
        path = found[0] if found else None
    else:
        path = Path(f"{base}{suffix}")
        path = path if path.is_file() else None
    if path is None and required:
        raise FileNotFoundError(f"{base}: no *{suffix} file")
    return path


def read_ncf_split(folder_or_prefix) -> tuple[Split, np.ndarray]:
    """NCF's leave-one-out files (He et al., WWW 2017): ``PREFIX.train.rating``,
    ``PREFIX.test.rating`` and ``PREFIX.test.negative``.

    The ``.rating`` files are tab-separated ``user, item, rating, timestamp`` with 0-based
    indices, kept as they are (index ``k`` is raw ID ``k``); ``test.rating`` holds one row
    per user. Each ``test.negative`` line is ``(user,item)`` followed by that user's
    negative candidates (99 in NCF), tab-separated.

    NCF publishes no validation file: **validation is the test set** here
    (``split.valid_items`` equals ``split.test_items``), so anything selected on
    "validation" is selected on test, as NCF's own code did; say so when reporting. When
    only the test files are published, training is empty: the split then scores a model
    trained elsewhere on NCF's numbering.

    Args:
        folder_or_prefix: a folder holding one such split, or the common path prefix
            (``data/ml-1m`` for ``data/ml-1m.test.rating``).

    Returns:
        ``(split, candidates)``: candidates is ``(n_eval, n_neg)`` int64, one row per
        ``split.eval_users`` in the order of the negatives file. Candidates that are the
        user's test or training items are kept (the split is read as published), counted
        in ``split.report`` and logged.
    """
    test_path = _find(folder_or_prefix, ".test.rating")
    negative_path = _find(folder_or_prefix, ".test.negative")
    train_path = _find(folder_or_prefix, ".train.rating", required=False)
    test_users, test_items = _index_pairs(test_path)
    pairs, negatives = _read_negatives(negative_path)
    _check_pairs(test_path, negative_path, test_users, test_items, pairs)
    if train_path is None:
        logger.warning("%s: no train file; the split has no training interactions",
                       folder_or_prefix)
        train = pd.DataFrame({"user": [], "item": [], "rating": [], "timestamp": []})
    else:
        train = _index_frame(train_path)

    num_users = int(max(test_users.max(), train["user"].max() if len(train) else -1)) + 1
    num_items = int(max(test_items.max(), negatives.max(),
                        train["item"].max() if len(train) else -1)) + 1
    order = np.argsort(pairs[:, 0], kind="stable")
    users, items, candidates = pairs[order, 0], pairs[order, 1], negatives[order]
    split = Split(
        train=_identity_interactions(train, num_users, num_items, "ncf"),
        eval_users=users, valid_items=items.copy(), test_items=items, seed=0, order="ncf",
    )
    split.report = {"train rows": len(train), "validation is the test set": True,
                    **_candidate_overlap(split, candidates)}
    return split, candidates


def _index_frame(path: Path) -> pd.DataFrame:
    data = read_delimited(path, sep="\t", columns=_NCF_COLUMNS, name=path.name)
    users, items = data.user_map.ids[data.user_idx], data.item_map.ids[data.item_idx]
    for what, ids in (("user", users), ("item", items)):
        if ids.dtype == object or (len(ids) and ids.min() < 0):
            raise DataFormatError(path, None, f"NCF files hold 0-based integer {what} indices; "
                                  f"found {ids[0]!r}")
    return pd.DataFrame({"user": users, "item": items, "rating": data.rating,
                         "timestamp": data.timestamp})


def _index_pairs(path: Path) -> tuple[np.ndarray, np.ndarray]:
    frame = _index_frame(path)
    users = frame["user"].to_numpy(dtype=np.int64)
    unique, counts = np.unique(users, return_counts=True)
    if (counts > 1).any():
        user = int(unique[counts > 1][0])
        row = int(np.flatnonzero(users == user)[1])
        raise DataFormatError(path, TextFile.open(path).line_of_row(row),
                              f"user {user} has a second test row: NCF splits hold one")
    return users, frame["item"].to_numpy(dtype=np.int64)


def _read_negatives(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 2)`` (user, item) pairs and ``(n, n_neg)`` negatives of a test.negative file."""
    text = TextFile.open(path)
    pairs, negatives = [], []
    with text.binary() as handle:
        for number, raw in enumerate(handle, start=1):
            fields = text.decode(raw, number).split()
            if not fields:
                continue
            pair = _PAIR.match(fields[0])
            if pair is None:
                raise DataFormatError(path, number, f"expected '(user,item)' first, got "
                                      f"{fields[0][:40]!r}")
            if negatives and len(fields) - 1 != len(negatives[0]):
                raise DataFormatError(path, number, f"{len(fields) - 1} negatives where the "
                                      f"first line has {len(negatives[0])}")
            if not all(field.isdigit() for field in fields[1:]):
                bad = next(field for field in fields[1:] if not field.isdigit())
                raise DataFormatError(path, number, f"expected item indices, got {bad!r}")
            pairs.append((int(pair.group(1)), int(pair.group(2))))
            negatives.append([int(field) for field in fields[1:]])
    if not pairs:
        raise DataFormatError(path, None, "is empty")
    return np.asarray(pairs, dtype=np.int64), np.asarray(negatives, dtype=np.int64)


def _check_pairs(test_path, negative_path, test_users, test_items, pairs) -> None:
    held_out = dict(zip(test_users.tolist(), test_items.tolist(), strict=True))
    seen = set()
    for line, (user, item) in enumerate(pairs.tolist(), start=1):
        if held_out.get(user) != item:
            raise DataFormatError(negative_path, line, f"({user},{item}) is not a test pair "
                                  f"of {test_path.name}")
        if user in seen:
            raise DataFormatError(negative_path, line, f"user {user} appears twice")
        seen.add(user)
    if len(seen) != len(held_out):
        missing = sorted(set(held_out) - seen)[:5]
        raise DataFormatError(negative_path, None, f"no negatives for {len(held_out) - len(seen)}"
                              f" test users of {test_path.name} (e.g. {missing})")


def _identity_interactions(frame: pd.DataFrame, num_users: int, num_items: int,
                           name: str) -> Interactions:
    return Interactions(
        user_idx=frame["user"].to_numpy(dtype=np.int64),
        item_idx=frame["item"].to_numpy(dtype=np.int64),
        user_map=IdMap(np.arange(num_users)), item_map=IdMap(np.arange(num_items)),
        rating=frame["rating"].to_numpy(dtype=np.float32),
        timestamp=frame["timestamp"].to_numpy(dtype=np.int64), name=name,
    )


def _candidate_overlap(split: Split, candidates: np.ndarray) -> dict:
    """Counts of candidates that are the user's own positives (kept, as published)."""
    is_test = candidates == split.test_items[:, None]
    train_keys = set((split.train.user_idx * split.num_items + split.train.item_idx).tolist())
    keys = split.eval_users[:, None] * split.num_items + candidates
    in_train = np.isin(keys, np.fromiter(train_keys, dtype=np.int64, count=len(train_keys)))
    counts = {"candidates equal to the test item": int(is_test.sum()),
              "candidates among training items": int(in_train.sum())}
    if is_test.any() or in_train.any():
        logger.warning("published candidates include the user's own positives: %s", counts)
    return counts


def read_recbole_split(folder, dataset: str | None = None, fields: dict | None = None
                       ) -> tuple[Split, None]:
    """RecBole's benchmark files ``DATASET.train.inter``, ``DATASET.valid.inter`` and
    ``DATASET.test.inter`` (typed headers, tab-separated, raw ID tokens).

    Raw IDs are indexed jointly over the three files, sorted. Only leave-one-out splits fit
    a :class:`Split`: every user in the test file needs exactly one test row (and one
    validation row when that file exists). Without a validation file **validation is the
    test set**, as for NCF.

    Returns:
        ``(split, None)``: RecBole publishes no candidates; rank over all items
        (``Evaluator(split, None)`` with ``protocol="full"``) or draw them with
        :func:`~uibrec.data.candidates.sample_candidates`.
    """
    prefix = Path(folder) / dataset if dataset else Path(folder)
    paths = {part: _find(prefix, f".{part}.inter", required=part != "valid")
             for part in ("train", "valid", "test")}
    parts = {part: read_recbole_inter(path, fields=fields) for part, path in paths.items()
             if path is not None}
    user_map, users = _joint_index([data.user_map.ids[data.user_idx] for data in parts.values()])
    item_map, items = _joint_index([data.item_map.ids[data.item_idx] for data in parts.values()])
    indexed = dict(zip(parts, zip(users, items, strict=True), strict=True))
    eval_users, test_items = _one_per_user(paths["test"], *indexed["test"])
    valid_items = test_items.copy()
    if "valid" in indexed:
        valid_users, valid_items = _one_per_user(paths["valid"], *indexed["valid"])
        if not np.array_equal(valid_users, eval_users):
            raise DataFormatError(paths["valid"], None, "its users differ from the test file's")
    train = parts["train"]
    split = Split(
        train=Interactions(indexed["train"][0], indexed["train"][1], user_map, item_map,
                           rating=train.rating, timestamp=train.timestamp, name="recbole"),
        eval_users=eval_users, valid_items=valid_items, test_items=test_items, seed=0,
        order="recbole",
    )
    split.report = {"train rows": len(train), "validation is the test set": "valid" not in parts}
    return split, None


def _joint_index(id_arrays: list[np.ndarray]) -> tuple[IdMap, list[np.ndarray]]:
    """One sorted ID map over several arrays of raw IDs, and each array's indices."""
    if any(ids.dtype == object for ids in id_arrays):
        id_arrays = [ids.astype(str).astype(object) for ids in id_arrays]
    codes, uniques = pd.factorize(np.concatenate(id_arrays), sort=True)
    bounds = np.cumsum([len(ids) for ids in id_arrays])[:-1]
    return IdMap(np.asarray(uniques)), np.split(codes.astype(np.int64), bounds)


def _one_per_user(path: Path, users: np.ndarray, items: np.ndarray):
    order = np.argsort(users, kind="stable")
    users, items = users[order], items[order]
    repeated = np.flatnonzero(users[1:] == users[:-1])
    if len(repeated):
        row = int(order[repeated[0] + 1])
        raise DataFormatError(path, TextFile.open(path).line_of_row(row, skip=1),
                              "a second row for this user: only leave-one-out splits (one row "
                              "per user) can be read")
    return users, items
