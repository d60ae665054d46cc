"""Short runs on the real datasets in ../shared/data (skipped where they are absent)."""

import pytest

import uibrec


def test_ml100k_trains_and_beats_chance(data_dir, tmp_path):
    metrics = uibrec.train(dataset="ml-100k", data_dir=str(data_dir), loss="uib", alpha=2.0,
                           epochs=3, eval_every=3, output=str(tmp_path), progress=False)
    # Chance on 1 positive + 100 candidates is hit@10 = 10/101; a few epochs beat it widely.
    assert metrics["test"]["hit@10"] > 0.3
    assert metrics["epochs"] == 3


def test_ml1m_loads_with_paper_sizes(data_dir):
    data = uibrec.prepare(uibrec.load_dataset("ml-1m", data_dir=data_dir))
    split = uibrec.leave_one_out(data, seed=0)
    stats = split.stats()
    assert (stats["users"], stats["items"], stats["train"]) == (6040, 3706, 988_129)


@pytest.mark.slow
def test_ml1m_bpr_uib_reaches_paper_range(data_dir, tmp_path):
    metrics = uibrec.train(dataset="ml-1m", data_dir=str(data_dir), loss="uib", alpha=8.0,
                           dropout=0.1, output=str(tmp_path), progress=False)
    assert metrics["test"]["hit@1"] > 0.32
