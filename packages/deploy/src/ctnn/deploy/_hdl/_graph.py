"""From the TVM-optimized Relax graph to a hardware netlist: element wiring, value ranges, engines.

The walk visits the bindings of Relax ``main`` (high-level ops after ctnn's rewrites and
FoldConstant) and keeps every tensor as a numpy array of *element references*: an element
of a signal (the input register, a combinational wire, an engine's output register) or a
constant. Data movement (slice, squeeze, reshape, concat, split, stack, broadcast,
expand_dims, permute_dims, take with constant indices) only rearranges references and
costs no hardware. Arithmetic becomes one instance of a ``ctnn_lib.v`` module per op,
with widths from an interval analysis of the graph, so nothing overflows that does not
overflow in the integer reference. Three ops are *engines* run by the top's schedule, one
after another: ``matmul`` with constant weights (:class:`ctnn_dense`, a MAC array with a
reuse factor), ``take`` from a constant table (:class:`ctnn_lut`, a $readmemh ROM) and
``divide`` by a non-constant divisor (:class:`ctnn_divider`). Engines with the same
constants are one instance shared by every step of an unrolled recurrent graph.

Each op kind is one entry of :data:`HDL_OPS` (op name -> rule); supporting a new op is
one function here and, for arithmetic, one module in ``ctnn_lib.v``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ctnn.quant import registrar

from .._errors import DeployError


class E:
    """One element: ``sig[i]`` of a signal, or the constant ``value`` when ``sig`` is None."""

    __slots__ = ("sig", "i")

    def __init__(self, sig: str | None, i: int):
        self.sig, self.i = sig, int(i)

    def __repr__(self) -> str:
        return f"{self.sig}[{self.i}]" if self.sig else f"#{self.i}"


@dataclass
class Tensor:
    elems: np.ndarray  # object array of E, the tensor's shape
    lo: int
    hi: int
    dtype: str

    @property
    def is_bool(self) -> bool:
        return self.dtype == "bool"

    @property
    def width(self) -> int:
        return 1 if self.is_bool else signed_width(self.lo, self.hi)

    def constant(self) -> np.ndarray | None:
        """The values when every element is a constant."""
        flat = self.elems.reshape(-1)
        if all(e.sig is None for e in flat):
            return np.array([e.i for e in flat], dtype=np.int64).reshape(self.elems.shape)
        return None


def signed_width(lo: int, hi: int) -> int:
    """Bits of the smallest two's-complement type that holds [lo, hi]."""

    def bits(v: int) -> int:
        return (v.bit_length() if v >= 0 else (~v).bit_length()) + 1

    return max(bits(int(lo)), bits(int(hi)), 1)


def container(dtype: str) -> tuple[int, int, int]:
    """(min, max, bits) of an integer container dtype."""
    info = np.iinfo(np.dtype(dtype))
    return int(info.min), int(info.max), info.bits


def const_tensor(values: np.ndarray, dtype: str) -> Tensor:
    v = np.asarray(values).astype(np.int64)
    elems = np.empty(v.shape, dtype=object)
    for idx, x in np.ndenumerate(v):
        elems[idx] = E(None, int(x))
    if dtype == "bool":
        return Tensor(elems, 0, 1, "bool")
    return Tensor(elems, int(v.min()) if v.size else 0, int(v.max()) if v.size else 0, dtype)


@dataclass
class Sig:
    """A vector signal of the design: ``n`` elements of ``width`` bits."""

    name: str
    n: int
    width: int
    kind: str  # "in" | "wire" | "vreg" (an engine result; mapped onto a physical register later)
    is_bool: bool = False


@dataclass
class Port:
    """A vector operand: the elements, each resized to ``width`` bits."""

    elems: list[E]
    width: int
    is_bool: bool = False


@dataclass
class Inst:
    module: str
    params: dict[str, Any]
    ports: dict[str, Port]
    out: str  # the output wire (port "y")


