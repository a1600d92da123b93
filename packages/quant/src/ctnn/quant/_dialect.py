"""The integer ONNX dialect: which graphs ctnn accepts, and clear errors for the rest.

The contract between training (models, quant) and hardware (verify, deploy) is a
standard ONNX graph (opset >= 17) whose tensors between input and output are all
integers. :func:`load_model` reads and checks one, naming the file, node, op or
tensor that is outside the dialect.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

MIN_OPSET = 17

#: Every op the dialect allows. Each one runs exactly in the numpy reference,
#: onnxruntime and TVM's ONNX importer.
SUPPORTED_OPS: frozenset[str] = frozenset(
    {
        "MatMulInteger", "MatMul", "Add", "Sub", "Mul", "Div", "Clip", "Min", "Max",
        "Cast", "Gather", "Greater", "Less", "Equal", "Where", "Concat", "Slice",
        "Split", "Squeeze", "Unsqueeze", "Reshape", "ReduceSum", "Identity",
    }
)  # fmt: skip

INTEGER_TYPES: dict[int, np.dtype] = {
    TensorProto.INT8: np.dtype(np.int8),
    TensorProto.UINT8: np.dtype(np.uint8),
    TensorProto.INT16: np.dtype(np.int16),
    TensorProto.UINT16: np.dtype(np.uint16),
    TensorProto.INT32: np.dtype(np.int32),
    TensorProto.INT64: np.dtype(np.int64),
}
#: bool only appears as the output of comparisons feeding ``Where``.
ALLOWED_TYPES: dict[int, np.dtype] = {**INTEGER_TYPES, TensorProto.BOOL: np.dtype(np.bool_)}


class DialectError(ValueError):
    """A graph, file or tensor outside ctnn's integer ONNX dialect."""


@dataclass(frozen=True)
class GraphSummary:
    """What :func:`check_model` found in a graph in the dialect."""

    inputs: dict[str, tuple[str, list[int | str]]]
    outputs: dict[str, tuple[str, list[int | str]]]
    op_counts: dict[str, int] = field(default_factory=dict)
    opset: int = MIN_OPSET
    parameters: int = 0


def load_model(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Read an ``.onnx`` file and check that it is in the integer dialect."""
    path = Path(path)
    if not path.is_file():
        raise DialectError(f"{path}: no such file")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and friends from protobuf
        raise DialectError(f"{path}: not an ONNX model ({type(exc).__name__}: {exc})") from None
    if not model.graph.node and not model.graph.output:
        raise DialectError(f"{path}: not an ONNX model (empty graph)")
    check_model(model, source=str(path))
    return model


def as_model(model: onnx.ModelProto | str | os.PathLike[str]) -> onnx.ModelProto:
    """Accept a loaded model or a path; return a checked ModelProto."""
    if isinstance(model, onnx.ModelProto):
        check_model(model)
        return model
    return load_model(model)


def _type_of(vi: onnx.ValueInfoProto) -> tuple[int, list[int | str]]:
    t = vi.type.tensor_type
    dims: list[int | str] = [d.dim_param if d.dim_param else d.dim_value for d in t.shape.dim]
    return t.elem_type, dims


def check_model(model: onnx.ModelProto, source: str = "<model>") -> GraphSummary:
    """Check ``model`` against the dialect; raise :class:`DialectError` naming the problem."""
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or opset < MIN_OPSET:
        raise DialectError(f"{source}: default-domain opset {opset} < {MIN_OPSET}")
    g = model.graph
    for node in g.node:
        if node.domain not in ("", "ai.onnx"):
            raise DialectError(
                f"{source}: node {node.name!r} uses op {node.domain}::{node.op_type}, "
                "outside the integer dialect (custom domains are not supported)"
            )
        if node.op_type not in SUPPORTED_OPS:
            raise DialectError(
                f"{source}: node {node.name!r} uses op {node.op_type!r}, outside the integer "
                f"dialect; supported ops: {', '.join(sorted(SUPPORTED_OPS))}"
            )
    params = 0
    for init in g.initializer:
        if init.data_type not in ALLOWED_TYPES:
            raise DialectError(
                f"{source}: initializer {init.name!r} has type "
                f"{TensorProto.DataType.Name(init.data_type)}, not an integer type"
            )
        params += int(np.prod(init.dims)) if init.dims else 1
    init_names = {i.name for i in g.initializer}
    for kind, values in (("input", g.input), ("output", g.output), ("value", g.value_info)):
        for vi in values:
            if vi.name in init_names:
                continue
            elem, _ = _type_of(vi)
            if elem not in ALLOWED_TYPES:
                raise DialectError(
                    f"{source}: {kind} tensor {vi.name!r} has type "
                    f"{TensorProto.DataType.Name(elem)}, not an integer type"
                )
    sizes = {i.name: int(np.prod(i.dims)) if i.dims else 1 for i in g.initializer}
    for node in g.node:
        if node.op_type == "MatMulInteger" and len(node.input) > 2 and node.input[2]:
            # per-row zero points of A are in the ONNX spec but onnxruntime rejects them
            if sizes.get(node.input[2], 0) != 1:
                raise DialectError(
                    f"{source}: node {node.name!r} (MatMulInteger) has a_zero_point {node.input[2]!r} that is "
                    "not a constant scalar; the dialect allows only a scalar a_zero_point"
                )
        if node.op_type == "Cast":
            to = next(a.i for a in node.attribute if a.name == "to")
            if to not in ALLOWED_TYPES:
                raise DialectError(
                    f"{source}: node {node.name!r} casts to {TensorProto.DataType.Name(to)}, "
                    "not an integer type"
                )
    inputs = {
        vi.name: (TensorProto.DataType.Name(_type_of(vi)[0]), _type_of(vi)[1])
        for vi in g.input
        if vi.name not in init_names
    }
    outputs = {vi.name: (TensorProto.DataType.Name(_type_of(vi)[0]), _type_of(vi)[1]) for vi in g.output}
    return GraphSummary(
        inputs=inputs,
        outputs=outputs,
        op_counts=dict(Counter(n.op_type for n in g.node)),
        opset=opset,
        parameters=params,
    )


def initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """The graph's constant tensors as numpy arrays (Constant nodes are not in the dialect)."""
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
