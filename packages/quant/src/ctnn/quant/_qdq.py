"""Import third-party QDQ-quantized ONNX models into the integer dialect (torch-free).

Accepted: the models ``onnxruntime.quantization.quantize_static(..., quant_format=QDQ)``
writes for dense networks — a chain of ``QuantizeLinear → DequantizeLinear → Gemm``
(or ``MatMul`` [+ ``Add`` of a dequantized bias]) ``→ [Relu] → QuantizeLinear``,
8- or 16-bit, signed or unsigned activations, per-tensor or per-output-channel weight
scales. Anything else is refused with :class:`QDQImportError` naming the node.

How one layer becomes integer. With real values ``s·(q − zp)``, the float graph means::

    y = Q( DQ(x) @ DQ(W) + DQ(b) ) = sat( round(acc · s_x s_w / s_y) + zp_y )
    acc = (x − zp_x) @ (W − zp_w) + b                                 (exact int32)

(when ``b`` is stored in the accumulator's scale ``s_x·s_w``, which is checked). ctnn
writes it with every activation held *relative to its zero point* (``y − zp_y``), so
the zero points vanish except the input's, which is folded into the first bias::

    y − zp_y = clip(round_div(acc · M, 2**s), lo − zp_y, hi − zp_y)

``M / 2**s`` is set *exactly* to onnxruntime's float32 requantization factor
``fl32(fl32(s_x · s_w) / s_y)`` — a float32 is a 24-bit integer times a power of two, so
this is always representable and never approximated. What remains different from
onnxruntime's integer kernels (QGemm / QLinearMatMul): they multiply in float32
(``fl32(fl32(acc) · r)``, a relative error ≤ 2**-24) and round half to even, where ctnn
multiplies exactly and rounds half away from zero. The codes therefore agree unless
``acc · r`` lies within ``|acc · r| · 2**-24`` of a half-integer — then they differ by
exactly 1 (measured in the tests on real inputs). A ReLU becomes the clip's lower bound
(``max(q, zp)`` is ReLU in the code domain because ``Q(0) = zp`` exactly).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import numpy_helper

from ._graph import IntegerDense, IntegerMLP
from ._semantics import container_dtype
from ._sidecar import TensorQuant

if TYPE_CHECKING:
    from ._ptq import QuantizedModel


class QDQImportError(ValueError):
    """A QDQ model (or one node of it) that has no exact form in the integer dialect."""


@dataclass
class _Quant:
    scale: np.ndarray  # float32, scalar or per channel
    zero_point: np.ndarray  # integer, same shape
    lo: int
    hi: int
    bits: int


_QTYPES = {
    np.dtype(np.int8): (-128, 127, 8),
    np.dtype(np.uint8): (0, 255, 8),
    np.dtype(np.int16): (-(2**15), 2**15 - 1, 16),
    np.dtype(np.uint16): (0, 2**16 - 1, 16),
    np.dtype(np.int32): (-(2**31), 2**31 - 1, 32),  # biases only
}


def float32_multiplier(real: np.float32) -> tuple[int, int]:
    """``(M, s)`` with ``M / 2**s`` *equal* to the positive float32 ``real`` (``M < 2**24``, ``s >= 0``)."""
    r = np.float32(real)
    if not (np.isfinite(r) and r > 0):
        raise QDQImportError(f"requantization factor must be positive and finite, got {float(r)}")
    mant, exp = np.frexp(np.float64(r))  # r = mant * 2**exp, 0.5 <= mant < 1, 24 significant bits
    m, s = int(mant * 2**24), 24 - int(exp)
    while m % 2 == 0 and s > 0:  # the shortest exact form
        m, s = m // 2, s - 1
    if s < 0:
        m, s = m << -s, 0
    if m >= 2**31:
        raise QDQImportError(f"requantization factor {float(r)} is too large for an int32 multiplier")
    return m, s


class _Graph:
    def __init__(self, model: onnx.ModelProto):
        g = model.graph
        self.inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        for n in g.node:  # Constant nodes are initializers too
            if n.op_type == "Constant":
                self.inits[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
        self.nodes = [n for n in g.node if n.op_type != "Constant"]
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in self.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.outputs = [o.name for o in g.output]

    def const(self, name: str, node: onnx.NodeProto, what: str) -> np.ndarray:
        if name not in self.inits:
            raise QDQImportError(f"node {node.name!r} ({node.op_type}): {what} {name!r} must be a constant")
        return self.inits[name]

    def only_consumer(self, tensor: str, after: onnx.NodeProto) -> onnx.NodeProto:
        cs = self.consumers.get(tensor, [])
        if len(cs) != 1:
            raise QDQImportError(
                f"node {after.name!r} ({after.op_type}): its output {tensor!r} feeds {len(cs)} nodes; "
                "only a chain of layers can be imported"
            )
        return cs[0]

    def quant(self, node: onnx.NodeProto) -> _Quant:
        """The scale / zero point of a QuantizeLinear or DequantizeLinear node."""
        scale = np.asarray(self.const(node.input[1], node, "scale"), np.float32)
        if len(node.input) > 2 and node.input[2]:
            zp = np.asarray(self.const(node.input[2], node, "zero point"))
        elif node.op_type == "DequantizeLinear":
            zp = np.zeros((), self.inits[node.input[0]].dtype if node.input[0] in self.inits else np.uint8)
        else:
            zp = np.zeros((), np.uint8)  # the ONNX default output type
        if zp.dtype not in _QTYPES:
            raise QDQImportError(f"node {node.name!r} ({node.op_type}): {zp.dtype} codes are not supported")
        lo, hi, bits = _QTYPES[zp.dtype]
        if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
            raise QDQImportError(f"node {node.name!r} ({node.op_type}): scale {scale} is not positive")
        return _Quant(scale, zp.astype(np.int64), lo, hi, bits)


def _scalar_quant(q: _Quant, node: onnx.NodeProto) -> _Quant:
    if q.scale.size != 1 or q.zero_point.size != 1:
        raise QDQImportError(f"node {node.name!r}: per-channel activation quantization is not supported")
    if q.bits > 16:
        raise QDQImportError(
            f"node {node.name!r}: {q.bits}-bit activation codes are outside the dialect's 2..16 bits"
        )
    return _Quant(q.scale.reshape(()), q.zero_point.reshape(()), q.lo, q.hi, q.bits)


def _same(a: _Quant, b: _Quant) -> bool:
    return bool(a.scale == b.scale and a.zero_point == b.zero_point and (a.lo, a.hi) == (b.lo, b.hi))


def _dq_const(
    g: _Graph, name: str, user: onnx.NodeProto, what: str
) -> tuple[np.ndarray, _Quant, onnx.NodeProto]:
    """A constant fed through DequantizeLinear: its integer values, quantization and the DQ node."""
    node = g.producer.get(name)
    if node is None or node.op_type != "DequantizeLinear":
        raise QDQImportError(
            f"node {user.name!r} ({user.op_type}): its {what} {name!r} is not a DequantizeLinear of constant "
            "integers (a float weight has no exact integer form)"
        )
    values = np.asarray(g.const(node.input[0], node, "quantized " + what))
    return values.astype(np.int64), g.quant(node), node


def _layer(g: _Graph, node: onnx.NodeProto, in_q: _Quant, index: int) -> tuple[dict, str]:
    """Gemm or MatMul(+Add) → [Relu] → QuantizeLinear, as integers; returns (layer, output code tensor)."""
    w, wq, wnode = _dq_const(g, node.input[1], node, "weight")
    if w.ndim != 2:
        raise QDQImportError(f"node {node.name!r}: weight must be 2-D, got shape {list(w.shape)}")
    bias = None
    if node.op_type == "Gemm":
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
            raise QDQImportError(f"node {node.name!r} (Gemm): only transA=0, alpha=1, beta=1 are supported")
        out_axis = 0 if attrs.get("transB", 0) else 1
        if len(node.input) > 2 and node.input[2]:
            bias = _dq_const(g, node.input[2], node, "bias")
        out = node.output[0]
    else:
        out_axis = 1
        out = node.output[0]
        nxt = g.only_consumer(out, node)
        if nxt.op_type == "Add":
            other = nxt.input[1] if nxt.input[0] == out else nxt.input[0]
            bias = _dq_const(g, other, nxt, "bias")
            out = nxt.output[0]
    wmat = w.T if out_axis == 0 else w  # [in, out]
    n_out = wmat.shape[1]
    axis = 0
    for a in wnode.attribute:
        if a.name == "axis":
            axis = a.i
    if wq.scale.size not in (1, n_out) or (wq.scale.size > 1 and axis % 2 != out_axis):
        raise QDQImportError(f"node {wnode.name!r}: weight scales must be per tensor or per output channel")
    s_w = np.broadcast_to(wq.scale.reshape(-1), (n_out,)).astype(np.float32)
    zp_w = np.broadcast_to(wq.zero_point.reshape(-1), (n_out,))
    wint = wmat - zp_w[None, :]
    acc_scale = (np.float32(in_q.scale) * s_w).astype(np.float32)  # what the quantizer and the kernels use
    b = np.zeros(n_out, np.int64)
    if bias is not None:
        bvals, bq, bnode = bias
        bs = np.broadcast_to(bq.scale.reshape(-1), (n_out,)).astype(np.float32)
        if np.any(bq.zero_point != 0) or not np.array_equal(bs, acc_scale):
            raise QDQImportError(
                f"node {bnode.name!r}: the bias is not stored in the accumulator's scale (scale {bs[:3]}…, zero "
                f"point {bq.zero_point.reshape(-1)[:1]}; expected input scale × weight scale = {acc_scale[:3]}… "
                "and zero point 0), so adding it to the integer accumulator would not be exact"
            )
        b = np.broadcast_to(bvals.reshape(-1), (n_out,)).astype(np.int64)
    relu = False
    nxt = g.only_consumer(out, node)
    if nxt.op_type == "Relu":
        relu = True
        nxt = g.only_consumer(nxt.output[0], nxt)
    if nxt.op_type != "QuantizeLinear":
        raise QDQImportError(
            f"node {nxt.name!r} ({nxt.op_type}): expected a QuantizeLinear after {node.name!r}; an op "
            "between a layer and its requantization has no exact integer form"
        )
    out_q = _scalar_quant(g.quant(nxt), nxt)
    zp_y = int(out_q.zero_point)
    r = (acc_scale / np.float32(out_q.scale)).astype(np.float32)
    mult, shift = zip(*(float32_multiplier(v) for v in r))
    layer = dict(
        weight=wint, bias=b, multiplier=np.array(mult, np.int64), shift=np.array(shift, np.int64),
        lo=(max(out_q.lo, zp_y) if relu else out_q.lo) - zp_y, hi=out_q.hi - zp_y, name=f"fc{index + 1}",
        quant=out_q, source=node.name,
    )  # fmt: skip
    return layer, nxt.output[0]


def import_qdq(model: onnx.ModelProto | str | os.PathLike[str]) -> QuantizedModel:
    """Convert a QDQ-quantized dense ONNX model into an integer-dialect :class:`~ctnn.quant.QuantizedModel`.

    The result's graph takes the input *codes* ``QuantizeLinear(x)`` of the original
    model held relative to 128 when they are unsigned 8-bit (so they fit int8; the
    sidecar's zero point says so), and returns the output codes minus the output zero
    point (``real = output.scale · y``). Raises :class:`QDQImportError` naming the node
    and value that cannot be represented exactly.

    >>> q = import_qdq("model.qdq.onnx")            # doctest: +SKIP
    >>> export_onnx(q, "model.int.onnx")             # doctest: +SKIP
    """
    m = model if isinstance(model, onnx.ModelProto) else onnx.load(os.fspath(model))
    g = _Graph(m)
    inputs = [i.name for i in m.graph.input if i.name not in g.inits]
    if len(inputs) != 1 or len(g.outputs) != 1:
        raise QDQImportError(
            f"expected one input and one output, got inputs {inputs} and outputs {g.outputs}"
        )
    for n in g.nodes:
        if n.domain not in ("", "ai.onnx"):
            raise QDQImportError(f"node {n.name!r}: op {n.domain}.{n.op_type} is not a standard ONNX op")
    first = g.only_consumer(inputs[0], onnx.helper.make_node("Input", [], [inputs[0]], name=inputs[0]))
    if first.op_type != "QuantizeLinear":
        raise QDQImportError(
            f"node {first.name!r} ({first.op_type}): the input must go straight into a QuantizeLinear"
        )
    in_q = _scalar_quant(g.quant(first), first)
    codes, cur_q = first.output[0], in_q
    layers: list[dict] = []
    while True:
        dq = g.only_consumer(codes, g.producer[codes])
        if dq.op_type != "DequantizeLinear" or not _same(_scalar_quant(g.quant(dq), dq), cur_q):
            raise QDQImportError(
                f"node {dq.name!r} ({dq.op_type}): codes must be dequantized with the scale and zero point "
                "they were quantized with"
            )
        real = dq.output[0]
        if real in g.outputs:
            break
        nxt = g.only_consumer(real, dq)
        if nxt.op_type == "Relu":  # ReLU on codes, requantized with the same parameters
            q = g.only_consumer(nxt.output[0], nxt)
            if q.op_type != "QuantizeLinear" or not _same(_scalar_quant(g.quant(q), q), cur_q) or not layers:
                raise QDQImportError(
                    f"node {nxt.name!r} (Relu): must follow a layer and be requantized unchanged"
                )
            layers[-1]["lo"] = max(layers[-1]["lo"], 0)
            codes = q.output[0]
            continue
        if nxt.op_type not in ("Gemm", "MatMul") or nxt.input[0] != real:
            raise QDQImportError(
                f"node {nxt.name!r}: op {nxt.op_type} has no exact integer form here (supported: Gemm, MatMul, "
                "Add of a bias, Relu, QuantizeLinear/DequantizeLinear)"
            )
        layer, codes = _layer(g, nxt, cur_q, len(layers))
        layers.append(layer)
        cur_q = layer["quant"]
    if not layers:
        raise QDQImportError("the model has no quantized Gemm or MatMul layer")

    # the input codes, made signed: uint8 codes q become q - 128 (int8), zero point moved alike
    offset = in_q.lo + 2 ** (in_q.bits - 1) if in_q.lo == 0 else 0
    zp_in = int(in_q.zero_point) - offset
    dense = []
    for i, L in enumerate(layers):
        bias = L["bias"]
        if i == 0:  # (x' - zp') @ W = x' @ W - zp' * colsum(W)
            bias = bias - zp_in * L["weight"].sum(axis=0)
        if np.abs(bias).max(initial=0) > 2**31 - 1:
            raise QDQImportError(
                f"node {L['source']!r}: the bias with the input zero point folded overflows int32"
            )
        dense.append(IntegerDense(weight=L["weight"], bias=bias.astype(np.int32), multiplier=L["multiplier"],
                                  shift=L["shift"], lo=int(L["lo"]), hi=int(L["hi"]), name=L["name"]))  # fmt: skip
    wbits = max(8, *(int(np.abs(L["weight"]).max(initial=0)).bit_length() + 1 for L in layers))
    net = IntegerMLP(dense, in_bits=in_q.bits, weight_bits=min(wbits, 16), act_bits=layers[-1]["quant"].bits)
    ilo, ihi = in_q.lo - offset, in_q.hi - offset
    n_in, n_out = dense[0].weight.shape[0], dense[-1].weight.shape[1]
    inq = TensorQuant("x", [None, n_in], in_q.bits, ilo, ihi, float(in_q.scale), zp_in,
                      str(container_dtype(ilo, ihi)))  # fmt: skip
    oq = layers[-1]["quant"]
    lo, hi = dense[-1].lo, dense[-1].hi
    outq = TensorQuant("y", [None, n_out], oq.bits, lo, hi, float(oq.scale), 0, str(container_dtype(lo, hi)))
    hp = {
        "source": "onnx QDQ", "producer": m.producer_name, "layers": [L["source"] for L in layers],
        "input_code_offset": offset, "output_zero_point": int(oq.zero_point),
        "layer_zero_points": [int(L["quant"].zero_point) for L in layers],
        "rounding": "half away from zero (onnxruntime: half to even after a float32 multiply)",
    }  # fmt: skip
    from ._ptq import QuantizedModel  # the result type lives with the torch side (for now)

    return QuantizedModel(net=net, input=inq, output=outq, family="onnx_qdq", hyperparameters=hp)
