import json
import math

import pytest
import torch
from synthetic_experiment import write_experiment

from uibrec.experiments.repeats import (
    Ledger,
    RunCounter,
    RunLimitReached,
    make_record,
    mean_std,
    run_repeats,
)
from uibrec.experiments.spec import load_experiments, settings_hash
from uibrec.training import build_components

torch.set_num_threads(1)


def test_ledger_skips_a_line_cut_short_by_a_kill(tmp_path):
    path = tmp_path / "runs.jsonl"
    good = {"dataset": "d", "model": "mf", "loss": "uib", "seed": 0, "settings_hash": "h"}
    path.write_text(json.dumps(good) + "\n" + '{"dataset": "d", "mod')
    assert Ledger(path).keys() == {("d", "mf", "uib", 0, "h")}


def test_mean_and_sample_std():
    assert mean_std([0.30, 0.32]) == pytest.approx((0.31, 0.0141421356))
    assert mean_std([0.5]) == (0.5, 0.0)
    assert all(math.isnan(v) for v in mean_std([]))


def test_repeats_run_each_seed_once_and_stop_at_the_limit(tmp_path):
    experiment = load_experiments(write_experiment(tmp_path / "exp"))[("mf", "native")]
    config = experiment.config({"cache_dir": str(tmp_path / "cache")})
    ledger = Ledger(tmp_path / "runs.jsonl")

    with pytest.raises(RunLimitReached):
        run_repeats(experiment, config, [0, 1, 2], ledger, tmp_path, RunCounter(limit=1))
    counter = run_repeats(experiment, config, [0, 1, 2], ledger, tmp_path)
    assert (counter.new, counter.skipped) == (2, 1)

    records = ledger.records()
    assert [r["seed"] for r in records] == [0, 1, 2]
    assert {r["settings_hash"] for r in records} == {settings_hash(config)}
    assert all((tmp_path / r["run_dir"] / "ranks.npz").is_file() for r in records)
    # Different seeds train different models.
    assert len({r["test_ndcg@10"] for r in records}) > 1


def test_the_seed_reaches_the_dropout_masks(tmp_path):
    experiment = load_experiments(write_experiment(tmp_path / "exp"))[("mf", "native")]
    masks = [build_components(experiment.config({"seed": s, "dropout": 0.5}), 4, 4)
             .model.dropout.mask((8, 8)) for s in (0, 0, 1)]
    assert torch.equal(masks[0], masks[1]) and not torch.equal(masks[0], masks[2])


def test_a_resumed_runs_record_counts_its_time_before_the_interruption(tmp_path):
    experiment = load_experiments(write_experiment(tmp_path / "exp"))[("mf", "native")]
    config = experiment.config({"cache_dir": str(tmp_path / "cache")})
    metrics = {"run_dir": str(tmp_path / "runs" / "one"), "train_seconds": 1030.0,
               "resumed_seconds": 1000.0, "data_seconds": 2.0}
    record = make_record(experiment, config, metrics, tmp_path, wall_seconds=40.0)
    assert (record["wall_seconds"], record["resumed_seconds"]) == (1040.0, 1000.0)
    fresh = make_record(experiment, config, {**metrics, "resumed_seconds": 0.0}, tmp_path,
                        wall_seconds=40.0)
    assert (fresh["wall_seconds"], fresh["resumed_seconds"]) == (40.0, 0.0)