@dataclass
class Engine:
    name: str
    kind: str  # "dense" | "lut" | "div"
    const: dict[str, Any]  # the constant part of the parameters (ROM contents, sizes)
    stages: list[int] = field(default_factory=list)


@dataclass
class Stage:
    engine: str
    ports: dict[str, Port]
    out: str  # the vreg written when the engine is done
    out_width: int  # width of each element of the vreg
    widths: dict[str, int]  # the widths this stage needs from the engine (max over its stages)


@dataclass
class Netlist:
    """What :class:`~ctnn.deploy._hdl._emit` writes as Verilog."""

    inputs: list[tuple[str, Sig, str, tuple[int, ...]]]  # (graph name, signal, dtype, shape)
    outputs: list[tuple[str, Tensor]]
    sigs: dict[str, Sig]
    insts: list[Inst]
    engines: dict[str, Engine]
    stages: list[Stage]
    reuse: int


# ------------------------------------------------------------------ the walk


class Builder:
    def __init__(self, reuse: int):
        self.reuse = reuse
        self.sigs: dict[str, Sig] = {}
        self.insts: list[Inst] = []
        self.engines: dict[str, Engine] = {}
        self._engine_keys: dict[Any, str] = {}
        self.stages: list[Stage] = []
        self.defs: dict[Any, Any] = {}  # Relax var -> the call bound to it (for peepholes)
        self.env: dict[Any, Any] = {}

    def call_of(self, e: Any, op: str) -> Any:
        """The ``op`` call bound to variable ``e``, or None."""
        c = self.defs.get(e)
        return c if c is not None and getattr(c.op, "name", "") == op else None

    # -- signals
    def new_sig(self, prefix: str, n: int, width: int, kind: str, is_bool: bool = False) -> Sig:
        name = f"{prefix}{len(self.sigs)}"
        self.sigs[name] = Sig(name, n, width, kind, is_bool)
        return self.sigs[name]

    def port(self, t: Tensor, width: int | None = None) -> Port:
        return Port(list(t.elems.reshape(-1)), t.width if width is None else width, t.is_bool)

    def comb(self, module: str, params: dict[str, Any], ports: dict[str, Port], shape: tuple[int, ...],
             lo: int, hi: int, dtype: str) -> Tensor:  # fmt: skip
        n = int(np.prod(shape, dtype=np.int64))
        is_bool = dtype == "bool"
        width = 1 if is_bool else signed_width(lo, hi)
        sig = self.new_sig("w", n, width, "wire", is_bool)
        self.insts.append(Inst(module, {"N": n, **params}, ports, sig.name))
        return Tensor(_elems(sig.name, shape), lo, hi, dtype)

    def engine(self, kind: str, key: Any, const: dict[str, Any]) -> Engine:
        full = (kind, key)
        if full not in self._engine_keys:
            name = f"e{len(self.engines)}_{kind}"
            self.engines[name] = Engine(name, kind, const)
            self._engine_keys[full] = name
        return self.engines[self._engine_keys[full]]

    def stage(self, eng: Engine, ports: dict[str, Port], n: int, lo: int, hi: int, dtype: str,
              shape: tuple[int, ...], widths: dict[str, int]) -> Tensor:  # fmt: skip
        width = signed_width(lo, hi)
        sig = self.new_sig("r", n, width, "vreg")
        eng.stages.append(len(self.stages))
        self.stages.append(Stage(eng.name, ports, sig.name, width, widths))
        return Tensor(_elems(sig.name, shape), lo, hi, dtype)


def _elems(sig: str, shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(shape, dtype=np.int64))
    flat = np.empty(n, dtype=object)
    for i in range(n):
        flat[i] = E(sig, i)
    return flat.reshape(shape)


