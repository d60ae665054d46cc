"""``uibrec analyze``: every analysis of one run, written as csv, json and PNG files.

Files written into the output folder (the run's folder by default):

- ``corrupted_rate.csv`` / ``.png``: the corrupted rates per epoch, from ``history.csv``
  (recorded while training, by samples and by (u, p, n) pairs; see
  :func:`uibrec.training.count_corrupted`), with any runs given to compare against (BPR
  against BPR+UIB, say).
- ``score_distributions.csv`` / ``.png``: boundary, positive and negative score quantiles.
- ``boundaries.csv``: one row per user: raw ``user_id``, ``b_u``, the share of the
  catalogue the boundary filters out, whether the test item survives it (see
  :class:`~uibrec.analysis.boundary.BoundaryAnalysis`).
- ``boundary_histogram.png``, ``filtered_share.png``.
- ``offset_sweep.csv`` / ``.png``: precision, recall and F1 for offsets -5 to 5, against
  all known interactions and against the test items (see :mod:`uibrec.analysis.boundary`).
- ``analysis.json``: the headline figures.

A run trained with a native loss has no boundary: only the first two are written and
``analysis.json`` says why the rest is missing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from uibrec.analysis.boundary import OFFSETS, analyze_boundary
from uibrec.analysis.distributions import describe, score_distributions
from uibrec.config import to_json
from uibrec.runs import Run, load_run

logger = logging.getLogger(__name__)

FLOAT_FORMAT = "%.6g"


def run_label(run: Run) -> str:
    """``model+loss`` of a run, e.g. ``mf+uib`` or ``mf+bpr``."""
    return f"{run.config.model}+{run.components.loss_name}"


def _as_run(run) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def analyze_run(run, out_dir=None, compare: Sequence = (), offsets=OFFSETS,
                batch_size: int = 1024) -> dict:
    """Write every analysis of ``run`` (a :class:`Run` or its folder) into ``out_dir``.

    ``compare``: other run folders whose corrupted rate is drawn beside this run's.
    Returns the summary also written to ``analysis.json``.
    """
    from uibrec import plots

    run = _as_run(run)
    out = Path(out_dir) if out_dir is not None else run.path
    out.mkdir(parents=True, exist_ok=True)
    dataset = Path(run.config.dataset).name
    label = run_label(run)
    summary = {"run": str(run.path), "dataset": dataset, "model": run.config.model,
               "loss": run.components.loss_name, "alpha": run.config.alpha}

    _corrupted(run, compare, out, plots)

    split, candidates = run.split()
    values = score_distributions(run.model, run.boundary, split, candidates)
    describe(values).to_csv(out / "score_distributions.csv", index=False,
                            float_format=FLOAT_FORMAT)
    plots.score_histograms(values, out / "score_distributions.png", f"{dataset} {label}")

    if run.boundary is None:
        summary["boundary"] = (f"none: the run was trained with the {summary['loss']!r} loss; "
                               "the boundary analyses need a run trained with --loss uib")
        logger.warning("%s: %s", run.path, summary["boundary"])
    else:
        analysis = analyze_boundary(run.model, run.boundary, split, offsets, batch_size)
        per_user = analysis.per_user
        per_user.insert(0, "user_id", run.user_map.to_id(per_user["user_idx"]))
        per_user.to_csv(out / "boundaries.csv", index=False, float_format=FLOAT_FORMAT)
        analysis.sweep.to_csv(out / "offset_sweep.csv", index=False, float_format=FLOAT_FORMAT)
        title = f"{dataset} {label}"
        plots.boundary_histogram(per_user["boundary"].to_numpy(),
                                 out / "boundary_histogram.png", f"{title}: boundaries")
        plots.filtered_share(per_user, out / "filtered_share.png", title)
        plots.offset_sweep(analysis.sweep, out / "offset_sweep.png", title)
        summary.update(analysis.summary())
        logger.info("%s: F1 at offset 0 %.4f, filtered share %.4f, test survival %.4f",
                    run.path, summary["known_f1@0"], summary["filtered_share_mean"],
                    summary["test_survival"])
    (out / "analysis.json").write_text(to_json(summary))
    return summary


def _corrupted(run: Run, compare: Sequence, out: Path, plots) -> None:
    histories = {run_label(run): _history(run)}
    for other in compare:
        other_run = load_run(other)
        name = run_label(other_run)
        histories[name if name not in histories else f"{name} ({other})"] = _history(other_run)
    columns = ["epoch", "corrupted", "corrupted_pairs"]
    table = pd.concat([h.reindex(columns=columns).assign(run=name)
                       for name, h in histories.items()], ignore_index=True)
    table[["run", *columns]].to_csv(out / "corrupted_rate.csv", index=False,
                                    float_format=FLOAT_FORMAT)
    plots.corrupted_rate(histories, out / "corrupted_rate.png")


def _history(run: Run) -> pd.DataFrame:
    history = run.history()
    if "corrupted_pairs" not in history and run.boundary is None:
        # Runs saved before pairs were counted: without a boundary the two rates are one.
        history["corrupted_pairs"] = history["corrupted"]
    return history


def combine_analyses(folders: Sequence, out_dir) -> pd.DataFrame:
    """Figures across several analysed runs (one per dataset, say): the boundary
    histograms side by side, F1 against the offset, and ``summary.csv``.

    ``folders`` are the output folders of :func:`analyze_run` (run folders by default).
    """
    from uibrec import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summaries, boundaries, sweeps = [], {}, {}
    for folder in map(Path, folders):
        summary = json.loads((folder / "analysis.json").read_text())
        name = f"{summary['dataset']} {summary['model']}+{summary['loss']}"
        summaries.append(summary)
        if (folder / "boundaries.csv").is_file():
            boundaries[name] = pd.read_csv(folder / "boundaries.csv")["boundary"].to_numpy()
            sweeps[name] = pd.read_csv(folder / "offset_sweep.csv")
    table = pd.DataFrame(summaries)
    table.to_csv(out / "summary.csv", index=False, float_format=FLOAT_FORMAT)
    if boundaries:
        plots.boundary_grid(boundaries, out / "boundary_histograms.png")
        plots.f1_by_offset(sweeps, out / "f1_by_offset.png")
    return table
