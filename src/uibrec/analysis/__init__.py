"""The boundary at work (NOTES section 6): how the learned ``b_u`` is distributed, how
well ``s(u, i) > b_u + offset`` classifies items, what it filters out before ranking,
how alpha moves it, and how many training samples sit on the wrong side."""

from uibrec.analysis.boundary import (
    OFFSETS,
    BoundaryAnalysis,
    analyze_boundary,
    offset_counts,
    precision_recall_f1,
)
from uibrec.analysis.distributions import describe, score_distributions
from uibrec.analysis.scores import NoBoundaryError, iter_scores, require_boundary, user_boundaries

__all__ = [
    "OFFSETS",
    "BoundaryAnalysis",
    "NoBoundaryError",
    "analyze_boundary",
    "describe",
    "iter_scores",
    "offset_counts",
    "precision_recall_f1",
    "require_boundary",
    "score_distributions",
    "user_boundaries",
]
