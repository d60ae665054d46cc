"""Paired significance tests of a loss against another on the same split and candidates.

Both tests are two-sided and pair what was trained alike:

- per seed: a paired t-test over seeds (native and UIB trained with the same seed), on
  the users' mean metric of each run; with 5 seeds it has 4 degrees of freedom;
- per user: a paired bootstrap over users of each user's metric averaged over seeds,
  which has far more power but treats the trained models as fixed.
"""

from __future__ import annotations

import math

import numpy as np

_BOOTSTRAP_CELLS = 1 << 22  # user indices drawn per chunk of resamples, to bound memory


def t_two_sided_p(t: float, df: int) -> float:
    """P(|T| >= |t|) for Student's t with integer ``df``, by its finite series.

    With theta = atan(t / sqrt(df)), P(|T| < t) is, for odd df,
    (2/pi) (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...)) with (df-1)/2 terms
    in the bracket (none for df = 1), and for even df
    sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...) with df/2 terms.
    """
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, got {df}")
    if math.isinf(t):
        return 0.0
    theta = math.atan(abs(t) / math.sqrt(df))
    sin, cos2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 0:
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= cos2 * (2 * k - 1) / (2 * k)
            total += term
        inside = sin * total
    else:
        total = 0.0
        if df > 1:
            term, total = 1.0, 1.0
            for k in range(1, (df - 1) // 2):
                term *= cos2 * (2 * k) / (2 * k + 1)
                total += term
        inside = 2 / math.pi * (theta + sin * math.cos(theta) * total)
    return min(1.0, max(0.0, 1.0 - inside))


def paired_t_test(a, b) -> float:
    """Two-sided p-value of a paired t-test of ``b - a``; NaN with fewer than 2 pairs."""
    diff = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    if len(diff) < 2:
        return float("nan")
    mean, sd = diff.mean(), diff.std(ddof=1)
    if sd == 0:
        return 0.0 if mean != 0 else 1.0
    return t_two_sided_p(mean / (sd / math.sqrt(len(diff))), len(diff) - 1)


def per_user_metric(ranks, metric: str) -> np.ndarray:
    """Each user's value of ``metric`` (``hit@K``, ``ndcg@K`` or ``mrr@K``) from 0-based ranks."""
    ranks = np.asarray(ranks, dtype=np.float64)
    name, _, k = metric.partition("@")
    if not k.isdigit() or name not in ("hit", "ndcg", "mrr"):
        raise ValueError(f"metric must look like hit@10, ndcg@10 or mrr@10, got {metric!r}")
    hit = ranks < int(k)
    if name == "hit":
        return hit.astype(np.float64)
    if name == "ndcg":
        return np.where(hit, 1.0 / np.log2(ranks + 2), 0.0)
    return np.where(hit, 1.0 / (ranks + 1), 0.0)


def paired_bootstrap(a, b, n_boot: int = 1000, seed: int = 0) -> float:
    """Two-sided bootstrap p-value that the mean of ``b - a`` over users differs from 0.

    Users are resampled with replacement ``n_boot`` times; the p-value is twice the
    smaller share of resampled mean differences on either side of 0, counting the
    observed sample once so that it is never 0: ``2 * (1 + min(#<=0, #>=0)) / (1 + n)``.
    """
    diff = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    if diff.ndim != 1 or len(diff) == 0:
        raise ValueError(f"expected two equal non-empty vectors of per-user values, "
                         f"got difference of shape {diff.shape}")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    chunk = max(1, _BOOTSTRAP_CELLS // len(diff))
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        picks = rng.integers(0, len(diff), size=(rows, len(diff)))  # (rows, U)
        means[start:start + rows] = diff[picks].mean(axis=1)
    below, above = int((means <= 0).sum()), int((means >= 0).sum())
    return min(1.0, 2 * (1 + min(below, above)) / (1 + n_boot))
