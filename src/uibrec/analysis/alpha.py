"""The alpha sweep: one UIB run per alpha, then metrics, boundaries and scores against alpha.

The paper sweeps NCF+UIB on LastFM over ``alpha in {0.1, 0.2, 1, 2, 4, 8, 16}``: a larger
alpha weighs the negatives more, pushes ``b_u`` up and compresses the positive scores.
Runs are written as ``<output>/<name>/alpha<alpha>``; a run folder that already holds a
model is reused, so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from uibrec.analysis.boundary import analyze_boundary
from uibrec.analysis.distributions import describe, score_distributions
from uibrec.analysis.report import FLOAT_FORMAT
from uibrec.config import Config, make_config
from uibrec.losses import LOSSES, resolve_loss_name
from uibrec.models import get_model_class
from uibrec.runs import load_run, train

logger = logging.getLogger(__name__)

ALPHAS = (0.1, 0.2, 1, 2, 4, 8, 16)
METRICS = ("hit@1", "hit@10", "ndcg@10", "mrr@10")


def alpha_sweep(alphas: Sequence[float] = ALPHAS, config: Config | None = None,
                name: str | None = None, progress: bool = False,
                **overrides) -> pd.DataFrame:
    """Train one run per alpha (``loss="uib"`` unless another boundary loss is given) and
    summarise them; settings as for :func:`uibrec.runs.train`.

    Returns the table also written to ``alpha_sweep.csv`` in the sweep's folder.
    """
    if len(alphas) == 0:  # pandas' "No objects to concatenate" said nothing useful
        raise ValueError("alphas: give at least one alpha")
    overrides.setdefault("loss", "uib")
    base = make_config(config.to_dict() if config else {}, overrides)
    loss_name = resolve_loss_name(base.model, base.loss, get_model_class(base.model).native_loss)
    if not LOSSES[loss_name].needs_boundary:
        raise ValueError(f"an alpha sweep needs a boundary loss (uib); got loss {base.loss!r}")
    sweep_dir = Path(base.output) / (name or f"alpha-sweep-{base.run_label()}")
    runs = {}
    for alpha in alphas:
        run_dir = sweep_dir / f"alpha{alpha:g}"
        if (run_dir / "model.pt").is_file():
            logger.info("alpha %g: reusing %s", alpha, run_dir)
        else:
            logger.info("alpha %g: training", alpha)
            train(base, progress=progress, alpha=float(alpha), output=str(sweep_dir),
                  run_name=run_dir.name)
        runs[float(alpha)] = run_dir
    return summarize_alpha_runs(runs, sweep_dir)


def summarize_alpha_runs(runs: dict[float, Path], out_dir) -> pd.DataFrame:
    """``alpha_sweep.csv`` (test metrics, F1 at offset 0, filtered share per alpha),
    ``alpha_distributions.csv`` (boundary and score quantiles per alpha) and their
    figures, written into ``out_dir``."""
    from uibrec import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, stats = [], []
    for alpha, run_dir in sorted(runs.items()):
        run = load_run(run_dir)
        split, candidates = run.split()
        test = run.metrics()["test"]
        row = {"alpha": alpha, "run": str(run_dir), **{k: test[k] for k in METRICS}}
        summary = analyze_boundary(run.model, run.boundary, split).summary()
        row.update({k: summary[k] for k in ("boundary_mean", "known_f1@0",
                                            "filtered_share_mean", "test_survival")})
        rows.append(row)
        values = score_distributions(run.model, run.boundary, split, candidates)
        stats.append(describe(values).assign(alpha=alpha))
    table = pd.DataFrame(rows)
    table.to_csv(out / "alpha_sweep.csv", index=False, float_format=FLOAT_FORMAT)
    dist = pd.concat(stats, ignore_index=True)
    dist = dist[["alpha"] + [c for c in dist.columns if c != "alpha"]]
    dist.to_csv(out / "alpha_distributions.csv", index=False, float_format=FLOAT_FORMAT)
    plots.alpha_metrics(table, out / "alpha_metrics.png")
    plots.alpha_distributions(dist, out / "alpha_distributions.png")
    return table
