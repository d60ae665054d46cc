"""The alpha sweep driver: one run per alpha, resumable, and its summary files."""

import pandas as pd
import pytest
from _tiny_runs import write_tiny_csv

from uibrec.analysis.alpha import alpha_sweep


def _settings(tmp_path):
    return dict(dataset=str(write_tiny_csv(tmp_path)), model="mf", epochs=1, eval_every=1,
                num_candidates=5, output=str(tmp_path / "runs"), batch_size=32)


def test_sweep_trains_once_per_alpha_and_resumes(tmp_path):
    table = alpha_sweep([0.5, 4], name="sweep", **_settings(tmp_path))
    sweep = tmp_path / "runs" / "sweep"
    assert table["alpha"].tolist() == [0.5, 4.0]
    assert {"hit@10", "ndcg@10", "known_f1@0", "filtered_share_mean"} <= set(table.columns)
    for name in ("alpha_sweep.csv", "alpha_distributions.csv", "alpha_metrics.png",
                 "alpha_distributions.png"):
        assert (sweep / name).is_file(), name
    dist = pd.read_csv(sweep / "alpha_distributions.csv")
    assert set(dist["kind"]) == {"boundary", "train positive", "test positive", "negative"}
    assert (dist["q25"] <= dist["q75"]).all()

    stamp = (sweep / "alpha4" / "model.pt").stat().st_mtime_ns
    again = alpha_sweep([0.5, 4], name="sweep", **_settings(tmp_path))
    assert (sweep / "alpha4" / "model.pt").stat().st_mtime_ns == stamp  # reused
    assert again["ndcg@10"].tolist() == table["ndcg@10"].tolist()
    assert not (sweep / "alpha4-2").exists()


def test_sweep_needs_a_boundary_loss(tmp_path):
    with pytest.raises(ValueError, match="needs a boundary loss"):
        alpha_sweep([1], loss="native", **_settings(tmp_path))
