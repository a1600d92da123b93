"""The numpy integer reference: the ground truth that every other consumer must equal.

It interprets any graph in the integer dialect node by node. Each op is one small
function in :data:`REFERENCE_OPS`, computed in int64 and stored back in the op's
ONNX output type with two's-complement wrap-around, exactly as a C target would.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import onnx
from onnx import helper

from ._dialect import ALLOWED_TYPES, DialectError, as_model, initializers
from ._registry import registrar
from ._semantics import trunc_div

OpFn = Callable[[list[np.ndarray | None], dict[str, Any]], list[np.ndarray]]

#: op type -> reference semantics. Adding an op to the dialect starts here.
REFERENCE_OPS: dict[str, OpFn] = {}


#: ``@register_op("Add", ...)``: file the decorated function as the reference semantics of the ops
register_op = registrar(REFERENCE_OPS, "reference semantics")


def _i64(a: np.ndarray) -> np.ndarray:
    return np.asarray(a).astype(np.int64)


def _same(a: np.ndarray, result: np.ndarray) -> np.ndarray:
    """Store an int64 result in ``a``'s type, wrapping like two's-complement hardware."""
    return result.astype(a.dtype) if a.dtype != np.bool_ else result


@register_op("MatMulInteger")
def _matmulinteger(x, attrs):
    a, b = _i64(x[0]), _i64(x[1])
    if len(x) > 2 and x[2] is not None:
        zp = _i64(x[2])
        # a 1-D a_zero_point is per row of A (ONNX spec), so it broadcasts along the row axis
        a = a - (zp.reshape(-1, 1) if zp.ndim == 1 and a.ndim >= 2 else zp)
    if len(x) > 3 and x[3] is not None:
        b = b - _i64(x[3])
    return [np.matmul(a, b).astype(np.int32)]


@register_op("MatMul")
def _matmul(x, attrs):
    return [_same(x[0], np.matmul(_i64(x[0]), _i64(x[1])))]


@register_op("Add")
def _add(x, attrs):
    return [_same(x[0], _i64(x[0]) + _i64(x[1]))]


@register_op("Sub")
def _sub(x, attrs):
    return [_same(x[0], _i64(x[0]) - _i64(x[1]))]


@register_op("Mul")
def _mul(x, attrs):
    return [_same(x[0], _i64(x[0]) * _i64(x[1]))]


@register_op("Div")
def _div(x, attrs):
    return [_same(x[0], trunc_div(x[0], x[1]))]


@register_op("Clip")
def _clip(x, attrs):
    v = _i64(x[0])
    if len(x) > 1 and x[1] is not None:
        v = np.maximum(v, _i64(x[1]))
    if len(x) > 2 and x[2] is not None:
        v = np.minimum(v, _i64(x[2]))
    return [_same(x[0], v)]


@register_op("Min")
def _min(x, attrs):
    return [_same(x[0], np.minimum.reduce(np.broadcast_arrays(*[_i64(v) for v in x])))]


@register_op("Max")
def _max(x, attrs):
    return [_same(x[0], np.maximum.reduce(np.broadcast_arrays(*[_i64(v) for v in x])))]


@register_op("Cast")
def _cast(x, attrs):
    to = ALLOWED_TYPES[attrs["to"]]
    return [np.asarray(x[0]).astype(to)]


@register_op("Gather")
def _gather(x, attrs):
    data, idx = x[0], _i64(x[1])
    axis = attrs.get("axis", 0)
    n = data.shape[axis]
    if np.any((idx < -n) | (idx >= n)):
        bad = idx[(idx < -n) | (idx >= n)].ravel()[0]
        raise IndexError(f"Gather index {bad} out of range for axis of size {n}")
    return [np.take(data, np.where(idx < 0, idx + n, idx), axis=axis)]


@register_op("Greater")
def _greater(x, attrs):
    return [np.greater(_i64(x[0]), _i64(x[1]))]


@register_op("Less")
def _less(x, attrs):
    return [np.less(_i64(x[0]), _i64(x[1]))]


@register_op("Equal")
def _equal(x, attrs):
    return [np.equal(_i64(x[0]), _i64(x[1]))]


@register_op("Where")
def _where(x, attrs):
    return [np.where(x[0], x[1], x[2]).astype(x[1].dtype)]


@register_op("Concat")
def _concat(x, attrs):
    return [np.concatenate(x, axis=attrs["axis"])]


@register_op("Slice")
def _slice(x, attrs):
    data = x[0]
    starts, ends = _i64(x[1]), _i64(x[2])
    axes = _i64(x[3]) if len(x) > 3 and x[3] is not None else np.arange(len(starts))
    steps = _i64(x[4]) if len(x) > 4 and x[4] is not None else np.ones(len(starts), np.int64)
    sl = [slice(None)] * data.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        sl[int(a)] = slice(int(s), int(e), int(st))
    return [data[tuple(sl)]]


@register_op("Split")
def _split(x, attrs):
    axis = attrs.get("axis", 0)
    n = x[0].shape[axis]
    if len(x) > 1 and x[1] is not None:
        sizes = _i64(x[1])
    else:
        k = attrs["num_outputs"]
        sizes = np.array([-(-n // k)] * (k - 1) + [n - (k - 1) * -(-n // k)])
    return list(np.split(x[0], np.cumsum(sizes)[:-1], axis=axis))


@register_op("Squeeze")
def _squeeze(x, attrs):
    axes = tuple(int(a) for a in _i64(x[1])) if len(x) > 1 and x[1] is not None else None
    return [np.squeeze(x[0], axis=axes)]


@register_op("Unsqueeze")
def _unsqueeze(x, attrs):
    out = x[0]
    rank = out.ndim + len(x[1])
    for a in sorted(int(a) % rank for a in _i64(x[1])):
        out = np.expand_dims(out, a)
    return [out]


@register_op("Reshape")
def _reshape(x, attrs):
    shape = [int(s) for s in _i64(x[1])]
    if not attrs.get("allowzero", 0):
        shape = [x[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return [x[0].reshape(shape)]


@register_op("ReduceSum")
def _reducesum(x, attrs):
    keep = bool(attrs.get("keepdims", 1))
    if len(x) > 1 and x[1] is not None and len(x[1]):
        axes = tuple(int(a) for a in _i64(x[1]))
    elif attrs.get("noop_with_empty_axes", 0):
        return [x[0]]
    else:
        axes = None
    return [_same(x[0], np.sum(_i64(x[0]), axis=axes, keepdims=keep))]


@register_op("Identity")
def _identity(x, attrs):
    return [x[0]]


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class ReferenceInterpreter:
    """A compiled-once interpreter for one integer graph.

    >>> ref = ReferenceInterpreter("model.onnx")      # doctest: +SKIP
    >>> y = ref.run({"x": codes})["y"]                # doctest: +SKIP
    """

    def __init__(self, model: onnx.ModelProto | str | os.PathLike[str]):
        self.model = as_model(model)
        g = self.model.graph
        self.constants = initializers(self.model)
        self.nodes = [(n, _attrs(n)) for n in g.node]
        for n, _ in self.nodes:
            if n.op_type not in REFERENCE_OPS:
                raise DialectError(f"node {n.name!r}: op {n.op_type!r} has no reference semantics")
        self.input_names = [i.name for i in g.input if i.name not in self.constants]
        self.output_names = [o.name for o in g.output]
        self.input_dtypes = {
            i.name: ALLOWED_TYPES[i.type.tensor_type.elem_type]
            for i in g.input
            if i.name not in self.constants
        }

    def run(self, feeds: Mapping[str, np.ndarray], keep: bool = False) -> dict[str, np.ndarray]:
        """Evaluate the graph; return the outputs (every intermediate tensor if ``keep``)."""
        env: dict[str, np.ndarray] = dict(self.constants)
        for name in self.input_names:
            if name not in feeds:
                raise KeyError(f"missing input {name!r}; the graph takes {self.input_names}")
            env[name] = np.asarray(feeds[name]).astype(self.input_dtypes[name], casting="unsafe")
        for node, attrs in self.nodes:
            args = [env[i] if i else None for i in node.input]
            try:
                outs = REFERENCE_OPS[node.op_type](args, attrs)
            except (ZeroDivisionError, IndexError, ValueError) as exc:
                raise ValueError(f"node {node.name!r} ({node.op_type}): {exc}") from exc
            for name, val in zip(node.output, outs):
                env[name] = val
        if keep:
            return env
        return {name: env[name] for name in self.output_names}


def run_reference(
    model: onnx.ModelProto | str | os.PathLike[str], feeds: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Evaluate an integer graph once on the numpy reference."""
    return ReferenceInterpreter(model).run(feeds)
