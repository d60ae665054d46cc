"""Device-agnostic training and evaluation: what runs on CUDA, checked where it can run.

Every test runs on the CPU; the ones parametrized over DEVICES also run on CUDA when a GPU
is present. The CPU trains MF through compiled kernels; other devices take the tensor path
of ``ops.gather_dot``, so the tests also run that path on the CPU and compare.
"""

import numpy as np
import pytest
import torch
from conftest import write_synthetic

from uibrec import ops
from uibrec.config import make_config
from uibrec.runs import evaluate_components
from uibrec.sampling import NegativeSampler
from uibrec.training import (
    build_components,
    fit,
    load_split,
    make_optimizer,
    resolve_device,
    train_epoch,
)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _epochs(use_kernels: bool, dropout: float, monkeypatch, epochs: int = 2):
    """Loss per epoch and final parameters of MF+UIB on a fixed small problem."""
    monkeypatch.setattr(ops, "USE_KERNELS", use_kernels)
    rng = np.random.default_rng(0)
    users, items = rng.integers(0, 20, 300), rng.integers(0, 30, 300)
    keep = np.unique(users * 30 + items, return_index=True)[1]
    users, items = users[keep], items[keep]
    torch.manual_seed(0)
    config = make_config({}, {"loss": "uib", "num_negatives": 4, "dim": 8, "lr": 0.5,
                              "dropout": dropout})
    comp = build_components(config, 20, 30)
    optimizer = make_optimizer(config, comp.parameters())
    sampler = NegativeSampler(users, items, 20, 30, seed=0)
    generator = torch.Generator().manual_seed(0)
    losses = [train_epoch(comp, optimizer, sampler, torch.as_tensor(users),
                          torch.as_tensor(items), 64, 0.0, generator).loss
              for _ in range(epochs)]
    return losses, comp.state_dict()


@pytest.mark.parametrize("dropout", [0.0, 0.25])
def test_tensor_path_trains_like_the_compiled_kernels(dropout, monkeypatch):
    # The kernels add in another order. Measured after two epochs: losses within 4e-8
    # (relative), parameters within 1e-5; allow 1e-4.
    kernel_losses, kernel_state = _epochs(True, dropout, monkeypatch)
    tensor_losses, tensor_state = _epochs(False, dropout, monkeypatch)
    assert tensor_losses == pytest.approx(kernel_losses, rel=1e-4)
    for name, value in kernel_state["model"].items():
        torch.testing.assert_close(tensor_state["model"][name], value, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_fit_and_full_evaluation_on_each_device(device, tmp_path):
    data = write_synthetic(tmp_path / "near.csv", num_users=40, num_items=30)
    config = make_config({}, {
        "dataset": str(data), "loss": "uib", "epochs": 2, "eval_every": 1, "device": device,
        "num_candidates": 10, "output": str(tmp_path), "dropout": 0.1,
        "read_options": {"header": True}})
    split, candidates = load_split(config)
    result = fit(config, split, candidates)
    assert next(result.components.model.parameters()).device.type == device
    metrics = evaluate_components(result.components, split, candidates, True, device)
    for protocol in ("valid", "test", "test_full"):
        assert 0.0 <= metrics[protocol]["ndcg@10"] <= 1.0
    assert all(np.isfinite(row["loss"]) for row in result.history)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="CUDA is not available here"):
        resolve_device("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present")
def test_train_checks_the_device_before_reading_data(tmp_path):
    from uibrec.runs import train

    with pytest.raises(ValueError, match="CUDA is not available here"):
        train(dataset=str(tmp_path / "missing.csv"), device="cuda", output=str(tmp_path))


@pytest.mark.parametrize("name, message", [
    ("meta", "device 'meta' holds no data and cannot train or score"),
    ("mps", "device 'mps' cannot be used by torch .* here \\(.*\\); use --device cpu"),
    ("xla", "device 'xla' cannot be used by torch .* here"),
    ("ipu", "device 'ipu' cannot be used by torch .* here"),
])
def test_devices_torch_cannot_use_are_clear_errors(name, message):
    # They passed the name check and failed later with torch's RuntimeError or
    # NotImplementedError ("Cannot copy out of meta tensor") as a traceback.
    if name == "mps" and torch.backends.mps.is_available():
        pytest.skip("MPS is present")
    with pytest.raises(ValueError, match=message):
        resolve_device(name)


def test_reproduce_and_search_check_the_device_before_any_run(tmp_path, monkeypatch,
                                                               capsys):
    import sys

    from synthetic_experiment import write_experiment

    from uibrec.cli import run

    experiment = str(write_experiment(tmp_path / "exp"))
    for command in (["reproduce", "--datasets", experiment, "--models", "mf"],
                    ["search", "--dataset", experiment, "--model", "mf", "--loss", "native"]):
        out = tmp_path / command[0]
        argv = ["uibrec", "-q", *command, "--device", "meta", "--output", str(out)]
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exited:
            run()
        assert exited.value.code == 2
        assert capsys.readouterr().err == ("error: device 'meta' holds no data and cannot "
                                           "train or score; use --device cpu or cuda\n")
        assert not out.exists()  # no folder, study or run was made
