"""Import of onnxruntime QDQ models (quantize_static on a torch-trained MLP) into the integer dialect."""

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

torch = pytest.importorskip("torch", reason="training the float MLP needs torch")
quantization = pytest.importorskip(
    "onnxruntime.quantization", reason="needs onnxruntime's quantization tools"
)

from ctnn.models import MLP, load_dataset, train_classifier  # noqa: E402
from ctnn.quant import QDQImportError, ReferenceInterpreter, check_model, export_onnx, import_qdq  # noqa: E402
from ctnn.quant._qdq import float32_multiplier  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def float_onnx(digits, tmp_path_factory):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = MLP([64, 32, 16, 10])
    train_classifier(model, digits, epochs=6, lr=1e-2, seed=0, progress=False)
    model.eval()
    path = tmp_path_factory.mktemp("qdq") / "float.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, 64), str(path), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, dynamo=False)  # fmt: skip
    return path


class _Reader(quantization.CalibrationDataReader):
    def __init__(self, X):
        self.it = iter([{"x": X[i : i + 1].astype(np.float32)} for i in range(len(X))])

    def get_next(self):
        return next(self.it, None)


def _qdq(float_path, digits, tmp_path, act, per_channel):
    out = tmp_path / f"qdq_{act}_{per_channel}.onnx"
    quantization.quantize_static(
        str(float_path), str(out), _Reader(digits.X_train[:200]), quant_format=quantization.QuantFormat.QDQ,
        activation_type=act, weight_type=quantization.QuantType.QInt8, per_channel=per_channel,
    )  # fmt: skip
    return out


def _ort_codes(path, X):
    """onnxruntime on the QDQ model, returning the code tensor after every QuantizeLinear."""
    m = onnx.load(str(path))
    qs = [n for n in m.graph.node if n.op_type == "QuantizeLinear"]
    m.graph.output.extend([helper.make_value_info(n.output[0], onnx.TypeProto()) for n in qs])
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return [c.astype(np.int64) for c in sess.run(None, {"x": X.astype(np.float32)})[1:]]


@pytest.mark.parametrize(
    "act,per_channel", [(quantization.QuantType.QInt8, False), (quantization.QuantType.QUInt8, True)]
)
def test_qdq_import_matches_onnxruntime(float_onnx, digits, tmp_path, act, per_channel):
    path = _qdq(float_onnx, digits, tmp_path, act, per_channel)
    q = import_qdq(path)
    out = export_onnx(q, tmp_path / "int.onnx", dataset="digits")
    summary = check_model(onnx.load(str(out)))
    assert "QuantizeLinear" not in summary.op_counts and "Gemm" not in summary.op_counts

    X = np.concatenate([digits.X_test, digits.X_val, digits.X_train])  # 1797 real inputs
    codes = _ort_codes(path, X)  # input codes, hidden codes…, output codes
    off, zp_y = q.hyperparameters["input_code_offset"], q.hyperparameters["output_zero_point"]
    x = codes[0] - off

    # the converted graph: numpy reference == onnxruntime, bit for bit
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    y_int = sess.run(None, {"x": x.astype(q.input.dtype)})[0].astype(np.int64)
    np.testing.assert_array_equal(ReferenceInterpreter(str(out)).run({"x": x})["y"], y_int)

    # against onnxruntime on the QDQ model: equal, except the documented float32 rounding cases
    diff = y_int + zp_y - codes[-1]
    assert np.abs(diff).max() <= 1
    assert (diff == 0).all(axis=1).mean() >= 0.99
    # layer by layer, from onnxruntime's own input codes: every mismatch is a product acc·r that
    # lies within float32 rounding (relative 2**-24) of a half-integer
    a = x
    n_mismatch = 0
    for L, zp, ort_out in zip(q.net.layers, q.hyperparameters["layer_zero_points"], codes[1:], strict=True):
        acc = a @ L.weight.astype(np.int64) + L.bias.astype(np.int64)
        exact = acc * (L.multiplier / np.exp2(L.shift))
        ours = np.clip(np.sign(exact) * np.floor(np.abs(exact) + 0.5), L.lo, L.hi).astype(np.int64)
        bad = ours + zp != ort_out
        n_mismatch += int(bad.sum())
        frac = np.abs(exact[bad]) - np.floor(np.abs(exact[bad]))
        assert np.all(np.abs(frac - 0.5) <= np.abs(exact[bad]) * 2.0**-23), exact[bad]
        a = ort_out - zp  # onnxruntime's codes, relative to their zero point
    assert n_mismatch <= 0.001 * x.shape[0] * sum(L.weight.shape[1] for L in q.net.layers)

    # accuracy equals the QDQ model's up to those cases
    acc_int = (np.argmax(y_int, 1) == np.concatenate([digits.y_test, digits.y_val, digits.y_train])).mean()
    acc_ort = (
        np.argmax(codes[-1], 1) == np.concatenate([digits.y_test, digits.y_val, digits.y_train])
    ).mean()
    assert abs(acc_int - acc_ort) <= 0.002 and acc_int > 0.8


def test_float32_multiplier_is_exact():
    rng = np.random.default_rng(0)
    for r in rng.uniform(1e-6, 10.0, 500).astype(np.float32):
        m, s = float32_multiplier(r)
        assert m < 2**24 and s >= 0 and m / 2.0**s == float(r)


def test_qdq_import_refuses_what_is_not_exact(float_onnx, digits, tmp_path):
    with pytest.raises(QDQImportError, match="Gemm.*must go straight into a QuantizeLinear"):
        import_qdq(float_onnx)  # a float model
    path = _qdq(float_onnx, digits, tmp_path, quantization.QuantType.QInt8, False)
    m = onnx.load(str(path))
    # a Sigmoid between a Gemm and its QuantizeLinear
    gemm = next(n for n in m.graph.node if n.op_type == "Gemm")
    old = gemm.output[0]
    gemm.output[0] = old + "_pre"
    m.graph.node.append(helper.make_node("Sigmoid", [old + "_pre"], [old], name="my_sigmoid"))
    with pytest.raises(QDQImportError, match="'my_sigmoid' \\(Sigmoid\\)"):
        import_qdq(m)
    # a bias stored in another scale than input scale × weight scale
    m = onnx.load(str(path))
    for t in m.graph.initializer:
        if t.name.endswith("bias_quantized_scale"):
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t) * np.float32(1.5), t.name))
            break
    with pytest.raises(QDQImportError, match="not stored in the accumulator's scale"):
        import_qdq(m)