def _wrap(b: Builder, t: Tensor, dtype: str) -> Tensor:
    """Bring a result whose exact range exceeds its container back into it (two's-complement wrap)."""
    cmin, cmax, bits = container(dtype)
    if cmin <= t.lo and t.hi <= cmax:
        return Tensor(t.elems, t.lo, t.hi, dtype)
    signed = cmin < 0
    return b.comb("ctnn_cast", {"WI": t.width, "SI": 0 if t.is_bool else 1, "CB": bits, "SO": int(signed),
                                "WY": bits if signed else bits + 1},
                  {"x": b.port(t)}, t.elems.shape, cmin, cmax, dtype)  # fmt: skip


# ------------------------------------------------------------------ op rules

Rule = Callable[[Builder, Any, list[Any]], Any]
#: Relax op name -> rule(builder, call, args) returning a Tensor (or a list for tuple results)
HDL_OPS: dict[str, Rule] = {}


hdl_op = registrar(HDL_OPS, "HDL rule", ops="Relax")


def _ints(x: Any) -> list[int]:
    """Integers from a Relax Tuple of PrimValues, a ShapeExpr, an Array of IntImm or a Python list."""
    from tvm import relax

    if x is None:
        return []
    if isinstance(x, relax.Tuple):
        return [int(f.value) for f in x.fields]
    if isinstance(x, relax.ShapeExpr):
        return [int(v) for v in x.values]
    if hasattr(x, "value") and not hasattr(x, "__len__"):
        return [int(x.value)]
    if isinstance(x, int | np.integer):
        return [int(x)]
    return [int(v) for v in x]


def _out_dtype(call: Any) -> str:
    return str(call.ty.dtype)


def _fold(call: Any, args: list[Tensor], fn: Callable[..., np.ndarray]) -> Tensor | None:
    """Constant-fold when every operand is constant (numpy, wrapped to the result container)."""
    vals = [a.constant() for a in args]
    if any(v is None for v in vals):
        return None
    dtype = _out_dtype(call)
    out = fn(*vals)
    return const_tensor(out.astype(np.dtype(dtype)) if dtype != "bool" else out.astype(bool), dtype)


#: ops of ctnn_lib.v's ctnn_binop (its OP parameter)
BINOPS = {"add": 0, "subtract": 1, "maximum": 2, "minimum": 3}


def _binary(b: Builder, call: Any, args: list[Tensor], module: str | int, fn, lohi) -> Tensor:
    """An elementwise binary op: ``module`` is a ctnn_lib.v module, a :data:`BINOPS` name
    (``ctnn_binop``) or, for a bool result, ctnn_cmp's OP code."""
    a, c = args
    folded = _fold(call, args, fn)
    if folded is not None:
        return folded
    ea, ec = np.broadcast_arrays(a.elems, c.elems)
    shape = tuple(np.broadcast_shapes(a.elems.shape, c.elems.shape))
    lo, hi = lohi(a, c)
    dtype = _out_dtype(call)
    aa, cc = Tensor(ea, a.lo, a.hi, a.dtype), Tensor(ec, c.lo, c.hi, c.dtype)
    if dtype == "bool":
        return b.comb("ctnn_cmp", {"WA": a.width, "WB": c.width, "OP": module},
                      {"a": b.port(aa), "b": b.port(cc)}, shape, 0, 1, "bool")  # fmt: skip
    params = {"WA": a.width, "WB": c.width, "WY": signed_width(lo, hi)}
    if module in BINOPS:
        module, params = "ctnn_binop", {**params, "OP": BINOPS[module]}
    t = b.comb(module, params, {"a": b.port(aa), "b": b.port(cc)}, shape, lo, hi, dtype)
    return _wrap(b, t, dtype)


def _products(a: Tensor, c: Tensor) -> tuple[int, int]:
    p = [a.lo * c.lo, a.lo * c.hi, a.hi * c.lo, a.hi * c.hi]
    return min(p), max(p)


@hdl_op("relax.add")
def _add(b, call, args):
    return _binary(b, call, args, "add", np.add, lambda a, c: (a.lo + c.lo, a.hi + c.hi))


