import json

from click.testing import CliRunner

from uibrec.cli import main


def test_train_then_evaluate_a_run_folder(synthetic_csv, tmp_path):
    runner = CliRunner()
    out = tmp_path / "runs"
    result = runner.invoke(main, [
        "-q", "train", "--dataset", str(synthetic_csv), "--loss", "uib", "--alpha", "2",
        "--epochs", "4", "--lr", "0.5", "--output", str(out),
        "--set", "eval_every=2", "--set", "num_candidates=10",
        "--set", "read_options={header: true, columns: {user: user, item: item}}",
    ])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    run_dir = metrics["run_dir"]
    for name in ("config.yaml", "history.csv", "metrics.json", "model.pt", "ids.npz"):
        assert (out / "synthetic.csv-mf-uib-seed0" / name).is_file()
    assert metrics["num_negatives"] == 32
    again = runner.invoke(main, ["-q", "evaluate", run_dir])
    assert again.exit_code == 0, again.output
    rescored = json.loads(again.output)
    assert rescored["test"] == metrics["test"]
    assert rescored["test_full"] == metrics["test_full"]


def test_unknown_setting_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["train", "--set", "learning_rate=1"])
    assert result.exit_code == 2
    assert "unknown setting(s) learning_rate" in result.output


def test_native_loss_run_has_no_boundary_and_one_negative(synthetic_csv, tmp_path):
    import uibrec

    metrics = uibrec.train(dataset=str(synthetic_csv), loss="native", epochs=2, eval_every=1,
                           num_candidates=10, output=str(tmp_path), progress=False,
                           read_options={"header": True, "columns": {"user": 0, "item": 1}})
    assert metrics["loss"] == "bpr" and metrics["num_negatives"] == 1
    run = uibrec.load_run(metrics["run_dir"])
    assert run.boundary is None


def test_misspelt_model_option_is_an_error_naming_the_known_ones():
    import pytest

    from uibrec.config import make_config
    from uibrec.training import build_components

    config = make_config({}, {"model": "mf", "model_options": {"layer": 3}})
    with pytest.raises(ValueError, match=r"model 'mf' \(model_options\) takes no option "
                                         r"'layer'; it takes: init_std"):
        build_components(config, 5, 5)
    config = make_config({}, {"loss": "uib", "loss_options": {"gama": 1}})
    with pytest.raises(ValueError, match="loss 'uib' .* takes no option 'gama'"):
        build_components(config, 5, 5)


def test_settings_of_the_wrong_type_or_unknown_metric_are_one_line_errors(tmp_path):
    import pytest

    from uibrec.config import make_config

    for bad, message in [({"epochs": "abc"}, "epochs must be int, got 'abc'"),
                         ({"epochs": 2.5}, "epochs must be int, got 2.5"),
                         ({"lr": "abc"}, "lr must be float, got 'abc'"),
                         ({"progress": 1}, "progress must be bool, got 1"),
                         ({"metric": "foo"}, "metric must be one of hit@1, ndcg@1")]:
        with pytest.raises(ValueError, match=message):
            make_config({}, bad)
    assert make_config({}, {"lr": 1, "num_negatives": None}).lr == 1
    result = CliRunner().invoke(main, ["train", "--set", "epochs=abc"])
    assert result.exit_code == 2 and "epochs must be int, got 'abc'" in result.output
    broken = tmp_path / "bad.yaml"
    broken.write_text("lr: [1\n")
    result = CliRunner().invoke(main, ["train", "-c", str(broken)])
    assert result.exit_code != 0 and f"{broken}: not valid YAML" in result.output


def test_misspelt_read_option_missing_file_and_bad_device_are_clear(tmp_path):
    import pytest

    import uibrec

    with pytest.raises(ValueError, match="read_options takes no option 'seperator'"):
        uibrec.train(dataset="x.csv", read_options={"seperator": ","}, output=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="missing.csv: no such file"):
        uibrec.load_dataset(str(tmp_path / "missing.csv"))
    from uibrec.training import resolve_device

    with pytest.raises(ValueError, match="'tpu' is not a device torch knows"):
        resolve_device("tpu")


