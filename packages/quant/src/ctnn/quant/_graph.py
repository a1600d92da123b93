"""Writing integer ONNX graphs: a small builder and the dense-layer pattern.

Torch-free on purpose: anything that holds integer weights (a PTQ result, a random
test network, a third-party model) becomes a graph through these functions.

A dense layer with requantization is written as::

    acc = MatMulInteger(x, W) + b                # int8 x int8 -> int32 (Cast+MatMul above 8 bits,
                                                 #   in int64 where an int32 accumulator could overflow)
    p   = Cast<int64>(acc) * M
    r   = Div(Where(Less(p, 0), p - h, p + h), 2**s)      # round half away from zero
    y   = Cast<container>(Clip(r, lo, hi))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ._semantics import container_dtype, requantize, signed_range

OPSET = 17
IR_VERSION = 9

_NP_TO_ONNX = {
    np.dtype(np.int8): TensorProto.INT8,
    np.dtype(np.int16): TensorProto.INT16,
    np.dtype(np.int32): TensorProto.INT32,
    np.dtype(np.int64): TensorProto.INT64,
}


class GraphBuilder:
    """Accumulates nodes and initializers with unique, readable names."""

    def __init__(self, name: str):
        self.name = name
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, onnx.TensorProto] = {}

    def const(self, name: str, value: np.ndarray) -> str:
        """Add an initializer (deduplicated by name) and return its name."""
        if name not in self.inits:
            self.inits[name] = numpy_helper.from_array(np.asarray(value), name)
        return name

    def scalar(self, value: int, dtype: type = np.int64) -> str:
        """A named scalar constant of ``dtype``."""
        v = np.asarray(value, dtype=dtype)
        return self.const(f"c_{np.dtype(dtype).name}_{int(value)}".replace("-", "m"), v)

    def op(self, op_type: str, inputs: list[str], output: str, **attrs) -> str:
        """Add one node named after its output; return the output's name."""
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def cast(self, x: str, dtype: np.dtype, out: str) -> str:
        return self.op("Cast", [x], out, to=_NP_TO_ONNX[np.dtype(dtype)])

    def weight(self, name: str, w: np.ndarray) -> tuple[str, np.dtype]:
        """Add integer weights in the smallest container; return (name, dtype)."""
        dt = container_dtype(int(np.min(w, initial=0)), int(np.max(w, initial=0)))
        return self.const(name, np.asarray(w).astype(dt)), dt

    def matmul(
        self, a: str, a_dtype: np.dtype, w: str, w_dtype: np.dtype, out: str, acc_dtype: type = np.int32
    ) -> str:
        """``a @ w``: MatMulInteger for int8 x int8, else Cast to ``acc_dtype`` (int32 or int64) and MatMul.

        Pass ``acc_dtype=np.int64`` when the accumulator can leave int32 (wide codes, long rows).
        """
        if a_dtype == np.int8 and w_dtype == np.int8 and acc_dtype == np.int32:
            return self.op("MatMulInteger", [a, w], out)
        return self.op(
            "MatMul", [self.cast(a, acc_dtype, f"{out}/a32"), self.cast(w, acc_dtype, f"{out}/w32")], out
        )

    def round_shift(
        self,
        x64: str,
        multiplier: np.ndarray | int,
        shift: np.ndarray | int,
        prefix: str,
        key: str | None = None,
    ) -> str:
        """``round_div(x * M, 2**s)`` on an int64 tensor (half away from zero, truncating Div).

        Constants are named after ``key`` (default ``prefix``) so unrolled steps can share them.
        """
        key = prefix if key is None else key
        shift = np.asarray(shift, np.int64)
        m = self.const(f"{key}/M", np.asarray(multiplier, np.int64))
        d = self.const(f"{key}/D", np.left_shift(np.int64(1), shift))
        h = self.const(f"{key}/H", np.left_shift(np.int64(1), shift) // 2)
        p = self.op("Mul", [x64, m], f"{prefix}/prod")
        neg = self.op("Less", [p, self.scalar(0)], f"{prefix}/neg")
        lo_side = self.op("Sub", [p, h], f"{prefix}/p_minus_h")
        hi_side = self.op("Add", [p, h], f"{prefix}/p_plus_h")
        rounded = self.op("Where", [neg, lo_side, hi_side], f"{prefix}/rounded")
        return self.op("Div", [rounded, d], f"{prefix}/div")

    def requant(
        self, acc: str, multiplier: np.ndarray, shift: np.ndarray, lo: int, hi: int, prefix: str
    ) -> str:
        """Emit ``clip(round_div(acc * M, 2**s), lo, hi)`` on an int32 tensor; returns an int64 tensor."""
        r = self.round_shift(self.cast(acc, np.int64, f"{prefix}/acc64"), multiplier, shift, prefix)
        return self.op("Clip", [r, self.scalar(lo), self.scalar(hi)], f"{prefix}/clip")

    def model(
        self,
        inputs: list[tuple[str, np.dtype, list[int | str]]],
        outputs: list[tuple[str, np.dtype, list[int | str]]],
        doc: str = "",
    ) -> onnx.ModelProto:
        """Assemble and check the ONNX model."""
        g = helper.make_graph(
            self.nodes,
            self.name,
            [helper.make_tensor_value_info(n, _NP_TO_ONNX[np.dtype(t)], s) for n, t, s in inputs],
            [helper.make_tensor_value_info(n, _NP_TO_ONNX[np.dtype(t)], s) for n, t, s in outputs],
            initializer=list(self.inits.values()),
        )
        m = helper.make_model(
            g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="ctnn-quant", doc_string=doc
        )
        m.ir_version = IR_VERSION
        onnx.checker.check_model(m, full_check=True)
        return m


@dataclass
class IntegerDense:
    """One integer dense layer: ``y = clip(round_div((x @ W + b) * M, 2**s), lo, hi)``.

    ``lo = 0`` fuses a ReLU into the clip.
    """

    weight: np.ndarray  # [in, out], integer codes
    bias: np.ndarray  # [out], int32 in the accumulator's scale
    multiplier: np.ndarray  # [out] or scalar
    shift: np.ndarray  # [out] or scalar
    lo: int
    hi: int
    name: str = "dense"

    def accumulator_bound(self, in_lo: int, in_hi: int) -> int:
        """The largest |x @ W + b| for inputs in [in_lo, in_hi]."""
        w = self.weight.astype(np.int64)
        pos = np.clip(w, 0, None).sum(0)
        neg = np.clip(w, None, 0).sum(0)
        hi = pos * in_hi + neg * in_lo + self.bias
        lo = pos * in_lo + neg * in_hi + self.bias
        return int(max(np.abs(hi).max(), np.abs(lo).max()))


@dataclass
class IntegerMLP:
    """A fully integer multilayer perceptron: the simplest model in the dialect."""

    layers: list[IntegerDense]
    in_bits: int
    weight_bits: int
    act_bits: int
    meta: dict = field(default_factory=dict)

    @property
    def in_range(self) -> tuple[int, int]:
        return signed_range(self.in_bits)

    def forward(self, codes: np.ndarray) -> np.ndarray:
        """Direct numpy evaluation of the integer semantics (independent of the graph)."""
        x = np.asarray(codes, np.int64)
        for layer in self.layers:
            acc = x @ layer.weight.astype(np.int64) + layer.bias.astype(np.int64)
            x = requantize(acc, layer.multiplier, layer.shift, layer.lo, layer.hi)
        return x

    def to_onnx(self, name: str = "ctnn_mlp") -> onnx.ModelProto:
        """Write the integer ONNX graph (input ``x``, output ``y``, batch dimension ``N``)."""
        b = GraphBuilder(name)
        lo, hi = self.in_range
        x, x_dtype = "x", container_dtype(lo, hi)
        in_dtype = x_dtype
        n_in = self.layers[0].weight.shape[0]
        for layer in self.layers:
            bound = layer.accumulator_bound(lo, hi)
            m_max = int(np.max(layer.multiplier))
            if bound * m_max + 2 ** int(np.max(layer.shift)) >= 2**62:
                raise OverflowError(
                    f"layer {layer.name}: accumulator bound {bound} times its multiplier overflows int64"
                )
            acc_dt = np.int32 if bound < 2**31 else np.int64  # int64 only where int32 could overflow
            w, w_dtype = b.weight(f"{layer.name}/W", layer.weight)
            acc = b.matmul(x, x_dtype, w, w_dtype, f"{layer.name}/matmul", acc_dt)
            acc = b.op(
                "Add", [acc, b.const(f"{layer.name}/b", layer.bias.astype(acc_dt))], f"{layer.name}/acc"
            )
            r = b.requant(acc, layer.multiplier, layer.shift, layer.lo, layer.hi, f"{layer.name}/rq")
            lo, hi = layer.lo, layer.hi
            x_dtype = container_dtype(lo, hi)
            x = b.cast(r, x_dtype, f"{layer.name}/out")
        # the graph's output gets a stable name
        y = b.op("Identity", [x], "y")
        n_out = self.layers[-1].weight.shape[1]
        return b.model([("x", in_dtype, ["N", n_in])], [(y, x_dtype, ["N", n_out])])


def random_integer_mlp(
    sizes: list[int],
    weight_bits: int = 8,
    act_bits: int = 8,
    in_bits: int = 8,
    seed: int = 0,
) -> IntegerMLP:
    """A random integer MLP with plausible requantization scales (for tests and benchmarks)."""
    from ._semantics import quantize_multiplier

    rng = np.random.default_rng(seed)
    wlo, whi = signed_range(weight_bits)
    alo, ahi = signed_range(act_bits)
    ilo, ihi = signed_range(in_bits)
    layers = []
    in_hi = ihi
    for i, (k, m) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.integers(wlo, whi + 1, size=(k, m))
        b = rng.integers(-(in_hi * whi), in_hi * whi + 1, size=m) // 4
        # scale so that a typical accumulator (~ sqrt(k) * in * w) lands in the output range
        typical = max(1.0, np.sqrt(k) * max(in_hi, 1) * max(whi, 1) / 2)
        mult, shift = quantize_multiplier(ahi / typical)
        last = i == len(sizes) - 2
        layers.append(
            IntegerDense(
                weight=w, bias=b.astype(np.int32), multiplier=np.full(m, mult), shift=np.full(m, shift),
                lo=alo if last else 0, hi=ahi, name=f"fc{i + 1}",
            )
        )  # fmt: skip
        in_hi = ahi
    return IntegerMLP(layers, in_bits=in_bits, weight_bits=weight_bits, act_bits=act_bits)
