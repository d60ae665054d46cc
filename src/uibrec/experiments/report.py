"""The report of a reproduction: a csv of every run and a Markdown report.

The report folder (the reproduction's output) gets ``runs.csv`` (every finished run),
``summary.csv`` (native against UIB per dataset, model, protocol and metric, with mean,
standard deviation over seeds, improvement and both p-values) and ``report.md`` (the
paper's table layout, for the sampled protocol and for full ranking, the settings used
and how long each part took).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pandas as pd

from uibrec.experiments.repeats import METRICS, PROTOCOLS, Ledger, compare

logger = logging.getLogger(__name__)

MODEL_NAMES = {"mf": "BPR", "ncf": "NCF", "sml": "SML", "lightgcn": "LightGCN"}
DATASET_NAMES = {"ml-1m": "ML-1M", "ml-10m": "ML-10M", "aiv": "AIV", "lastfm": "LastFM"}
METRIC_NAMES = {"hit@1": "Hit@1", "hit@10": "Hit@10", "ndcg@10": "NDCG@10", "mrr@10": "MRR@10"}
# The paper's Table 4 (NOTES section 6): ML-1M, sampled protocol, mean of 5 runs.
PAPER_ML1M = {
    ("mf", "native"): (.3327, .8135, .5604, .4807), ("mf", "uib"): (.3486, .8205, .5741, .4964),
    ("ncf", "native"): (.3272, .8161, .5581, .4770), ("ncf", "uib"): (.3515, .8222, .5753, .4975),
    ("sml", "native"): (.3013, .7946, .5319, .4496), ("sml", "uib"): (.3132, .8021, .5352, .4512),
    ("lightgcn", "native"): (.3329, .8135, .5613, .4818),
    ("lightgcn", "uib"): (.3467, .8182, .5717, .4939),
}
PLAN_FILE = "plan.json"


def select_runs(records: list[dict], plan: dict | None = None) -> list[dict]:
    """The runs the report shows: per (dataset, model, loss) those of the planned settings
    hash (default: the hash finished last), one per seed (the last)."""
    latest: dict[tuple, str] = {}
    for r in records:
        latest[(r["dataset"], r["model"], r["loss"])] = r["settings_hash"]
    if plan:
        for entry in plan.values():
            latest[(entry["dataset"], entry["model"], entry["loss"])] = entry["settings_hash"]
    by_seed = {}
    for r in records:
        triple = (r["dataset"], r["model"], r["loss"])
        if latest.get(triple) == r["settings_hash"]:
            by_seed[(*triple, r["seed"])] = r
    return list(by_seed.values())


def summarize(root, runs: list[dict], n_boot: int = 1000) -> list[dict]:
    """One row per dataset, model, protocol and metric: native against UIB."""
    groups: dict[tuple, dict[str, list]] = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["model"]), {}).setdefault(r["loss"], []).append(r)
    rows = []
    for (dataset, model), losses in groups.items():
        native, boosted = losses.get("native", []), losses.get("uib", [])
        for protocol in PROTOCOLS:
            for metric in METRICS:
                stats = compare(root, native, boosted, protocol, metric, n_boot)
                rows.append({"dataset": dataset, "model": model, "protocol": protocol,
                             "metric": metric, **stats})
    return rows


def _num(value: float) -> str:
    """``.3327`` style, as in the paper."""
    if value is None or math.isnan(value):
        return "–"
    text = f"{value:.4f}"
    return text[1:] if text.startswith("0.") else text.replace("-0.", "-.")


def _cell(mean: float, std: float, runs: int) -> str:
    if runs == 0 or math.isnan(mean):
        return "–"
    return f"{_num(mean)} ± {_num(std)}" if runs > 1 else _num(mean)


def _marker(row: dict, test: str) -> str:
    p = row["p_user"] if test == "user" else row["p_seed"]
    if p is None or math.isnan(p):
        return ""
    return "**" if p < 0.01 else ("*" if p < 0.05 else "")


def results_table(rows: list[dict], protocol: str, test: str = "user") -> list[str]:
    """The paper's layout: a row per dataset and model; per metric native, +UIB, Impr."""
    head = ["Dataset", "Model"]
    for metric in METRICS:
        head += [METRIC_NAMES[metric], "+UIB", "Impr."]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    cells: dict[tuple, list[str]] = {}
    for row in rows:
        if row["protocol"] != protocol:
            continue
        out = cells.setdefault((row["dataset"], row["model"]), [
            DATASET_NAMES.get(row["dataset"], row["dataset"]),
            MODEL_NAMES.get(row["model"], row["model"])])
        impr = row["improvement"]
        out += [_cell(row["native_mean"], row["native_std"], row["runs_native"]),
                _cell(row["uib_mean"], row["uib_std"], row["runs_uib"]) + _marker(row, test),
                "–" if math.isnan(impr) else f"{impr:+.2f}%"]
    lines += ["| " + " | ".join(c) + " |" for c in cells.values()]
    return lines