@hdl_op("relax.subtract")
def _sub(b, call, args):
    return _binary(b, call, args, "subtract", np.subtract, lambda a, c: (a.lo - c.hi, a.hi - c.lo))


@hdl_op("relax.multiply")
def _mul(b, call, args):
    a, c = args
    if a.constant() is not None and c.constant() is None:
        a, c = c, a
    cv = c.constant()
    if cv is None or a.constant() is not None:
        return _binary(b, call, args, "ctnn_mul", np.multiply, _products)
    # a constant factor: shifts and adds (ctnn_mul_const)
    ea, ec = np.broadcast_arrays(a.elems, c.elems)
    consts = np.broadcast_to(cv, ea.shape).reshape(-1)
    lo, hi = _products(a, c)
    dtype = _out_dtype(call)
    wc = c.width
    bits = "".join(f"{int(v) & ((1 << wc) - 1):0{wc}b}" for v in reversed(consts.tolist()))
    t = b.comb("ctnn_mul_const", {"WA": a.width, "WC": wc, "WY": signed_width(lo, hi),
                                  "C": f"{len(bits)}'b{bits}"},
               {"a": b.port(Tensor(ea, a.lo, a.hi, a.dtype))}, ea.shape, lo, hi, dtype)  # fmt: skip
    return _wrap(b, t, dtype)


@hdl_op("relax.maximum")
def _max(b, call, args):
    return _binary(b, call, args, "maximum", np.maximum, lambda a, c: (max(a.lo, c.lo), max(a.hi, c.hi)))


@hdl_op("relax.minimum")
def _min(b, call, args):
    return _binary(b, call, args, "minimum", np.minimum, lambda a, c: (min(a.lo, c.lo), min(a.hi, c.hi)))


@hdl_op("relax.less")
def _less(b, call, args):
    return _binary(b, call, args, 0, np.less, lambda a, c: (0, 1))


@hdl_op("relax.greater")
def _greater(b, call, args):
    return _binary(b, call, args, 1, np.greater, lambda a, c: (0, 1))


@hdl_op("relax.equal")
def _equal(b, call, args):
    return _binary(b, call, args, 2, np.equal, lambda a, c: (0, 1))


def _trunc_div(a: np.ndarray, c: np.ndarray) -> np.ndarray:
    q = np.abs(a) // np.abs(c)
    return np.where((a < 0) != (c < 0), -q, q)


def _div_range(a: Tensor, c: Tensor) -> tuple[int, int]:
    if c.lo > 0 or c.hi < 0:
        cands = [int(_trunc_div(np.int64(x), np.int64(y))) for x in (a.lo, a.hi) for y in (c.lo, c.hi)]
        if a.lo <= 0 <= a.hi:
            cands.append(0)
        return min(cands), max(cands)
    m = max(abs(a.lo), abs(a.hi))
    return -m, m


@hdl_op("relax.divide")
def _divide(b, call, args):
    a, c = args
    folded = _fold(call, args, _trunc_div)
    if folded is not None:
        return folded
    dtype = _out_dtype(call)
    shape = tuple(np.broadcast_shapes(a.elems.shape, c.elems.shape))
    lo, hi = _div_range(a, c)
    ea, ec = np.broadcast_arrays(a.elems, c.elems)
    aa, cc = Tensor(ea, a.lo, a.hi, a.dtype), Tensor(ec, c.lo, c.hi, c.dtype)
    cv = cc.constant()
    rq = _round_shift(b, call, cv)
    if rq is not None:
        return rq
    if cv is not None and (cv > 0).all() and (cv & (cv - 1) == 0).all():  # powers of two: shifts
        shifts = [int(v).bit_length() - 1 for v in cv.reshape(-1)]
        sh = "".join(f"{s:02x}" for s in reversed(shifts))
        t = b.comb("ctnn_div_pow2", {"WA": a.width, "WY": signed_width(lo, hi), "SH": f"{8 * len(shifts)}'h{sh}"},
                   {"a": b.port(aa)}, shape, lo, hi, dtype)  # fmt: skip
        return _wrap(b, t, dtype)
    if cv is not None:
        t = b.comb("ctnn_div_comb", {"WA": a.width, "WB": c.width, "WY": signed_width(lo, hi)},
                   {"a": b.port(aa), "b": b.port(cc)}, shape, lo, hi, dtype)  # fmt: skip
        return _wrap(b, t, dtype)
    n = int(np.prod(shape, dtype=np.int64))
    eng = b.engine("div", n, {"E": n})
    t = b.stage(eng, {"a": b.port(aa), "b": b.port(cc)}, n, lo, hi, dtype, shape,
                {"WA": a.width, "WB": c.width, "WQ": signed_width(lo, hi)})  # fmt: skip
    return _wrap(b, t, dtype)


