"""The interval pass is sound: every value every tensor takes on inputs in the box lies in its bounds."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from verify_helpers import box_of, ops_graph, wrap_graph

from ctnn.quant import ReferenceInterpreter, random_integer_mlp
from ctnn.verify import interval_bounds


def _assert_sound(model, blo, bhi, n=64, seed=0, corners=True):
    bounds = interval_bounds(model, blo, bhi, input_range=(-128, 127))
    ref = ReferenceInterpreter(model)
    rng = np.random.default_rng(seed)
    xs = rng.integers(blo, bhi + 1, size=(n, len(blo)))
    if corners:
        xs = np.vstack([xs, blo, bhi, np.where(rng.random((n, len(blo))) < 0.5, blo, bhi)])
    env = ref.run({"x": xs.astype(np.int8)}, keep=True)
    for name, (lo, hi) in bounds.items():
        v = np.asarray(env[name]).astype(np.int64)
        if name in ref.constants:
            assert np.array_equal(lo, v) and np.array_equal(hi, v), name
            continue
        # the bounds are per sample: the batch dimension of the run broadcasts against their 1
        assert np.all(lo <= v) and np.all(v <= hi), (name, lo, hi, v.min(0), v.max(0))
    return bounds


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), eps=st.integers(0, 6), wb=st.integers(2, 8), ab=st.integers(2, 8))
def test_mlp_bounds_are_sound(seed, eps, wb, ab):
    net = random_integer_mlp([6, 5, 4, 3], weight_bits=wb, act_bits=ab, in_bits=6, seed=seed)
    x0 = np.random.default_rng(seed).integers(-32, 32, size=6)
    blo, bhi = box_of(x0, eps, -32, 31)
    _assert_sound(net.to_onnx(), blo, bhi, seed=seed)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), eps=st.integers(0, 4))
def test_ops_graph_bounds_are_sound(seed, eps):
    x0 = np.random.default_rng(seed).integers(-8, 8, size=4)
    blo, bhi = box_of(x0, eps, -8, 7)
    _assert_sound(ops_graph(), blo, bhi, seed=seed)


def test_wraparound_widens_to_the_dtype():
    b = _assert_sound(wrap_graph(), np.array([20, -30, 0]), np.array([40, 30, 5]))
    lo, hi = b["a"]
    assert lo[0, 0] == -128 and hi[0, 0] == 127  # x*3 + 100 may leave int8 for x in [20, 40]
    assert lo[0, 2] == 100 and hi[0, 2] == 115  # but not for x in [0, 5]


def test_phases_are_fixed_and_exact_at_a_point():
    net = random_integer_mlp([8, 6, 4], weight_bits=4, act_bits=4, in_bits=4, seed=3)
    model = net.to_onnx()
    x0 = np.arange(-4, 4)
    b = interval_bounds(model, x0, x0)  # a point: every bound is the value itself
    env = ReferenceInterpreter(model).run({"x": x0[None].astype(np.int8)}, keep=True)
    for name, (lo, hi) in b.items():
        assert np.array_equal(lo, hi) and np.array_equal(lo, np.asarray(env[name], np.int64)), name
    # a wider box: a ReLU clip whose input is entirely below 0 is the constant 0
    blo, bhi = box_of(x0, 1, -8, 7)
    b = interval_bounds(model, blo, bhi)
    div_lo, div_hi = b["fc1/rq/div"]
    clip_lo, clip_hi = b["fc1/rq/clip"]
    dead = div_hi < 0
    assert np.all(clip_lo[dead] == 0) and np.all(clip_hi[dead] == 0)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), eps=st.integers(1, 6))
def test_linear_bounds_are_sound_and_within_the_intervals(seed, eps):
    net = random_integer_mlp([6, 8, 5, 3], weight_bits=5, act_bits=6, in_bits=6, seed=seed)
    model = net.to_onnx()
    x0 = np.random.default_rng(seed).integers(-32, 32, size=6)
    blo, bhi = box_of(x0, eps, -32, 31)
    tight = _assert_sound(model, blo, bhi, seed=seed)  # linear=True by default
    loose = interval_bounds(model, blo, bhi, linear=False)
    for name, (lo, hi) in tight.items():
        assert np.all(lo >= loose[name][0]) and np.all(hi <= loose[name][1]), name


def test_linear_bounds_are_tighter_where_neurons_share_inputs():
    tighter = 0
    for seed in range(10):
        net = random_integer_mlp([16, 12, 6], weight_bits=6, act_bits=8, in_bits=8, seed=seed)
        model = net.to_onnx()
        x0 = np.random.default_rng(seed).integers(-100, 100, size=16)
        blo, bhi = box_of(x0, 3, -128, 127)
        a = interval_bounds(model, blo, bhi)["y"]
        b = interval_bounds(model, blo, bhi, linear=False)["y"]
        tighter += int(np.sum(a[1] - a[0]) < np.sum(b[1] - b[0]))
    assert tighter >= 5


def test_the_interval_pass_stops_at_its_deadline(monkeypatch):
    import time

    from ctnn.quant import random_integer_mlp
    from ctnn.verify import verify_robustness
    from ctnn.verify._errors import OutOfTime
    from ctnn.verify._interval import interval_pass
    from ctnn.verify._network import Network

    model = random_integer_mlp([6, 8, 3], weight_bits=4, act_bits=4, in_bits=4, seed=2).to_onnx()
    net = Network(model, (-8, 7))
    dtypes = {k: np.asarray(v).dtype for k, v in net.reference(np.zeros(6), keep=True).items()}
    box = {net.input_name: (np.full((1, 6), -8), np.full((1, 6), 7))}
    with pytest.raises(OutOfTime):
        interval_pass(
            net.ref.nodes, net.ref.constants, dtypes, box, linear=True, deadline=time.perf_counter() - 1
        )
    env, _ = interval_pass(net.ref.nodes, net.ref.constants, dtypes, box, deadline=time.perf_counter() + 60)
    assert net.output_name in env

    def late(deadline, where):
        raise OutOfTime(where)

    monkeypatch.setattr("ctnn.verify._interval.check_deadline", late)
    r = verify_robustness(model, np.array([1, -2, 3, 0, 4, -5]), 2, input_range=(-8, 7), timeout_s=30)
    assert (r.verdict, r.method, r.reason) == ("unknown", "interval", "timeout")
    assert r.stats["open_classes"] == [j for j in range(3) if j != r.label]  # nothing was ruled out


def _lut_graph(reduce: bool):
    """``d = T[x + 8] - 3x`` with ``T[k] = 3k + 1`` (25 everywhere), summed over the two inputs or not."""
    from onnx import TensorProto, helper, numpy_helper

    c = numpy_helper.from_array
    nodes = [
        helper.make_node("Cast", ["x"], ["x64"], to=TensorProto.INT64),
        helper.make_node("Add", ["x64", "eight"], ["idx"]),
        helper.make_node("Gather", ["table", "idx"], ["t"], axis=0),
        helper.make_node("Mul", ["x64", "three"], ["x3"]),
        helper.make_node("Sub", ["t", "x3"], ["d" if reduce else "y"]),
    ]
    if reduce:
        nodes.append(helper.make_node("ReduceSum", ["d", "axis"], ["y"], keepdims=0))
    inits = [c(np.int64(8), "eight"), c(np.int64(3), "three"), c(np.array([1]), "axis"),
             c(3 * np.arange(16, dtype=np.int64) + 1, "table")]  # fmt: skip
    graph = helper.make_graph(nodes, "lut", [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [1] if reduce else [1, 2])],
                              inits)  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_lookup_table_keeps_its_index_linear_relation():
    """The table is a chain of its index, tabulated with the subtraction when the sum reads it:
    ``sum(T[x + 8] - 3x)`` is 50 on two inputs, which intervals alone do not see."""
    lo, hi = np.array([-8, -3]), np.array([7, 4])
    tight = _assert_sound(_lut_graph(True), lo, hi)["y"]
    loose = interval_bounds(_lut_graph(True), lo, hi, linear=False)["y"]
    assert tight[0] == tight[1] == 50 and loose[0] < 50 < loose[1]


def test_a_chain_that_ends_at_the_output_is_resolved():
    """No op reads the graph's output: its chain is tabulated at the end of the pass."""
    tight = _assert_sound(_lut_graph(False), np.array([-8, -3]), np.array([7, 4]))["y"]
    assert np.all(tight[0] == 25) and np.all(tight[1] == 25)
