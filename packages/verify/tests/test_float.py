"""The float side: sound outward-rounded bounds, the float-int gap bound, and the real-number baselines."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import onnx
import onnxruntime as ort
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from ctnn.quant import random_integer_mlp
from ctnn.verify import (
    FloatMLP,
    float_baselines,
    float_int_gap,
    ibp_robust,
    pgd_attack,
    verify_robustness,
)


def _exact(fm: FloatMLP, x) -> list[Fraction]:
    """The exact real-number output (rational arithmetic on the float64 weights)."""
    a = [Fraction(float(v)) for v in x]
    for i, (w, b) in enumerate(zip(fm.weights, fm.biases)):
        a = [
            sum((a[k] * Fraction(float(w[k, j])) for k in range(len(a))), Fraction(float(b[j])))
            for j in range(w.shape[1])
        ]
        if i < len(fm.weights) - 1:
            a = [max(v, Fraction(0)) for v in a]
    return a


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), scale=st.sampled_from([1e-3, 0.1, 1.0, 37.0]))
def test_float_bounds_contain_the_exact_outputs(seed, scale):
    rng = np.random.default_rng(seed)
    sizes = [3, 4, 2]
    fm = FloatMLP(
        [rng.normal(0, scale, (a, b)) / 3 for a, b in zip(sizes, sizes[1:])],
        [rng.normal(0, scale, b) for b in sizes[1:]],
    )
    c = rng.normal(0, 1, 3)
    lo, hi = c - rng.uniform(0, 1, 3), c + rng.uniform(0, 1, 3)
    blo, bhi = fm.bounds(lo, hi)
    pts = [lo, hi, c] + [rng.uniform(lo, hi) for _ in range(3)]
    for x in pts:
        exact = _exact(fm, x)
        assert all(Fraction(float(a)) <= e <= Fraction(float(b)) for a, b, e in zip(blo, bhi, exact))


def test_float_int_gap_is_sound_and_tight_on_tiny_nets():
    lo, hi = -4, 3
    for seed in range(3):
        net = random_integer_mlp([3, 4, 2], weight_bits=4, act_bits=4, in_bits=3, seed=seed)
        rng = np.random.default_rng(seed)
        # a float model near the integer one's real meaning (the quantized weights, perturbed)
        s_out = 2.0 ** -int(np.max(net.layers[-1].shift) - 1)
        fm = FloatMLP(
            [L.weight * (1 + rng.normal(0, 0.05, L.weight.shape)) for L in net.layers],
            [L.bias * 1.0 for L in net.layers],
        )
        xs = np.array(list(itertools.product(range(lo, hi + 1), repeat=3)))
        s_in, z_in = 0.5, -1
        truth = np.abs(fm.forward(s_in * (xs - z_in)) - s_out * net.forward(xs)).max()
        r = float_int_gap(
            fm, net.to_onnx(), input_quant=(s_in, z_in), output_quant=(s_out, 0), input_range=(lo, hi)
        )
        assert r.observed <= truth + 1e-9 <= r.bound + 2e-9
        assert r.bound <= truth * (1 + 1e-9) + 1e-9  # split down to points: as tight as float64 allows
        assert np.abs(np.array(r.float_output) - s_out * np.array(r.int_output)).max() == r.observed
        # a coarse budget still gives a sound bound
        coarse = float_int_gap(
            fm,
            net.to_onnx(),
            input_quant=(s_in, z_in),
            output_quant=(s_out, 0),
            input_range=(lo, hi),
            max_boxes=3,
        )
        assert coarse.bound >= truth


def test_float_mlp_from_onnx_matches_onnxruntime():
    rng = np.random.default_rng(0)
    w1, b1, w2, b2 = rng.normal(size=(3, 4)), rng.normal(size=4), rng.normal(size=(2, 4)), rng.normal(size=2)
    inits = [
        numpy_helper.from_array(a.astype(np.float32), n)
        for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["m"]),
        helper.make_node("Add", ["m", "b1"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1),
    ]
    g = helper.make_graph(
        nodes,
        "f",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        initializer=inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    onnx.checker.check_model(m)
    x = rng.normal(size=(5, 3)).astype(np.float32)
    y = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.allclose(FloatMLP.from_onnx(m).forward(x), y, atol=1e-5)


def test_baselines_flags_follow_the_integer_truth():
    lo, hi = -4, 3
    net = random_integer_mlp([3, 5, 3], weight_bits=4, act_bits=3, in_bits=3, seed=2)
    model = net.to_onnx()
    fm = FloatMLP([L.weight * 1.0 for L in net.layers], [L.bias * 1.0 for L in net.layers])
    samples = np.random.default_rng(2).integers(lo, hi + 1, size=(6, 3))
    out = float_baselines(fm, model, samples, [1, 2], input_quant=(1.0, 0), input_range=(lo, hi))
    assert len(out["rows"]) == 12
    for row in out["rows"]:
        x0 = samples[row["sample"]]
        r = verify_robustness(model, x0, row["eps"], input_range=(lo, hi))
        assert row["int_verdict"] == r.verdict and row["label"] == r.label
        flo, fhi = np.maximum(x0 - row["eps"], lo), np.minimum(x0 + row["eps"], hi)
        assert row["ibp_robust"] == ibp_robust(fm, flo, fhi, r.label)
        assert row["ibp_false_robust"] == (row["ibp_robust"] and r.vulnerable)
        assert row["pgd_missed"] == (not row["pgd_found"] and r.vulnerable)
        assert row["pgd_false_alarm"] == (row["pgd_found"] and r.robust)
        if row["ibp_robust"]:  # IBP is sound for the float model: PGD cannot succeed there
            assert not row["pgd_found"]
    assert sum(s["queries"] for s in out["summary"].values()) == 12


def test_pgd_finds_float_attacks_in_the_box():
    rng = np.random.default_rng(1)
    fm = FloatMLP(
        [rng.normal(size=(2, 8)), rng.normal(size=(8, 3))], [rng.normal(size=8), rng.normal(size=3)]
    )
    found = 0
    for _ in range(10):
        x0 = rng.normal(size=2)
        label = int(np.argmax(fm.forward(x0[None])[0]))
        adv = pgd_attack(fm, x0, x0 - 1.0, x0 + 1.0, label)
        grid = np.stack(np.meshgrid(*[np.linspace(v - 1, v + 1, 41) for v in x0]), -1).reshape(-1, 2)
        exists = np.any(np.argmax(fm.forward(grid), 1) != label)
        if adv is not None:
            assert np.all(np.abs(adv - x0) <= 1.0 + 1e-12) and np.argmax(fm.forward(adv[None])[0]) != label
            found += 1
        else:
            assert not ibp_robust(fm, x0 - 1.0, x0 + 1.0, label) or not exists
    assert found >= 1