def _uniform(t: Tensor | None) -> int | None:
    v = None if t is None else t.constant()
    if v is None or v.size == 0 or not (v == v.reshape(-1)[0]).all():
        return None
    return int(v.reshape(-1)[0])


def _round_shift(b: Builder, call: Any, divisor: np.ndarray | None) -> Tensor | None:
    """The dialect's rounding rule Where(Less(p, 0), p - h, p + h) / 2^s (h = 2^(s-1)) as one
    ctnn_round_shift: one adder instead of two adders, a multiplexer and a divider."""
    if divisor is None or not (divisor == divisor.reshape(-1)[0]).all():
        return None
    d = int(divisor.reshape(-1)[0])
    if d < 2 or d & (d - 1):
        return None
    s = d.bit_length() - 1
    where = b.call_of(call.args[0], "relax.where")
    if where is None:
        return None
    less = b.call_of(where.args[0], "relax.less")
    sub = b.call_of(where.args[1], "relax.subtract")
    add = b.call_of(where.args[2], "relax.add")
    if less is None or sub is None or add is None:
        return None
    p = less.args[0]
    if not (sub.args[0].same_as(p) and add.args[0].same_as(p)):
        return None
    zero = _uniform(_value_of(b, less.args[1]))
    h1, h2 = _uniform(_value_of(b, sub.args[1])), _uniform(_value_of(b, add.args[1]))
    if zero != 0 or h1 != 1 << (s - 1) or h2 != h1:
        return None
    pt = b.env[p]
    dtype = _out_dtype(call)
    lo, hi = _div_range(Tensor(pt.elems, pt.lo - h1, pt.hi + h1, pt.dtype), const_tensor(np.array(d), dtype))
    t = b.comb("ctnn_round_shift", {"WA": pt.width, "WY": signed_width(lo, hi), "S": s},
               {"a": b.port(pt)}, pt.elems.shape, lo, hi, dtype)  # fmt: skip
    return _wrap(b, t, dtype)


def _value_of(b: Builder, e: Any) -> Tensor | None:
    from tvm import relax

    if isinstance(e, relax.Var):
        return b.env.get(e)
    value = getattr(e, "value", None)
    return const_tensor(value.numpy(), str(value.dtype)) if hasattr(value, "numpy") else None


@hdl_op("relax.where")
def _where(b, call, args):
    c, x, y = args
    folded = _fold(call, args, lambda cv, xv, yv: np.where(cv.astype(bool), xv, yv))
    if folded is not None:
        return folded
    cv = c.constant()
    ec, ex, ey = np.broadcast_arrays(c.elems, x.elems, y.elems)
    if cv is not None:  # a constant condition selects elements: wiring
        pick = np.where(np.broadcast_to(cv.astype(bool), ec.shape), ex, ey)
        return Tensor(pick, min(x.lo, y.lo), max(x.hi, y.hi), _out_dtype(call))
    lo, hi = min(x.lo, y.lo), max(x.hi, y.hi)
    return b.comb("ctnn_where", {"WA": x.width, "WB": y.width, "WY": signed_width(lo, hi)},
                  {"c": Port(list(ec.reshape(-1)), 1, True), "a": b.port(Tensor(ex, x.lo, x.hi, x.dtype)),
                   "b": b.port(Tensor(ey, y.lo, y.hi, y.dtype))}, ec.shape, lo, hi, _out_dtype(call))  # fmt: skip


