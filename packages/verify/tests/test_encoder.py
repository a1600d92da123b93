"""The z3 model equals the reference: each encoding, evaluated on concrete inputs, gives the reference's output."""

from __future__ import annotations

import numpy as np
import pytest
from verify_helpers import SMT_SOLVER, ops_graph, wrap_graph

from ctnn.quant import ReferenceInterpreter, random_integer_mlp
from ctnn.verify._verify import _robustness_query


def _encoding(model, x0, eps, encoding, input_range=None):
    q, _ = _robustness_query(model, x0, eps, None, input_range)
    enc, _ = q.encode(encoding)
    return q, enc


@pytest.mark.parametrize("encoding", ["naive", "optimized"])
@pytest.mark.parametrize("eps", [255, 3])  # the whole input range, and a small box where chains fuse
def test_z3_equals_reference_on_a_64_32_10_mlp(encoding, eps):
    net = random_integer_mlp([64, 32, 10], weight_bits=6, act_bits=8, in_bits=8, seed=11)
    model = net.to_onnx()
    rng = np.random.default_rng(eps)
    x0 = rng.integers(-128, 128, size=64)
    q, enc = _encoding(model, x0, eps, encoding)
    n = 200 if eps == 255 else 100
    xs = rng.integers(q.lo, q.hi + 1, size=(n, 64))
    xs[:2] = q.lo, q.hi
    ref = ReferenceInterpreter(model).run({"x": xs.astype(np.int8)})["y"].astype(np.int64)
    for x, y in zip(xs, ref):
        np.testing.assert_array_equal(enc.evaluate(x), y)
    if encoding == "optimized" and eps == 3:
        assert enc.stats["step_functions"] > 0  # the fusion really happened
    assert len(np.unique(ref)) > 5  # not a degenerate network


@pytest.mark.parametrize("encoding", ["naive", "optimized"])
@pytest.mark.parametrize("which", ["ops", "wrap", "deep"])
def test_z3_equals_reference_on_every_op(encoding, which):
    if which == "ops":
        model, x0, eps, rng_ = ops_graph(), np.array([0, 1, -2, 3]), 8, (-8, 7)
    elif which == "wrap":
        model, x0, eps, rng_ = wrap_graph(), np.array([0, 30, -30]), 128, (-128, 127)
    else:  # more than 8 bits: the Cast + MatMul on int32 path; 12-bit weights
        model = random_integer_mlp([5, 7, 6, 4], weight_bits=12, act_bits=10, in_bits=8, seed=2).to_onnx()
        x0, eps, rng_ = np.array([1, -5, 100, 0, -128]), 255, (-128, 127)
    q, enc = _encoding(model, x0, eps, encoding, rng_)
    rng = np.random.default_rng(1)
    xs = np.vstack([q.lo, q.hi, rng.integers(q.lo, q.hi + 1, size=(150, len(x0)))])
    ref = ReferenceInterpreter(model).run({"x": xs.astype(np.int8)})["y"].astype(np.int64)
    for x, y in zip(xs, ref):
        np.testing.assert_array_equal(enc.evaluate(x), y)


def test_zero_weights_produce_no_terms_and_points_fold():
    net = random_integer_mlp([6, 3, 2], weight_bits=4, act_bits=4, in_bits=4, seed=0)
    net.layers[0].weight[:, :] = 0
    net.layers[0].weight[0, 0] = 3  # only x0 reaches neuron 0; neurons 1, 2 are constants
    model = net.to_onnx()
    q, enc = _encoding(model, np.zeros(6, int), 2, "naive", (-8, 7))
    acc = q.bounds["fc1/matmul"]
    assert acc.lo[0, 1] == acc.hi[0, 1] == 0
    from ctnn.verify._encoder import _Walker

    w = _Walker(q.net, q.dtypes, q.bounds, "naive")
    _, env = w.run(enc.inputs.reshape(q.net.sample_shape))
    mm = env["fc1/matmul"]
    assert not hasattr(mm[0, 1], "term") and not hasattr(mm[0, 2], "term")  # constants
    from z3.z3util import get_vars

    assert [str(v) for v in get_vars(mm[0, 0].term)] == ["x0"]  # one input, no terms for zero weights
    assert mm[0, 0].term.num_args() == 2  # SignExt(x0) * 3: no sum at all


def test_encoding_stops_at_its_deadline(monkeypatch):
    import time

    from ctnn.verify import verify_robustness
    from ctnn.verify._encoder import _Walker, encode
    from ctnn.verify._errors import OutOfTime
    from ctnn.verify._network import Network

    model = random_integer_mlp([6, 8, 3], weight_bits=4, act_bits=4, in_bits=4, seed=2).to_onnx()
    x = np.array([1, -2, 3, 0, 4, -5])
    q, _ = _robustness_query(Network(model, (-8, 7)), x, 2, None, None)
    q.bound(linear=False)
    args = (q.net, q.lo, q.hi, q.dtypes, q.bounds)
    with pytest.raises(OutOfTime):
        encode(*args, deadline=time.perf_counter() - 1.0)
    assert encode(*args, deadline=time.perf_counter() + 60).stats["symbolic_elements"] > 0

    # a query whose encoding runs out of time is a timeout, naming the classes left open
    def late(self, where):
        raise OutOfTime(where)

    monkeypatch.setattr(_Walker, "check_time", late)
    r = verify_robustness(model, x, 2, input_range=(-8, 7), interval=False, attack=False, timeout_s=30,
                          solver=SMT_SOLVER)  # fmt: skip
    assert r.verdict == "unknown" and r.reason == "timeout" and "encode_s" in r.stats


@pytest.mark.parametrize("encoding", ["naive", "optimized"])
def test_lookup_tables_of_bools_and_of_saturated_codes(encoding):
    """Gather from constant tables by a symbolic index (the optimized encoding writes these as steps
    over the index): a boolean table and an int8 table that saturates, on every index."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    flags = rng.integers(0, 2, size=16).astype(bool)
    codes = np.clip(np.arange(-8, 8) * 20, -100, 100).astype(np.int8)  # flat at both ends
    nodes = [
        helper.make_node("Cast", ["x"], ["x32"], to=TensorProto.INT32),
        helper.make_node("Add", ["x32", "eight"], ["idx"]),
        helper.make_node("Gather", ["flags", "idx"], ["f"], axis=0),
        helper.make_node("Gather", ["codes", "idx"], ["c"], axis=0),
        helper.make_node("Where", ["f", "c", "zero"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.array(8, np.int32), "eight"), numpy_helper.from_array(flags, "flags"),
             numpy_helper.from_array(codes, "codes"), numpy_helper.from_array(np.array(0, np.int8), "zero")]  # fmt: skip
    graph = helper.make_graph(nodes, "luts", [helper.make_tensor_value_info("x", TensorProto.INT8, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, ["N", 3])], inits)  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    q, enc = _encoding(model, np.array([0, -5, 6]), 15, encoding, (-8, 7))  # the whole input range
    grid = np.stack(np.meshgrid(*[np.arange(-8, 8)] * 3, indexing="ij"), -1).reshape(-1, 3)
    ref = ReferenceInterpreter(model).run({"x": grid.astype(np.int8)})["y"].astype(np.int64)
    for x, y in zip(grid[::7], ref[::7]):
        np.testing.assert_array_equal(enc.evaluate(x), y)
