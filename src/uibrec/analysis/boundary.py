"""The boundary as a classifier and as a pre-ranking filter (NOTES section 6).

An item ``i`` is *wanted* by user ``u`` at offset ``o`` when ``s(u, i) > b_u + o``
(strictly: a score equal to the shifted boundary is not wanted). Two scopes are reported:

- ``known``: every item of the catalogue is classified, and the relevant items are all the
  user's known interactions: training, validation and test items together. This is the
  paper's measure; most of what it counts as found the model was trained on.
- ``test``: only the items the user has not interacted with in training or validation are
  classified (the user's unseen items plus the held-out test item), and the one relevant
  item is the held-out test item. Its recall at offset 0 is the share of test items that
  survive the boundary used as a pre-ranking filter.

Precision, recall and F1 are given pooled over users (``precision``: all hits over all
items classified wanted) and as means of per-user values (``user_precision``; a user with
nothing classified wanted has precision 0, and per-user F1 is 0 when precision and recall
are both 0). Users without held-out items take part only in the ``known`` scope.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from uibrec.analysis.scores import dense_mask, iter_scores
from uibrec.data.candidates import seen_items_csr
from uibrec.data.interactions import user_item_csr
from uibrec.data.split import Split
from uibrec.models.base import BoundaryHead, Recommender

OFFSETS = tuple(range(-5, 6))
SCOPES = ("known", "test")


def offset_counts(margin: torch.Tensor, relevant: torch.Tensor, offsets: Sequence[float],
                  candidates: torch.Tensor | None = None):
    """Per offset and user: items classified wanted, and how many of them are relevant.

    Args:
        margin: ``(B, N)`` score minus the user's boundary, ``s(u, i) - b_u``.
        relevant: ``(B, N)`` boolean, the items that count as wanted.
        offsets: the shifts ``o``; an item is classified wanted when ``margin > o``.
        candidates: ``(B, N)`` boolean, the items classified at all (default: every item).

    Returns:
        ``(hits (O, B), predicted (O, B), relevant_count (B,))`` as int64 tensors.
    """
    if candidates is not None:
        margin = margin.masked_fill(~candidates, -torch.inf)
        relevant = relevant & candidates
    hits, predicted = [], []
    for offset in offsets:
        wanted = margin > offset  # (B, N)
        hits.append((wanted & relevant).sum(1))
        predicted.append(wanted.sum(1))
    return torch.stack(hits), torch.stack(predicted), relevant.sum(1)


def precision_recall_f1(hits, predicted, relevant, offsets: Sequence[float]) -> pd.DataFrame:
    """Pooled and per-user-mean precision, recall and F1 for each offset.

    ``hits`` and ``predicted`` are ``(O, U)`` counts, ``relevant`` ``(U,)``; users with no
    relevant item are left out. Returns one row per offset.
    """
    hits, predicted = np.asarray(hits, dtype=np.float64), np.asarray(predicted, np.float64)
    relevant = np.asarray(relevant, dtype=np.float64)
    keep = relevant > 0
    hits, predicted, relevant = hits[:, keep], predicted[:, keep], relevant[keep]

    total_hits, total_predicted = hits.sum(1), predicted.sum(1)  # (O,)
    precision = _ratio(total_hits, total_predicted)
    recall = _ratio(total_hits, np.full_like(total_hits, relevant.sum()))
    user_p = _ratio(hits, predicted)  # (O, U)
    user_r = _ratio(hits, np.broadcast_to(relevant, hits.shape))
    return pd.DataFrame({
        "offset": list(offsets),
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "user_precision": user_p.mean(1) if keep.any() else np.nan,
        "user_recall": user_r.mean(1) if keep.any() else np.nan,
        "user_f1": _f1(user_p, user_r).mean(1) if keep.any() else np.nan,
        "wanted_per_user": predicted.mean(1) if keep.any() else np.nan,
        "users": int(keep.sum()),
    })


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def _f1(precision, recall):
    return _ratio(2 * precision * recall, precision + recall)


@dataclass
class BoundaryAnalysis:
    """What :func:`analyze_boundary` measures.

    ``per_user``: one row per user: ``user_idx``, ``boundary``, ``num_known``,
    ``num_above`` (items scoring above ``b_u``), ``filtered_share`` (share of the catalogue
    at or below ``b_u``), ``filtered_share_unseen`` (the same among items not in the user's
    training), ``test_item`` (-1 when none), ``test_margin`` (``s(u, test) - b_u``) and
    ``test_above``. ``sweep``: one row per (scope, offset), see
    :func:`precision_recall_f1`.
    """

    per_user: pd.DataFrame
    sweep: pd.DataFrame

    def summary(self) -> dict:
        """The headline figures: boundary spread, F1 at offset 0, filter share, survival."""
        users, sweep = self.per_user, self.sweep.set_index(["scope", "offset"])
        out = {
            "users": len(users),
            "boundary_mean": float(users["boundary"].mean()),
            "boundary_std": float(users["boundary"].std(ddof=0)),
            "filtered_share_mean": float(users["filtered_share"].mean()),
            "filtered_share_unseen_mean": float(users["filtered_share_unseen"].mean()),
            "test_survival": float(users.loc[users["test_item"] >= 0, "test_above"].mean()),
        }
        for scope in SCOPES:
            if (scope, 0) in sweep.index:
                row = sweep.loc[(scope, 0)]
                for key in ("precision", "recall", "f1", "user_f1"):
                    out[f"{scope}_{key}@0"] = float(row[key])
        best = self.sweep[self.sweep["scope"] == "known"].sort_values("f1").iloc[-1]
        out["known_best_offset"], out["known_best_f1"] = float(best["offset"]), float(best["f1"])
        return out


def analyze_boundary(model: Recommender, head: BoundaryHead, split: Split,
                     offsets: Sequence[float] = OFFSETS, batch_size: int = 1024,
                     user_idx=None) -> BoundaryAnalysis:
    """Classify every item for every user by the boundary; count per offset and scope.

    One pass over the users in batches of ``batch_size``; ``user_idx`` restricts it
    (default: every user). See the module docstring for what counts as relevant.
    """
    num_items = split.num_items
    users_all = np.arange(split.num_users) if user_idx is None else np.asarray(user_idx)
    known_ptr, known_idx = seen_items_csr(split)
    train_ptr, train_idx = user_item_csr(split.train.user_idx, split.train.item_idx,
                                         split.num_users)
    test_of = np.full(split.num_users, -1, dtype=np.int64)
    test_of[split.eval_users] = split.test_items

    counts = {scope: ([], [], []) for scope in SCOPES}
    rows = []
    for users, scores, boundary in iter_scores(model, head, users_all, batch_size):
        device = scores.device
        margin = scores - boundary.unsqueeze(1)  # (B, N)
        known = dense_mask(known_ptr, known_idx, users, num_items, device)  # (B, N)
        trained = dense_mask(train_ptr, train_idx, users, num_items, device)  # (B, N)
        test = torch.as_tensor(test_of[users.cpu().numpy()], device=device)  # (B,)
        test_hot = _one_hot(test, num_items)  # (B, N), empty rows without a test item
        unseen = ~known | test_hot  # the test scope's items: neither train nor valid
        unseen[test < 0] = False

        _append(counts["known"], offset_counts(margin, known, offsets))
        _append(counts["test"], offset_counts(margin, test_hot, offsets, unseen))
        rows.append(_per_user(users, boundary, margin, known, trained, test))

    sweep = pd.concat([
        precision_recall_f1(*(torch.cat(part, dim=-1).cpu() for part in counts[scope]),
                            offsets).assign(scope=scope)
        for scope in SCOPES
    ], ignore_index=True)
    sweep = sweep[["scope"] + [c for c in sweep.columns if c != "scope"]]
    return BoundaryAnalysis(pd.concat(rows, ignore_index=True), sweep)


def _append(parts, counted) -> None:
    for part, value in zip(parts, counted, strict=True):
        part.append(value)


def _one_hot(items: torch.Tensor, num_items: int) -> torch.Tensor:
    hot = torch.zeros(len(items), num_items, dtype=torch.bool, device=items.device)
    rows = torch.nonzero(items >= 0).squeeze(1)
    hot[rows, items[rows]] = True
    return hot


def _per_user(users, boundary, margin, known, trained, test) -> pd.DataFrame:
    num_items = margin.shape[1]
    above = margin > 0  # (B, N)
    num_above = above.sum(1)
    unseen_count = (~trained).sum(1)
    test_margin = margin.gather(1, test.clamp(min=0).unsqueeze(1)).squeeze(1)
    test_margin = torch.where(test >= 0, test_margin, torch.nan)
    frame = {
        "user_idx": users,
        "boundary": boundary,
        "num_known": known.sum(1),
        "num_above": num_above,
        "filtered_share": 1 - num_above / num_items,
        "filtered_share_unseen": 1 - (above & ~trained).sum(1) / unseen_count.clamp(min=1),
        "test_item": test,
        "test_margin": test_margin,
        "test_above": test_margin > 0,
    }
    return pd.DataFrame({k: v.cpu().numpy() for k, v in frame.items()})
