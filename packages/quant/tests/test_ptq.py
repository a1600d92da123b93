"""Post-training quantization of a trained digits MLP, exported and checked in onnxruntime."""

import json

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch", reason="the PTQ tests need the ctnn-quant[torch] extra")

from ctnn.models import MLP, accuracy, load_dataset, train_classifier  # noqa: E402
from ctnn.quant import BitWidthError, ReferenceInterpreter, export_onnx, quantize_mlp, read_sidecar  # noqa: E402


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)  # many small ops: two threads on two busy cores is erratic
    torch.manual_seed(0)
    data = load_dataset("digits", seed=0)
    mlp = MLP([64, 32, 10])
    train_classifier(mlp, data, epochs=40, seed=0, progress=False)
    return mlp, data


@pytest.mark.parametrize("bits", [4, 6, 8])
def test_ptq_export_is_exact_in_onnxruntime(trained, bits, tmp_path):
    mlp, data = trained
    q = quantize_mlp(mlp, data.X_train, weight_bits=bits, act_bits=bits, input_range=data.value_range)
    path = export_onnx(q, tmp_path / f"m{bits}.onnx", dataset="digits", metrics={"x": 1.0})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref = ReferenceInterpreter(path)
    rng = np.random.default_rng(bits)
    random_codes = rng.integers(-128, 128, size=(1000, 64)).astype(np.int8)
    real_codes = q.quantize_input(data.X_test)
    for codes in (random_codes, real_codes):
        expected = ref.run({"x": codes})["y"]
        np.testing.assert_array_equal(sess.run(None, {"x": codes})[0], expected)
        np.testing.assert_array_equal(q.forward_codes(codes), expected)
    sc = read_sidecar(path)
    assert sc.weight_bits == bits and sc.input.zero_point == -128 and sc.family == "mlp"
    assert json.loads(path.with_suffix(".json").read_text())["metrics"] == {"x": 1.0}
    # the weights really are b-bit codes
    w = q.net.layers[0].weight
    assert w.min() >= -(2 ** (bits - 1)) and w.max() <= 2 ** (bits - 1) - 1


def test_integer_accuracy_tracks_float(trained):
    mlp, data = trained
    float_acc = accuracy(mlp, data.X_test, data.y_test)
    acc = {}
    for bits in (8, 4):
        q = quantize_mlp(mlp, data.X_train, weight_bits=bits, act_bits=bits, input_range=data.value_range)
        acc[bits] = float((q.predict(data.X_test) == data.y_test).mean())
    assert acc[8] >= float_acc - 0.015
    assert acc[4] >= float_acc - 0.15  # 4-bit PTQ loses more; QAT comes later
    assert float_acc > 0.9


def test_per_channel_is_at_least_as_exact(trained):
    mlp, data = trained
    q = quantize_mlp(
        mlp, data.X_train, weight_bits=4, act_bits=8, per_channel=True, input_range=data.value_range
    )
    model = q.to_onnx()
    codes = q.quantize_input(data.X_test)
    np.testing.assert_array_equal(
        ReferenceInterpreter(model).run({"x": codes})["y"],
        ort.InferenceSession(model.SerializeToString()).run(None, {"x": codes})[0],
    )
    assert len(set(q.net.layers[0].multiplier.tolist())) > 1  # really one scale per channel


def test_bad_inputs_are_clear_errors(trained):
    mlp, data = trained
    with pytest.raises(BitWidthError, match="weight bit-width must be in 2..16, got 17"):
        quantize_mlp(mlp, data.X_train, weight_bits=17)
    with pytest.raises(ValueError, match=r"calibration data must have shape \[N, 64\], got \[10, 63\]"):
        quantize_mlp(mlp, np.zeros((10, 63)))
    with pytest.raises(TypeError, match="expects a ctnn.models.MLP"):
        quantize_mlp(torch.nn.Sequential(torch.nn.Linear(64, 10)), data.X_train)


def test_cli_quantize_and_check(trained, tmp_path, capsys):
    from ctnn.models import save_checkpoint
    from ctnn.quant._cli import main

    mlp, _ = trained
    save_checkpoint(mlp, tmp_path / "mlp.safetensors")
    assert (
        main(
            ["quantize", str(tmp_path / "mlp.safetensors"), "--bits", "6", "--out", str(tmp_path / "q.onnx")]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["int_test_accuracy"] > 0.85
    assert main(["check", str(tmp_path / "q.onnx")]) == 0
    text = capsys.readouterr().out
    assert "in the integer dialect" in text and "MatMulInteger×2" in text and "weight_bits=6" in text
    assert (
        main(
            ["quantize", str(tmp_path / "mlp.safetensors"), "--bits", "1", "--out", str(tmp_path / "b.onnx")]
        )
        == 2
    )
    assert "got 1" in capsys.readouterr().err
