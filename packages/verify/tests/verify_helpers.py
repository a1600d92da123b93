"""Test helpers of ctnn-verify: tiny integer graphs and the exhaustive truth they are held to."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ctnn.quant import ReferenceInterpreter, random_integer_mlp, signed_range
from ctnn.verify._backends import available
from ctnn.verify._interval import interval_pass
from ctnn.verify._layered import layers_of
from ctnn.verify._network import Network

#: the SMT backend the tests name where they test the SMT stage ("auto" sends graphs that are not
#: layered to CP-SAT)
SMT_SOLVER = "bitwuzla" if available("bitwuzla") else "z3"
#: the exact stage's two engines: each "solver alone" test runs on both
EXACT_SOLVERS = [SMT_SOLVER, "cpsat"]


def method_of(solver: str) -> str:
    """The ``method`` a verdict of the exact stage reports for ``solver``."""
    return "cpsat" if solver == "cpsat" else "smt"


def box_of(x0: np.ndarray, eps, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    e = np.broadcast_to(np.asarray(eps, np.int64), x0.shape)
    return np.maximum(x0 - e, lo), np.minimum(x0 + e, hi)


def enumerate_box(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Every integer point of the box, one per row."""
    return np.array(list(itertools.product(*[range(int(a), int(b) + 1) for a, b in zip(lo, hi)])), np.int64)


def exhaustive_truth(model: onnx.ModelProto, x0: np.ndarray, eps, lo: int, hi: int, label: int | None = None):
    """(label, robust?, every violating point) by running the reference on the whole box."""
    ref = ReferenceInterpreter(model)
    blo, bhi = box_of(x0, eps, lo, hi)
    xs = enumerate_box(blo, bhi)
    y = ref.run({"x": xs.astype(np.int8)})["y"]
    if label is None:
        label = int(np.argmax(ref.run({"x": x0[None].astype(np.int8)})["y"][0]))
    bad = xs[np.argmax(y, axis=1) != label]
    return label, len(bad) == 0, bad


def in_range(bits: int) -> tuple[int, int]:
    return signed_range(bits)


def ops_graph() -> onnx.ModelProto:
    """A graph using the dialect's other ops (lookup tables, moves, reductions, min/max, equality, Div).

    x: int8 [N, 4] in a small range ->  y: int8 [N, 3]
    """

    def c(name, v, dt=np.int64):
        return numpy_helper.from_array(np.asarray(v, dt), name)

    lut = np.array([(i * 7) % 13 - 6 for i in range(16)], np.int8)  # a non-monotone table over codes -8..7
    inits = [
        c("lut", lut, np.int8), c("eight", 8), c("ax1", [1]), c("shape", [-1, 2, 2]), c("s0", [0]), c("mone", -1),
        c("e2", [2]), c("two", 2), c("m3", -3), c("w", [[2, -1], [1, 3]], np.int32), c("k5", 5),
        c("lo", -20), c("hi", 20), c("one8", 1, np.int8),
    ]  # fmt: skip
    n = helper.make_node
    nodes = [
        n("Cast", ["x"], ["x64"], to=TensorProto.INT64),
        n("Add", ["x64", "eight"], ["idx"]),  # codes -8..7 -> 0..15
        n("Gather", ["lut", "idx"], ["g"], axis=0),  # int8 [N, 4]
        n("Cast", ["g"], ["g64"], to=TensorProto.INT64),
        n("Reshape", ["g64", "shape"], ["r"]),  # [N, 2, 2]
        n("ReduceSum", ["r", "ax1"], ["rs"], keepdims=0),  # [N, 2]
        n("Slice", ["x64", "s0", "e2", "ax1"], ["xs"]),  # [N, 2]
        n("Max", ["rs", "xs"], ["mx"]),
        n("Min", ["rs", "xs"], ["mn"]),
        n("Sub", ["mx", "mn"], ["d"]),
        n("Div", ["d", "m3"], ["q"]),  # negative divisor: truncation toward zero
        n("Cast", ["mx"], ["mx32"], to=TensorProto.INT32),
        n("MatMul", ["mx32", "w"], ["mm"]),
        n("Cast", ["mm"], ["mm64"], to=TensorProto.INT64),
        n("Equal", ["rs", "xs"], ["eq"]),
        n("Greater", ["mone", "q"], ["gt"]),  # q < -1
        n("Where", ["eq", "mm64", "q"], ["w1"]),
        n("Where", ["gt", "w1", "k5"], ["w2"]),
        n("ReduceSum", ["w2", "ax1"], ["tot"], keepdims=1),  # [N, 1]
        n("Div", ["tot", "two"], ["half"]),
        n("Unsqueeze", ["half", "ax1"], ["u"]),  # [N, 1, 1]
        n("Squeeze", ["u", "ax1"], ["sq"]),  # [N, 1]
        n("Concat", ["w2", "sq"], ["cat"], axis=1),  # [N, 3]
        n("Clip", ["cat", "lo", "hi"], ["cl"]),
        n("Cast", ["cl"], ["c8"], to=TensorProto.INT8),
        n("Add", ["c8", "one8"], ["y8"]),
        n("Identity", ["y8"], ["y"]),
    ]
    m = _model(nodes, "ops", 4, 3, inits)
    onnx.checker.check_model(m, full_check=True)
    return m


