"""QAT: the torch forward pass equals the exported graph in onnxruntime, bit for bit; QAT helps at 4 bits."""

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch", reason="the QAT tests need the ctnn-quant[torch] extra")

from ctnn.models import build_classifier, load_dataset, train_classifier  # noqa: E402
from ctnn.quant import (  # noqa: E402
    QATModel,
    UnsupportedFamilyError,
    export_onnx,
    qat_finetune,
    quantize_model,
)

FAMILIES = {
    "mlp": dict(hidden=[32]),
    "lipschitz_rnn": dict(eps=0.2, gamma_a=0.1, gamma_w=0.1, units=24),
    "ctrnn": dict(ode_unfolds=2, units=24),
    "ltc": dict(ode_unfolds=2, units=12),
    "lem": dict(units=24),
}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def _trained(family, data, epochs=4):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_classifier(family, data, **FAMILIES[family])
    train_classifier(model, data, epochs=epochs, lr=1e-2, seed=0, progress=False)
    return model


@pytest.mark.parametrize("family", list(FAMILIES))
def test_qat_forward_equals_onnxruntime(family, digits, tmp_path):
    model = _trained(family, digits)
    bits, act_bits = (4, 6) if family != "ltc" else (5, 6)
    q = qat_finetune(model, digits, bits=bits, act_bits=act_bits, epochs=1, lr=2e-3, calib_size=128)
    path = export_onnx(q, tmp_path / f"{family}.onnx", dataset="digits")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    # a fresh QAT model on the fine-tuned weights: same calibration, same options -> the same graph
    opts = dict(
        weight_bits=bits, act_bits=act_bits, input_range=digits.value_range if family == "mlp" else None
    )
    qat = QATModel(model, digits.X_train[:128], **opts)
    assert qat.quantized().to_onnx().SerializeToString() == q.to_onnx().SerializeToString()

    X = np.asarray(digits.X_test, np.float64)
    ort_codes = sess.run(None, {"x": q.quantize_input(X)})[0].astype(np.int64)
    logits = qat(torch.as_tensor(X, dtype=torch.float32))
    # the torch forward's values are exactly output_scale * codes
    torch_codes = torch.round(logits.double() / q.output.scale).long().numpy()
    np.testing.assert_array_equal(torch_codes, ort_codes)
    np.testing.assert_array_equal(qat.codes(X), ort_codes)
    assert len(np.unique(ort_codes)) > 3  # not a degenerate constant output

    # the straight-through estimator carries gradients to every trainable weight matrix
    model.zero_grad()
    torch.nn.functional.cross_entropy(logits, torch.as_tensor(digits.y_test)).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.dim() == 2]
    assert grads and all(g is not None and float(g.abs().sum()) > 0 for g in grads)


def test_qat_improves_on_ptq_at_4_bits(digits):
    model = _trained("lipschitz_rnn", digits, epochs=6)
    ptq = quantize_model(model, digits.X_train[:256], weight_bits=4, act_bits=8)
    ptq_acc = float((ptq.predict(digits.X_test) == digits.y_test).mean())
    q = qat_finetune(model, digits, bits=4, act_bits=8, epochs=2, lr=1e-3)
    qat_acc = float((q.predict(digits.X_test) == digits.y_test).mean())
    hist = q.hyperparameters["qat"]["val_accuracy"]
    assert max(hist) >= hist[0]
    assert qat_acc >= ptq_acc + 0.05, (ptq_acc, qat_acc)


def test_qat_rejects_bad_input(digits):
    model = _trained("mlp", digits, epochs=1)
    with pytest.raises(ValueError, match="weight bit-width must be in 2..16, got 1"):
        qat_finetune(model, digits, bits=1, epochs=0)
    with pytest.raises(ValueError, match=r"calibration data must have shape \[N, 64\]"):
        QATModel(model, np.zeros((4, 63)), weight_bits=4)
    with pytest.raises(UnsupportedFamilyError, match="Sequential is not a ctnn-models classifier"):
        QATModel(torch.nn.Sequential(torch.nn.Linear(64, 10)), digits.X_train[:8], weight_bits=4)
