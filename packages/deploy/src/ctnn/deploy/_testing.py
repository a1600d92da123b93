"""Hand-built recurrent graphs in the integer dialect, for tests and benchmarks.

ctnn-quant exports only MLPs so far; the recurrent families (LTC, Lipschitz RNN, LEM,
ContinuousNet) will come as unrolled graphs of the same ops. These two random graphs
have that shape, so every target is tested on more than dense layers:

- :func:`gated_rnn`: a gated recurrent cell unrolled over ``steps``: Slice + Squeeze of
  each time step, Concat of input and state, MatMulInteger, requantization, Split into
  gate and candidate, a tanh lookup table (Gather), Where/Greater gating, Equal/Where
  symmetric clamping, Min/Max, Unsqueeze/Reshape and a ReduceSum output.
- :func:`ltc_cell`: a liquid time-constant cell with the fused semi-implicit solver step
  ``v' = (cm*v + sum_j w_ij*s_j*e_ij + gl*el) / (cm + sum_j w_ij*s_j + gl)`` in integers:
  sigmoid lookup tables, an int32 MatMul (numerator) and a MatMulInteger (denominator) per step, an
  integer Div by a positive, data-dependent denominator, ``unfolds`` solver steps per
  input step.

They are random (not trained) but their values exercise the whole int8 range.
"""

from __future__ import annotations

import numpy as np
import onnx

from ctnn.quant import GraphBuilder, quantize_multiplier


def _lut(fn, scale_in: float, scale_out: float, lo: int, hi: int) -> np.ndarray:
    codes = np.arange(-128, 128)
    return np.clip(np.round(fn(codes * scale_in) / scale_out), lo, hi).astype(np.int8)


def _lookup(b: GraphBuilder, x: str, table: str, name: str) -> str:
    """Gather ``table[x + 128]`` for int8 ``x``."""
    x32 = b.cast(x, np.int32, f"{name}/x32")
    idx = b.op("Add", [x32, b.scalar(128, np.int32)], f"{name}/idx")
    return b.op("Gather", [table, idx], f"{name}/lut", axis=0)


def _dense(b: GraphBuilder, x: str, w: np.ndarray, bias: np.ndarray, lo: int, hi: int, name: str) -> str:
    k = w.shape[0]
    mult, shift = quantize_multiplier(127 / max(1.0, np.sqrt(k) * 127 * 64 / 2))
    acc = b.op("MatMulInteger", [x, b.const(f"{name}/W", w.astype(np.int8))], f"{name}/matmul")
    acc = b.op("Add", [acc, b.const(f"{name}/b", bias.astype(np.int32))], f"{name}/acc")
    r = b.requant(acc, np.full(w.shape[1], mult), np.full(w.shape[1], shift), lo, hi, f"{name}/rq")
    return b.cast(r, np.int8, f"{name}/out")


