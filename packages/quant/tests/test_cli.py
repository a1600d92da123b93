"""The ``ctnn-quant`` command: quantize every supported checkpoint family, check graphs, clear errors."""

import json

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch", reason="quantizing checkpoints needs the ctnn-quant[torch] extra")

from ctnn.models import (  # noqa: E402
    CLASSIFIERS,
    LTCClassifier,
    build_classifier,
    load_dataset,
    save_checkpoint,
    train_classifier,
)
from ctnn.quant import ReferenceInterpreter, read_sidecar, supported_families  # noqa: E402
from ctnn.quant._cli import main  # noqa: E402

OPTS = {"mlp": {}, "lipschitz_rnn": dict(eps=0.2, units=16), "ctrnn": dict(ode_unfolds=2, units=16),
        "ltc": dict(ode_unfolds=2, units=8), "lem": dict(units=16)}  # fmt: skip


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def _checkpoint(family, digits, tmp_path):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_classifier(family, digits, **OPTS.get(family, {"units": 8, "widths": [16]}))
    train_classifier(model, digits, epochs=2, lr=1e-2, seed=0, progress=False)
    path = tmp_path / family / "model.safetensors"
    save_checkpoint(model, path, {"dataset": digits.summary()})
    return path


@pytest.mark.parametrize("family", sorted(set(CLASSIFIERS) & set(supported_families())))
def test_quantize_every_family(family, digits, tmp_path, capsys):
    ckpt = _checkpoint(family, digits, tmp_path)
    out = tmp_path / f"{family}.onnx"
    qat = ["--qat", "1"] if family in ("mlp", "lem") else []
    cmd = f"quantize {ckpt} --bits 6 --act-bits 8 --calib-size 128 --out {out}".split()
    rc = main(cmd + qat)
    assert rc == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["family"] == family and report["dataset"] == "digits"
    assert report["int_test_accuracy"] > 0.2 and report["qat_epochs"] == (1 if qat else 0)
    sc = read_sidecar(out)
    assert sc.weight_bits == 6 and sc.act_bits == 8 and sc.dataset == "digits"
    # the written graph is exact: numpy reference == onnxruntime on real inputs
    codes = sc.input.quantize(np.asarray(digits.X_test[:200], np.float64))
    y_ort = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"x": codes})[0]
    np.testing.assert_array_equal(ReferenceInterpreter(str(out)).run({"x": codes})["y"], y_ort)

    assert main(["check", str(out)]) == 0
    text = capsys.readouterr().out
    assert "in the integer dialect" in text and "weight_bits=6 act_bits=8" in text and "ops:" in text


def test_quantize_errors(digits, tmp_path, capsys):
    ckpt = _checkpoint("mlp", digits, tmp_path)
    out = str(tmp_path / "m.onnx")

    def err(*args):
        assert main(["quantize", *args]) == 2
        return capsys.readouterr().err

    assert "--bits) must be in 2..16, got 17" in err(str(ckpt), "--bits", "17", "--out", out)
    assert "--act-bits) must be in 2..16, got 1" in err(str(ckpt), "--act-bits", "1", "--out", out)
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((10, 63)))
    assert "calibration data must have shape [N, 64], got [10, 63]" in err(
        str(ckpt), "--calib", str(bad), "--out", out
    )
    assert "the QAT learning rate must be > 0, got -1.0" in err(
        str(ckpt), "--qat", "1", "--lr", "-1", "--out", out
    )
    assert "no such checkpoint" in err(str(tmp_path / "missing.safetensors"), "--out", out)
    # a config that no longer matches its weights
    cfg = ckpt.with_suffix(".json")
    c = json.loads(cfg.read_text())
    c["args"]["sizes"][1] = 7
    cfg.write_text(json.dumps(c))
    msg = err(str(ckpt), "--out", out)
    assert "model.json" in msg or "model.safetensors" in msg
    assert "sha256" in msg or "shape" in msg or "do not fit" in msg
    # a model the core cannot quantize is named (the older LTCClassifier has no integer form)
    other = tmp_path / "ltcc" / "model.safetensors"
    save_checkpoint(LTCClassifier(8, 4, 10, ode_unfolds=1), other, {"dataset": digits.summary()})
    assert "LTCClassifier" in err(str(other), "--out", out)
    assert not (tmp_path / "m.onnx").exists()