@hdl_op("relax.astype")
def _astype(b, call, args):
    (x,) = args
    dtype = _out_dtype(call)
    v = x.constant()
    if v is not None:
        return const_tensor(v.astype(np.dtype(dtype)), dtype)
    if dtype == "bool":
        return b.comb("ctnn_cmp", {"WA": x.width, "WB": 1, "OP": 2},
                      {"a": b.port(x), "b": Port([E(None, 0)] * x.elems.size, 1)}, x.elems.shape, 0, 1, "bool")  # fmt: skip
    cmin, cmax, bits = container(dtype)
    if cmin <= x.lo and x.hi <= cmax:  # the value does not change: only the container does
        return Tensor(x.elems, x.lo, x.hi, dtype)
    return _wrap(b, x, dtype)


def _reshape_elems(t: Tensor, shape: tuple[int, ...], dtype: str | None = None) -> Tensor:
    return Tensor(t.elems.reshape(shape), t.lo, t.hi, dtype or t.dtype)


def _shape_of(call: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in call.ty.shape.values)


@hdl_op("relax.reshape", "relax.squeeze", "relax.expand_dims", "relax.flatten")
def _reshape(b, call, args):
    return _reshape_elems(args[0], _shape_of(call))


@hdl_op("relax.permute_dims")
def _permute(b, call, args):
    axes = _ints(call.attrs.axes) if call.attrs.axes is not None else None
    x = args[0]
    return Tensor(np.transpose(x.elems, axes), x.lo, x.hi, x.dtype)


@hdl_op("relax.broadcast_to")
def _broadcast(b, call, args):
    x = args[0]
    return Tensor(np.broadcast_to(x.elems, _shape_of(call)).copy(), x.lo, x.hi, x.dtype)


@hdl_op("relax.strided_slice")
def _strided_slice(b, call, args):
    x = args[0]
    axes, begin, end = _ints(call.args[1]), _ints(call.args[2]), _ints(call.args[3])
    strides = _ints(call.args[4]) if len(call.args) > 4 else [1] * len(axes)
    sl = [slice(None)] * x.elems.ndim
    for ax, s, e, st in zip(axes, begin, end, strides):
        sl[ax] = slice(s, e, st)
    out = x.elems[tuple(sl)]
    assert out.shape == _shape_of(call), (out.shape, _shape_of(call))
    return Tensor(out, x.lo, x.hi, x.dtype)


def _tensors(t: Any) -> list[Tensor]:
    return t if isinstance(t, list) else [t]


def _merge(ts: list[Tensor], elems: np.ndarray, dtype: str) -> Tensor:
    return Tensor(elems, min(t.lo for t in ts), max(t.hi for t in ts), dtype)


@hdl_op("relax.concat")
def _concat(b, call, args):
    ts = _tensors(args[0])
    return _merge(ts, np.concatenate([t.elems for t in ts], axis=int(call.attrs.axis)), _out_dtype(call))


@hdl_op("relax.stack")
def _stack(b, call, args):
    ts = _tensors(args[0])
    return _merge(ts, np.stack([t.elems for t in ts], axis=int(call.attrs.axis)), _out_dtype(call))


@hdl_op("relax.split")
def _split(b, call, args):
    x = args[0]
    axis = int(call.attrs.axis)
    ind = call.attrs.indices_or_sections
    parts = np.split(x.elems, _ints(ind) if not isinstance(ind, int | np.integer) and hasattr(ind, "__len__")
                     else int(ind), axis=axis)  # fmt: skip
    return [Tensor(p, x.lo, x.hi, x.dtype) for p in parts]


