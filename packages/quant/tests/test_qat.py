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
def test_qat_forward_equals_onnxruntime(family, digits, tmp_path, qat_steps):
    model = _trained(family, digits)
    bits, act_bits = (4, 6) if family != "ltc" else (5, 6)
    opts = dict(
        weight_bits=bits, act_bits=act_bits, input_range=digits.value_range if family == "mlp" else None
    )
    qat = QATModel(model, digits.X_train[:128], **opts)  # ranges calibrated once, here
    start = qat.quantized()
    qat_steps(
        qat, model, digits.X_train, digits.y_train, steps=3
    )  # the weights move, the frozen scales do not
    q = qat.quantized()
    assert q.output.scale == start.output.scale and q.input.scale == start.input.scale
    assert q.to_onnx().SerializeToString() != start.to_onnx().SerializeToString()  # the weight codes moved
    path = export_onnx(q, tmp_path / f"{family}.onnx", dataset="digits")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    # the same recorded ranges rebuild the same quantizer: the same graph
    again = QATModel(model, digits.X_train[:128], ranges=qat.ranges, **opts)
    assert again.quantized().to_onnx().SerializeToString() == q.to_onnx().SerializeToString()

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


def test_qat_finetune_exports_what_it_trained(digits, tmp_path):
    """Unfrozen ranges: a fresh QATModel on the fine-tuned weights re-calibrates to the same graph."""
    model = _trained("lem", digits)
    q = qat_finetune(
        model, digits, bits=4, act_bits=6, epochs=1, lr=2e-3, calib_size=128, freeze_ranges=False
    )
    assert q.hyperparameters["qat"]["freeze_ranges"] is False
    qat = QATModel(model, digits.X_train[:128], freeze_ranges=False, weight_bits=4, act_bits=6)
    assert qat.quantized().to_onnx().SerializeToString() == q.to_onnx().SerializeToString()
    sess = ort.InferenceSession(
        export_onnx(q, tmp_path / "lem.onnx").as_posix(), providers=["CPUExecutionProvider"]
    )
    X = np.asarray(digits.X_test[:200], np.float64)
    np.testing.assert_array_equal(qat.codes(X), sess.run(None, {"x": q.quantize_input(X)})[0])


def test_frozen_ranges_replay_checks_the_call_order(digits):
    from ctnn.quant import FrozenRanges, absmax, quantize_weight

    fr = FrozenRanges()
    with fr.record():
        absmax(np.array([1.0, -3.0]))
        quantize_weight(np.array([[0.5, -1.0]]), 4)
    with fr.replay():  # replayed without looking at the values
        assert absmax(np.array([100.0])) == 3.0
        codes, s = quantize_weight(np.array([[2.0, -1.0]]), 4)
        np.testing.assert_array_equal(codes, [[7, -7]])  # clipped to the recorded scale 1/7
    with pytest.raises(RuntimeError, match="call 0 asks for 'weight_scale', recorded 'absmax'"):
        with fr.replay():
            quantize_weight(np.array([[0.5, -1.0]]), 4)
    with pytest.raises(RuntimeError, match="1 recorded ranges were not used"):
        with fr.replay():
            absmax(np.array([1.0]))


def test_qat_improves_on_ptq_at_4_bits(digits):
    model = _trained("lipschitz_rnn", digits, epochs=6)
    ptq = quantize_model(model, digits.X_train[:256], weight_bits=4, act_bits=8)
    ptq_acc = float((ptq.predict(digits.X_test) == digits.y_test).mean())
    q = qat_finetune(model, digits, bits=4, act_bits=8, epochs=2, lr=1e-3)
    qat_acc = float((q.predict(digits.X_test) == digits.y_test).mean())
    hist = q.hyperparameters["qat"]["val_accuracy"]
    assert max(hist) >= hist[0]
    assert qat_acc >= ptq_acc + 0.03, (ptq_acc, qat_acc)  # 82.2 -> 86.1 here


def test_qat_rejects_bad_input(digits):
    model = _trained("mlp", digits, epochs=1)
    with pytest.raises(ValueError, match="weight bit-width must be in 2..16, got 1"):
        qat_finetune(model, digits, bits=1, epochs=0)
    for lr in (0.0, -1e-3, float("nan")):
        with pytest.raises(ValueError, match=f"the QAT learning rate must be > 0, got {lr}"):
            qat_finetune(model, digits, bits=4, epochs=1, lr=lr)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        qat_finetune(model, digits, bits=4, epochs=1, batch_size=0)
    with pytest.raises(ValueError, match=r"calibration data must have shape \[N, 64\]"):
        QATModel(model, np.zeros((4, 63)), weight_bits=4)
    with pytest.raises(UnsupportedFamilyError, match="Sequential is not a ctnn-models classifier"):
        QATModel(torch.nn.Sequential(torch.nn.Linear(64, 10)), digits.X_train[:8], weight_bits=4)


def test_qat_selects_by_validation_loss(digits):
    model = _trained("mlp", digits, epochs=1)
    q = qat_finetune(model, digits, bits=3, act_bits=8, epochs=3, lr=5e-3, select_by="loss")
    hp = q.hyperparameters["qat"]
    losses = hp["val_loss"]
    assert hp["select_by"] == "loss" and len(losses) == 4
    assert hp["best_epoch"] == int(np.argmin(losses))  # the PTQ start is epoch 0
    with pytest.raises(ValueError, match="select_by must be 'accuracy' or 'loss', got 'f1'"):
        qat_finetune(model, digits, bits=3, epochs=0, select_by="f1")
    with pytest.raises(ValueError, match="select_on must be 'val' or 'train\\+val', got 'test'"):
        qat_finetune(model, digits, bits=3, epochs=0, select_on="test")
