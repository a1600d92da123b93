"""One z3 bit-vector encoding per ONNX op, keyed by op type in :data:`SMT_OPS`.

A rule gets a :class:`NodeCtx` (the node, its attributes, the interval-pass bounds of its
inputs and outputs, and the encoder's choices) and the input tensors as numpy arrays —
numeric when constant, ``object`` arrays of :mod:`elements <._bv>` otherwise — and returns
one object array per output holding each element's *exact* value. The walker then applies
the output dtype (wrap-around), narrows widths to the interval and folds constants, so a
rule never has to think about ONNX container types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import z3
from onnx import TensorProto

from ctnn.quant import REFERENCE_OPS, registrar

from ._bv import Sym, as_bool, bv, bvval, compare, is_sym, scaled, select, sge, step_chain, width
from ._errors import UnsupportedError
from ._interval import Bounds, reduce_axes


@dataclass
class NodeCtx:
    """What a rule may know about the node it encodes."""

    node: onnx.NodeProto
    attrs: dict[str, Any]
    ins: list[Bounds | None]  # bounds of each input
    outs: list[Bounds]  # bounds of each output (exact_lo/exact_hi: before wrap-around)
    out_dtypes: list[np.dtype]
    offsets: bool = False  # optimized encoding: hold values relative to a natural offset
    assumptions: list[z3.BoolRef] = field(default_factory=list)

    @property
    def op(self) -> str:
        return self.node.op_type

    def shape(self, k: int = 0) -> tuple[int, ...]:
        return self.outs[k].lo.shape

    def base(self, lo: int, hi: int, natural: int | None = None) -> int:
        """Where to anchor a result in [lo, hi]: 0 in the literal encoding."""
        if not self.offsets:
            return 0
        if natural is not None and lo <= natural <= hi:
            return natural
        return (lo + hi) // 2

    def assume(self, cond: z3.BoolRef | bool) -> None:
        """Restrict the query to inputs where the reference is defined (no division by zero)."""
        if cond is False:
            raise UnsupportedError(f"node {self.node.name!r}: the reference is undefined on every input")
        if cond is not True:
            self.assumptions.append(cond)

    def lincomb(
        self, items: list[tuple[int, Sym]], const: int, lo: int, hi: int, products: list[tuple[Sym, Sym]] = ()
    ) -> int | Sym:
        """``const + sum(c * s) + sum(p * q)`` for a result known to lie in [lo, hi].

        Computed modulo 2**w with w the result's width: intermediate wrap-around cancels.
        Zero coefficients produce no terms.
        """
        if lo == hi:
            return int(lo)
        items = [(c, s) for c, s in items if c != 0]
        natural = const + sum(c * s.off for c, s in items if not s.is_bool)
        base = self.base(lo, hi, natural)
        w = width(lo - base, hi - base)
        if self.offsets:
            terms = _grouped_sum(items, w)
        else:
            terms = [(scaled(bv(s, w, 0 if s.is_bool else s.off), c), None, w) for c, s in items]
        terms += [(bv(p, w) * bv(q, w), None, w) for p, q in products]
        if natural != base or not terms:
            terms.append((z3.BitVecVal(natural - base, w), None, w))
        return Sym(base, _tree(terms, w))


def _resize(t: z3.BitVecRef, n: int, w: int) -> z3.BitVecRef:
    """``fit`` for a term whose width ``n`` is known (z3's ``size()`` is slow from Python)."""
    if n == w:
        return t
    return z3.SignExt(w - n, t) if n < w else z3.Extract(w - 1, 0, t)


Term = tuple[z3.BitVecRef, "tuple[int, int] | None", int]  # (term, its value range if known, its width)


def _tree(terms: list[Term], w: int) -> z3.BitVecRef:
    """A balanced adder tree; a node whose range is known is as wide as its range (at most ``w``).

    Sums are computed modulo 2**w: a node that would need more bits wraps, and the wrap
    cancels in the (exact, w-bit) result.
    """
    while len(terms) > 1:
        nxt = []
        for (a, ra, na), (b, rb, nb) in zip(terms[::2], terms[1::2]):
            r = None if ra is None or rb is None else (ra[0] + rb[0], ra[1] + rb[1])
            k = w if r is None else min(w, width(*r))
            nxt.append((_resize(a, na, k) + _resize(b, nb, k), r, k))
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
    t, _, n = terms[0]
    return _resize(t, n, w)


_SIZES: dict[int, tuple[Sym, int]] = {}


def _size(s: Sym) -> int:
    """``s.term.size()``, remembered per element: one input feeds every neuron of a layer."""
    hit = _SIZES.get(id(s))
    if hit is not None and hit[0] is s:
        return hit[1]
    if len(_SIZES) > 1 << 17:
        _SIZES.clear()
    n = s.term.size()
    _SIZES[id(s)] = (s, n)
    return n


def _grouped_sum(items: list[tuple[int, Sym]], w: int) -> list[Term]:
    """``c * (value - off)`` summed per coefficient ``c`` first, each partial sum as narrow as its range.

    Inputs sharing a weight are added in a few bits and multiplied once; a dense layer over
    hundreds of narrow perturbations has far fewer wide adders and constant multipliers.
    """
    groups: dict[int, list[Term]] = {}
    for c, s in items:
        if s.is_bool:
            leaf = (z3.If(s.term, z3.BitVecVal(1, 2), z3.BitVecVal(0, 2)), (0, 1), 2)
        else:
            n = _size(s)
            leaf = (s.term, (-(1 << (n - 1)), (1 << (n - 1)) - 1), n)
        groups.setdefault(c, []).append(leaf)
    out = []
    for c, leaves in groups.items():
        lo, hi = sum(r[0] for _, r, _ in leaves), sum(r[1] for _, r, _ in leaves)
        k = min(w, width(lo, hi))
        total = _tree(leaves, k)
        plo, phi = sorted((c * lo, c * hi))
        kk = min(w, width(plo, phi))
        out.append((scaled(_resize(total, k, kk), c), (plo, phi), kk))
    return out


SmtRule = Callable[[NodeCtx, list[np.ndarray | None]], list[np.ndarray]]

#: op type -> SMT encoding. Adding an op: its reference semantics (ctnn.quant), its
#: interval rule (_interval.INTERVAL_RULES) and this.
SMT_OPS: dict[str, SmtRule] = {}


register_smt = registrar(SMT_OPS, "z3 encoding")


def obj(a: np.ndarray) -> np.ndarray:
    """A tensor as an object array of elements (Python ints/bools for constants)."""
    a = np.asarray(a)
    return a if a.dtype == object else a.astype(object)


def _map(ctx: NodeCtx, ins: list[np.ndarray | None], fn: Callable[..., Any]) -> list[np.ndarray]:
    """Apply ``fn(elems, los, his, out_lo, out_hi)`` to every output element (broadcasting)."""
    shape = ctx.shape(0)
    els = [None if a is None else np.broadcast_to(obj(a), shape) for a in ins]
    los = [None if b is None else np.broadcast_to(b.lo, shape) for b in ctx.ins]
    his = [None if b is None else np.broadcast_to(b.hi, shape) for b in ctx.ins]
    olo = np.broadcast_to(ctx.outs[0].exact_lo, shape)
    ohi = np.broadcast_to(ctx.outs[0].exact_hi, shape)
    out = np.empty(shape, object)
    for idx in np.ndindex(shape):
        out[idx] = fn(
            [None if e is None else e[idx] for e in els],
            [None if v is None else int(v[idx]) for v in los],
            [None if v is None else int(v[idx]) for v in his],
            int(olo[idx]),
            int(ohi[idx]),
        )
    return [out]


def _is_bool(e: Any) -> bool:
    return isinstance(e, (bool, np.bool_)) or (is_sym(e) and e.is_bool)


# -- linear arithmetic ---------------------------------------------------------------------------
@register_smt("Add", "Sub", "Mul")
def _arith(ctx: NodeCtx, ins):
    op = ctx.op

    def f(e, lo, hi, olo, ohi):
        a, b = e
        if not is_sym(a) and not is_sym(b):
            return int(a) + int(b) if op == "Add" else int(a) - int(b) if op == "Sub" else int(a) * int(b)
        if op == "Mul":
            if is_sym(a) and is_sym(b):
                return ctx.lincomb([], 0, olo, ohi, products=[(a, b)])
            s, c = (a, b) if is_sym(a) else (b, a)
            return ctx.lincomb([(int(c), s)], 0, olo, ohi)
        items, const = [], 0
        for coef, x in ((1, a), (-1 if op == "Sub" else 1, b)):
            if is_sym(x):
                items.append((coef, x))
            else:
                const += coef * int(x)
        return ctx.lincomb(items, const, olo, ohi)

    return _map(ctx, ins, f)


def _matmul_elems(ctx: NodeCtx, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """numpy's matmul on element arrays (b 1-D or 2-D), each output a linear combination."""
    a1, b1 = a.ndim == 1, b.ndim == 1
    a2 = a[None, :] if a1 else a
    b2 = b[:, None] if b1 else b
    if b2.ndim != 2:
        raise UnsupportedError(f"node {ctx.node.name!r}: MatMul with a {b.ndim}-D right operand")
    k, n = b2.shape
    rows = a2.reshape(-1, k)
    shape = ctx.shape(0)
    olo = np.asarray(ctx.outs[0].exact_lo).reshape(len(rows), n)
    ohi = np.asarray(ctx.outs[0].exact_hi).reshape(len(rows), n)
    out = np.empty((len(rows), n), object)
    for r in range(len(rows)):
        row = rows[r]
        for j in range(n):
            col = b2[:, j]
            items, products, const = [], [], 0
            for x, y in zip(row, col):
                if is_sym(x):
                    if is_sym(y):
                        products.append((x, y))
                    else:
                        items.append((int(y), x))
                elif is_sym(y):
                    items.append((int(x), y))
                else:
                    const += int(x) * int(y)
            out[r, j] = ctx.lincomb(items, const, int(olo[r, j]), int(ohi[r, j]), products)
    return out.reshape(shape)


@register_smt("MatMul")
def _matmul(ctx: NodeCtx, ins):
    return [_matmul_elems(ctx, obj(ins[0]), obj(ins[1]))]


def _shift(e: Any, z: Any) -> Any:
    """``e - z`` for a constant ``z``: free for a symbolic element (its offset moves)."""
    return Sym(e.off - int(z), e.term, None) if is_sym(e) else int(e) - int(z)


@register_smt("MatMulInteger")
def _matmulinteger(ctx: NodeCtx, ins):
    a, b = obj(ins[0]), obj(ins[1])
    for k, name in ((2, "a"), (3, "b")):
        if len(ins) > k and ins[k] is not None:
            z = ins[k]
            if z.dtype == object:
                raise UnsupportedError(f"node {ctx.node.name!r}: a symbolic zero point")
            shifted = np.frompyfunc(_shift, 2, 1)(a if name == "a" else b, z.astype(object))
            a, b = (shifted, b) if name == "a" else (a, shifted)
    return [_matmul_elems(ctx, a, b)]


@register_smt("ReduceSum")
def _reducesum(ctx: NodeCtx, ins):
    x = obj(ins[0])
    axes = reduce_axes(ctx.attrs, ins[1] if len(ins) > 1 else None, x.ndim)
    if axes is None:
        return [x]
    if len(ins) > 1 and ins[1] is not None and np.asarray(ins[1]).dtype == object:
        raise UnsupportedError(f"node {ctx.node.name!r}: ReduceSum's axes must be constant")
    rest = [d for d in range(x.ndim) if d not in axes]
    groups = np.transpose(x, rest + list(axes)).reshape(-1, int(np.prod([x.shape[a] for a in axes])))
    olo = np.asarray(ctx.outs[0].exact_lo).reshape(-1)
    ohi = np.asarray(ctx.outs[0].exact_hi).reshape(-1)
    out = np.empty(len(groups), object)
    for g in range(len(groups)):
        items = [(1, e) for e in groups[g] if is_sym(e)]
        const = sum(int(e) for e in groups[g] if not is_sym(e))
        out[g] = ctx.lincomb(items, const, int(olo[g]), int(ohi[g]))
    return [out.reshape(ctx.shape(0))]


# -- division: truncating, as ONNX, C, Verilog and z3's bvsdiv --------------------------------
@register_smt("Div")
def _div(ctx: NodeCtx, ins):
    def f(e, lo, hi, olo, ohi):
        a, b = e
        if not is_sym(b) and int(b) == 0:
            raise UnsupportedError(f"node {ctx.node.name!r}: division by the constant 0")
        if not is_sym(a) and not is_sym(b):
            q = abs(int(a)) // abs(int(b))
            return -q if (int(a) < 0) != (int(b) < 0) else q
        if olo == ohi:
            if is_sym(b):
                ctx.assume(compare("!=", b, lo[1], hi[1], 0, 0, 0))
            return olo
        alo, ahi = lo[0], hi[0]
        if not is_sym(b):
            d = int(b)
            if d == 1:
                return a
            if d == -1:
                return ctx.lincomb([(-1, a)], 0, olo, ohi)
            if d > 0 and d & (d - 1) == 0:  # a power of two: shifts, no divider circuit
                s = d.bit_length() - 1
                w = max(width(alo, ahi + d - 1), s + 1)
                x = bv(a, w)
                floor = z3.Extract(w - 1, s, x)  # arithmetic shift right = floor(a / d)
                ceil = z3.Extract(w - 1, s, x + z3.BitVecVal(d - 1, w))  # = trunc(a / d) for a < 0
                neg = compare("<", a, alo, ahi, 0, 0, 0)
                return Sym(0, floor if neg is False else ceil if neg is True else z3.If(neg, ceil, floor))
        blo, bhi = lo[1], hi[1]
        w = max(width(alo, ahi), width(blo, bhi), width(olo, ohi)) + 1
        y = bv(b, w)
        if is_sym(b):
            ctx.assume(compare("!=", b, blo, bhi, 0, 0, 0))
        return Sym(0, bv(a, w) / y)  # z3's / on bit-vectors is bvsdiv

    return _map(ctx, ins, f)


# -- piecewise: clip, min, max, where, comparisons, casts -------------------------------------
def _max2(ctx, a, al, ah, b, bl, bh, use_max=True):
    if use_max:
        if al >= bh:
            return a, al, ah
        if bl >= ah:
            return b, bl, bh
        lo, hi = max(al, bl), max(ah, bh)
        c = compare(">=", a, al, ah, b, bl, bh)
    else:
        if ah <= bl:
            return a, al, ah
        if bh <= al:
            return b, bl, bh
        lo, hi = min(al, bl), min(ah, bh)
        c = compare("<=", a, al, ah, b, bl, bh)
    return select(c, a, b, lo, hi, ctx.base(lo, hi)), lo, hi


@register_smt("Clip")
def _clip(ctx: NodeCtx, ins):
    def f(e, lo, hi, olo, ohi):
        x, xl, xh = e[0], lo[0], hi[0]
        if len(e) > 1 and e[1] is not None:
            x, xl, xh = _max2(ctx, x, xl, xh, e[1], lo[1], hi[1], use_max=True)
        if len(e) > 2 and e[2] is not None:
            x, xl, xh = _max2(ctx, x, xl, xh, e[2], lo[2], hi[2], use_max=False)
        return x

    return _map(ctx, ins, f)


@register_smt("Min", "Max")
def _minmax(ctx: NodeCtx, ins):
    use_max = ctx.op == "Max"

    def f(e, lo, hi, olo, ohi):
        x, xl, xh = e[0], lo[0], hi[0]
        for y, yl, yh in zip(e[1:], lo[1:], hi[1:]):
            x, xl, xh = _max2(ctx, x, xl, xh, y, yl, yh, use_max)
        return x

    return _map(ctx, ins, f)


@register_smt("Less", "Greater", "Equal")
def _compare(ctx: NodeCtx, ins):
    op = {"Less": "<", "Greater": ">", "Equal": "=="}[ctx.op]

    def f(e, lo, hi, olo, ohi):
        c = compare(op, e[0], lo[0], hi[0], e[1], lo[1], hi[1])
        return c if isinstance(c, bool) else Sym(0, c)

    return _map(ctx, ins, f)


@register_smt("Where")
def _where(ctx: NodeCtx, ins):
    boolean = ctx.out_dtypes[0] == np.bool_

    def f(e, lo, hi, olo, ohi):
        return select(as_bool(e[0]), e[1], e[2], olo, ohi, ctx.base(olo, ohi), boolean=boolean)

    return _map(ctx, ins, f)


@register_smt("Cast")
def _cast(ctx: NodeCtx, ins):
    to_bool = ctx.attrs["to"] == TensorProto.BOOL

    def f(e, lo, hi, olo, ohi):
        x = e[0]
        if _is_bool(x):
            if to_bool:
                return x
            return int(x) if not is_sym(x) else Sym(0, bv(x, 2))
        if to_bool:
            c = compare("!=", x, lo[0], hi[0], 0, 0, 0)
            return c if isinstance(c, bool) else Sym(0, c)
        # the walker wraps it into the target dtype. A fresh element, never ``x`` itself: the walker
        # continues a fused chain only for a new element, and a chain that skipped this Cast would
        # tabulate the ops after it in the narrower dtype (int32 * M wrapping where int64 does not)
        return Sym(x.off, x.term) if is_sym(x) else x

    return _map(ctx, ins, f)


# -- lookup tables and element moves -------------------------------------------------------------
@register_smt("Gather")
def _gather(ctx: NodeCtx, ins):
    data, idx = ins
    if idx.dtype != object:
        return REFERENCE_OPS["Gather"]([obj(data), idx], ctx.attrs)
    data = obj(data)
    axis = ctx.attrs.get("axis", 0) % data.ndim
    n = data.shape[axis]
    ib = ctx.ins[1]
    k = idx.ndim
    # work with the index dims first, then move them to `axis` as np.take does
    order = list(range(k, k + axis)) + list(range(k)) + list(range(k + axis, k + data.ndim - 1))
    inv = np.argsort(order)
    olo = np.transpose(np.asarray(ctx.outs[0].exact_lo), inv)
    ohi = np.transpose(np.asarray(ctx.outs[0].exact_hi), inv)
    boolean = ctx.out_dtypes[0] == np.bool_
    # a table of constants (a lookup table) in the optimized encoding: steps over the index
    steps = ctx.offsets and not any(is_sym(e) for e in data.flat)
    out = np.empty(olo.shape, object)
    for j in np.ndindex(idx.shape):
        i, ilo, ihi = idx[j], int(ib.lo[j]), int(ib.hi[j])
        if is_sym(i):  # out-of-range indices raise in the reference: not part of the query
            ctx.assume(compare(">=", i, ilo, ihi, -n, -n, -n))
            ctx.assume(compare("<=", i, ilo, ihi, n - 1, n - 1, n - 1))
        values = range(max(ilo, -n), min(ihi, n - 1) + 1)
        slices = [(v, np.take(data, [v % n], axis=axis).reshape(out.shape[k:])) for v in values]
        for r in np.ndindex(out.shape[k:]):
            lo, hi = int(olo[j + r]), int(ohi[j + r])
            if steps and is_sym(i):
                out[j + r] = _table_steps(i, ilo, ihi, [(v, sl[r]) for v, sl in slices], lo, hi, ctx, boolean)
                continue
            acc = slices[0][1][r]
            for v, sl in slices[1:]:
                c = compare("==", i, ilo, ihi, v, v, v)
                acc = select(c, sl[r], acc, lo, hi, ctx.base(lo, hi), boolean=boolean)
            out[j + r] = acc
    return [np.transpose(out, order)]


def _table_steps(i: Sym, ilo: int, ihi: int, table: list, lo: int, hi: int, ctx: NodeCtx, boolean: bool):
    """``table[i]`` for constant entries ``(v, value)`` over the index values ``v`` in increasing
    order, written as a step function of the index: one ``If(i >= v, ...)`` where the value
    changes (a saturated lookup table changes far less often than it has entries), against the
    index term built once. Exact for every index in the table's range, which the assumptions on
    the index keep it to."""
    vals = [bool(e) if boolean else int(e) for _, e in table]
    changes = [k for k in range(1, len(vals)) if vals[k] != vals[k - 1]]
    if not changes:
        return vals[0]
    w = width(ilo - i.off, ihi - i.off)
    it = bv(i, w, i.off)

    def above(k: int) -> z3.BoolRef:
        return sge(it, bvval(table[k][0] - i.off, w))

    if boolean:
        return Sym(0, step_chain(above, vals, changes))
    base = ctx.base(lo, hi)
    return Sym(
        base, step_chain(above, vals, changes, base, width(min(lo, *vals) - base, max(hi, *vals) - base))
    )


@register_smt("Concat")
def _concat(ctx: NodeCtx, ins):
    return REFERENCE_OPS["Concat"]([obj(a) for a in ins], ctx.attrs)


@register_smt("Slice", "Squeeze", "Unsqueeze", "Reshape", "Identity", "Split")
def _move(ctx: NodeCtx, ins):
    """Ops that only move elements: the reference itself, on element arrays."""
    for i, p in enumerate(ins[1:]):
        if p is not None and np.asarray(p).dtype == object:
            raise UnsupportedError(f"node {ctx.node.name!r}: {ctx.op}'s input {i + 1} must be constant")
    return REFERENCE_OPS[ctx.op]([obj(ins[0]), *ins[1:]], ctx.attrs)
