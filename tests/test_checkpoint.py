"""Checkpoints: a run interrupted after a validation resumes there, bit for bit."""

import dataclasses
import hashlib
import json
import logging
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import SMALL_OPTIONS, write_synthetic

import uibrec.checkpoint
import uibrec.training
from uibrec.checkpoint import checkpoint_path
from uibrec.cli import main
from uibrec.config import make_config
from uibrec.models import Recommender
from uibrec.models.lightgcn import LightGCN
from uibrec.models.mf import MF
from uibrec.ops import Dropout
from uibrec.training import fit, load_split

READ = {"header": True, "columns": {"user": 0, "item": 1}}
# With dropout, so that the dropout streams must be restored too (LightGCN has none). At
# batch 2 the 30 users are many per batch row: MF's user table gets sparse gradients and
# a split optimiser, whose state must be restored too.
RUNS = [("mf", "uib", 0.1, {}), ("ncf", "native", 0.1, {}), ("lightgcn", "native", 0.0, {}),
        ("mf", "uib", 0.1, {"batch_size": 2, "epochs": 6, "eval_every": 2})]


@pytest.fixture
def data(tmp_path):
    return write_synthetic(tmp_path / "near.csv", num_users=30, num_items=40)


def _config(data, tmp_path, model="mf", loss="uib", dropout=0.1, **settings):
    settings = {"dataset": str(data), "model": model, "loss": loss, "dropout": dropout,
                "model_options": SMALL_OPTIONS.get(model, {}), "dim": 8, "lr": 0.2,
                "alpha": 2.0, "epochs": 8, "eval_every": 2, "patience": 10,
                "batch_size": 32, "num_candidates": 10, "output": str(tmp_path),
                "progress": False, "read_options": READ, **settings}
    return make_config({}, settings)


class Interrupted(KeyboardInterrupt):
    pass


def _stop_at(stop_epoch):
    def on_validation(epoch, valid):
        if epoch == stop_epoch:
            raise Interrupted
    return on_validation


def _count_epochs(monkeypatch) -> list:
    """Patch the trainer to record each epoch it trains; return the record."""
    trained = []
    real = uibrec.training.train_epoch

    def counting(*args, **kwargs):
        trained.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(uibrec.training, "train_epoch", counting)
    return trained


def _without_seconds(history):
    return [{k: v for k, v in row.items() if k not in ("seconds", "elapsed")}
            for row in history]


def _assert_same_run(resumed, straight):
    # Exactly the same floats, not close ones: every random stream continued unchanged.
    assert _without_seconds(resumed.history) == _without_seconds(straight.history)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in straight.history]
    assert (resumed.best_epoch, resumed.best_valid) == (straight.best_epoch,
                                                        straight.best_valid)
    state, expected = resumed.components.state_dict(), straight.components.state_dict()
    assert state.keys() == expected.keys()
    for module in expected:
        assert state[module].keys() == expected[module].keys()
        for name, tensor in expected[module].items():
            assert torch.equal(state[module][name], tensor), f"{module}.{name}"


@pytest.mark.parametrize("model,loss,dropout,settings", RUNS)
def test_interrupted_run_resumes_bit_for_bit(model, loss, dropout, settings, data, tmp_path,
                                             monkeypatch, caplog):
    config = _config(data, tmp_path, model, loss, dropout, **settings)
    split, candidates = load_split(config)
    straight = fit(config, split, candidates)
    assert len(straight.history) == config.epochs  # patience 10: no early stop

    path = tmp_path / "run.pt"
    with pytest.raises(Interrupted):
        fit(config, split, candidates, on_validation=_stop_at(4), checkpoint=path)
    saved = torch.load(path, weights_only=True)
    assert saved["epoch"] == 4 and len(saved["history"]) == 4
    assert len(saved["random"]) == 1  # one process
    assert not path.with_name("run.pt.tmp").exists()

    # Other output settings are harmless: the same run resumes.
    again = dataclasses.replace(config, run_name="elsewhere", threads=2, progress=True)
    trained = _count_epochs(monkeypatch)
    with caplog.at_level(logging.INFO, logger="uibrec.training"):
        resumed = fit(again, split, candidates, checkpoint=path)
    assert f"resuming {path} at epoch 5" in caplog.text
    assert len(trained) == config.epochs - 4  # from epoch 5 only
    _assert_same_run(resumed, straight)
    assert not path.exists()  # finished: the checkpoint is gone


def test_resume_without_the_dropout_stream_would_differ(data, tmp_path, monkeypatch):
    # The check above has teeth: restore everything but MF's dropout masks, and the
    # resumed losses part from the straight run's.
    config = _config(data, tmp_path)
    split, candidates = load_split(config)
    straight = fit(config, split, candidates)
    path = tmp_path / "run.pt"
    with pytest.raises(Interrupted):
        fit(config, split, candidates, on_validation=_stop_at(4), checkpoint=path)
    monkeypatch.setattr(Recommender, "set_random_state", lambda self, state: None)
    resumed = fit(config, split, candidates, checkpoint=path)
    losses = [r["loss"] for r in resumed.history]
    assert losses[:4] == [r["loss"] for r in straight.history][:4]  # restored history
    assert losses[4] != straight.history[4]["loss"]


