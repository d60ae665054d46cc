"""The ``recommend``, ``analyze`` and ``alpha-sweep`` commands, end to end."""

import pytest
from _tiny_runs import train_tiny, write_tiny_csv
from click.testing import CliRunner

from uibrec.cli import main


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return train_tiny(root, "uib"), train_tiny(root, "native")


def _invoke(*args):
    return CliRunner().invoke(main, ["-q", *map(str, args)])


def test_recommend_prints_raw_ids_scores_and_the_boundary(folders):
    result = _invoke("recommend", folders[0], "--user", 100, "--user", 101, "-k", 3)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["user_id", "rank", "item_id", "score", "boundary",
                                "above_boundary"]
    assert len(lines) == 1 + 6
    assert all(int(line.split()[2]) >= 1000 for line in lines[1:])  # raw item IDs

    result = _invoke("recommend", folders[0], "--user", 100, "-k", 15, "--include-seen",
                     "--csv")
    assert result.exit_code == 0, result.output
    assert len(result.output.splitlines()) == 1 + 15


def test_recommend_errors_are_one_line(folders):
    # These said "Error:" with exit status 1, where train, evaluate and data say "error:"
    # with 2 for the same kind of mistake.
    result = _invoke("recommend", folders[0], "--user", "ghost")
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "unknown user ID 'ghost'" in result.output
    assert "Traceback" not in result.output
    result = _invoke("recommend", folders[1], "--user", 100, "--above-only")
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "has no user interest boundary" in \
        result.output


def test_analyze_writes_into_the_run_folder(folders, tmp_path):
    uib, native = folders
    result = _invoke("analyze", uib, "--compare", native, "--combined", tmp_path / "all")
    assert result.exit_code == 0, result.output
    assert '"known_f1@0"' in result.output
    assert (uib / "offset_sweep.png").is_file()
    assert (uib / "corrupted_rate.png").is_file()
    assert (tmp_path / "all" / "boundary_histograms.png").is_file()

    result = _invoke("analyze", native, "--out", tmp_path / "native")
    assert result.exit_code == 0, result.output
    assert "none: the run was trained with the 'bpr' loss" in result.output


def test_alpha_sweep_command(tmp_path):
    data = write_tiny_csv(tmp_path)
    result = _invoke("alpha-sweep", "--dataset", data, "--model", "mf", "--epochs", 1,
                     "--output", tmp_path / "runs", "--alphas", "1,2", "--name", "s",
                     "--set", "num_candidates=5", "--set", "eval_every=1")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "s" / "alpha_metrics.png").is_file()
    assert (tmp_path / "runs" / "s" / "alpha2" / "model.pt").is_file()
    result = _invoke("alpha-sweep", "--dataset", data, "--alphas", "1,x")
    assert result.exit_code == 2 and "expected numbers" in result.output


@pytest.mark.parametrize("alphas, message", [
    ("", "Invalid value for --alphas: expected a comma-separated list, got nothing"),
    (" , ", "Invalid value for --alphas: expected a comma-separated list, got nothing"),
    ("1,,2", "Invalid value for --alphas: empty entry in '1,,2'"),
])
def test_alpha_sweep_rejects_empty_alpha_lists_and_entries(tmp_path, alphas, message):
    # "" was pandas' "No objects to concatenate"; "1,,2" silently ran alphas 1 and 2 only.
    result = _invoke("alpha-sweep", "--dataset", tmp_path / "none.csv", "--alphas", alphas,
                     "--output", tmp_path / "runs")
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "runs").exists()
    from uibrec.analysis.alpha import alpha_sweep

    with pytest.raises(ValueError, match="alphas: give at least one alpha"):
        alpha_sweep([], output=str(tmp_path / "runs"))
