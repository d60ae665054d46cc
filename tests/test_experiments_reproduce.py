import json

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from synthetic_experiment import write_experiment

import uibrec.runs
from uibrec.cli import main
from uibrec.evaluation import metrics_from_ranks
from uibrec.experiments.report import write_report
from uibrec.experiments.reproduce import reproduce
from uibrec.experiments.spec import ExperimentFileError

torch.set_num_threads(1)
optuna.logging.set_verbosity(optuna.logging.WARNING)


class CountingTrain:
    """Wraps ``runs.train``; raises ``KeyboardInterrupt`` on call number ``fail_at``."""

    def __init__(self, fail_at=None):
        self.calls, self.fail_at, self.real = 0, fail_at, uibrec.runs.train

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.fail_at:
            raise KeyboardInterrupt("killed on purpose")
        return self.real(*args, **kwargs)


def _ledger(out):
    return [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]


def test_reproduction_interrupted_twice_then_resumed(tmp_path, monkeypatch):
    experiment = write_experiment(tmp_path / "exp")
    out = tmp_path / "out"
    args = dict(datasets=[str(experiment)], models=["mf"], seeds=2, output=out)

    # 1. Stopped by its run limit after 3 of the 4 runs.
    first = reproduce(**args, max_runs=3)
    assert (first.complete, first.new_runs, first.skipped_runs) == (False, 3, 0)
    assert len(_ledger(out)) == 3
    assert "**Incomplete**: tiny-mf-uib (1/2 runs)" in first.report.read_text()
    # A report made while a configuration still runs finds its plan entry saying 0 runs
    # done (the plan is written when a configuration ends); the ledger's count wins.
    plan = json.loads((out / "plan.json").read_text())
    plan["tiny-mf-uib"]["runs_done"] = 0
    stale = write_report(out, plan=plan, n_boot=10).read_text()
    assert "**Incomplete**: tiny-mf-uib (1/2 runs)" in stale

    # 2. Killed during its next run: nothing is recorded for it.
    killer = CountingTrain(fail_at=1)
    monkeypatch.setattr(uibrec.runs, "train", killer)
    with pytest.raises(KeyboardInterrupt):
        reproduce(**args)
    assert len(_ledger(out)) == 3

    # 3. Resumed: only the missing run trains.
    counter = CountingTrain()
    monkeypatch.setattr(uibrec.runs, "train", counter)
    done = reproduce(**args)
    assert (done.complete, done.new_runs, done.skipped_runs, counter.calls) == (True, 1, 3, 1)
    records = _ledger(out)
    assert sorted((r["loss"], r["seed"]) for r in records) == [
        ("native", 0), ("native", 1), ("uib", 0), ("uib", 1)]

    # 4. Once more: nothing to do.
    again = reproduce(**args)
    assert (again.new_runs, again.skipped_runs, counter.calls) == (0, 4, 1)

    _check_outputs(out, records, done.report.read_text())


def _check_outputs(out, records, report):
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 4 and {"test_hit@1", "test_full_ndcg@10", "lr"} <= set(runs.columns)

    # Each run's saved ranks give back its saved metrics.
    for record in records:
        run_dir = out / record["run_dir"]
        with np.load(run_dir / "ranks.npz") as ranks:
            assert metrics_from_ranks(ranks["test"])["ndcg@10"] == pytest.approx(
                record["test_ndcg@10"])
            assert len(ranks["test_full"]) == len(ranks["user_idx"]) == 40

    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 2 * 4  # two protocols x four metrics
    row = summary[(summary.protocol == "sampled") & (summary.metric == "hit@10")].iloc[0]
    native = runs[runs.loss == "native"]["test_hit@10"]
    boosted = runs[runs.loss == "uib"]["test_hit@10"]
    assert row.native_mean == pytest.approx(native.mean())
    assert row.native_std == pytest.approx(native.std(ddof=1))
    assert row.improvement == pytest.approx((boosted.mean() / native.mean() - 1) * 100)
    assert 0 < row.p_user <= 1 and 0 <= row.p_seed <= 1

    assert "**Incomplete**" not in report
    assert report.count("| tiny | BPR | ") == 2  # sampled and full ranking
    assert "## Full ranking" in report and "## Time taken" in report
    assert f"{native.mean():.4f}".lstrip("0") + " ± " in report
    assert "| tiny | mf | uib | paper | 0.5 | 0.0 | 1.0 | 0.0 | 64 | 32 | 3 | – |" in report


def test_a_reproduction_of_some_configurations_keeps_the_plan_of_the_others(tmp_path):
    # A bug: the second command wrote a plan of its own configuration only, so the report
    # lost the first one's settings row and its planned count.
    experiment = write_experiment(tmp_path / "exp")
    out = tmp_path / "out"
    args = dict(datasets=[str(experiment)], models=["mf"], seeds=1, output=out, n_boot=10)
    reproduce(**args, losses=["native"])
    report = reproduce(**args, losses=["uib"]).report.read_text()

    plan = json.loads((out / "plan.json").read_text())
    assert sorted(plan) == ["tiny-mf-native", "tiny-mf-uib"]
    assert [plan[k]["runs_done"] for k in sorted(plan)] == [1, 1]
    assert "| tiny | mf | native | paper |" in report
    assert "| tiny | mf | uib | paper |" in report