def test_quantize_variable_length_with_a_wide_state(tmp_path, capsys):
    """JapaneseVowels (NaN-padded) through the CLI, with a 16-bit LSTM cell state."""
    data = load_dataset("japanese_vowels", seed=0)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_classifier("lstm", data, units=8)
    train_classifier(model, data, epochs=2, lr=1e-2, seed=0, progress=False)
    ckpt = tmp_path / "lstm" / "model.safetensors"
    save_checkpoint(model, ckpt, {"dataset": data.summary()})
    out = tmp_path / "jv.onnx"
    assert main(f"quantize {ckpt} --bits 6 --state-bits 16 --calib-size 64 --out {out}".split()) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["dataset"] == "japanese_vowels" and report["int_test_accuracy"] > 0.3  # chance is 0.11
    sc = read_sidecar(out)
    hp = sc.hyperparameters
    assert hp["state_bits"] == 16 and hp["pad_code"] == -128 and sc.input.lo == -127
    x = np.asarray(data.X_test, np.float64).reshape(-1, hp["steps"], hp["in_features"])
    codes = sc.input.quantize(np.nan_to_num(x))
    codes[np.isnan(x).all(axis=2)] = hp["pad_code"]
    codes = codes.reshape(len(x), -1)
    y_ort = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"x": codes})[0]
    np.testing.assert_array_equal(ReferenceInterpreter(str(out)).run({"x": codes})["y"], y_ort)


def test_codes_turn_a_data_set_into_graph_inputs(digits, tmp_path, capsys):
    ckpt = _checkpoint("mlp", digits, tmp_path)
    graph = tmp_path / "m.onnx"
    assert main(["quantize", str(ckpt), "--bits", "6", "--out", str(graph)]) == 0
    sc = read_sidecar(graph)
    capsys.readouterr()
    # default: the sidecar's data set, its test split, the first 100 samples
    assert main(["codes", str(graph), "--out", str(tmp_path / "c.npy")]) == 0
    report = json.loads(capsys.readouterr().out)
    codes = np.load(tmp_path / "c.npy")
    assert report["samples"] == 100 and report["shape"] == [100, 64] and report["dataset"] == "digits"
    np.testing.assert_array_equal(codes, sc.input.quantize(np.asarray(digits.X_test[:100], np.float64)))
    assert codes.dtype == np.dtype(sc.input.dtype)
    # an .npz also holds the labels and indices (a campaign's samples.file)
    assert (
        main(["codes", str(graph), "--split", "val", "--indices", "5", "2", "--out", str(tmp_path / "s.npz")])
        == 0
    )
    z = np.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(z["codes"], sc.input.quantize(np.asarray(digits.X_val[[5, 2]], np.float64)))
    np.testing.assert_array_equal(z["labels"], np.asarray(digits.y_val)[[5, 2]])
    assert z["indices"].tolist() == [5, 2]
    capsys.readouterr()

    def err(*args):
        assert main(["codes", *args]) == 2
        return capsys.readouterr().err

    n = len(digits.X_test)
    assert f"--indices [{n}]: the test split of 'digits' has {n} samples" in err(
        str(graph), "--indices", str(n), "--out", str(tmp_path / "x.npy")
    )
    assert "expected a .npy (codes) or .npz (codes and labels) path" in err(str(graph), "--out", "x.csv")
    assert "--first must be >= 1, got 0" in err(str(graph), "--first", "0", "--out", str(tmp_path / "x.npy"))
    assert "has samples of 24 values" in err(
        str(graph), "--data", "italy_power_demand", "--out", str(tmp_path / "x.npy")
    )
    assert "no sidecar (gone.json)" in err(str(tmp_path / "gone.onnx"), "--out", str(tmp_path / "x.npy"))


def test_without_the_torch_extra_the_commands_say_so(tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "ctnn.models", None)  # as if ctnn-models were not installed
    assert main(["codes", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "c.npy")]) == 2
    assert (
        "ctnn-quant: error: codes needs the torch extra: pip install 'ctnn-quant[torch]'"
        in capsys.readouterr().err
    )
    assert main(["quantize", str(tmp_path / "m.safetensors"), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "quantize needs the torch extra" in capsys.readouterr().err
