import json
import math

import pandas as pd
import pytest

from uibrec.experiments.report import (
    _cell,
    _duration,
    _num,
    paper_table,
    results_table,
    select_runs,
    write_report,
)


def _record(loss, seed, hit1, settings_hash="h1", dataset="ml-1m", model="mf"):
    record = {"dataset": dataset, "model": model, "loss": loss, "seed": seed,
              "settings_hash": settings_hash, "lr": 1.0, "dropout": 0.1, "alpha": 8.0,
              "weight_decay": 0.0, "batch_size": 1024, "num_negatives": 1, "epochs": 500,
              "model_options": "{}", "loss_options": "{}", "best_epoch": 50,
              "epochs_run": 100, "seconds_per_epoch": 2.0, "wall_seconds": 210.0,
              "run_dir": f"runs/{loss}-{seed}"}
    for prefix in ("test", "test_full"):
        record.update({f"{prefix}_hit@1": hit1, f"{prefix}_hit@10": 0.8,
                       f"{prefix}_ndcg@10": 0.5, f"{prefix}_mrr@10": 0.4})
    return record


RECORDS = [
    _record("native", 0, 0.9, settings_hash="old"),  # an earlier setting, finished first
    _record("native", 0, 0.30), _record("native", 1, 0.32),
    _record("uib", 0, 0.33), _record("uib", 1, 0.35),
]


def test_numbers_in_the_papers_style():
    assert _num(0.33276) == ".3328" and _num(1.0) == "1.0000" and _num(math.nan) == "–"
    assert _cell(0.31, 0.0141421, 2) == ".3100 ± .0141"
    assert _cell(0.31, 0.0, 1) == ".3100" and _cell(math.nan, math.nan, 0) == "–"
    assert _duration(3725) == "1:02:05" and _duration(None) == "–"


def test_select_runs_takes_the_latest_settings_or_the_planned_ones():
    chosen = select_runs(RECORDS)
    assert sorted((r["loss"], r["seed"], r["test_hit@1"]) for r in chosen) == [
        ("native", 0, 0.30), ("native", 1, 0.32), ("uib", 0, 0.33), ("uib", 1, 0.35)]
    plan = {"ml-1m-mf-native": {"dataset": "ml-1m", "model": "mf", "loss": "native",
                                "settings_hash": "old"}}
    assert [r["test_hit@1"] for r in select_runs(RECORDS, plan) if r["loss"] == "native"] \
        == [0.9]


def test_report_by_hand(tmp_path):
    (tmp_path / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    path = write_report(tmp_path, test="seed")
    text = path.read_text()
    # Hit@1: native .31 +- .0141 (sd of .30, .32), UIB .34 +- .0141; +9.68%. Per-seed
    # differences .03 and .03: constant, so the t-test gives p = 0 and two stars.
    row = ("| ML-1M | BPR | .3100 ± .0141 | .3400 ± .0141** | +9.68% | .8000 ± .0000 | "
           ".8000 ± .0000 | +0.00% |")
    assert text.count(row) == 2  # sampled and full ranking
    assert "| BPR | .3100 / .3327 (-0.0227) |" in text  # native against the paper
    assert "| BPR+UIB | .3400 / .3486 (-0.0086) |" in text
    assert "| ml-1m | mf | native | ? | – | – | 2 | 0:07:00 | 2.00 | 100 |" in text
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert math.isnan(summary.p_user[0])  # these runs saved no ranks
    assert len(pd.read_csv(tmp_path / "runs.csv")) == 5  # every run, the old one too


def test_missing_loss_leaves_dashes(tmp_path):
    rows = [{"dataset": "aiv", "model": "ncf", "protocol": "sampled", "metric": m,
             "native_mean": 0.2, "native_std": 0.01, "uib_mean": math.nan,
             "uib_std": math.nan, "improvement": math.nan, "runs_native": 2, "runs_uib": 0,
             "p_seed": math.nan, "p_user": math.nan}
            for m in ("hit@1", "hit@10", "ndcg@10", "mrr@10")]
    lines = results_table(rows, "sampled")
    assert lines[2].startswith("| AIV | NCF | .2000 ± .0100 | – | – |")
    assert paper_table([_record("native", 0, 0.3, dataset="aiv")]) == []


def test_report_of_a_folder_that_is_not_a_reproduction_is_an_error(tmp_path, monkeypatch,
                                                                    capsys):
    # An empty folder or a train output folder got an empty report and exit 0.
    import sys

    from uibrec.cli import run

    (tmp_path / "config.yaml").write_text("lr: 1.0\n")  # as in a train run folder
    monkeypatch.setattr(sys, "argv", ["uibrec", "report", str(tmp_path)])
    with pytest.raises(SystemExit) as exited:
        run()
    assert exited.value.code == 2
    assert capsys.readouterr().err == (f"error: {tmp_path}: not a reproduce folder (no "
                                       "runs.jsonl or plan.json); give the --output folder "
                                       "of uibrec reproduce\n")
    assert not (tmp_path / "report.md").exists()