@pytest.mark.parametrize("old_format", [False, True])
def test_a_resumed_run_counts_the_time_before_its_interruption(old_format, data, tmp_path):
    # Bug: a resumed run reported only the training time of its last process (66 s for
    # an ML-1M SML run of 370 epochs). The checkpoint's last row says how long the run had
    # trained; here it is set to 1000 s so that the carried time stands out.
    config = _config(data, tmp_path)
    split, candidates = load_split(config)
    path = tmp_path / "run.pt"
    with pytest.raises(Interrupted):
        fit(config, split, candidates, on_validation=_stop_at(4), checkpoint=path)
    saved = torch.load(path, weights_only=True)
    elapsed = [row["elapsed"] for row in saved["history"]]
    assert elapsed == sorted(elapsed) and elapsed[0] > 0
    for row in saved["history"]:
        if old_format:  # checkpoints written before rows had "elapsed"
            del row["elapsed"]
            row["seconds"] = 250.0
        else:
            row["elapsed"] = 1000.0
    torch.save(saved, path)
    start = time.perf_counter()
    resumed = fit(config, split, candidates, checkpoint=path)
    took = time.perf_counter() - start
    assert resumed.resumed_seconds == 1000.0  # 4 epochs x 250 s in the old format
    later = [row["elapsed"] for row in resumed.history[4:]]
    assert 1000.0 < later[0] <= later[-1] < 1000.0 + took


def test_checkpoint_of_an_early_stopped_run_trains_no_more(data, tmp_path, monkeypatch):
    # Interrupted at the validation that stops the run: resuming only restores the best.
    config = _config(data, tmp_path, eval_every=1, patience=1, epochs=30, lr=1.0)
    split, candidates = load_split(config)
    straight = fit(config, split, candidates)
    stop = len(straight.history)
    assert stop < 30  # it did stop early
    path = tmp_path / "run.pt"
    with pytest.raises(Interrupted):
        fit(config, split, candidates, on_validation=_stop_at(stop), checkpoint=path)
    trained = _count_epochs(monkeypatch)
    resumed = fit(config, split, candidates, checkpoint=path)
    assert trained == []
    _assert_same_run(resumed, straight)


def test_checkpoint_of_other_settings_is_a_clear_error(data, tmp_path):
    config = _config(data, tmp_path)
    split, candidates = load_split(config)
    path = tmp_path / "run.pt"
    with pytest.raises(Interrupted):
        fit(config, split, candidates, on_validation=_stop_at(2), checkpoint=path)
    other = dataclasses.replace(config, lr=0.3, seed=1)
    message = (f"{path}: checkpoint of a run with other settings "
               r"\(lr: 0.2 there, 0.3 here; seed: 0 there, 1 here\)")
    with pytest.raises(ValueError, match=message):
        fit(other, split, candidates, checkpoint=path)
    assert path.exists()  # left for the run that wrote it


def test_checkpoint_of_other_process_count_is_a_clear_error(data, tmp_path):
    config = _config(data, tmp_path)
    split, candidates = load_split(config)
    path = tmp_path / "run.pt"
    with pytest.raises(Interrupted):
        fit(config, split, candidates, on_validation=_stop_at(2), checkpoint=path)
    saved = torch.load(path, weights_only=True)
    saved["random"] = saved["random"] * 2  # as two processes would have written
    torch.save(saved, path)
    with pytest.raises(ValueError, match=f"{path}: checkpoint of a run on 2 process"):
        fit(config, split, candidates, checkpoint=path)


def test_unreadable_checkpoint_is_a_clear_error(data, tmp_path):
    config = _config(data, tmp_path)
    split, candidates = load_split(config)
    path = tmp_path / "run.pt"
    path.write_bytes(b"half a file")
    with pytest.raises(ValueError, match=f"{path}: not a readable checkpoint"):
        fit(config, split, candidates, checkpoint=path)


def test_finished_run_leaves_no_checkpoint(data, tmp_path):
    config = _config(data, tmp_path, epochs=4)
    split, candidates = load_split(config)
    path = tmp_path / "run.pt"
    fit(config, split, candidates, checkpoint=path)
    assert not path.exists()
    assert not path.with_name("run.pt.tmp").exists()


def test_checkpoint_path_is_named_by_the_training_settings(data, tmp_path):
    config = _config(data, tmp_path)
    path = checkpoint_path(config)
    assert path.parent == tmp_path / ".checkpoints"
    assert path.name.startswith("near.csv-mf-uib-seed0-") and path.suffix == ".pt"
    # Output and speed settings keep the name; a training setting changes it.
    assert checkpoint_path(dataclasses.replace(config, threads=4, progress=True)) == path
    assert checkpoint_path(dataclasses.replace(config, lr=0.3)) != path
    named = checkpoint_path(dataclasses.replace(config, run_name="mine"))
    assert named.name.startswith("mine-") and named.name[5:] == path.name[22:]


