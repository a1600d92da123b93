"""PTQ of recurrent sequence classifiers (Lipschitz RNN, CT-RNN, LTC, LEM) to unrolled integer graphs, exact in ORT."""

import json

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch", reason="the PTQ tests need the ctnn-quant[torch] extra")

from ctnn.models import accuracy, build_classifier, load_dataset, train_classifier  # noqa: E402
from ctnn.quant import (  # noqa: E402
    BitWidthError,
    IntegerLEM,
    IntegerLTC,
    IntegerRecurrent,
    ReferenceInterpreter,
    check_model,
    export_onnx,
    quantize_sequence_classifier,
    read_sidecar,
)
from ctnn.quant._ltc_int import ltc_round_div  # noqa: E402

FAMILIES = {
    "lipschitz_rnn": dict(eps=0.2, gamma_a=0.1, gamma_w=0.1),
    "ctrnn": dict(ode_unfolds=2),
    "ltc": dict(ode_unfolds=3),
    "lem": dict(dt=1.0),
}
ACCURACIES: dict = {}  # filled by the tests, printed at the end (pytest -s)


def _train(family, data, units=None, epochs=8, **opts):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    units = units or (16 if family == "ltc" else 32)
    model = build_classifier(family, data, units=units, **FAMILIES[family], **opts)
    train_classifier(model, data, epochs=epochs, lr=1e-2, seed=0, progress=False)
    return model


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def trained(digits):
    return {f: _train(f, digits, epochs=15 if f == "ltc" else 8) for f in FAMILIES}


def check_model_and_load(path):
    import onnx

    model = onnx.load(str(path))
    summary = check_model(model)
    assert summary.op_counts["Gather"] > 0 and summary.op_counts["Slice"] > 0
    return model


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("bits", [8, 6])
def test_recurrent_export_is_exact(trained, digits, family, bits, tmp_path, assert_exact):
    model = trained[family]
    q = quantize_sequence_classifier(model, digits.X_train, weight_bits=bits, act_bits=bits,
                                     input_range=digits.value_range)  # fmt: skip
    assert isinstance(q.net, {"ltc": IntegerLTC, "lem": IntegerLEM}.get(family, IntegerRecurrent))
    assert q.net.steps == 8 and q.net.in_features == 8
    float_acc = accuracy(model, digits.X_test, digits.y_test)
    int_acc = float((q.predict(digits.X_test) == digits.y_test).mean())
    ACCURACIES[(family, "digits", bits)] = (float_acc, int_acc)
    path = export_onnx(q, tmp_path / f"{family}{bits}.onnx", dataset="digits",
                       metrics={"float_test_accuracy": float_acc, "int_test_accuracy": int_acc})  # fmt: skip
    real_codes = q.quantize_input(digits.X_test)
    assert real_codes.shape == (len(digits.X_test), 64) and len(real_codes) >= 300
    assert_exact(q, check_model_and_load(path), real_codes, seed=bits)
    # [N, T, F] inputs give the same codes and the same answers
    np.testing.assert_array_equal(q.forward_codes(real_codes.reshape(-1, 8, 8)), q.forward_codes(real_codes))
    sc = read_sidecar(path)
    assert sc.family == family and sc.weight_bits == bits and sc.act_bits == bits
    assert sc.hyperparameters["steps"] == 8 and sc.input.shape == [None, 64]
    assert json.loads(path.with_suffix(".json").read_text())["metrics"]["int_test_accuracy"] == int_acc
    assert float_acc > 0.75
    if bits == 8:
        assert int_acc >= float_acc - 0.06 and int_acc > 0.7  # chance is 0.1
    else:
        assert int_acc > 0.6
    w = q.net.head.weight if family == "ltc" else (q.net.Wz if family == "lem" else q.net.W)
    assert w.min() >= -(2 ** (bits - 1)) and w.max() <= 2 ** (bits - 1) - 1
    if family == "ltc":  # the fused step's denominator is positive by construction
        assert q.net.cd.min() >= 1 and q.net.rec_den.min() >= 0 and q.net.sen_den.min() >= 0