def gated_rnn(
    features: int = 8, hidden: int = 16, classes: int = 4, steps: int = 5, seed: int = 0
) -> onnx.ModelProto:
    """A gated integer RNN unrolled over ``steps``: input ``x`` int8 [N, steps, features];
    outputs ``y`` int8 [N, classes] and ``energy`` int32 [N, 1] (the sum of the last state)."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("ctnn_gated_rnn")
    tanh = b.const("tanh_lut", _lut(np.tanh, 1 / 48, 1 / 127, -127, 127))
    w0 = rng.integers(-64, 65, size=(features, hidden))
    w = rng.integers(-64, 65, size=(features + hidden, 2 * hidden))
    bias = rng.integers(-2000, 2001, size=2 * hidden)
    h = None
    for t in range(steps):
        xs = b.op("Slice", ["x", b.const(f"t{t}/start", np.array([t])), b.const(f"t{t}/end", np.array([t + 1])),
                            b.const("axis1", np.array([1]))], f"t{t}/slice")  # fmt: skip
        xt = b.op("Squeeze", [xs, b.const("axis1", np.array([1]))], f"t{t}/x")
        if h is None:
            pre = _dense(b, xt, w0, bias[:hidden], -128, 127, f"t{t}/in")
            h = _lookup(b, pre, tanh, f"t{t}/tanh")
            continue
        z = b.op("Concat", [xt, h], f"t{t}/concat", axis=1)
        pre = _dense(b, z, w, bias, -128, 127, f"t{t}/cell")
        g, c = f"t{t}/gate", f"t{t}/cand"
        halves = b.const("split_halves", np.array([hidden, hidden]))
        b.nodes.append(onnx.helper.make_node("Split", [pre, halves], [g, c], name=f"t{t}/split", axis=1))
        c = _lookup(b, c, tanh, f"t{t}/tanh")
        h = b.op("Where", [b.op("Greater", [g, b.scalar(0, np.int8)], f"t{t}/open"), c, h], f"t{t}/h")
        low = b.op("Equal", [h, b.scalar(-128, np.int8)], f"t{t}/is_min")
        h = b.op("Where", [low, b.scalar(-127, np.int8), h], f"t{t}/sym")
        h = b.op(
            "Max",
            [b.op("Min", [h, b.scalar(120, np.int8)], f"t{t}/min"), b.scalar(-120, np.int8)],
            f"t{t}/clip",
        )
    logits = _dense(b, h, rng.integers(-64, 65, size=(hidden, classes)), rng.integers(-500, 501, size=classes),
                    -128, 127, "readout")  # fmt: skip
    y = b.op("Reshape", [logits, b.const("shape_y", np.array([-1, classes]))], "y")
    h32 = b.cast(h, np.int32, "h32")
    s = b.op("ReduceSum", [h32, b.const("axis1_sum", np.array([1]))], "hsum", keepdims=0)
    energy = b.op("Unsqueeze", [s, b.const("axis1_u", np.array([1]))], "energy")
    return b.model(
        [("x", np.int8, ["N", steps, features])], [(y, np.int8, ["N", classes]), (energy, np.int32, ["N", 1])]
    )


def ltc_cell(
    units: int = 16, features: int = 8, classes: int = 4, steps: int = 4, unfolds: int = 3, seed: int = 0
) -> onnx.ModelProto:
    """An integer LTC (fused semi-implicit solver) unrolled over ``steps`` x ``unfolds``:
    input ``x`` int8 [N, steps, features]; output ``y`` int8 [N, classes] from the last state."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("ctnn_ltc")
    sig = b.const("sigmoid_lut", _lut(lambda v: 1 / (1 + np.exp(-v)), 1 / 16, 1 / 127, 0, 127))
    # synapse strengths w >= 0 (int8) and reversal potentials e = +-90 state codes: the
    # numerator weights w*e need int16 (MatMul on int32), the denominator's w stay int8 (MatMulInteger)
    w_rec = rng.integers(0, 40, size=(units, units))
    e_rec = rng.choice([-90, 90], size=(units, units))
    w_in = rng.integers(0, 40, size=(features, units))
    e_in = rng.choice([-90, 90], size=(features, units))
    cm = rng.integers(600, 1200, size=units)  # membrane capacitance / dt, in the state's scale
    gl = rng.integers(100, 300, size=units)  # leak conductance
    el = rng.integers(-40, 41, size=units)  # leak potential (state codes)
    wn_rec = b.cast(b.const("rec/Wnum", (w_rec * e_rec).astype(np.int16)), np.int32, "rec/Wnum32")
    wn_in = b.cast(b.const("in/Wnum", (w_in * e_in).astype(np.int16)), np.int32, "in/Wnum32")
    wd_rec, wd_in = b.const("rec/Wden", w_rec.astype(np.int8)), b.const("in/Wden", w_in.astype(np.int8))
    cm_c = b.const("cm", cm.astype(np.int32))
    num0 = b.const("leak_num", (gl * el).astype(np.int32))
    den0 = b.const("leak_den", (cm + gl).astype(np.int32))
    v = None
    for t in range(steps):
        xs = b.op("Slice", ["x", b.const(f"t{t}/start", np.array([t])), b.const(f"t{t}/end", np.array([t + 1])),
                            b.const("axis1", np.array([1]))], f"t{t}/slice")  # fmt: skip
        s = _lookup(b, b.op("Squeeze", [xs, b.const("axis1", np.array([1]))], f"t{t}/x"), sig, f"t{t}/sense")
        # the sensory synapses' share is the same for every unfold of this step
        sn = b.op("MatMul", [b.cast(s, np.int32, f"t{t}/s32"), wn_in], f"t{t}/in_num")
        sd = b.op("MatMulInteger", [s, wd_in], f"t{t}/in_den")
        if v is None:
            v = b.op("Mul", [sn, b.scalar(0, np.int32)], f"t{t}/v0")  # v = 0 with the batch shape
            v = b.cast(v, np.int8, f"t{t}/v0_8")
        for k in range(unfolds):
            p = f"t{t}/u{k}"
            a = _lookup(b, v, sig, f"{p}/act")
            num = b.op("Add", [b.op("Mul", [b.cast(v, np.int32, f"{p}/v32"), cm_c], f"{p}/cmv"),
                               b.op("Add", [b.op("MatMul", [b.cast(a, np.int32, f"{p}/a32"), wn_rec], f"{p}/rec_num"), sn], f"{p}/syn_num")],
                       f"{p}/num0")  # fmt: skip
            num = b.op("Add", [num, num0], f"{p}/num")
            den = b.op("Add", [b.op("Add", [b.op("MatMulInteger", [a, wd_rec], f"{p}/rec_den"), sd], f"{p}/syn_den"),
                               den0], f"{p}/den")  # fmt: skip
            q = b.op("Div", [num, den], f"{p}/div")  # den >= cm + gl > 0: truncation toward zero
            q = b.op("Clip", [q, b.scalar(-128, np.int32), b.scalar(127, np.int32)], f"{p}/clip")
            v = b.cast(q, np.int8, f"{p}/v")
    y = _dense(b, v, rng.integers(-64, 65, size=(units, classes)), rng.integers(-500, 501, size=classes),
               -128, 127, "readout")  # fmt: skip
    y = b.op("Identity", [y], "y")
    return b.model([("x", np.int8, ["N", steps, features])], [(y, np.int8, ["N", classes])])
