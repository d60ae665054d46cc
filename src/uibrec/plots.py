"""Figures of the analyses, drawn with matplotlib's file-only Agg backend.

Every function takes plain arrays or the data frames the analyses write as csv, saves one
PNG at ``path`` and returns the path. matplotlib is an optional dependency
(``pip install uibrec[plots]``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

try:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the figures need matplotlib: pip install 'uibrec[plots]'") from exc

METRICS = ("hit@1", "hit@10", "ndcg@10", "mrr@10")
KIND_COLOURS = {"boundary": "tab:red", "train positive": "tab:green",
                "test positive": "tab:blue", "negative": "tab:gray"}


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def boundary_histogram(boundaries: np.ndarray, path, title: str = "", bins: int = 50) -> Path:
    """Histogram of the learned boundaries ``b_u`` of every user."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist(boundaries, bins=bins, color="tab:red", alpha=0.8)
    ax.axvline(float(np.mean(boundaries)), color="k", lw=1, ls="--",
               label=f"mean {np.mean(boundaries):.2f}")
    ax.set(xlabel="boundary $b_u$", ylabel="users", title=title or "learned boundaries")
    ax.legend()
    return _save(fig, path)


def boundary_grid(boundaries: dict[str, np.ndarray], path, bins: int = 50) -> Path:
    """One boundary histogram per dataset (or run), side by side."""
    fig, axes = plt.subplots(1, len(boundaries), figsize=(4 * len(boundaries), 3.2),
                             squeeze=False)
    for ax, (label, values) in zip(axes[0], boundaries.items(), strict=True):
        ax.hist(values, bins=bins, color="tab:red", alpha=0.8)
        ax.set(title=label, xlabel="boundary $b_u$")
    axes[0][0].set_ylabel("users")
    return _save(fig, path)


def offset_sweep(sweep: pd.DataFrame, path, title: str = "") -> Path:
    """Precision, recall and F1 of ``s > b_u + offset`` against the offset, per scope."""
    scopes = list(dict.fromkeys(sweep["scope"]))
    fig, axes = plt.subplots(1, len(scopes), figsize=(5 * len(scopes), 3.5), squeeze=False)
    names = {"known": "all known interactions", "test": "held-out test items"}
    for ax, scope in zip(axes[0], scopes, strict=True):
        part = sweep[sweep["scope"] == scope]
        for key, marker in (("precision", "o"), ("recall", "s"), ("f1", "^")):
            ax.plot(part["offset"], part[key], marker=marker, label=key)
        ax.axvline(0, color="k", lw=0.8, ls=":")
        ax.set(xlabel="offset added to $b_u$", ylim=(0, 1.02),
               title=f"{title} against {names.get(scope, scope)}".strip())
        ax.legend()
    return _save(fig, path)


def f1_by_offset(sweeps: dict[str, pd.DataFrame], path, scope: str = "known") -> Path:
    """F1 against the offset, one line per dataset (or run)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, sweep in sweeps.items():
        part = sweep[sweep["scope"] == scope]
        ax.plot(part["offset"], part["f1"], marker="o", label=label)
    ax.set(xlabel="offset added to $b_u$", ylabel="F1", ylim=(0, 1.02))
    ax.legend()
    return _save(fig, path)


def filtered_share(per_user: pd.DataFrame, path, title: str = "") -> Path:
    """Per-user share of the catalogue the boundary filters out, and where test items land."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    axes[0].hist(per_user["filtered_share"], bins=50, color="tab:purple", alpha=0.8)
    axes[0].set(xlabel="share of the catalogue at or below $b_u$", ylabel="users",
                title=title or "pre-ranking filter")
    margins = per_user["test_margin"].dropna()
    axes[1].hist(margins, bins=50, color="tab:blue", alpha=0.8)
    axes[1].axvline(0, color="k", lw=1)
    survive = float((margins > 0).mean()) if len(margins) else float("nan")
    axes[1].set(xlabel="test item score minus $b_u$", ylabel="users",
                title=f"test items above the boundary: {survive:.1%}")
    return _save(fig, path)


def score_histograms(values: dict[str, np.ndarray], path, title: str = "") -> Path:
    """Density histograms of scores by kind (positives, negatives) and of the boundaries."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for kind, array in values.items():
        ax.hist(array, bins=60, density=True, histtype="step", lw=1.5, label=kind,
                color=KIND_COLOURS.get(kind))
    ax.set(xlabel="score", ylabel="density", title=title or "score distributions")
    ax.legend()
    return _save(fig, path)


def corrupted_rate(histories: dict[str, pd.DataFrame], path) -> Path:
    """Share of training samples on the wrong side per epoch, one line per run; dashed,
    the share of (u, p, n) pairs where it differs (runs with a boundary)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for label, history in histories.items():
        (line,) = ax.plot(history["epoch"], history["corrupted"], label=f"{label} samples")
        pairs = history.get("corrupted_pairs")
        if pairs is not None and not np.allclose(pairs, history["corrupted"]):
            ax.plot(history["epoch"], pairs, ls="--", color=line.get_color(),
                    label=f"{label} pairs")
    ax.set(xlabel="epoch", ylabel="corrupted rate", ylim=(0, None),
           title="training samples on the wrong side")
    ax.legend()
    return _save(fig, path)


def alpha_metrics(table: pd.DataFrame, path, metrics=METRICS) -> Path:
    """Test metrics against alpha (log scale)."""
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for key in metrics:
        if key in table:
            ax.plot(table["alpha"], table[key], marker="o", label=key)
    ax.set(xscale="log", xlabel="alpha", ylabel="test metric")
    ax.legend()
    return _save(fig, path)


def alpha_distributions(stats: pd.DataFrame, path) -> Path:
    """Box plots (q05-q95 whiskers) of boundaries and scores by kind against alpha.

    ``stats`` holds one row per (alpha, kind) with the columns of
    :func:`uibrec.analysis.distributions.describe`.
    """
    kinds = list(dict.fromkeys(stats["kind"]))
    alphas = sorted(set(stats["alpha"]))
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(alphas) * len(kinds) / 2), 4))
    width = 0.8 / len(kinds)
    for k, kind in enumerate(kinds):
        part = stats[stats["kind"] == kind].set_index("alpha")
        boxes = [{"med": part.at[a, "q50"], "q1": part.at[a, "q25"], "q3": part.at[a, "q75"],
                  "whislo": part.at[a, "q05"], "whishi": part.at[a, "q95"], "fliers": []}
                 for a in alphas if a in part.index]
        positions = [i + (k - (len(kinds) - 1) / 2) * width
                     for i, a in enumerate(alphas) if a in part.index]
        drawn = ax.bxp(boxes, positions=positions, widths=width * 0.9, patch_artist=True,
                       showfliers=False)
        for patch in drawn["boxes"]:
            patch.set_facecolor(KIND_COLOURS.get(kind, "tab:olive"))
            patch.set_alpha(0.6)
        drawn["boxes"][0].set_label(kind)
    ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
    ax.set(xlabel="alpha", ylabel="score", title="boundaries and scores against alpha")
    ax.legend(fontsize="small")
    return _save(fig, path)
