import json
import shutil
import time

import pytest
from _tiny_runs import train_tiny

from uibrec.runs import load_run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("runs"), loss="uib")


@pytest.mark.parametrize("removed", ["config.yaml", "ids.npz"])
def test_half_written_run_folder_names_what_is_missing(tiny_run, tmp_path, removed):
    # save_run writes file by file; a folder without config.yaml or ids.npz used to fail
    # with a bare "[Errno 2] No such file or directory".
    half = shutil.copytree(tiny_run, tmp_path / "half")
    (half / removed).unlink()
    with pytest.raises(FileNotFoundError, match=f"{half}: not a run folder, or one whose "
                                                f"saving was interrupted: no {removed}$"):
        load_run(half)


@pytest.mark.parametrize("damaged", ["model.pt", "ids.npz"])
def test_cut_short_weights_or_ids_are_named(tiny_run, tmp_path, damaged):
    # A truncated model.pt was a RuntimeError traceback from torch's zip reader.
    half = shutil.copytree(tiny_run, tmp_path / "half")
    whole = (half / damaged).read_bytes()
    (half / damaged).write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=f"{half / damaged}: damaged or cut short, cannot be "
                                         "read"):
        load_run(half)


def test_complete_run_folder_loads(tiny_run):
    run = load_run(tiny_run)
    assert run.model.num_users == 24 and run.model.num_items == 15


def _relabel_users(csv):
    """Swap raw user IDs 100 <-> 123, 101 <-> 122, ...: same IDs and counts, other rows."""
    lines = csv.read_text().splitlines()
    swapped = [f"{223 - int(user)},{item}" for user, item in (ln.split(",") for ln in lines)]
    csv.write_text("\n".join(swapped) + "\n")


def test_changed_data_with_the_same_counts_is_refused(tmp_path):
    import json

    from uibrec.recommend import recommend
    from uibrec.runs import evaluate_run

    run_dir = train_tiny(tmp_path, "uib")
    assert "data_fingerprint" in json.loads((run_dir / "data.json").read_text())
    cached = sorted((tmp_path / "runs" / ".cache").iterdir())
    _relabel_users(tmp_path / "tiny.csv")

    expected = f"{run_dir}: the data no longer matches the run .* {tmp_path / 'tiny.csv'}"
    with pytest.raises(ValueError, match=expected):
        evaluate_run(run_dir)
    with pytest.raises(ValueError, match=expected):
        recommend(run_dir, [100], k=3)
    assert sorted((tmp_path / "runs" / ".cache").iterdir()) == cached  # nothing new sampled


def test_a_resumed_run_reports_its_training_before_the_resume(tmp_path, monkeypatch):
    # fit reports 1000 s trained before this process resumed the run; the run's training
    # seconds count them on top of its own.
    import uibrec.runs

    real_fit = uibrec.runs.fit

    def resumed_fit(*args, **kwargs):
        result = real_fit(*args, **kwargs)
        result.resumed_seconds = 1000.0
        return result

    monkeypatch.setattr(uibrec.runs, "fit", resumed_fit)
    start = time.perf_counter()
    metrics = json.loads((train_tiny(tmp_path) / "metrics.json").read_text())
    took = time.perf_counter() - start
    assert metrics["resumed_seconds"] == 1000.0
    assert 1000.0 < metrics["train_seconds"] < 1000.0 + took