def wrap_graph() -> onnx.ModelProto:
    """int8 arithmetic that wraps around, as a C target does: y = int8(x * 3 + 100) - x."""
    inits = [
        numpy_helper.from_array(np.array(3, np.int8), "three"),
        numpy_helper.from_array(np.array(100, np.int8), "c"),
    ]
    n = helper.make_node
    nodes = [n("Mul", ["x", "three"], ["m"]), n("Add", ["m", "c"], ["a"]), n("Sub", ["a", "x"], ["y"])]
    return _model(nodes, "wrap", 3, 3, inits)


def identity_graph(n_out: int = 2) -> onnx.ModelProto:
    """y = x: the prediction is numpy's argmax of the input itself (for tie tests)."""
    return _model([helper.make_node("Identity", ["x"], ["y"])], "id", n_out, n_out)


def _model(nodes: list, name: str, n_in: int, n_out: int, inits: list = ()) -> onnx.ModelProto:
    """An opset-17 model of ``nodes`` from ``x``: int8 [N, n_in] to ``y``: int8 [N, n_out]."""
    g = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.INT8, ["N", n_in])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, ["N", n_out])], initializer=list(inits),
    )  # fmt: skip
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 9
    return m


def layered_case(seed: int, sizes=(6, 8, 5, 4), eps: int = 3):
    """A random 4-bit MLP of ``sizes`` around a random sample: the network, its layered view,
    the reference's dtypes, the interval pass's bounds, the box and 400 random inputs in it."""
    bits = 4
    model = random_integer_mlp(list(sizes), weight_bits=4, act_bits=4, in_bits=bits, seed=seed).to_onnx()
    lo, hi = in_range(bits)
    net = Network(model, (lo, hi))
    rng = np.random.default_rng(seed)
    x0 = rng.integers(lo, hi + 1, size=sizes[0])
    xlo, xhi = np.maximum(x0 - eps, lo), np.minimum(x0 + eps, hi)
    env = net.reference(x0, keep=True)
    dtypes = {k: np.asarray(v).dtype for k, v in env.items()}
    box = {net.input_name: (xlo.reshape(net.sample_shape), xhi.reshape(net.sample_shape))}
    bounds, _ = interval_pass(net.ref.nodes, net.ref.constants, dtypes, box, linear=False)
    layers = layers_of(net, dtypes)
    assert layers is not None and len(layers) == len(sizes) - 1
    samples = rng.integers(xlo, xhi + 1, size=(400, sizes[0]))
    return net, layers, dtypes, bounds, xlo, xhi, samples