def test_reproduction_with_search(tmp_path):
    experiment = write_experiment(tmp_path / "exp")
    out = tmp_path / "out"
    result = reproduce([str(experiment)], ["mf"], seeds=1, output=out, search=True)
    assert (result.complete, result.new_runs) == (True, 2)
    plan = json.loads((out / "plan.json").read_text())
    entry = plan["tiny-mf-uib"]
    assert entry["source"] == "search" and entry["search"]["trials"] == {"complete": 4}
    run = next(r for r in _ledger(out) if r["loss"] == "uib")
    assert run["alpha"] == entry["search"]["best_params"]["alpha"]
    assert run["weight_decay"] == entry["search"]["best_params"]["weight_decay"]
    report = result.report.read_text()
    assert "| tiny | mf | uib | search | 4 complete |" in report

    again = reproduce([str(experiment)], ["mf"], seeds=1, output=out, search=True)
    assert (again.new_runs, again.skipped_runs) == (0, 2)


def test_everything_is_checked_before_anything_runs(tmp_path):
    experiment = write_experiment(tmp_path / "exp")
    with pytest.raises(KeyError, match="unknown model 'gru'; known models: .*mf"):
        reproduce([str(experiment)], ["mf", "gru"], output=tmp_path / "out")
    with pytest.raises(ExperimentFileError, match="no configuration mf / bce"):
        reproduce([str(experiment)], ["mf"], losses=["native", "bce"], output=tmp_path / "out")
    assert not (tmp_path / "out" / "runs.jsonl").exists()


def test_command_line(tmp_path):
    experiment = str(write_experiment(tmp_path / "exp"))
    out = str(tmp_path / "out")
    runner = CliRunner()
    args = ["-q", "reproduce", "--datasets", experiment, "--models", "mf", "--seeds", "1",
            "--output", out, "--epochs", "2"]
    first = runner.invoke(main, [*args, "--max-runs", "1"])
    assert first.exit_code == 0, first.output
    assert "incomplete" in first.output and "1 new run(s)" in first.output
    second = runner.invoke(main, args)
    assert "complete; 1 new run(s), 1 already done" in second.output
    assert all(r["epochs"] == 2 for r in _ledger(tmp_path / "out"))

    again = runner.invoke(main, ["report", out, "--test", "seed"])
    assert again.exit_code == 0 and "per-seed paired t-test" in (tmp_path / "out" /
                                                                  "report.md").read_text()

    found = runner.invoke(main, ["-q", "search", "--dataset", experiment, "--model", "mf",
                                 "--loss", "native", "--trials", "1", "--output", out])
    assert found.exit_code == 0, found.output
    assert json.loads(found.output)["trials"] == {"complete": 1}


def test_no_seeds_or_zero_counts_are_errors(tmp_path):
    # --seeds 0 wrote an empty report called complete; --trials 0 searched the whole grid;
    # --bootstrap 0 and analyze --batch-size 0 failed deep inside.
    experiment = write_experiment(tmp_path / "exp")
    with pytest.raises(ValueError, match="seeds: give at least one seed"):
        reproduce([str(experiment)], ["mf"], seeds=0, output=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    runner = CliRunner()
    for args, option in [(["reproduce", "--datasets", str(experiment), "--seeds", "0"],
                          "--seeds"),
                         (["reproduce", "--datasets", str(experiment), "--bootstrap", "0"],
                          "--bootstrap"),
                         (["search", "--dataset", str(experiment), "--model", "mf",
                           "--loss", "native", "--trials", "0"], "--trials"),
                         (["analyze", str(tmp_path), "--batch-size", "0"], "--batch-size")]:
        result = runner.invoke(main, args)
        assert result.exit_code == 2, result.output
        assert f"Invalid value for '{option}': 0 is not in the range x>=1." in result.output


@pytest.mark.parametrize("option, value, message", [
    ("--models", "", "expected a comma-separated list, got nothing"),
    ("--losses", " ", "expected a comma-separated list, got nothing"),
    ("--datasets", "", "expected a comma-separated list, got nothing"),
    ("--models", "mf,,ncf", "empty entry in 'mf,,ncf'"),
])
def test_empty_lists_are_errors(tmp_path, option, value, message):
    # --models '' ran nothing and wrote a report called complete, with exit 0.
    experiment = str(write_experiment(tmp_path / "exp"))
    args = {"--datasets": experiment, "--models": "mf", "--losses": "native,uib", option: value}
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["reproduce", *[x for kv in args.items() for x in kv],
                                       "--output", str(out)])
    assert result.exit_code == 2
    assert f"Invalid value for {option}: {message}" in result.output
    assert not out.exists()
    with pytest.raises(ValueError, match="models: give at least one"):
        reproduce([experiment], [], output=out)
