"""ONNX (integer dialect) -> TVM Relax, with the batch fixed to 1 and the optimisation pipeline applied.

Every target starts from :func:`lower`. TVM is imported here, lazily, so that
``import ctnn.deploy`` stays cheap.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from ctnn.quant import as_model

from ._errors import FrontendError
from ._spec import TensorSpec

#: The passes run after import, in order. ``ctnn.*`` are ctnn's exact Relax rewrites
#: (:mod:`ctnn.deploy._rewrite`) and schedule (:mod:`ctnn.deploy._schedule`); the others
#: are ``tvm.relax.transform`` passes. FoldConstant runs before the constant rewrites and
#: never after them (it would fold the narrowed constants back). ``ctnn.extern_dense``
#: runs only for the C targets (``lower(..., extern_dot=True)``).
PIPELINE: tuple[str, ...] = (
    "ctnn.fold_matmul_casts",
    "ctnn.clip_calls_to_ops",
    "FoldConstant",
    "ctnn.scalarize_uniform_constants",
    "ctnn.narrow_constants",
    "ctnn.requant32",
    "ctnn.extern_dense",
    "LegalizeOps",
    "AnnotateTIROpPattern",
    "FuseOps",
    "FuseTIR",
    "DeadCodeElimination",
    "ctnn.schedule",
)


@dataclass(frozen=True)
class Lowered:
    """An integer ONNX graph imported into TVM Relax and optimised; the input of every target."""

    mod: Any  # tvm.IRModule: Relax ``main`` calling fused TIR PrimFuncs through call_tir
    model: onnx.ModelProto
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    source: str
    sha256: str
    #: the Relax graph of high-level ops after FoldConstant and scalarization (the FPGA target reads it)
    graph: Any = None
    extern_dot: bool = False


def _dtype_name(elem_type: int) -> str:
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name


def _graph_inputs(model: onnx.ModelProto, source: str) -> list[TensorSpec]:
    inits = {i.name for i in model.graph.initializer}
    specs = []
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        t = vi.type.tensor_type
        if not t.HasField("shape"):
            raise FrontendError(f"{source}: input {vi.name!r} has no declared shape")
        dims, batched = [], False
        for k, d in enumerate(t.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(d.dim_value)
            elif k == 0:
                dims.append(1)
                batched = True
            else:
                name = d.dim_param or "?"
                raise FrontendError(
                    f"{source}: input {vi.name!r} has a symbolic dimension {name!r} at axis {k}; "
                    "only the batch dimension (axis 0) may be symbolic"
                )
        specs.append(TensorSpec(vi.name, _dtype_name(t.elem_type), tuple(dims), batched))
    return specs


def _failing_node(exc: BaseException) -> onnx.NodeProto | None:
    """The ONNX node TVM's importer was converting when ``exc`` was raised (from the traceback)."""
    tb = exc.__traceback__
    node = None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "_construct_nodes" and isinstance(
            frame.f_locals.get("node"), onnx.NodeProto
        ):
            node = frame.f_locals["node"]
        tb = tb.tb_next
    return node


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}"


def lower(model: onnx.ModelProto | str | os.PathLike[str], *, extern_dot: bool = False) -> Lowered:
    """Import an integer ONNX graph (path or ModelProto) into TVM Relax and optimise it.

    The graph is checked against ctnn's integer dialect first (a
    :class:`ctnn.quant.DialectError` names the node and op outside it). The
    symbolic batch dimension is fixed to 1: deployed models run one sample at a time.
    ``extern_dot`` makes dense layers call ctnn's ``ctnn_dot_*`` micro-kernels (C targets).

    >>> from ctnn.quant import random_integer_mlp
    >>> low = lower(random_integer_mlp([16, 8, 4]).to_onnx())
    >>> low.inputs[0].shape, low.outputs[0].shape
    ((1, 16), (1, 4))
    """
    source = str(model) if not isinstance(model, onnx.ModelProto) else "<model>"
    proto = as_model(model)
    sha = hashlib.sha256(proto.SerializeToString(deterministic=True)).hexdigest()
    inputs = _graph_inputs(proto, source)

    try:
        import tvm
        from tvm.relax.frontend.onnx import from_onnx
    except Exception as exc:  # pragma: no cover - depends on the installation
        raise FrontendError(f"cannot import TVM (apache-tvm>=0.27 is required): {_first_line(exc)}") from exc

    try:
        mod = from_onnx(
            proto,
            shape_dict={s.name: list(s.shape) for s in inputs},
            dtype_dict={s.name: s.dtype for s in inputs},
            keep_params_in_input=False,
        )
    except Exception as exc:
        node = _failing_node(exc)
        where = f"node {node.name!r} (op {node.op_type})" if node is not None else "the graph"
        raise FrontendError(
            f"{source}: TVM {tvm.__version__} could not import {where}: {_first_line(exc)}"
        ) from exc

    try:
        graph, mod = _optimize(mod, extern_dot)
    except Exception as exc:
        raise FrontendError(f"{source}: TVM's Relax pipeline failed: {_first_line(exc)}") from exc

    outputs = _outputs(proto, mod, source)
    return Lowered(
        mod=mod, model=proto, inputs=tuple(inputs), outputs=tuple(outputs), source=source, sha256=sha,
        graph=graph, extern_dot=extern_dot,
    )  # fmt: skip


def _optimize(mod: Any, extern_dot: bool) -> tuple[Any, Any]:
    """Run :data:`PIPELINE`; return (the high-level graph before LegalizeOps, the fused module)."""
    import tvm
    from tvm import relax

    from . import _requant, _rewrite, _schedule
    from ._tvmlog import quiet_tvm

    graph = None
    with quiet_tvm(), tvm.transform.PassContext(opt_level=3):
        for name in PIPELINE:
            if name in ("ctnn.requant32", "ctnn.extern_dense") and not extern_dot:
                continue
            if name == "ctnn.narrow_constants":  # a copy: the rewrites update modules in place
                graph = tvm.IRModule(dict(mod.functions.items()))
            if name == "ctnn.schedule":
                mod = _schedule.schedule_module(mod)
            elif name == "ctnn.requant32":
                mod = _requant.requant32(mod)
            elif name.startswith("ctnn."):
                mod = getattr(_rewrite, name.removeprefix("ctnn."))(mod)
            else:
                mod = getattr(relax.transform, name)()(mod)
    return graph, mod


def _outputs(proto: onnx.ModelProto, mod: Any, source: str) -> list[TensorSpec]:
    from tvm import relax

    ret = mod["main"].ret_ty  # TVM 0.27: ret_struct_info is now ret_ty (a relax.Type)
    infos = list(ret.fields) if isinstance(ret, relax.TupleType) else [ret]
    if len(infos) != len(proto.graph.output):
        raise FrontendError(
            f"{source}: TVM's main returns {len(infos)} tensors, the graph declares {len(proto.graph.output)}"
        )
    specs = []
    for vi, info in zip(proto.graph.output, infos):
        shape = tuple(int(v) for v in info.shape.values)
        dtype = str(info.dtype)
        declared = _dtype_name(vi.type.tensor_type.elem_type) if vi.type.tensor_type.elem_type else dtype
        if declared != dtype:
            raise FrontendError(f"{source}: output {vi.name!r} is {declared} in ONNX but {dtype} in TVM")
        dims = vi.type.tensor_type.shape.dim
        batched = bool(dims) and not (dims[0].HasField("dim_value") and dims[0].dim_value > 0)
        specs.append(TensorSpec(vi.name, dtype, shape, batched))
    return specs
