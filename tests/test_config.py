import pytest
from click.testing import CliRunner

from uibrec.cli import main
from uibrec.config import make_config


@pytest.mark.parametrize("bad, message", [
    # nan passes "lr <= 0" and reached torch as "Invalid learning rate: nan"; inf trained
    # until the loss became NaN and ended in a traceback.
    ({"lr": float("nan")}, "lr must be a finite number above 0, got nan"),
    ({"lr": float("inf")}, "lr must be a finite number above 0, got inf"),
    # A negative L2 weight grows the embeddings instead of shrinking them; it was accepted.
    ({"weight_decay": -1.0}, "weight_decay must be a finite number of at least 0, got -1.0"),
    ({"alpha": -2.0}, "alpha must be a finite number of at least 0, got -2.0"),
    ({"adagrad_init": -1.0}, "adagrad_init must be a finite number of at least 0, got -1.0"),
    # 0 silently meant "torch's default" (every core); a negative count was a traceback.
    ({"threads": 0}, "threads must be at least 1 .*, got 0"),
    ({"threads": -2}, "threads must be at least 1 .*, got -2"),
    # NumPy's "Seed must be between 0 and 2**32 - 1" named no setting.
    ({"seed": -1}, r"seed must be in \[0, 2\*\*32\), got -1"),
    ({"split_seed": -1}, r"split_seed must be in \[0, 2\*\*32\), got -1"),
    ({"candidate_seed": 2**32}, r"candidate_seed must be in \[0, 2\*\*32\), got 4294967296"),
    ({"min_user_interactions": -1}, "min_user_interactions must be at least 0, got -1"),
    # The split's own error said "order must be ...", a name the user never typed.
    ({"split_order": "foo"}, "split_order must be 'random' or 'temporal', got 'foo'"),
])
def test_out_of_range_settings_name_the_setting(bad, message):
    with pytest.raises(ValueError, match=message):
        make_config({}, bad)


def test_edge_values_that_are_allowed():
    config = make_config({}, {"threads": None, "seed": 2**32 - 1, "weight_decay": 0.0,
                              "alpha": 0.0, "min_user_interactions": 0, "lr": 1e-6})
    assert config.threads is None and config.seed == 2**32 - 1


def test_bad_setting_is_a_usage_error_before_any_data_is_read():
    # The dataset does not exist: the error must be about the setting, not the file.
    result = CliRunner().invoke(main, ["train", "--dataset", "missing.csv",
                                       "--weight-decay", "-1"])
    assert result.exit_code == 2
    assert "weight_decay must be a finite number of at least 0, got -1.0" in result.output


def test_set_null_overrides_a_setting(tmp_path):
    # make_config dropped None overrides, so the README's "--set threads=null gives torch's
    # default" silently kept one thread.
    assert make_config({"threads": 4}, {"threads": None}).threads is None
    from uibrec.cli import build_config

    path = tmp_path / "c.yaml"
    path.write_text("threads: 4\nnum_negatives: 8\n")
    config = build_config(str(path), ["threads=null", "num_negatives=null"], lr=None)
    assert config.threads is None and config.num_negatives is None and config.lr == 1.0


def test_exponent_floats_without_a_dot_are_floats_everywhere(tmp_path):
    # YAML 1.1 reads 1e-3 as the string '1e-3': "lr must be float, got '1e-3'" followed
    # from --set, config files and experiment files alike.
    from uibrec.cli import build_config
    from uibrec.experiments.spec import load_experiments

    assert make_config({"lr": "1e-3", "alpha": "2E1"}).lr == 0.001
    assert make_config({}, {"alpha": "2E1"}).alpha == 20.0
    config = build_config(None, ["lr=1e-3", "weight_decay=5e-4"])
    assert (config.lr, config.weight_decay) == (0.001, 0.0005)
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-3\ndropout: 1e-1\n")
    config = build_config(str(path), [])
    assert (config.lr, config.dropout) == (0.001, 0.1)
    experiment = tmp_path / "e.yaml"
    experiment.write_text("dataset: x\nconfigurations: {mf: {native: {settings: {lr: 3e-2}}}}\n")
    assert load_experiments(experiment)[("mf", "native")].config().lr == 0.03
    # Strings that are not numbers still fail, and int settings stay strict.
    with pytest.raises(ValueError, match="lr must be float, got 'fast'"):
        make_config({"lr": "fast"})
    with pytest.raises(ValueError, match="epochs must be int, got '1e2'"):
        make_config({"epochs": "1e2"})


@pytest.mark.parametrize("text, message", [
    ("epochs: 3\nlerning_rate: 0.1\n", "{path}, line 2: unknown setting(s) lerning_rate; "),
    ("lr: 0.5\n\nepochs: \"3\"\n", "{path}, line 3: epochs must be int, got '3'"),
    ("lr = 0.5\nepochs = \"3\"\n", "{path}, line 2: epochs must be int, got '3'"),
    ("lr: [1.0]\n", "{path}, line 1: lr must be float, got [1.0]"),
])
def test_config_file_errors_name_the_file_and_line(tmp_path, text, message):
    # They named neither: "unknown setting(s) lerning_rate; known settings: ...".
    path = tmp_path / ("c.toml" if " = " in text else "c.yaml")
    path.write_text(text)
    result = CliRunner().invoke(main, ["train", "-c", str(path)])
    assert result.exit_code == 2
    assert f"Error: {message.format(path=path)}" in result.output
    # An override's own error does not blame the file.
    path.write_text("lr = 0.5\n" if path.suffix == ".toml" else "lr: 0.5\n")
    result = CliRunner().invoke(main, ["train", "-c", str(path), "--set", "dim=x"])
    assert "Error: dim must be int, got 'x'" in result.output


def test_broken_config_of_a_run_folder_names_the_file(tmp_path):
    from _tiny_runs import train_tiny

    from uibrec.runs import load_run

    run_dir = train_tiny(tmp_path)
    config = run_dir / "config.yaml"
    config.write_text(config.read_text().replace("dropout: 0.0", "dropout: 2.0"))
    line = config.read_text().splitlines().index("dropout: 2.0") + 1
    with pytest.raises(ValueError, match=f"^{config}, line {line}: dropout must be in "
                                         r"\[0, 1\), got 2.0$"):
        load_run(run_dir)
