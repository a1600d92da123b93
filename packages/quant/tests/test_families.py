"""Every family through one entry point: ContinuousNet (each scheme), LSTM, GRU and the other solvers.

Each export is checked bit for bit: numpy program == reference interpreter == onnxruntime,
on 1000 random input codes and on every real digits sample (1797).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PTQ tests need the ctnn-quant[torch] extra")

from ctnn.models import accuracy, build_classifier, load_dataset, train_classifier  # noqa: E402
from ctnn.quant import (  # noqa: E402
    BitWidthError,
    IntegerContinuousNet,
    IntegerGated,
    IntegerRecurrent,
    ReferenceInterpreter,
    UnsupportedFamilyError,
    check_model,
    export_onnx,
    quantize_model,
    read_sidecar,
    supported_families,
)

OPTIONS = {
    "continuous_net": dict(widths=[16, 12], n_basis=2, n_steps=2),
    "lstm": dict(units=16),
    "gru": dict(units=16),
    "lipschitz_rnn": dict(units=16, eps=0.2, gamma_a=0.1, gamma_w=0.1, solver="rk2"),
    "ctrnn": dict(units=16, ode_unfolds=2, solver="rk4"),
}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


@pytest.fixture(scope="module")
def real_x(digits):
    return np.concatenate([digits.X_train, digits.X_val, digits.X_test])


@pytest.fixture(scope="module")
def trained(digits):
    torch.set_num_threads(1)
    out = {}
    for family, opts in OPTIONS.items():
        torch.manual_seed(0)
        model = build_classifier(family, digits, **opts)
        train_classifier(model, digits, epochs=6, lr=1e-2, seed=0, progress=False)
        out[family] = model
    return out


def _exact(check, q, real_x, seed):
    """numpy program == reference == onnxruntime on 1000 random and all real codes; returns the model."""
    model = q.to_onnx()
    check_model(model)
    real = q.quantize_input(real_x)
    assert len(real) >= 1000
    check(q, model, real, seed)
    return model


@pytest.mark.parametrize("scheme", ["euler", "midpoint", "rk4"])
@pytest.mark.parametrize(
    "bits,act_bits,per_channel,nl", [(8, 8, False, "lut"), (4, 6, True, "pwl"), (16, 16, True, "lut")]
)
def test_continuous_net_each_scheme_is_exact(
    trained, digits, real_x, scheme, bits, act_bits, per_channel, nl, assert_exact
):
    model = trained["continuous_net"]
    q = quantize_model(model, digits.X_train, bits, act_bits, per_channel=per_channel, nonlinearity=nl,
                       input_range=digits.value_range, scheme=scheme)  # fmt: skip
    assert isinstance(q.net, IntegerContinuousNet) and q.hyperparameters["scheme"] == scheme
    graph = _exact(assert_exact, q, real_x, seed=bits)
    ops = {n.op_type for n in graph.graph.node}
    assert ("Gather" in ops) == (nl == "lut")
    evals = {"euler": 1, "midpoint": 2, "rk4": 4}[scheme] * 2 * 2  # per step x steps x stages
    n_rates = sum(1 for n in graph.graph.node if n.name.endswith("l2/mm/1") or "/l2/mm/" in n.name and
                  n.op_type in ("MatMul", "MatMulInteger"))  # fmt: skip
    assert n_rates == evals
    acc = float((q.predict(digits.X_test) == digits.y_test).mean())
    float_acc = accuracy(model, digits.X_test, digits.y_test)
    assert float_acc > 0.85
    assert acc >= float_acc - (0.03 if bits >= 8 else 0.08), (acc, float_acc)


@pytest.mark.parametrize("family", ["lstm", "gru"])
@pytest.mark.parametrize(
    "bits,act_bits,per_channel,nl", [(8, 8, False, "lut"), (6, 8, True, "pwl"), (3, 5, True, "lut")]
)
def test_gated_baselines_are_exact(
    trained, digits, real_x, family, bits, act_bits, per_channel, nl, assert_exact
):
    model = trained[family]
    q = quantize_model(model, digits.X_train, bits, act_bits, per_channel=per_channel, nonlinearity=nl,
                       input_range=digits.value_range)  # fmt: skip
    assert isinstance(q.net, IntegerGated) and q.family == family
    _exact(assert_exact, q, real_x, seed=bits + 7)
    acc = float((q.predict(digits.X_test) == digits.y_test).mean())
    float_acc = accuracy(model, digits.X_test, digits.y_test)
    assert float_acc > 0.8
    if bits >= 6:
        assert acc >= float_acc - 0.06, (acc, float_acc)
    else:
        assert acc > 0.3  # 3-bit weights: far above chance (0.1), exact all the same


@pytest.mark.parametrize("family,solver,nl", [("lipschitz_rnn", "midpoint", "lut"), ("lipschitz_rnn", "midpoint", "pwl"),
                                              ("ctrnn", "rk4", "lut")])  # fmt: skip
def test_other_solvers_are_exact(trained, digits, real_x, family, solver, nl, assert_exact):
    model = trained[family]
    q = quantize_model(model, digits.X_train, 8, 8, nonlinearity=nl, calibration="mse",
                       input_range=digits.value_range)  # fmt: skip
    assert isinstance(q.net, IntegerRecurrent) and q.net.solver == solver
    graph = _exact(assert_exact, q, real_x, seed=3)
    # the state of each unfold keeps its name (QAT reads it)
    names = {n.output[0] for n in graph.graph.node}
    assert "t7u0/h" in names
    acc = float((q.predict(digits.X_test) == digits.y_test).mean())
    assert acc >= accuracy(model, digits.X_test, digits.y_test) - 0.06


def test_one_entry_point_covers_every_family(digits, tmp_path):
    from ctnn.models import CLASSIFIERS

    assert set(CLASSIFIERS) <= set(supported_families())
    torch.manual_seed(0)
    for family in sorted(CLASSIFIERS):
        model = build_classifier(family, digits, units=4, widths=[6], hidden=[6], n_basis=1, n_steps=1,
                                 ode_unfolds=1)  # fmt: skip
        q = quantize_model(
            model, digits.X_train[:64], 6, 7, calibration="percentile", weight_clip="percentile"
        )
        assert q.family == family
        path = export_onnx(q, tmp_path / f"{family}.onnx", dataset="digits")
        sc = read_sidecar(path)
        assert sc.family == family and sc.weight_bits == 6 and sc.act_bits == 7
        codes = q.quantize_input(digits.X_test[:50])
        np.testing.assert_array_equal(
            ReferenceInterpreter(path).run({"x": codes})["y"], q.forward_codes(codes)
        )


def test_bad_input_is_a_clear_error(trained, digits):
    cn = trained["continuous_net"]
    with pytest.raises(UnsupportedFamilyError, match="Sequential is not a ctnn-models classifier"):
        quantize_model(torch.nn.Sequential(torch.nn.Linear(64, 10)), digits.X_train)
    with pytest.raises(BitWidthError, match="activation bit-width must be in 2..16, got 17"):
        quantize_model(cn, digits.X_train, 8, 17)
    with pytest.raises(BitWidthError, match="weight bit-width must be in 2..16, got 1"):
        quantize_model(trained["gru"], digits.X_train, 1)
    with pytest.raises(ValueError, match=r"calibration data must have shape \[N, 64\], got \[5, 8, 8\]"):
        quantize_model(cn, digits.X_train[:5].reshape(5, 8, 8))
    with pytest.raises(
        ValueError, match=r"calibration data must have shape \[N, T·8\] or \[N, T, 8\], got \[5, 60\]"
    ):
        quantize_model(trained["lstm"], digits.X_train[:5, :60])
    with pytest.raises(ValueError, match="unknown depth scheme 'rk3'"):
        quantize_model(cn, digits.X_train, scheme="rk3")
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        quantize_model(cn, digits.X_train, nonlinearity="cubic")
    with pytest.raises(ValueError, match="weight_clip must be one of"):
        quantize_model(cn, digits.X_train, weight_clip="kl")
    with pytest.raises(ValueError, match=r"'continuous_net' models take no quantization option \['state_bits'\]; "
                                         r"their options: \['calibration', .*'scheme', 'weight_clip'\]"):  # fmt: skip
        quantize_model(cn, digits.X_train, state_bits=16)
    with pytest.raises(ValueError, match="unknown integer LTC solver 'heun'"):
        from ctnn.quant import IntegerLTC

        q = quantize_model(build_classifier("ltc", digits, units=4), digits.X_train[:8])
        IntegerLTC(**{**q.net.__dict__, "solver": "heun"})


@pytest.mark.parametrize("solver,unfolds", [("explicit_euler", 6), ("rk4", 4)])
def test_ltc_explicit_solvers_are_exact(digits, real_x, solver, unfolds, assert_exact):
    """Explicit Euler / RK4 on the same fused synapse tables (an untrained net: training them is slow)."""
    torch.manual_seed(0)
    model = build_classifier("ltc", digits, units=6, ode_unfolds=unfolds, solver=solver)
    q = quantize_model(model, digits.X_train, 8, 8, input_range=digits.value_range)
    assert q.net.solver == solver and q.hyperparameters["solver"] == solver
    graph = _exact(assert_exact, q, real_x, seed=11)
    assert f"t7u{unfolds - 1}/v" in {n.output[0] for n in graph.graph.node}
    with torch.no_grad():
        float_pred = model(torch.as_tensor(digits.X_test, dtype=torch.float32)).argmax(1).numpy()
    assert (q.predict(digits.X_test) == float_pred).mean() > 0.9  # the integer net follows the float one


@pytest.mark.parametrize(
    "family,bits,act_bits",
    [("lem", 2, 3), ("continuous_net", 2, 4), ("gru", 16, 16), ("lem", 16, 14), ("lstm", 12, 5)],
)
def test_extreme_bit_widths_are_exact(trained, digits, real_x, family, bits, act_bits, assert_exact):
    torch.manual_seed(0)
    model = trained.get(family) or build_classifier(family, digits, units=8)
    q = quantize_model(
        model, digits.X_train, bits, act_bits, per_channel=True, input_range=digits.value_range
    )
    assert q.net.weight_bits == bits and q.net.act_bits == act_bits
    graph = _exact(assert_exact, q, real_x, seed=bits * act_bits)
    casts = {n.attribute[0].i for n in graph.graph.node if n.op_type == "Cast"}
    assert (7 in casts) and ((5 in casts) == (act_bits > 8))  # int64 arithmetic; int16 state containers


def test_ltc_head_honours_the_percentile_weight_clip(digits, tmp_path):
    """Every weight, the LTC's head included, is clipped at the asked percentile of |w|."""
    import onnx
    from onnx import numpy_helper

    torch.manual_seed(0)
    model = build_classifier("ltc", digits, units=6, ode_unfolds=1)
    q = quantize_model(model, digits.X_train[:64], 6, 8, weight_clip="percentile", percentile=50.0)
    graph = onnx.load(export_onnx(q, tmp_path / "ltc.onnx", dataset="digits")).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    head = [n for n in graph.node if n.op_type == "MatMulInteger"][-1]
    w = inits[head.input[1]].astype(np.int64)
    qmax = 2 ** (6 - 1) - 1
    # clipped at the median |w|: about half the codes sit at the clip (at 99.99 only the largest would)
    assert np.mean(np.abs(w) >= qmax) >= 0.4