def _reduce(b, call, args, op: int, fn) -> Tensor:
    x = args[0]
    axes = _ints(call.attrs.axis) if call.attrs.axis is not None else list(range(x.elems.ndim))
    axes = [a % x.elems.ndim for a in axes]
    keep = bool(call.attrs.keepdims)
    out_shape = _shape_of(call)
    folded = _fold(call, args, lambda v: fn(v, axis=tuple(axes), keepdims=keep))
    if folded is not None:
        return folded
    rest = [d for d in range(x.elems.ndim) if d not in axes]
    moved = np.transpose(x.elems, rest + axes)
    k = int(np.prod([x.elems.shape[a] for a in axes], dtype=np.int64))
    grouped = moved.reshape(-1, k)
    if op == 0:
        lo, hi = min(x.lo * k, x.lo), max(x.hi * k, x.hi)
    else:
        lo, hi = x.lo, x.hi
    dtype = _out_dtype(call)
    t = b.comb("ctnn_reduce", {"K": k, "WA": x.width, "WY": signed_width(lo, hi), "OP": op},
               {"a": Port(list(grouped.reshape(-1)), x.width)}, out_shape, lo, hi, dtype)  # fmt: skip
    return _wrap(b, t, dtype)


@hdl_op("relax.sum")
def _sum(b, call, args):
    return _reduce(b, call, args, 0, np.sum)


@hdl_op("relax.max")
def _rmax(b, call, args):
    return _reduce(b, call, args, 1, np.max)


@hdl_op("relax.min")
def _rmin(b, call, args):
    return _reduce(b, call, args, 2, np.min)


@hdl_op("relax.take")
def _take(b, call, args):
    data, idx = args
    axis = int(call.attrs.axis) if call.attrs.axis is not None else 0
    dv, iv = data.constant(), idx.constant()
    if iv is not None:  # constant indices select elements: wiring
        n = data.elems.shape[axis]
        return Tensor(
            np.take(data.elems, np.where(iv < 0, iv + n, iv), axis=axis), data.lo, data.hi, data.dtype
        )
    if dv is None:
        raise DeployError(
            "fpga target: Gather from a non-constant tensor with non-constant indices is not supported"
        )
    if axis != 0:
        raise DeployError(
            f"fpga target: Gather on axis {axis} of a constant table is not supported (axis 0 only)"
        )
    d = dv.shape[0]
    c = int(np.prod(dv.shape[1:], dtype=np.int64))
    table = dv.reshape(d, c)
    lo, hi = int(table.min()), int(table.max())
    wo = signed_width(lo, hi)
    e = idx.elems.size
    eng = b.engine(
        "lut", (table.tobytes(), table.shape, e, wo), {"E": e, "D": d, "C": c, "WO": wo, "table": table}
    )
    out_shape = _shape_of(call)
    return b.stage(eng, {"idx": b.port(idx)}, e * c, lo, hi, _out_dtype(call), out_shape, {"WI": idx.width})


def _dense_range(x: Tensor, w: np.ndarray) -> tuple[int, int, int]:
    """(lo, hi) of x @ w over every column, and the width that holds every partial sum."""
    pmin = np.minimum(w * x.lo, w * x.hi)
    pmax = np.maximum(w * x.lo, w * x.hi)
    lo, hi = int(pmin.sum(0).min()), int(pmax.sum(0).max())
    acc = signed_width(int(np.minimum(pmin, 0).sum(0).min()), int(np.maximum(pmax, 0).sum(0).max()))
    return lo, hi, max(acc, signed_width(lo, hi))


