"""Distributions of the boundary and of positive and negative scores.

Positives are the user's training items (what the loss pushed above ``b_u``) and the
held-out test item (what the boundary should also let through); negatives are the user's
cached evaluation candidates, items the user never interacted with.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from uibrec.analysis.scores import pair_scores, user_boundaries
from uibrec.data.split import Split
from uibrec.models.base import BoundaryHead, Recommender

QUANTILES = {"min": 0.0, "q05": 0.05, "q25": 0.25, "q50": 0.5, "q75": 0.75, "q95": 0.95,
             "max": 1.0}
# Training positives scored per run, at most: enough for stable quantiles.
MAX_TRAIN_PAIRS = 200_000


def score_distributions(model: Recommender, head: BoundaryHead | None, split: Split,
                        candidates: np.ndarray | None, seed: int = 0) -> dict[str, np.ndarray]:
    """Scores by kind: ``boundary`` (every user, when the run has one), ``train positive``,
    ``test positive``, ``negative`` (candidates). Training pairs beyond
    ``MAX_TRAIN_PAIRS`` are subsampled with ``seed``."""
    out = {}
    if head is not None:
        out["boundary"] = user_boundaries(model, head, np.arange(split.num_users))
    rows = np.arange(len(split.train))
    if len(rows) > MAX_TRAIN_PAIRS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, MAX_TRAIN_PAIRS, replace=False))
    out["train positive"] = pair_scores(model, split.train.user_idx[rows],
                                        split.train.item_idx[rows])
    out["test positive"] = pair_scores(model, split.eval_users, split.test_items)
    if candidates is not None:
        out["negative"] = pair_scores(model, split.eval_users, candidates).ravel()
    return out


def describe(values: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per kind: count, mean, std and quantiles (``min``, ``q05`` ... ``max``)."""
    rows = []
    for kind, array in values.items():
        array = np.asarray(array, dtype=np.float64)
        row = {"kind": kind, "count": len(array), "mean": array.mean(), "std": array.std()}
        row.update({k: float(np.quantile(array, q)) for k, q in QUANTILES.items()})
        rows.append(row)
    return pd.DataFrame(rows)