@pytest.mark.parametrize("family", ["ctrnn", "ltc"])
def test_italy_power_demand(family, tmp_path, assert_exact):
    data = load_dataset("italy_power_demand", seed=0)
    model = _train(family, data, units=16 if family == "ctrnn" else 8, epochs=30)
    float_acc = accuracy(model, data.X_test, data.y_test)
    for bits in (8, 6):
        q = quantize_sequence_classifier(model, data.X_train, weight_bits=bits, act_bits=bits)
        assert q.net.steps == 24 and q.net.in_features == 1
        int_acc = float((q.predict(data.X_test) == data.y_test).mean())
        ACCURACIES[(family, "italy_power_demand", bits)] = (float_acc, int_acc)
        path = export_onnx(q, tmp_path / f"ipd{bits}.onnx", dataset="italy_power_demand")
        real = q.quantize_input(data.X_test)
        assert len(real) >= 300
        assert_exact(q, check_model_and_load(path), real, seed=100 + bits)
        if bits == 8:
            assert int_acc > 0.7 and int_acc >= float_acc - 0.06, (float_acc, int_acc)  # chance is 0.5


def test_bad_inputs_are_clear_errors(trained, digits):
    model = trained["ctrnn"]
    with pytest.raises(BitWidthError, match="weight bit-width must be in 2..16, got 17"):
        quantize_sequence_classifier(model, digits.X_train, weight_bits=17)
    with pytest.raises(BitWidthError, match="activation bit-width must be in 2..16, got 1"):
        quantize_sequence_classifier(model, digits.X_train, act_bits=1)
    with pytest.raises(
        ValueError, match=r"calibration data must have shape \[N, T·8\] or \[N, T, 8\], got \[10, 63\]"
    ):
        quantize_sequence_classifier(model, np.zeros((10, 63)))
    with pytest.raises(ValueError, match=r"must have shape \[N, 48\] or \[N, 6, 8\], got \[10, 64\]"):
        quantize_sequence_classifier(model, np.zeros((10, 64)), steps=6)
    nan = digits.X_train[:10].copy()
    nan[:, -8:] = (
        np.nan
    )  # right padding is a shorter sequence (see test_padding.py); an empty one is an error
    assert quantize_sequence_classifier(model, nan).hyperparameters["pad_code"] == -128
    nan[3, :8] = np.nan
    with pytest.raises(ValueError, match="a sequence has no valid step"):
        quantize_sequence_classifier(model, nan)
    with pytest.raises(ValueError, match="weight_clip"):
        quantize_sequence_classifier(model, digits.X_train, weight_clip="max")
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        quantize_sequence_classifier(model, digits.X_train, nonlinearity="spline")
    with pytest.raises(ValueError, match="calibration must be one of"):
        quantize_sequence_classifier(model, digits.X_train, calibration="kl")
    torch.manual_seed(0)
    with pytest.raises(TypeError, match="got Linear"):
        quantize_sequence_classifier(torch.nn.Linear(8, 2), digits.X_train)
    ltc = build_classifier("ltc", digits, units=4)
    with pytest.raises(ValueError, match="nonlinearity='pwl' is not available for the LTC"):
        quantize_sequence_classifier(ltc, digits.X_train[:20], nonlinearity="pwl")
    with pytest.raises(ValueError, match="integer LEM needs dt <= 1"):
        quantize_sequence_classifier(build_classifier("lem", digits, units=4, dt=2.0), digits.X_train)
    q = quantize_sequence_classifier(model, digits.X_train[:50], input_range=digits.value_range)
    with pytest.raises(ValueError, match=r"input codes must be \[N, 64\] or \[N, 8, 8\]"):
        q.forward_codes(np.zeros((3, 63), np.int8))
    # 16-bit codes: accumulators that could leave int32 are int64 MatMuls (see test_wide.py for the refusals)
    q16 = quantize_sequence_classifier(model, digits.X_train[:50], weight_bits=16, act_bits=16)
    assert any(n.op_type == "Cast" and n.attribute[0].i == 7 and n.output[0].startswith("W/")
               for n in q16.to_onnx().graph.node)  # fmt: skip


