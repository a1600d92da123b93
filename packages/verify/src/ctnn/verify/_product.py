"""Product graphs: two runs of integer graphs side by side, as one integer graph.

Relational properties (bias: one network on two inputs; equivalence: two networks on one
input) become ordinary output properties of a *product graph*, so every stage of a query
(interval and linear bounds, the attack, box splitting, the SMT encoding, the replay of
witnesses on the reference and in onnxruntime) applies unchanged. A product graph is in the
integer dialect: the copies are renamed subgraphs wired to one flat input by constant
``Gather``s (each optionally followed by a constant table that turns the input's values into that
copy's codes, see :mod:`._inputs`), and their flattened outputs are cast to int64, less an optional zero point,
and concatenated: ``y = [A(...) - z_a, B(...) - z_b]``, shape ``[N, 2m]``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ._errors import UnsupportedError
from ._network import Network

_ONNX_DTYPE = {
    np.dtype(np.int8): TensorProto.INT8,
    np.dtype(np.uint8): TensorProto.UINT8,
    np.dtype(np.int16): TensorProto.INT16,
    np.dtype(np.uint16): TensorProto.UINT16,
    np.dtype(np.int32): TensorProto.INT32,
    np.dtype(np.int64): TensorProto.INT64,
}


def _copy(
    net: Network,
    prefix: str,
    x_flat: str,
    index: np.ndarray,
    zero_point: int,
    batched: bool,
    table: np.ndarray | None = None,
) -> tuple[list, list, str]:
    """Nodes and initializers of one renamed copy of ``net`` fed by ``x_flat[:, index]`` (through
    ``table[...]`` if given); its output name."""
    g = net.model.graph
    p = f"{prefix}/"
    ren = {i.name: p + i.name for i in g.initializer}
    for node in g.node:
        for o in node.output:
            if o:
                ren[o] = p + o
    inits = []
    for i in g.initializer:
        t = onnx.TensorProto()
        t.CopyFrom(i)
        t.name = ren[i.name]
        inits.append(t)
    idx = numpy_helper.from_array(np.asarray(index, np.int64), p + "__index")
    in_shape = [-1, *net.sample_shape[1:]] if batched else list(net.sample_shape)
    shape = numpy_helper.from_array(np.asarray(in_shape, np.int64), p + "__shape")
    cols = p + "__cols"
    nodes = [helper.make_node("Gather", [x_flat, idx.name], [cols], name=cols, axis=1)]
    if table is not None:
        tab = numpy_helper.from_array(np.asarray(table, np.int64), p + "__table")
        inits.append(tab)
        nodes.append(
            helper.make_node("Gather", [tab.name, cols], [p + "__codes"], name=p + "__codes", axis=0)
        )
        cols = p + "__codes"
    nodes += [
        helper.make_node("Reshape", [cols, shape.name], [p + "__in64"], name=p + "__in64"),
        helper.make_node(
            "Cast",
            [p + "__in64"],
            [p + net.input_name],
            name=p + "__in",
            to=_ONNX_DTYPE[np.dtype(net.input_dtype)],
        ),
    ]
    ren[net.input_name] = p + net.input_name
    for node in g.node:
        n = onnx.NodeProto()
        n.CopyFrom(node)
        n.input[:] = [ren.get(i, i) if i else i for i in node.input]
        n.output[:] = [ren[o] if o else o for o in node.output]
        n.name = p + (node.name or node.output[0])
        nodes.append(n)
    flat = numpy_helper.from_array(np.asarray([-1, n_outputs(net)], np.int64), p + "__flat")
    out = p + "__y"
    nodes.append(
        helper.make_node("Reshape", [ren[net.output_name], flat.name], [p + "__yr"], name=p + "__yr")
    )
    nodes.append(helper.make_node("Cast", [p + "__yr"], [out], name=out, to=TensorProto.INT64))
    inits += [idx, shape, flat]
    if zero_point:
        z = numpy_helper.from_array(np.asarray(zero_point, np.int64), p + "__zero_point")
        inits.append(z)
        nodes.append(helper.make_node("Sub", [out, z.name], [p + "__centred"], name=p + "__centred"))
        out = p + "__centred"
    return nodes, inits, out


def product_graph(
    a: Network,
    b: Network,
    n_inputs: int,
    index_a: np.ndarray,
    index_b: np.ndarray,
    zero_points: tuple[int, int] = (0, 0),
    in_dtype: np.dtype | None = None,
    tables: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
) -> onnx.ModelProto:
    """One graph ``x [N, n_inputs] -> y = [a(x[index_a]) - z_a, b(x[index_b]) - z_b]``.

    ``y`` is int64 ``[N, 2m]`` (``N`` is 1 unless both graphs are batched).

    ``index_a``/``index_b`` pick, for each flat input element of ``a``/``b``, the column of
    ``x`` it reads (a column may feed several elements and both copies); ``tables`` map a column's
    value ``v`` to that copy's code ``table[v]``.
    """
    batched = a.batched and b.batched
    nodes = [helper.make_node("Cast", ["x"], ["x64"], name="x64", to=TensorProto.INT64)]
    na, ia, ya = _copy(a, "a", "x64", index_a, zero_points[0], batched, tables[0])
    nb, ib, yb = _copy(b, "b", "x64", index_b, zero_points[1], batched, tables[1])
    nodes += na + nb + [helper.make_node("Concat", [ya, yb], ["y"], name="y", axis=1)]
    m = n_outputs(a)
    if n_outputs(b) != m:
        raise UnsupportedError(f"the two graphs have different output sizes: {m} and {n_outputs(b)}")
    batch: int | str = "N" if batched else 1
    graph = helper.make_graph(
        nodes,
        "ctnn_verify_product",
        [helper.make_tensor_value_info("x", _ONNX_DTYPE[np.dtype(in_dtype or np.int64)], [batch, n_inputs])],
        [helper.make_tensor_value_info("y", TensorProto.INT64, [batch, 2 * m])],
        initializer=ia + ib,
    )
    opset = max(17, *(o.version for o in a.model.opset_import if o.domain in ("", "ai.onnx")))
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="ctnn-verify"
    )
    model.ir_version = max(a.model.ir_version, b.model.ir_version, 8)
    return model


def n_outputs(net: Network) -> int:
    """How many output elements one sample of ``net`` has (the reference on its lowest input)."""
    lo = np.full(net.n_features, net.input_range[0], np.int64)
    return int(np.asarray(net.reference(lo)[net.output_name]).size)


def common_dtype(*ranges: tuple[int, int]) -> np.dtype:
    """The smallest signed container holding every range."""
    lo = min(r[0] for r in ranges)
    hi = max(r[1] for r in ranges)
    for dt in (np.int8, np.int16, np.int32, np.int64):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dt)
    return np.dtype(np.int64)
