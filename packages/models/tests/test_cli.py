"""The ``ctnn-models train`` command writes a loadable checkpoint and a metrics file."""

import importlib.util
import json

import pytest
import torch

from ctnn.models import MLP, ContinuousNet, SequenceClassifier, load_checkpoint, load_digits, save_checkpoint
from ctnn.models._cli import main


def test_train_mlp(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(["train", "--model", "mlp", "--epochs", "60", "--seed", "1", "--out", str(out), "--no-progress"])
        == 0
    )
    assert "test accuracy" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "mlp" and metrics["test_accuracy"] >= 0.93
    assert metrics["dataset"]["value_range"] == [0.0, 16.0]
    model, cfg = load_checkpoint(out / "model.safetensors")
    assert cfg["args"] == {"sizes": [64, 32, 10]} and cfg["training"]["seed"] == 1
    d = load_digits(seed=1)
    acc = (model(torch.from_numpy(d.X_test)).argmax(1).numpy() == d.y_test).mean()
    assert acc == pytest.approx(metrics["test_accuracy"])


def test_train_ltc(tmp_path):
    out = tmp_path / "ltc"
    args = [
        "train",
        "--model",
        "ltc",
        "--epochs",
        "1",
        "--units",
        "6",
        "--ode-unfolds",
        "2",
        "--solver",
        "rk4",
    ]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    model, cfg = load_checkpoint(out / "model.safetensors")
    assert isinstance(model, SequenceClassifier) and cfg["family"] == "sequence_classifier"
    assert model.cell.in_features == 8 and model.cell.solver == "rk4"


@pytest.mark.skipif(importlib.util.find_spec("aeon") is None, reason="aeon is not installed")
@pytest.mark.parametrize("model", ["lem", "lipschitz_rnn", "gru"])
def test_train_time_series(tmp_path, model):
    out = tmp_path / model
    argv = ["train", "--model", model, "--dataset", "italy_power_demand", "--epochs", "2", "--units", "8"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"]["class_names"] == ["1", "2"] and metrics["training"]["clip_grad_norm"] == 1.0
    loaded, cfg = load_checkpoint(out / "model.safetensors")
    assert cfg["args"]["family"] == model and loaded.input_norm


def test_continuous_net_evaluate_and_compress(tmp_path, capsys):
    out = tmp_path / "cn"
    argv = ["train", "--model", "continuous_net", "--epochs", "3", "--widths", "16", "--n-basis", "4"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    model, _ = load_checkpoint(out / "model.safetensors")
    assert isinstance(model, ContinuousNet) and model.n_steps == 4
    capsys.readouterr()
    assert main(["evaluate", str(out / "model.safetensors"), "--scheme", "rk4", "--n-steps", "8"]) == 0
    assert 0 <= json.loads(capsys.readouterr().out)["test_accuracy"] <= 1
    small = tmp_path / "small"
    argv = ["compress", str(out / "model.safetensors"), "--basis", "piecewise_linear", "--n-basis", "2"]
    assert main([*argv, "--out", str(small)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["to"]["n_basis"] == 2 and report["to"]["params"] < report["from"]["params"]
    assert report["accuracy_change"] == pytest.approx(
        report["to"]["test_accuracy"] - report["from"]["test_accuracy"]
    )
    compressed, cfg = load_checkpoint(small / "model.safetensors")
    assert compressed.basis == "piecewise_linear" and cfg["compression"] == report


def test_train_mlp_for_verification(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--epochs", "10", "--interval-eps", "1", "--out", str(out), "--no-progress"]) == 0
    training = json.loads((out / "metrics.json").read_text())["training"]
    assert training["interval_eps"] == 1.0 and training["interval_clip"] == [0.0, 16.0]


def test_option_conflicts_are_errors(tmp_path, capsys):
    # argparse accepts each option; only their combination with the model or checkpoint is wrong
    assert (
        main(["train", "--model", "ltc", "--interval-eps", "1", "--out", str(tmp_path), "--no-progress"]) == 2
    )
    assert "ctnn-models: error: --interval-eps trains an mlp (its interval bounds), not --model ltc" in (
        capsys.readouterr().err
    )
    out = tmp_path / "mlp"
    assert main(["train", "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    ckpt = str(out / "model.safetensors")
    capsys.readouterr()
    assert main(["evaluate", ckpt, "--scheme", "rk4"]) == 2
    assert "ctnn-models: error: --scheme and --n-steps apply to ContinuousNet checkpoints only" in (
        capsys.readouterr().err
    )
    assert main(["compress", ckpt, "--basis", "piecewise_linear", "--n-basis", "2"]) == 2
    assert f"ctnn-models: error: {ckpt}: compress needs a ContinuousNet checkpoint" in capsys.readouterr().err
    bare = tmp_path / "bare" / "model.safetensors"
    save_checkpoint(MLP([64, 10]), bare)  # no data set recorded
    assert main(["evaluate", str(bare)]) == 2
    assert (
        f"ctnn-models: error: {bare}: the checkpoint does not record its data set" in capsys.readouterr().err
    )


def test_bad_arguments():
    with pytest.raises(SystemExit):
        main(["train", "--model", "transformer", "--out", "x"])


def test_bad_data_and_checkpoints_are_errors_not_tracebacks(tmp_path, capsys):
    assert main(["train", "--dataset", "nodata", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert "ctnn-models: error: unknown data set 'nodata'; known: [" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "gone.safetensors")]) == 2
    assert (
        f"ctnn-models: error: {tmp_path / 'gone.safetensors'}: no such checkpoint" in capsys.readouterr().err
    )
