"""Recommendations from a saved run, in raw IDs, with the boundary's verdict beside them.

::

    from uibrec.recommend import load, recommend, wants
    run = load("runs/ml-1m-mf-uib-seed0")
    top = recommend(run, [1, 2, 3], k=10, only_above_boundary=True)
    verdict = wants(run, 1, [1193, 661])

"Seen" items are all of the user's interactions in the run's data: training, validation
and test. Excluding them (the default) needs the data the run was trained on; keeping them
does not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from uibrec.analysis.scores import (
    dense_mask,
    iter_scores,
    pair_scores,
    require_boundary,
    user_boundaries,
)
from uibrec.data.candidates import seen_items_csr
from uibrec.data.interactions import IdMap
from uibrec.runs import Run, load_run


class UnknownIdError(KeyError):
    """A raw user or item ID that the run's data does not hold."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


def load(run_dir) -> Run:
    """Load a run folder (the same as :func:`uibrec.runs.load_run`)."""
    return load_run(run_dir)


def _as_run(run) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def to_indices(run: Run, ids, kind: str) -> np.ndarray:
    """Indices of raw ``ids`` (``kind`` is ``"user"`` or ``"item"``); unknown IDs raise
    :class:`UnknownIdError` naming them."""
    id_map: IdMap = run.user_map if kind == "user" else run.item_map
    ids = np.atleast_1d(np.asarray(ids, dtype=object))
    try:
        return id_map.to_idx(ids, kind=f"{kind} ID")
    except KeyError as exc:
        filtered = _filtered_user(run, ids) if kind == "user" else None
        if filtered:
            raise UnknownIdError(f"{run.path}: {filtered}") from None
        sample = ", ".join(map(str, id_map.ids[:3]))
        raise UnknownIdError(f"{run.path}: {exc.args[0]} (the run knows {len(id_map)} "
                             f"{kind}s, e.g. {sample})") from None


def _filtered_user(run: Run, ids) -> str | None:
    """Why the first of ``ids`` the run lacks is missing, when the run's data file holds it
    but the min-interactions filter removed it; None otherwise (or if the file is gone)."""
    from uibrec.data.registry import load_dataset

    config = run.config
    try:
        data = load_dataset(config.dataset, config.data_dir, download_missing=False,
                            **config.read_options)
    except (OSError, ValueError, KeyError):
        return None
    for raw in ids:
        try:
            run.user_map.to_idx([raw])
            continue
        except KeyError:
            pass
        try:
            user = data.user_map.to_idx([raw])[0]
        except KeyError:
            return None
        items = np.unique(data.item_idx[data.user_idx == user])
        return (f"user ID {raw!r} was removed by the min_user_interactions="
                f"{config.min_user_interactions} filter: it has {len(items)} interactions "
                f"in {config.dataset}")
    return None


def recommend(run, user_ids, k: int = 10, only_above_boundary: bool = False,
              exclude_seen: bool = True, batch_size: int = 1024) -> pd.DataFrame:
    """The top ``k`` items of each user, best first.

    Args:
        run: a :class:`~uibrec.runs.Run` or the path of a run folder.
        user_ids: raw user IDs (one or many); all are scored in batches.
        k: items per user.
        only_above_boundary: keep only items scoring above the user's boundary ``b_u``
            (a user may then get fewer than ``k``, or none); needs a UIB run.
        exclude_seen: leave out the user's training, validation and test items.

    Returns:
        One row per recommendation: ``user_id``, ``rank`` (1 = best), ``item_id``,
        ``score``, and for a UIB run ``boundary`` and ``above_boundary``.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    run = _as_run(run)
    head = require_boundary(run) if only_above_boundary else run.boundary
    user_idx = to_indices(run, user_ids, "user")
    seen = seen_items_csr(run.split()[0]) if exclude_seen else None

    frames = []
    for users, scores, boundary in iter_scores(run.model, head, user_idx, batch_size):
        if seen is not None:
            mask = dense_mask(*seen, users, scores.shape[1], scores.device)
            scores = scores.masked_fill(mask, -torch.inf)
        top = scores.topk(min(k, scores.shape[1]), dim=1)  # (B, k)
        frames.append(_top_frame(run, users, top.values, top.indices, boundary))
    if not frames:  # no users: the usual columns, no rows
        k = min(k, run.model.num_items)
        none = torch.empty((0, k), dtype=torch.long)
        frames.append(_top_frame(run, none[:, 0], none.float(), none,
                                 None if head is None else torch.empty(0)))
    table = pd.concat(frames, ignore_index=True)
    table = table[np.isfinite(table["score"])]  # a user who has seen nearly every item
    if only_above_boundary:
        table = table[table["above_boundary"]]
    return table.reset_index(drop=True)


def _top_frame(run: Run, users, values, indices, boundary) -> pd.DataFrame:
    batch, k = values.shape
    frame = pd.DataFrame({
        "user_id": run.user_map.to_id(users.cpu().numpy().repeat(k)),
        "rank": np.tile(np.arange(1, k + 1), batch),
        "item_id": run.item_map.to_id(indices.cpu().numpy().ravel()),
        "score": values.cpu().numpy().ravel(),
    })
    if boundary is not None:
        frame["boundary"] = boundary.cpu().numpy().repeat(k)
        frame["above_boundary"] = frame["score"] > frame["boundary"]
    return frame


def wants(run, user_id, item_ids, offset: float = 0.0) -> pd.DataFrame:
    """Whether the user wants each item: ``s(u, i) > b_u + offset``.

    Returns one row per item: ``item_id``, ``score``, ``boundary``, ``wanted``. Needs a
    run trained with the UIB loss.
    """
    run = _as_run(run)
    head = require_boundary(run)
    user_idx = to_indices(run, [user_id], "user")
    item_idx = to_indices(run, item_ids, "item")
    scores = pair_scores(run.model, user_idx, item_idx[None, :])[0]  # (n,)
    boundary = float(user_boundaries(run.model, head, user_idx)[0])
    return pd.DataFrame({
        "item_id": run.item_map.to_id(item_idx),
        "score": scores,
        "boundary": boundary,
        "wanted": scores > boundary + offset,
    })