def paper_table(runs: list[dict]) -> list[str]:
    """Our ML-1M sampled means beside the paper's Table 4 (empty without ML-1M runs)."""
    groups: dict[tuple, list] = {}
    for r in runs:
        if r["dataset"] == "ml-1m":
            groups.setdefault((r["model"], r["loss"]), []).append(r)
    lines = []
    for (model, loss), records in groups.items():
        if (model, loss) not in PAPER_ML1M:
            continue
        ours = [sum(r[f"test_{m}"] for r in records) / len(records) for m in METRICS]
        pairs = [f"{_num(o)} / {_num(p)} ({o - p:+.4f})"
                 for o, p in zip(ours, PAPER_ML1M[(model, loss)], strict=True)]
        name = MODEL_NAMES.get(model, model) + ("+UIB" if loss == "uib" else "")
        lines.append(f"| {name} | " + " | ".join(pairs) + " |")
    if not lines:
        return []
    head = "| Model | " + " | ".join(f"{METRIC_NAMES[m]} ours / paper" for m in METRICS) + " |"
    return [head, "|---|" + "---|" * len(METRICS), *lines]


def _duration(seconds) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "–"
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def timing_table(runs: list[dict], plan: dict) -> list[str]:
    """Per configuration: its search and its repeats; then the totals."""
    lines = ["| Dataset | Model | Loss | Settings | Search trials | Search time | Runs | "
             "Runs time | s/epoch | Epochs run |", "|" + "---|" * 10]
    groups: dict[tuple, list] = {}
    for r in runs:
        groups.setdefault((r["dataset"], r["model"], r["loss"]), []).append(r)
    total_search = total_runs = 0.0
    for triple, records in groups.items():
        entry = plan.get("-".join(triple), {})
        search = entry.get("search") or {}
        trials = ", ".join(f"{n} {s}" for s, n in sorted(search.get("trials", {}).items()))
        wall = sum(r["wall_seconds"] for r in records)
        total_search += search.get("seconds", 0.0)
        total_runs += wall
        per_epoch = sum(r["seconds_per_epoch"] for r in records) / len(records)
        epochs = sum(r["epochs_run"] for r in records) / len(records)
        lines.append(f"| {' | '.join(triple)} | {entry.get('source', '?')} | {trials or '–'} | "
                     f"{_duration(search.get('seconds')) if search else '–'} | {len(records)} "
                     f"| {_duration(wall)} | {per_epoch:.2f} | {epochs:.0f} |")
    lines.append(f"| total | | | | | {_duration(total_search)} | {len(runs)} | "
                 f"{_duration(total_runs)} | | |")
    return lines