def test_unused_fields_are_reported(tmp_path, caplog):
    import uibrec

    path = tmp_path / "four.csv"
    path.write_text("1,2,5,100\n1,3,4,101\n")
    data = uibrec.read_delimited(path)
    assert len(data) == 2 and data.rating is None
    assert "ignoring fields [2, 3]" in caplog.text


def test_diverged_training_is_a_one_line_error_not_a_traceback(monkeypatch, capsys):
    import sys

    import pytest

    import uibrec.runs
    from uibrec.cli import run
    from uibrec.training import TrainingDivergedError

    def diverge(config, progress=False):
        raise TrainingDivergedError("the training loss became nan; lower the learning rate")

    monkeypatch.setattr(uibrec.runs, "train", diverge)
    monkeypatch.setattr(sys, "argv", ["uibrec", "-q", "train", "--lr", "1e30"])
    with pytest.raises(SystemExit) as exited:
        run()
    assert exited.value.code == 2
    assert capsys.readouterr().err == ("error: the training loss became nan; lower the "
                                       "learning rate\n")


def test_training_on_data_with_no_user_left_names_the_filter_and_file(tmp_path):
    import subprocess
    import sys

    # Three rows of two users, each under 5 interactions: training crashed in torch.cat.
    data = tmp_path / "few.tsv"
    data.write_text("1\t10\n1\t11\n2\t10\n")
    result = subprocess.run(
        [sys.executable, "-c", "from uibrec.cli import run; run()", "-q", "train",
         "--dataset", str(data), "--epochs", "1", "--output", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"error: no users left after min_user_interactions=5 (removed 2 users, 3 rows) in "
        f"{data}; lower it with --set min_user_interactions=N")


def test_training_with_no_user_to_evaluate_is_an_error(tmp_path):
    import pytest

    from uibrec.config import make_config
    from uibrec.training import load_split

    data = tmp_path / "pairs.tsv"
    data.write_text("1\t10\n1\t11\n2\t10\n")  # every user has 2 interactions, none 3
    config = make_config({}, {"dataset": str(data), "min_user_interactions": 1,
                              "output": str(tmp_path)})
    with pytest.raises(ValueError, match=f"^no user has the 3 interactions .* in {data}$"):
        load_split(config)


def test_stats_warns_when_no_user_is_left(tmp_path):
    data = tmp_path / "few.tsv"
    data.write_text("1\t10\n1\t11\n2\t10\n")
    result = CliRunner().invoke(main, ["data", "stats", "--json", str(data)])
    assert result.exit_code == 0, result.output
    assert (f"warning: {data}: no users left after min_user_interactions=5 (removed 2 "
            "users, 3 rows)") in result.output
    assert json.loads(result.output[result.output.index("["):])[0]["users"] == 0


def test_user_errors_have_one_prefix_and_exit_status_everywhere(tmp_path, monkeypatch, capsys):
    # train said "error:" and exited 2; recommend, analyze and alpha-sweep "Error:" and 1.
    import sys

    import pytest

    from uibrec.cli import run

    missing = str(tmp_path / "missing.csv")
    for argv in (["train", "--dataset", missing],
                 ["alpha-sweep", "--dataset", missing, "--output", str(tmp_path)],
                 ["analyze", str(tmp_path)], ["recommend", str(tmp_path), "--user", "1"]):
        monkeypatch.setattr(sys, "argv", ["uibrec", "-q", *argv])
        with pytest.raises(SystemExit) as exited:
            run()
        err = capsys.readouterr().err
        assert exited.value.code == 2, argv
        assert err.startswith("error: ") and len(err.splitlines()) == 1, (argv, err)
