"""Variable-length (right-NaN-padded) sequences: a reserved input code holds the state, exactly everywhere."""

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch", reason="the padding tests need the ctnn-quant[torch] extra")

from ctnn.models import build_classifier, load_dataset, train_classifier  # noqa: E402
from ctnn.quant import QATModel, ReferenceInterpreter, check_model, quantize_sequence_classifier  # noqa: E402

CASES = {  # name: (family, model options, quantizer options)
    "lipschitz_rnn": ("lipschitz_rnn", dict(eps=0.2), dict(state_bits=16)),
    "ctrnn_rk4": ("ctrnn", dict(solver="rk4"), {}),
    "ltc": ("ltc", dict(ode_unfolds=2), {}),
    "ltc_euler": ("ltc", dict(ode_unfolds=6, solver="explicit_euler"), {}),
    "lem": ("lem", {}, {}),
    "lstm": ("lstm", {}, dict(state_bits=16)),
    "gru": ("gru", {}, {}),
}


@pytest.fixture(scope="module")
def vowels():
    data = load_dataset("japanese_vowels", seed=0)
    assert data.summary()["variable_length"]
    return data


def _model(case, data):
    family, opts, _ = CASES[case]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return build_classifier(family, data, units=8, **opts)


def _random_padded_codes(q, n, seed):
    """Random codes in the input range, each sequence padded (pad code, then anything) after a random length."""
    T, F = q.hyperparameters["steps"], q.hyperparameters["in_features"]
    rng = np.random.default_rng(seed)
    codes = rng.integers(q.input.lo, q.input.hi + 1, size=(n, T, F))
    lengths = rng.integers(1, T + 1, size=n)
    pad_rows = np.arange(T)[None, :] >= lengths[:, None]
    codes[:, :, 0][pad_rows] = q.hyperparameters["pad_code"]  # only the first code marks a padded step
    return codes.reshape(n, T * F).astype(q.input.dtype), pad_rows


@pytest.mark.parametrize("case", list(CASES))
def test_padded_sequences_are_exact(vowels, case):
    model = _model(case, vowels)
    q = quantize_sequence_classifier(model, vowels.X_train, weight_bits=6, act_bits=8, **CASES[case][2])
    pad = q.hyperparameters["pad_code"]
    assert pad == -128 and q.input.lo == -127 and q.hyperparameters["steps"] == 29
    onnx_model = q.to_onnx()
    check_model(onnx_model)
    assert {"Equal", "Where"} <= {n.op_type for n in onnx_model.graph.node}
    X = np.concatenate([vowels.X_train, vowels.X_val, vowels.X_test]).astype(np.float64)  # 640 real sequences
    real = q.quantize_input(X)
    steps = real.reshape(len(X), 29, 12)
    np.testing.assert_array_equal(steps[:, :, 0] == pad, np.isnan(X.reshape(len(X), 29, 12)).all(axis=2))
    rand, _ = _random_padded_codes(q, 1000, seed=len(case))
    sess = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = ReferenceInterpreter(onnx_model)
    for codes in (rand, real):
        expected = ref.run({"x": codes})["y"]
        np.testing.assert_array_equal(sess.run(None, {"x": codes})[0], expected)
        np.testing.assert_array_equal(q.forward_codes(codes), expected)
        assert len(np.unique(expected)) > 3


@pytest.mark.parametrize("case", ["lem", "ltc", "gru"])
def test_padded_steps_leave_the_state_unchanged(vowels, case):
    """Whatever follows the pad code in a padded step, and whatever follows a padded step, changes nothing."""
    q = quantize_sequence_classifier(_model(case, vowels), vowels.X_train, weight_bits=8, act_bits=8)
    codes, pad_rows = _random_padded_codes(q, 300, seed=7)
    other = codes.reshape(300, 29, 12).copy()
    noise = np.random.default_rng(8).integers(q.input.lo, q.input.hi + 1, size=other.shape)
    other[pad_rows] = noise[pad_rows]  # every code of the padded rows ...
    other[:, :, 0][pad_rows] = q.hyperparameters["pad_code"]  # ... but the marker
    np.testing.assert_array_equal(q.forward_codes(other.reshape(300, -1)), q.forward_codes(codes))
    # and a sequence padded after its length L answers as the same L steps followed by more padding
    cut = codes.reshape(300, 29, 12).copy()
    cut[:, 20:, 0] = q.hyperparameters["pad_code"]
    shorter = cut.copy()
    shorter[:, 15:, 0] = q.hyperparameters["pad_code"]
    assert not np.array_equal(
        q.forward_codes(cut.reshape(300, -1)), q.forward_codes(shorter.reshape(300, -1))
    )


