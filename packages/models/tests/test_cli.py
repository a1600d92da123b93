"""The ``ctnn-models train`` command writes a loadable checkpoint and a metrics file."""

import json

import pytest
import torch
from ctnn.models import LTCClassifier, load_checkpoint, load_digits
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
    assert isinstance(model, LTCClassifier) and cfg["family"] == "ltc_classifier"
    assert model.cell.in_features == 8 and model.cell.solver == "rk4"


def test_bad_arguments():
    with pytest.raises(SystemExit):
        main(["train", "--model", "transformer", "--out", "x"])
