"""Torch-free pieces of any-bit-width quantization: int64 accumulators, overflow refusals, PWL, calibration."""

import numpy as np
import onnxruntime as ort
import pytest

from ctnn.quant import (
    IntegerDense,
    IntegerRecurrent,
    IntervalOps,
    PwlActivation,
    ReferenceInterpreter,
    Requant,
    Rq,
    absmax,
    check_model,
    check_program,
    container_dtype,
    make_activation,
    quantize_weight,
    random_integer_mlp,
    real_range,
    signed_range,
)
from ctnn.quant._graph import GraphBuilder


def _ort(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("wb,ab,ib", [(16, 16, 16), (16, 12, 9), (2, 16, 16)])
def test_wide_mlp_accumulates_in_int64_exactly(wb, ab, ib):
    net = random_integer_mlp([48, 24, 6], weight_bits=wb, act_bits=ab, in_bits=ib, seed=wb + ab)
    model = net.to_onnx()
    check_model(model)
    bound = net.layers[0].accumulator_bound(*signed_range(ib))
    mm = [n for n in model.graph.node if n.op_type == "MatMul"]
    casts = {n.output[0]: n.attribute[0].i for n in model.graph.node if n.op_type == "Cast"}
    # int64 MatMul exactly where an int32 accumulator could overflow
    assert (casts[mm[0].input[0]] == 7) == (bound >= 2**31)
    lo, hi = signed_range(ib)
    x = np.random.default_rng(0).integers(lo, hi + 1, size=(1000, 48))
    x[0], x[1] = lo, hi
    ref = ReferenceInterpreter(model).run({"x": x})["y"]
    np.testing.assert_array_equal(_ort(model).run(None, {"x": x.astype(container_dtype(lo, hi))})[0], ref)
    np.testing.assert_array_equal(net.forward(x), ref.astype(np.int64))
    assert len(np.unique(ref)) > 3


def test_overflow_is_refused_not_wrapped():
    w = np.full((64, 4), 2**15 - 1)

    def program(ops):  # a 16-bit matmul requantized with a multiplier too large for int64
        return ops.rd(ops.matmul(ops.step_input(0), w, "W"), Rq(np.full(4, 2**30), np.full(4, 40)), "rq")

    with pytest.raises(OverflowError, match="toy: rq \\(value times its multiplier\\) can reach"):
        check_program(program, "toy", -(2**15), 2**15 - 1, 64)

    def square(ops):
        acc = ops.matmul(ops.step_input(0), w, "W")
        return ops.mul(acc, acc)

    with pytest.raises(OverflowError, match="toy: a product can reach 4722078256891540013056, beyond int64"):
        check_program(square, "toy", -(2**15), 2**15 - 1, 64)
    # the matmul alone is fine, in int64
    widths = check_program(lambda ops: ops.matmul(ops.step_input(0), w, "W"), "toy", -(2**15), 2**15 - 1, 64)
    assert widths == {"W": 64}
    iv = IntervalOps("toy", 0, 1, 64)
    iv.matmul(iv.step_input(0), np.ones((64, 2)), "small")
    assert iv.widths == {"small": 32}
    with pytest.raises(OverflowError, match="beyond int64"):
        check_program(lambda ops: ops.matmul(ops.step_input(0), np.full((2**10, 2), 2**30), "huge"),
                      "toy", -(2**31), 2**31 - 1, 2**10)  # fmt: skip


def _act_graph(act, bits):
    b = GraphBuilder("act")
    lo, hi = signed_range(bits)
    dt = container_dtype(lo, hi)
    y = act.emit(b, "x", "f", "f")
    out_dt = container_dtype(*act.out_bounds)
    b.op("Identity", [b.cast(y, out_dt, "cast")], "y")
    return b.model([("x", dt, ["N"])], [("y", out_dt, ["N"])]), np.arange(lo, hi + 1).astype(dt)


@pytest.mark.parametrize("fn", ["sigmoid", "tanh", "softplus"])
@pytest.mark.parametrize("kind", ["lut", "pwl"])
@pytest.mark.parametrize("bits", [2, 5, 8, 12])
def test_nonlinearities_are_exact_over_every_code(fn, kind, bits):
    lo, hi = signed_range(bits)
    out_lo = lo if fn == "tanh" else 0
    act = make_activation(fn, 6.0 / hi, bits, 1.0 / hi if fn != "softplus" else 6.0 / hi, out_lo, hi, kind,
                          segments=12)  # fmt: skip
    model, codes = _act_graph(act, bits)
    check_model(model)
    ref = ReferenceInterpreter(model).run({"x": codes})["y"]
    np.testing.assert_array_equal(_ort(model).run(None, {"x": codes})[0], ref)
    np.testing.assert_array_equal(act.apply(codes), ref)
    # close to the float function: a LUT within one code; a PWL within its chord error
    # h²/8 · max|f''| (h = 1 real unit here: 12 segments over [-6, 6]) plus rounding
    out_scale = 1.0 / hi if fn != "softplus" else 6.0 / hi
    f = {
        "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
        "tanh": np.tanh,
        "softplus": lambda v: np.log1p(np.exp(v)),
    }[fn]
    real = f(codes.astype(float) * 6.0 / hi) / out_scale
    err = np.abs(np.clip(real, out_lo, hi) - ref).max()
    curvature = {"sigmoid": 0.097, "tanh": 0.77, "softplus": 0.25}[fn]
    assert err <= (1 if kind == "lut" else curvature / 8 / out_scale + 1.5), err
    if kind == "pwl":
        assert isinstance(act, PwlActivation) and "Gather" not in {n.op_type for n in model.graph.node}


def test_pwl_negative_slope_and_rounding():
    act = PwlActivation(np.array([-8, 0]), np.array([5, -3]), np.array([-3 * 2**3, 3 * 2**2]), 3, -20, 20)
    q = np.arange(-8, 8)
    want = np.where(q < 0, 5 + np.sign(-3 * (q + 8)) * np.floor(np.abs(-3 * (q + 8)) / 1 + 0.0),
                    -3 + np.sign(3 * q) * np.floor(np.abs(3 * q) / 2 + 0.5))  # fmt: skip
    np.testing.assert_array_equal(act.apply(q), want.astype(np.int64))
    model, codes = _act_graph(act, 4)
    np.testing.assert_array_equal(_ort(model).run(None, {"x": codes})[0], act.apply(codes))


def test_calibration_methods():
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.normal(size=20000), [40.0, -35.0]])  # two outliers
    mm, pc, mse = (absmax(a, m, 4) for m in ("minmax", "percentile", "mse"))
    assert mm == 40.0 and pc < 10 and mse < 10

    def err(thr):
        s = thr / 7
        return np.square(np.clip(np.round(a / s), -7, 7) * s - a).sum()

    assert err(mse) < err(mm) and err(mse) <= err(pc) * 1.01
    lo, hi = real_range(rng.uniform(-1, 3, 5000), "mse", 3)
    assert -1.01 <= lo < 0 and 0 < hi <= 3.01
    w = rng.normal(size=(16, 8)) * np.arange(1, 9)  # column scales differ
    for method in ("minmax", "percentile", "mse"):
        q, s = quantize_weight(w, 4, per_channel=True, method=method, inputs=rng.normal(size=(100, 16)))
        assert q.min() >= -7 and q.max() <= 7 and len(set(np.round(s, 12))) == 8
        qt, st = quantize_weight(w, 4, per_channel=False, method=method)
        assert len(set(st)) == 1
        assert np.square(q * s - w).sum() <= np.square(qt * st - w).sum()  # per channel is at least as close
    with pytest.raises(ValueError, match="calibration must be one of"):
        absmax(a, "entropy")


