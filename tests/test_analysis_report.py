"""``analyze_run`` end to end on seconds-long runs: which files, and what they hold."""

import json

import pandas as pd
import pytest
from _tiny_runs import NUM_USERS, train_tiny

from uibrec.analysis.report import analyze_run, combine_analyses


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    return train_tiny(root, "uib"), train_tiny(root, "native")


def test_uib_run_gets_every_analysis(folders):
    uib, native = folders
    summary = analyze_run(uib, compare=[native])
    for name in ("corrupted_rate.csv", "corrupted_rate.png", "score_distributions.csv",
                 "score_distributions.png", "boundaries.csv", "boundary_histogram.png",
                 "filtered_share.png", "offset_sweep.csv", "offset_sweep.png",
                 "analysis.json"):
        assert (uib / name).is_file(), name
    assert json.loads((uib / "analysis.json").read_text()) == pytest.approx(summary)

    per_user = pd.read_csv(uib / "boundaries.csv")
    assert len(per_user) == NUM_USERS
    assert per_user["user_id"].min() == 100  # raw IDs
    assert per_user["filtered_share"].between(0, 1).all()
    assert summary["filtered_share_mean"] == pytest.approx(per_user["filtered_share"].mean())
    assert summary["test_survival"] == pytest.approx(per_user["test_above"].mean())

    sweep = pd.read_csv(uib / "offset_sweep.csv")
    assert sorted(set(sweep["scope"])) == ["known", "test"]
    assert sweep.groupby("scope")["offset"].apply(list).tolist() == [list(range(-5, 6))] * 2
    # raising the boundary can only lose wanted items
    for _, part in sweep.groupby("scope"):
        assert part["recall"].is_monotonic_decreasing

    corrupted = pd.read_csv(uib / "corrupted_rate.csv")
    assert set(corrupted["run"]) == {"mf+uib", "mf+bpr"}
    assert len(corrupted) == 4  # 2 epochs each
    bpr = corrupted[corrupted["run"] == "mf+bpr"]
    assert (bpr["corrupted_pairs"] == bpr["corrupted"]).all()  # one unit without boundary


def test_native_run_says_why_boundary_analyses_are_missing(folders, tmp_path):
    summary = analyze_run(folders[1], out_dir=tmp_path)
    assert summary["boundary"].startswith("none: the run was trained with the 'bpr' loss")
    assert (tmp_path / "corrupted_rate.png").is_file()
    assert (tmp_path / "score_distributions.csv").is_file()
    assert not (tmp_path / "boundaries.csv").exists()
    kinds = pd.read_csv(tmp_path / "score_distributions.csv")["kind"].tolist()
    assert kinds == ["train positive", "test positive", "negative"]


def test_combine_analyses(folders, tmp_path):
    analyze_run(folders[0], out_dir=tmp_path / "a")
    analyze_run(folders[1], out_dir=tmp_path / "b")
    table = combine_analyses([tmp_path / "a", tmp_path / "b"], tmp_path / "all")
    assert table["loss"].tolist() == ["uib", "bpr"]
    assert (tmp_path / "all" / "summary.csv").is_file()
    assert (tmp_path / "all" / "boundary_histograms.png").is_file()
    assert (tmp_path / "all" / "f1_by_offset.png").is_file()