def test_fused_division_rounds_half_away_from_zero():
    rng = np.random.default_rng(0)
    num = rng.integers(-(10**6), 10**6, size=5000)
    den = rng.integers(1, 10**4, size=5000)
    for m, s in ((1, 0), (3, 1), (21135, 7)):
        exact = num.astype(object) * m
        got = ltc_round_div(num, den, m, s)
        q = den.astype(object) * 2**s
        want = [(abs(a) * 2 + b) // (2 * b) * (1 if a >= 0 else -1) for a, b in zip(exact, q)]
        np.testing.assert_array_equal(got, np.array(want, np.int64))
    assert ltc_round_div(np.array([5, -5, 3, -3]), np.array([2, 2, 2, 2]), 1, 0).tolist() == [3, -3, 2, -2]


def test_report_accuracies():
    """Print float vs integer accuracies collected above (run with -s to see them)."""
    for key, (f, i) in sorted(ACCURACIES.items()):
        print(f"{key}: float {f:.3f}  int {i:.3f}")


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("wb,ab,ib", [(10, 10, 10), (4, 6, 8), (8, 4, 6)])
def test_other_bit_widths_are_exact(trained, digits, family, wb, ab, ib):
    """Wider than 8 bits takes the Cast + MatMul(int32) path and int16 containers; narrower ones too."""
    q = quantize_sequence_classifier(
        trained[family],
        digits.X_train,
        weight_bits=wb,
        act_bits=ab,
        in_bits=ib,
        input_range=digits.value_range,
    )
    model = q.to_onnx()
    check_model(model)
    ops = {n.op_type for n in model.graph.node}
    assert ("MatMul" in ops) == (wb > 8 or ab > 8 or ib > 8)
    lo, hi = q.input.lo, q.input.hi
    codes = np.random.default_rng(wb * ab).integers(lo, hi + 1, size=(1000, 64)).astype(q.input.dtype)
    codes = np.concatenate([codes, q.quantize_input(digits.X_test)])
    ref = ReferenceInterpreter(model).run({"x": codes})["y"]
    got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": codes}
    )[0]
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(q.forward_codes(codes), ref)
    assert ref.min() >= -(2 ** (ab - 1)) and ref.max() <= 2 ** (ab - 1) - 1