def test_mse_weight_clip_reaches_below_a_tenth_of_the_max():
    """A few 1/std-sized rows (a folded input normalization) must not set the scale of every other weight."""
    rng = np.random.default_rng(3)
    w = rng.normal(scale=0.1, size=(28, 32))
    w[0] *= 150.0  # a near-constant input feature: its folded weights are ~100x the rest
    x = rng.normal(size=(2000, 28))
    x[:, 0] *= 1e-3  # ... and its inputs are ~0
    q, s = quantize_weight(w, 4, method="mse", inputs=x)
    assert s[0] < 0.1 * np.abs(w).max() / 7  # a threshold below 0.1·max: the old search could not go there
    assert (q[1:] != 0).mean() > 0.5  # the ordinary weights keep codes
    qm, sm = quantize_weight(w, 4, method="minmax")
    assert (qm[1:] != 0).mean() < 0.1  # min-max rounds them to zero
    err = np.square(x @ (q * s) - x @ w).sum()
    assert err < 0.2 * np.square(x @ (qm * sm) - x @ w).sum()


def test_deferred_overflow_check_only_inside_its_block():
    from ctnn.quant import overflow_check_deferred

    rng = np.random.default_rng(0)
    H = 4
    kw = dict(family="ctrnn", steps=2, in_features=1, unfolds=1, in_bits=8, weight_bits=8, act_bits=8,
              U=np.ones((1, H), np.int64), bu=np.zeros(H, np.int32),
              rq_u=Requant(np.full(H, 1, np.int64), np.zeros(H, np.int64)),
              W=rng.integers(-127, 128, (H, H)), rq_w=Requant(np.full(H, 2**50, np.int64), np.zeros(H, np.int64)),
              rq_t=Requant(np.ones(H, np.int64), np.zeros(H, np.int64)), tanh_table=np.arange(-128, 128, dtype=np.int64),
              head=IntegerDense(np.ones((H, 2), np.int64), np.zeros(2, np.int32), np.ones(2, np.int64),
                                np.zeros(2, np.int64), -128, 127, "head"),
              rq_d=Requant(np.ones(H, np.int64), np.zeros(H, np.int64)))  # fmt: skip
    with pytest.raises(OverflowError, match="rq_w"):
        IntegerRecurrent(**kw)
    with overflow_check_deferred():
        net = IntegerRecurrent(**kw)  # QAT builds many models; the check waits for the one it returns
    with pytest.raises(OverflowError, match="rq_w"):
        net.check_overflow()