@hdl_op("relax.matmul")
def _matmul(b, call, args):
    x, w = args
    wv = w.constant()
    if wv is None or wv.ndim != 2:
        raise DeployError("fpga target: MatMul needs a constant 2-D right operand (weights)")
    k, n = wv.shape
    dtype = _out_dtype(call)
    lo, hi, wacc = _dense_range(x, wv.astype(np.int64))
    rows = x.elems.reshape(-1, k)
    r = max(1, min(b.reuse, k))
    kc = -(-k // r)
    ww = signed_width(int(wv.min()), int(wv.max()))
    eng = b.engine("dense", (wv.tobytes(), wv.shape, str(wv.dtype), r),
                   {"K": k, "N": n, "R": r, "KC": kc, "WW": ww, "weights": wv})  # fmt: skip
    parts = []
    for row in rows:
        t = b.stage(
            eng, {"x": Port(list(row), x.width)}, n, lo, hi, dtype, (n,), {"WX": x.width, "WACC": wacc}
        )
        parts.append(t.elems)
    out = np.stack(parts).reshape(_shape_of(call))
    return _wrap(b, Tensor(out, lo, hi, dtype), dtype)


# ------------------------------------------------------------------ driver


def build_netlist(graph: Any, reuse: int = 1) -> Netlist:
    """Walk Relax ``main`` of ``graph`` (see :attr:`Lowered.graph`) into a :class:`Netlist`."""
    from tvm import relax, tirx
    from tvm.ir.expr import Constant

    if reuse < 1:
        raise DeployError(f"fpga target: the reuse factor must be >= 1, got {reuse}")
    b = Builder(reuse)
    main = graph["main"]
    env: dict[Any, Any] = b.env
    inputs = []
    for p in main.params:
        ty = p.ty
        dtype = str(ty.dtype)
        shape = tuple(int(v) for v in ty.shape.values)
        if dtype == "bool" or np.dtype(dtype).kind not in "iu":
            raise DeployError(f"fpga target: input {p.name!r} has type {dtype}, not an integer type")
        cmin, cmax, bits = container(dtype)
        n = int(np.prod(shape, dtype=np.int64))
        sig = b.new_sig("in", n, signed_width(cmin, cmax), "in")
        inputs.append((p.name, sig, dtype, shape))
        env[p] = Tensor(_elems(sig.name, shape), cmin, cmax, dtype)

    def value(e: Any, where: str) -> Any:
        if isinstance(e, relax.Var):
            return env[e]
        if isinstance(e, tirx.IntImm):  # TVM 0.27: IntImm is a Constant too
            return int(e.value)
        if isinstance(e, relax.ShapeExpr):
            return e
        if isinstance(e, Constant):
            return const_tensor(e.value.numpy(), str(e.value.dtype))
        if isinstance(e, relax.Tuple):
            return [value(f, where) for f in e.fields]
        raise DeployError(f"fpga target: {where}: unsupported Relax expression {type(e).__name__}")

    for block in main.body.blocks:
        for bind in block.bindings:
            v = bind.value
            where = f"Relax binding {bind.var.name!r}"
            if isinstance(v, relax.Call) and isinstance(v.op, type(_op("relax.add"))):
                rule = HDL_OPS.get(v.op.name)
                if rule is None:
                    raise DeployError(
                        f"fpga target: {where}: op {v.op.name} has no HDL template; supported: "
                        f"{', '.join(sorted(n.removeprefix('relax.') for n in HDL_OPS))}"
                    )
                b.defs[bind.var] = v
                env[bind.var] = rule(b, v, [value(a, where) for a in v.args])
            elif isinstance(v, relax.TupleGetItem):
                env[bind.var] = value(v.tuple_value, where)[v.index]
            elif isinstance(v, relax.Var | Constant | relax.Tuple):
                env[bind.var] = value(v, where)
            else:
                name = getattr(getattr(v, "args", [None])[0], "name_hint", type(v).__name__)
                raise DeployError(f"fpga target: {where}: {name} is not supported")
    ret = value(main.body.body, "the return value")
    rets = ret if isinstance(ret, list) else [ret]
    outputs = [(f"out{i}", t) for i, t in enumerate(rets)]  # in the order of the graph's outputs
    return Netlist(inputs, outputs, b.sigs, b.insts, b.engines, b.stages, reuse)


def _op(name: str) -> Any:
    import tvm

    return tvm.ir.Op.get(name)