def test_model_random_state_holds_every_dropout_stream():
    class Pair(Recommender):  # dropouts of its own and of a submodule
        def __init__(self):
            super().__init__()
            self.dropout = Dropout(0.5, seed=1)
            self.inner = MF(4, 5, dim=2, dropout=0.5, seed=2)

    model = Pair()
    state = model.random_state()
    assert sorted(state) == ["dropout", "inner.dropout"]
    first = (model.dropout.bytes((16,)), model.inner.dropout.bytes((16,)))
    model.set_random_state(state)  # the same draws again
    assert torch.equal(model.dropout.bytes((16,)), first[0])
    assert torch.equal(model.inner.dropout.bytes((16,)), first[1])
    assert LightGCN(3, 3, 2, 1, np.array([0]), np.array([1])).random_state() == {}
    with pytest.raises(ValueError, match=r"random state for dropouts \['dropout'\], but "
                                         r"the model has \['dropout', 'inner.dropout'\]"):
        model.set_random_state({"dropout": state["dropout"]})


def _cli_train(out, data):
    return CliRunner().invoke(main, [
        "-q", "train", "--dataset", str(data), "--loss", "uib", "--alpha", "2",
        "--epochs", "6", "--lr", "0.5", "--dropout", "0.1", "--output", str(out),
        "--set", "eval_every=2", "--set", "num_candidates=10",
        "--set", "read_options={header: true, columns: {user: 0, item: 1}}",
    ])


def test_cli_rerun_resumes_the_interrupted_run(data, tmp_path, monkeypatch):
    straight = _cli_train(tmp_path / "straight", data)
    assert straight.exit_code == 0, straight.output

    real_save = uibrec.checkpoint.save_checkpoint

    def save_then_interrupt(path, config, state, *args, **kwargs):
        real_save(path, config, state, *args, **kwargs)
        if state["epoch"] == 4:
            raise Interrupted

    out = tmp_path / "resumed"
    monkeypatch.setattr(uibrec.checkpoint, "save_checkpoint", save_then_interrupt)
    first = _cli_train(out, data)
    assert first.exit_code == 1 and "Aborted" in first.output  # click's Ctrl-C
    assert len(list((out / ".checkpoints").glob("*.pt"))) == 1
    monkeypatch.undo()
    trained = _count_epochs(monkeypatch)
    second = _cli_train(out, data)
    assert second.exit_code == 0, second.output
    assert len(trained) == 2  # epochs 5 and 6

    resumed, expected = json.loads(second.output), json.loads(straight.output)
    for key in ("valid", "test", "test_full", "best_epoch", "epochs"):
        assert resumed[key] == expected[key]
    assert list((out / ".checkpoints").iterdir()) == []


def _digest(state: dict) -> str:
    digest = hashlib.sha1()
    for module in sorted(state):
        for name in sorted(state[module]):
            digest.update(state[module][name].numpy().tobytes())
    return digest.hexdigest()


def _distributed_worker(rank: int, world_size: int, port: int, settings: dict,
                        out_dir: str) -> None:
    """Train straight through, then interrupted at epoch 3 and resumed; write both."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from uibrec.distributed import Parallel

    with Parallel.start("cpu") as parallel:
        config = make_config({}, settings)
        with parallel.main_first():
            split, candidates = load_split(config)
        path = Path(out_dir) / "run.pt"
        runs = {"straight": fit(config, split, candidates, parallel=parallel)}
        with pytest.raises(Interrupted):
            fit(config, split, candidates, parallel=parallel, on_validation=_stop_at(3),
                checkpoint=path)
        runs["resumed"] = fit(config, split, candidates, parallel=parallel, checkpoint=path)
        out = {kind: {"history": _without_seconds(run.history),
                      "digest": _digest(run.components.state_dict())}
               for kind, run in runs.items()}
        (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(out))


def test_two_processes_resume_bit_for_bit(data, tmp_path):
    # Process 0 alone writes, with both processes' random streams (their own negatives
    # and dropout masks); each continues its own. Any mix-up would change the averaged
    # gradients, and so both processes' weights.
    import torch.multiprocessing as mp

    settings = {"dataset": str(data), "dropout": 0.1, "epochs": 6, "eval_every": 3,
                "batch_size": 64, "lr": 0.2, "loss": "uib", "alpha": 2.0,
                "num_candidates": 10, "output": str(tmp_path), "progress": False,
                "full_ranking": False, "read_options": READ}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_distributed_worker, args=(2, port, settings, str(tmp_path)), nprocs=2,
             join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for out in ranks:
        assert out["resumed"] == out["straight"]
        assert len(out["straight"]["history"]) == 6
    assert ranks[0]["resumed"]["digest"] == ranks[1]["resumed"]["digest"]
    assert not (tmp_path / "run.pt").exists()