@pytest.mark.parametrize("family", list(FAMILIES))
def test_float_simulation_matches_the_model(trained, digits, family):
    """The numpy float step the scales are calibrated on is the model (input norm and mappings folded)."""
    from ctnn.quant import _lem_ptq, _ltc_ptq, _recurrent_ptq

    model = trained[family]
    x = digits.X_test[:64].astype(np.float64)
    mod, params = {"ltc": (_ltc_ptq, "_ltc_params"), "lem": (_lem_ptq, "_lem_params")}.get(
        family, (_recurrent_ptq, "_float_params")
    )
    sim = mod._simulate(getattr(mod, params)(model), x.reshape(len(x), 8, 8))
    logits = sim["logits"] if family == "lem" else sim["y"]
    with torch.no_grad():
        ref = model(torch.as_tensor(x, dtype=torch.float64).float()).double().numpy()
    np.testing.assert_allclose(logits, ref, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("family,solver", [("lipschitz_rnn", "euler"), ("lipschitz_rnn", "rk2"),
                                           ("ctrnn", "euler"), ("ctrnn", "rk4"), ("lstm", None), ("gru", None)])  # fmt: skip
@pytest.mark.parametrize("wb,ab,sb", [(8, 8, 16), (4, 6, 12)])
def test_wide_state_is_exact(digits, family, solver, wb, ab, sb):
    """A ``state_bits`` accumulator with an ``act_bits`` view: reference == onnxruntime == numpy, bit for bit."""
    torch.manual_seed(1)
    opts = dict(solver=solver, **FAMILIES[family]) if solver else {}
    model = build_classifier(family, digits, units=16, **opts)
    q = quantize_sequence_classifier(model, digits.X_train[:200], weight_bits=wb, act_bits=ab, state_bits=sb,
                                     input_range=digits.value_range)  # fmt: skip
    assert q.net.state_bits == sb and q.hyperparameters["state_bits"] == sb
    onnx_model = q.to_onnx()
    check_model(onnx_model)
    if ab == 8 and wb == 8:  # the matmuls read the 8-bit view: still int8 x int8
        assert {n.op_type for n in onnx_model.graph.node} >= {"MatMulInteger"}
    codes = (
        np.random.default_rng(sb).integers(q.input.lo, q.input.hi + 1, size=(1000, 64)).astype(q.input.dtype)
    )
    codes = np.concatenate([codes, q.quantize_input(digits.X_test)])
    ref = ReferenceInterpreter(onnx_model).run({"x": codes}, keep=True)
    got = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": codes}
    )[0]
    np.testing.assert_array_equal(got, ref["y"])
    np.testing.assert_array_equal(q.forward_codes(codes), ref["y"])
    assert len(np.unique(ref["y"])) > 3
    if family in ("lstm", "gru"):  # the wide state is the cell state (LSTM) or h (GRU): int16 containers
        stored = [n.output[0] for n in onnx_model.graph.node if n.op_type == "Cast" and n.attribute[0].i == 5]
        assert stored, "no int16 state in the graph"
        return
    h = ref["t7u0/h" if family == "lipschitz_rnn" else "t7u1/h"]
    assert h.dtype == np.int16 and np.abs(h).max() > 2 ** (ab - 1)  # the state uses its wider range


def test_wide_state_keeps_small_euler_steps():
    """Lipschitz RNN (ε = 0.03) on BasicMotions (T = 100): an 8-bit state rounds the increments away."""
    data = load_dataset("basic_motions", seed=0)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_classifier("lipschitz_rnn", data, units=32)
    train_classifier(model, data, epochs=60, lr=5e-3, batch_size=16, seed=0, patience=None, progress=False,
                     clip_grad_norm=1.0)  # fmt: skip
    float_acc = accuracy(model, data.X_test, data.y_test)
    accs = {}
    for sb in (8, 16):
        q = quantize_sequence_classifier(model, data.X_train, weight_bits=8, act_bits=8, state_bits=sb)
        accs[sb] = float((q.predict(data.X_test) == data.y_test).mean())
    ACCURACIES[("lipschitz_rnn", "basic_motions", "state 8 / 16")] = (float_acc, accs[16])
    assert float_acc >= 0.7, float_acc
    assert accs[16] >= float_acc - 0.05, (float_acc, accs)
    assert accs[8] <= accs[16] - 0.2, accs  # the failure the wide state fixes


def test_state_bits_errors(trained, digits):
    with pytest.raises(ValueError, match=r"state_bits \(6\) must be >= act_bits \(8\)"):
        quantize_sequence_classifier(trained["ctrnn"], digits.X_train[:20], state_bits=6)
    with pytest.raises(BitWidthError, match="state bit-width must be in 2..16, got 20"):
        quantize_sequence_classifier(trained["ctrnn"], digits.X_train[:20], state_bits=20)
    with pytest.raises(
        ValueError, match="state_bits applies to the lipschitz_rnn, ctrnn, lstm, gru families, not .lem."
    ):
        quantize_sequence_classifier(trained["lem"], digits.X_train[:20], state_bits=16)