def settings_table(runs: list[dict], plan: dict) -> list[str]:
    lines = ["| Dataset | Model | Loss | Source | lr | dropout | alpha | weight decay | batch | "
             "negatives | epochs | options |", "|" + "---|" * 12]
    seen = set()
    for r in runs:
        triple = (r["dataset"], r["model"], r["loss"])
        if triple in seen:
            continue
        seen.add(triple)
        entry = plan.get("-".join(triple), {})
        source = entry.get("source", "?")
        if entry.get("search"):
            source += f" (valid {entry['search']['best_value']:.4f})"
        options = "; ".join(o for o in (r.get("model_options"), r.get("loss_options"))
                            if o and o != "{}")
        alpha = r["alpha"] if r["loss"] == "uib" else "–"
        lines.append(f"| {' | '.join(triple)} | {source} | {r['lr']} | {r['dropout']} | "
                     f"{alpha} | {r['weight_decay']} | {r['batch_size']} | {r['num_negatives']}"
                     f" | {r['epochs']} | {options or '–'} |")
    return lines


def write_report(root, plan: dict | None = None, n_boot: int = 1000, test: str = "user",
                 title: str = "Reproduction of the paper's main experiment") -> Path:
    """Write ``runs.csv``, ``summary.csv`` and ``report.md`` into ``root``; return the report."""
    root = Path(root)
    if plan is None and not any((root / name).is_file() for name in (PLAN_FILE, "runs.jsonl")):
        # An empty folder or a train run folder got an empty report and exit 0.
        raise ValueError(f"{root}: not a reproduce folder (no runs.jsonl or {PLAN_FILE}); "
                         "give the --output folder of uibrec reproduce")
    if plan is None and (root / PLAN_FILE).is_file():
        plan = json.loads((root / PLAN_FILE).read_text())
    plan = plan or {}
    records = Ledger(root / "runs.jsonl").records()
    pd.DataFrame(records).to_csv(root / "runs.csv", index=False)
    runs = select_runs(records, plan)
    rows = summarize(root, runs, n_boot)
    pd.DataFrame(rows).to_csv(root / "summary.csv", index=False)

    which = (f"the per-user paired bootstrap ({n_boot} resamples) of each user's metric "
             "averaged over seeds") if test == "user" else "the per-seed paired t-test"
    # Counted from the ledger: the plan's own count is only written once a configuration
    # ends, so a report made while one runs would understate it.
    done: dict[tuple, int] = {}
    for r in runs:
        key = (r["dataset"], r["model"], r["loss"], r["settings_hash"])
        done[key] = done.get(key, 0) + 1
    missing = []
    for k, v in plan.items():
        count = done.get((v.get("dataset"), v.get("model"), v.get("loss"),
                          v.get("settings_hash")), v.get("runs_done", 0))
        if count < v.get("runs_planned", 0):
            missing.append(f"{k} ({count}/{v['runs_planned']} runs)")
    text = [f"# {title}", ""]
    if missing:
        text += ["**Incomplete**: " + ", ".join(missing) + ". Rerun the same command to "
                 "continue.", ""]
    text += [f"Test metrics, mean ± standard deviation over seeds. `+UIB` is marked `*` "
             f"(p < 0.05) or `**` (p < 0.01) by {which}, two-sided, against the native "
             "loss; Impr. is the change of the mean in percent. Both p-values of every cell "
             "are in `summary.csv`; every run is in `runs.csv`.", ""]
    for protocol, heading in (("sampled", "Sampled protocol (among each user's candidates)"),
                              ("full", "Full ranking (all items, training items masked)")):
        text += [f"## {heading}", "", *results_table(rows, protocol, test), ""]
    paper = paper_table(runs)
    if paper:
        text += ["## ML-1M against the paper (Table 4, sampled)", "", *paper, ""]
    text += ["## Settings", "", *settings_table(runs, plan), "",
             "## Time taken", "", *timing_table(runs, plan), ""]
    path = root / "report.md"
    path.write_text("\n".join(text))
    logger.info("report written to %s", path)
    return path