@pytest.mark.parametrize("case", ["lipschitz_rnn", "lem", "lstm"])
def test_qat_on_padded_sequences_equals_onnxruntime(vowels, case, qat_steps):
    model = _model(case, vowels)
    opts = dict(weight_bits=4, act_bits=8, **CASES[case][2])
    qat = QATModel(model, vowels.X_train[:128], **opts)
    qat_steps(qat, model, vowels.X_train, vowels.y_train, steps=2)
    q = qat.quantized()
    X = np.asarray(vowels.X_test, np.float64)
    sess = ort.InferenceSession(q.to_onnx().SerializeToString(), providers=["CPUExecutionProvider"])
    ort_codes = sess.run(None, {"x": q.quantize_input(X)})[0].astype(np.int64)
    logits = qat(X)
    np.testing.assert_array_equal(torch.round(logits.double() / q.output.scale).long().numpy(), ort_codes)
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.dim() == 2]
    assert grads and all(g is not None for g in grads)


def test_padding_errors(vowels):
    model = _model("gru", vowels)
    x = np.array(vowels.X_train[:8], np.float64)
    x[3, :12] = np.nan  # a sequence whose first step is padding
    with pytest.raises(ValueError, match="a sequence has no valid step"):
        quantize_sequence_classifier(model, x)


def test_trained_model_keeps_its_accuracy(vowels):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_classifier("gru", vowels, units=16)
    train_classifier(
        model, vowels, epochs=15, lr=5e-3, batch_size=32, seed=0, progress=False, clip_grad_norm=1.0
    )
    from ctnn.models import accuracy

    float_acc = accuracy(model, vowels.X_test, vowels.y_test)
    q = quantize_sequence_classifier(model, vowels.X_train, weight_bits=8, act_bits=8)
    int_acc = float((q.predict(vowels.X_test) == vowels.y_test).mean())
    assert float_acc > 0.85 and int_acc >= float_acc - 0.02, (float_acc, int_acc)


@pytest.mark.parametrize("case", ["lipschitz_rnn", "ctrnn_rk4", "ltc", "lem", "lstm", "gru"])
def test_calibration_simulation_holds_padded_steps(vowels, case):
    """The numpy float step the scales are calibrated on reads each sequence at its last valid step, as the model."""
    from ctnn.quant import _gated_ptq, _lem_ptq, _ltc_ptq, _recurrent_ptq

    model = _model(case, vowels)
    family = CASES[case][0]
    x = np.asarray(vowels.X_test[:64], np.float64).reshape(64, 29, 12)
    valid = np.cumsum(np.isnan(x).all(axis=2), axis=1) == 0
    assert not valid.all()  # some sequences are padded
    xz = np.nan_to_num(x)
    if family in ("lstm", "gru"):
        sim = _gated_ptq._simulate(family, _gated_ptq._params(model), xz, valid)
    else:
        mod, params = {"ltc": (_ltc_ptq, "_ltc_params"), "lem": (_lem_ptq, "_lem_params")}.get(
            family, (_recurrent_ptq, "_float_params")
        )
        sim = mod._simulate(getattr(mod, params)(model), xz, valid)
    logits = sim["logits"] if family == "lem" else sim["y"]
    with torch.no_grad():
        ref = model(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    np.testing.assert_allclose(logits, ref, atol=2e-4, rtol=1e-4)
