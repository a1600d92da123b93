"""ctnn's Relax rewrites: what TVM's ONNX importer leaves that costs flash, RAM or cycles on a microcontroller.

Each rewrite is exact (the integer results do not change) and runs on the Relax
``main`` before ``LegalizeOps``:

- :func:`fold_matmul_casts`: the importer turns ``MatMulInteger(x, W)`` into
  ``matmul(astype(x, int32), astype(W, int32))``, and FoldConstant would then store the
  int8 weights as int32 constants (4x their flash). A widening integer cast into a
  matmul whose ``out_dtype`` is the cast's type is dropped: TVM's matmul casts each
  operand to ``out_dtype`` inside the reduction, so the kernel reads int8 weights and
  widens them on the fly.
- :func:`clip_calls_to_ops`: the importer emits ``Clip`` as ``call_tir`` of TOPI's
  maximum/minimum; they become ``relax.maximum``/``relax.minimum`` again, so their scalar
  bounds turn into literals like every other scalar constant.
- :func:`scalarize_uniform_constants`: a constant whose elements are all equal (a
  per-tensor requantization written per channel) becomes a scalar, which LegalizeOps
  inlines as a literal: no array in flash, and division by a literal power of two
  compiles to shifts.
- :func:`narrow_constants`: an elementwise constant whose values fit a smaller integer
  type is stored in it and widened in the kernel (``astype`` fuses into the consumer).
- :func:`extern_dense` (C targets): ``matmul(x, W)`` with a constant int8/uint8 ``W``
  becomes a call of a ctnn PrimFunc whose inner product is ``ctnn_dot_*`` from
  ``ctnn_dot.h`` (SMLAD on Cortex-M4, a plain loop elsewhere); ``W`` is stored
  transposed, one contiguous row per output.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

#: integer dtypes, narrowest first, used when narrowing constants
_NARROW = ("int8", "uint8", "int16", "uint16", "int32")
_ELEMENTWISE = ("add", "subtract", "multiply", "divide", "maximum", "minimum", "less", "greater", "equal")
#: dtype -> the short name used in micro-kernel symbols
DOT_TYPES = {"int8": "s8", "uint8": "u8", "int16": "s16"}
DOT_WEIGHTS = ("int8", "uint8")


def _shape(e: Any) -> tuple[int, ...] | None:
    from tvm import relax, tirx

    ty = e.ty
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        return None
    vals = ty.shape.values
    if not all(isinstance(v, tirx.IntImm) for v in vals):
        return None
    return tuple(int(v) for v in vals)


def _is_int(dtype: str) -> bool:
    return np.dtype(dtype).kind in "iu" if dtype != "bool" else False


def _widens(src: str, dst: str) -> bool:
    """Every value of integer type ``src`` is representable in ``dst`` (a cast is exact)."""
    if not (_is_int(src) and _is_int(dst)):
        return False
    a, b = np.iinfo(np.dtype(src)), np.iinfo(np.dtype(dst))
    return b.min <= a.min and a.max <= b.max


def _rewrite(mod: Any, pattern: Any, fn: Any) -> Any:
    from tvm.relax.dpl import rewrite_call

    mod["main"] = rewrite_call(pattern, fn, mod["main"])
    return mod


def fold_matmul_casts(mod: Any) -> Any:
    """``matmul(astype(a, T), astype(b, T), out_dtype=T)`` -> ``matmul(a, b, out_dtype=T)`` for widening casts."""
    from tvm import relax
    from tvm.relax.dpl import is_op, wildcard

    a, b = wildcard(), wildcard()
    ca, cb = is_op("relax.astype")(a), is_op("relax.astype")(b)
    pattern = is_op("relax.matmul")(ca, b) | is_op("relax.matmul")(a, cb) | is_op("relax.matmul")(ca, cb)

    def rw(call: Any, m: Any) -> Any:
        out = str(call.ty.dtype)
        args, changed = list(call.args), False
        for i, (cast, inner) in enumerate(((ca, a), (cb, b))):
            # in a dataflow block the arguments are variables bound to the astype calls
            if cast in m and _widens(str(m[inner].ty.dtype), out):
                args[i], changed = m[inner], True
        return relax.op.matmul(args[0], args[1], out_dtype=out) if changed else call

    return _rewrite(mod, pattern, rw)


def clip_calls_to_ops(mod: Any) -> Any:
    """``call_tir(maximum|minimum, (x, c))`` (TVM's Clip import) -> ``relax.maximum/minimum(x, c)``."""
    from tvm import relax
    from tvm.relax.dpl import is_op, wildcard

    def rw(call: Any, m: Any) -> Any:
        gv = call.args[0]
        match = re.fullmatch(r"(maximum|minimum)\d*", getattr(gv, "name_hint", ""))
        fields = getattr(call.args[1], "fields", None)
        if match is None or fields is None or len(fields) != 2:
            return call
        x, c = fields
        if _shape(x) is None or _shape(x) != _shape(call):
            return call
        op = relax.op.maximum if match.group(1) == "maximum" else relax.op.minimum
        return op(x, c)

    mod = _rewrite(mod, is_op("relax.call_tir")(wildcard(), wildcard()), rw)
    from tvm import relax as _relax

    return _relax.transform.DeadCodeElimination()(mod)


def _constant_args(call: Any) -> list[tuple[int, np.ndarray]]:
    from tvm.ir.expr import Constant

    return [(i, a.value.numpy()) for i, a in enumerate(call.args) if isinstance(a, Constant)]


def scalarize_uniform_constants(mod: Any) -> Any:
    """An elementwise op's constant operand whose elements are all equal -> a scalar constant."""
    from tvm import relax
    from tvm.relax.dpl import is_op, wildcard

    def rw(call: Any, m: Any) -> Any:
        out = _shape(call)
        args = list(call.args)
        changed = False
        for i, v in _constant_args(call):
            others = [_shape(a) for j, a in enumerate(args) if j != i]
            if v.ndim == 0 or v.size == 0 or not (v == v.flat[0]).all():
                continue
            if out is None or out not in others:  # the other operand alone must give the output shape
                continue
            args[i] = relax.const(v.reshape(-1)[0], str(v.dtype))
            changed = True
        return relax.Call(call.op, args, call.attrs) if changed else call

    for op in _ELEMENTWISE:
        mod = _rewrite(mod, is_op(f"relax.{op}")(wildcard(), wildcard()), rw)
    return mod


def narrow_constants(mod: Any) -> Any:
    """An elementwise op's constant array that fits a narrower integer type -> ``astype(narrow, T)``.

    Must run after FoldConstant (which would fold the ``astype`` back)."""
    from tvm import relax
    from tvm.relax.dpl import is_op, wildcard

    def rw(call: Any, m: Any) -> Any:
        args = list(call.args)
        changed = False
        for i, v in _constant_args(call):
            if v.ndim == 0 or v.size < 2 or not _is_int(str(v.dtype)):
                continue
            dt = str(v.dtype)
            for nd in _NARROW:
                if np.dtype(nd).itemsize >= np.dtype(dt).itemsize:
                    break
                info = np.iinfo(np.dtype(nd))
                if info.min <= int(v.min()) and int(v.max()) <= info.max and _widens(nd, dt):
                    args[i] = relax.op.astype(relax.const(v.astype(nd), nd), dt)
                    changed = True
                    break
        return relax.Call(call.op, args, call.attrs) if changed else call

    for op in _ELEMENTWISE:
        mod = _rewrite(mod, is_op(f"relax.{op}")(wildcard(), wildcard()), rw)
    return mod


#: outputs per ``ctnn_dot4_*`` call (they share each load of the widened input row)
DOT_ROWS = 4


def dot_symbols(x_dtype: str, w_dtype: str) -> tuple[str, str, str]:
    """The micro-kernels a dense layer of these operand types calls: (prepare x, 4 rows, 1 row)."""
    xs, ws = DOT_TYPES[x_dtype], DOT_TYPES[w_dtype]
    return f"ctnn_dot_prep_{xs}", f"ctnn_dot{DOT_ROWS}_{ws}", f"ctnn_dot_{ws}"


def _dense_primfunc(m: int, k: int, n: int, x_dtype: str, w_dtype: str) -> Any:
    """``y[i, j] = sum_k x[i, k] * wt[j, k]`` (int32, wrapping) through ctnn's micro-kernels.

    The x row is first widened once into an int16 scratch row (``ctnn_dot_prep_*``, in the
    lane order the dot product wants), then each group of four outputs is one
    ``ctnn_dot4_*`` call over four contiguous weight rows, and the last ``n % 4`` outputs
    one ``ctnn_dot_*`` call each. op_pattern 4 (kOutEWiseFusable) lets FuseOps fuse the
    requantization after it, as it does for TVM's own matmul."""
    from tvm.script import tirx as T

    prep, dot4, dot1 = dot_symbols(x_dtype, w_dtype)
    k16 = (k + 3) // 4 * 4
    R = DOT_ROWS
    groups, tail = divmod(n, R)
    has_tail = tail > 0
    M, K, N, K16, G, TL = (T.int64(v) for v in (m, k, n, k16, groups, tail))
    RK, GR, Ri = T.int64(R * k), T.int64(groups * R), T.int64(R)

    def ptr(dtype, buf, offset, extent, rw):  # a pointer with the region it covers (1 read, 2 write)
        return T.tvm_access_ptr(T.type_annotation(dtype), buf.data, offset, extent, rw)

    @T.prim_func(s_tir=True, private=True)
    def dense(x: T.Buffer((M, K), x_dtype), wt: T.Buffer((N, K), w_dtype), y: T.Buffer((M, N), "int32")):
        T.func_attr({"op_pattern": 4, "tirx.noalias": True})
        x16 = T.sblock_alloc_buffer((M, K16), "int16")
        for i in range(M):
            with T.sblock("ctnn_dot_prep"):
                vi = T.axis.spatial(M, i)
                T.reads(x[vi, T.int64(0) : K])
                T.writes(x16[vi, T.int64(0) : K16])
                T.evaluate(T.call_extern("int32", prep, ptr(x_dtype, x, vi * K, K, 1),
                                         ptr("int16", x16, vi * K16, K16, 2), T.int32(k)))  # fmt: skip
        for i, g in T.grid(M, G):
            with T.sblock("ctnn_dot"):
                vi, vg = T.axis.remap("SS", [i, g])
                T.reads(x16[vi, T.int64(0) : K16], wt[vg * Ri : vg * Ri + Ri, T.int64(0) : K])
                T.writes(y[vi, vg * Ri : vg * Ri + Ri])
                T.evaluate(T.call_extern("int32", dot4, ptr("int16", x16, vi * K16, K16, 1),
                                         ptr(w_dtype, wt, vg * RK, RK, 1), T.int32(k),
                                         ptr("int32", y, vi * N + vg * Ri, Ri, 2)))  # fmt: skip
        if has_tail:  # static: a Python bool when TVMScript parses the function
            for i, j in T.grid(M, TL):
                with T.sblock("ctnn_dot_tail"):
                    vi, vj = T.axis.remap("SS", [i, j])
                    T.reads(x16[vi, T.int64(0) : K16], wt[GR + vj, T.int64(0) : K])
                    T.writes(y[vi, GR + vj])
                    y[vi, GR + vj] = T.call_extern("int32", dot1, ptr("int16", x16, vi * K16, K16, 1),
                                                   ptr(w_dtype, wt, (GR + vj) * K, K, 1), T.int32(k))  # fmt: skip

    return dense


def extern_dense(mod: Any) -> Any:
    """``matmul(x[M, K], W[K, N] const int8/uint8, out_dtype=int32)`` -> ctnn's micro-kernel dense."""
    from tvm import relax
    from tvm.ir.expr import Constant
    from tvm.relax.dpl import is_op, wildcard

    gvs: dict[str, Any] = {}  # PrimFunc name -> GlobalVar (None while the first pass collects them)
    wanted: dict[str, Any] = {}

    def rw(call: Any, m: Any) -> Any:
        x, w = call.args
        xs, ws, out = _shape(x), _shape(w), _shape(call)
        if not isinstance(w, Constant) or xs is None or ws is None or len(xs) != 2 or len(ws) != 2:
            return call
        xd, wd, od = str(x.ty.dtype), str(w.ty.dtype), str(call.ty.dtype)
        if od != "int32" or xd not in DOT_TYPES or wd not in DOT_WEIGHTS or out != (xs[0], ws[1]):
            return call
        (mm, kk), nn = xs, ws[1]
        name = f"ctnn_dense_{DOT_TYPES[xd]}{DOT_TYPES[wd]}_{mm}x{kk}x{nn}"
        if name not in gvs:  # first pass: only collect what is needed
            wanted[name] = (mm, kk, nn, xd, wd)
            return call
        wt = np.ascontiguousarray(w.value.numpy().T)
        return relax.call_tir(gvs[name], (x, relax.const(wt, wd)), relax.TensorType(out, "int32"))

    pattern = is_op("relax.matmul")(wildcard(), wildcard())
    mod = _rewrite(mod, pattern, rw)
    if not wanted:
        return mod
    bb = relax.BlockBuilder(mod)
    for name, spec in wanted.items():
        gvs[name] = bb.add_func(_dense_primfunc(*spec), name)
    return _rewrite(bb.get(), pattern, rw)
