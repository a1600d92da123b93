"""Symbolic tensor elements and the bit-vector arithmetic the per-op encodings share.

Every tensor element in an encoding is either a Python ``int``/``bool`` (a constant: a
folded initializer, or a value the interval pass pinned down) or a :class:`Sym`::

    value = off + signed(term)          # term: a z3 bit-vector; or a z3 Bool for booleans

The value is the element's *exact* integer, never a wrapped one: widths come from the
interval pass, so ``term`` is as narrow as the element's interval allows and nothing
overflows. Where the ONNX dtype would wrap, the walker reduces modulo 2**bits explicitly.
Two facts keep this exact and cheap:

* linear arithmetic (+, -, * and sums) may be computed modulo 2**w for any w that holds
  the *result*: intermediate wrap-around cancels;
* a value known to lie in [lo, hi] is held exactly by ``width(lo - off, hi - off)`` bits.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import z3


@dataclass(eq=False, slots=True)
class Sym:
    """A symbolic element: ``off + signed(term)`` (or the z3 Bool ``term`` when boolean)."""

    off: int
    term: z3.ExprRef
    uni: Any = None  # the optimized encoding's univariate origin (see _fusion)

    @property
    def is_bool(self) -> bool:
        return z3.is_bool(self.term)


Elem = int | bool | Sym


def is_sym(e: Any) -> bool:
    return isinstance(e, Sym)


def _sbits(v: int) -> int:
    return (v.bit_length() if v >= 0 else (~v).bit_length()) + 1


def width(lo: int, hi: int) -> int:
    """The fewest two's-complement bits that hold every integer in [lo, hi]."""
    return max(_sbits(int(lo)), _sbits(int(hi)))


def fit(t: z3.BitVecRef, w: int) -> z3.BitVecRef:
    """``t`` sign-extended or truncated to ``w`` bits (truncation is reduction mod 2**w)."""
    n = t.size()
    if n == w:
        return t
    if n < w:
        return z3.SignExt(w - n, t)
    return z3.Extract(w - 1, 0, t)


def bv(e: Elem, w: int, base: int = 0) -> z3.BitVecRef:
    """``value(e) - base`` as a ``w``-bit vector, modulo 2**w (exact when it fits)."""
    if isinstance(e, Sym):
        if z3.is_bool(e.term):
            return z3.If(e.term, z3.BitVecVal(1 - base, w), z3.BitVecVal(-base, w))
        t = fit(e.term, w)
        d = e.off - base
        return t if d == 0 else t + z3.BitVecVal(d, w)
    return z3.BitVecVal(int(e) - base, w)


@functools.lru_cache(maxsize=1 << 16)
def bvval(v: int, w: int) -> z3.BitVecRef:
    """``z3.BitVecVal(v, w)``, cached: step functions repeat their thresholds and values at every
    step of an unrolled graph."""
    return z3.BitVecVal(v, w)


def step_chain(
    above: Callable[[int], z3.BoolRef], values: Sequence, changes: Sequence[int], base: int = 0,
    w: int | None = None,
) -> z3.ExprRef:  # fmt: skip
    """A step function: ``values[0]``, replaced by ``values[k]`` wherever ``above(k)`` holds, for the
    change points ``k`` in increasing order. ``w``: the values' width, relative to ``base``
    (None: the values are booleans)."""

    def val(v: Any) -> z3.ExprRef:
        return z3.BoolVal(bool(v)) if w is None else bvval(int(v) - base, w)

    # z3.If through the C API: the operands already share a sort, and an unrolled graph builds
    # 10^5 of these; profiled, z3.If took 67 µs a call, 4 of them in Z3_mk_ite itself
    acc = val(values[0])
    ctx, cls = acc.ctx, z3.BoolRef if w is None else z3.BitVecRef
    for k in changes:
        c, v = above(k), val(values[k])  # held: a temporary's __del__ would free its AST first
        acc = cls(z3.Z3_mk_ite(ctx.ref(), c.as_ast(), v.as_ast(), acc.as_ast()), ctx)
    return acc


def sge(t: z3.BitVecRef, c: z3.BitVecRef) -> z3.BoolRef:
    """``t >= c`` (signed) for two bit-vectors of one width, without z3's operator coercion."""
    return z3.BoolRef(z3.Z3_mk_bvsge(t.ctx.ref(), t.as_ast(), c.as_ast()), t.ctx)


def as_bool(e: Elem) -> z3.BoolRef | bool:
    """A boolean element as a z3 Bool (or a Python bool when constant)."""
    if isinstance(e, Sym):
        if z3.is_bool(e.term):
            return e.term
        return e.term != z3.BitVecVal(-e.off, e.term.size())
    return bool(e)


def scaled(t: z3.BitVecRef, c: int) -> z3.BitVecRef:
    """``c * t`` without a multiplier for ±1."""
    if c == 1:
        return t
    if c == -1:
        return -t
    return t * z3.BitVecVal(c, t.size())


def wrap_int(v: int, bits: int, signed: bool) -> int:
    """``v`` reduced into a ``bits``-bit container, as a C cast does."""
    r = int(v) % (1 << bits)
    if signed and r >= 1 << (bits - 1):
        r -= 1 << bits
    return r


_CMP = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b, "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
}  # fmt: skip


def decide(op: str, alo: int, ahi: int, blo: int, bhi: int) -> bool | None:
    """The comparison ``a op b`` when the intervals decide it, else None."""
    if op == "<":
        return True if ahi < blo else False if alo >= bhi else None
    if op == "<=":
        return True if ahi <= blo else False if alo > bhi else None
    if op == ">":
        return decide("<", blo, bhi, alo, ahi)
    if op == ">=":
        return decide("<=", blo, bhi, alo, ahi)
    if op in ("==", "!="):
        if alo == ahi == blo == bhi:
            res = True
        elif ahi < blo or bhi < alo:
            res = False
        else:
            return None
        return res if op == "==" else not res
    raise ValueError(op)


def compare(op: str, a: Elem, alo: int, ahi: int, b: Elem, blo: int, bhi: int) -> z3.BoolRef | bool:
    """``a op b`` (signed) for elements known to lie in [alo, ahi] and [blo, bhi]."""
    d = decide(op, alo, ahi, blo, bhi)
    if d is not None:
        return d
    if not isinstance(a, Sym) and not isinstance(b, Sym):
        return _CMP[op](int(a), int(b))
    # compare relative to one operand's offset, so that operand needs no adder
    base = (
        a.off
        if isinstance(a, Sym) and not a.is_bool
        else (b.off if isinstance(b, Sym) and not b.is_bool else 0)
    )
    w = width(min(alo, blo) - base, max(ahi, bhi) - base)
    return _CMP[op](bv(a, w, base), bv(b, w, base))


def select(
    c: z3.BoolRef | bool, a: Elem, b: Elem, lo: int, hi: int, base: int, boolean: bool = False
) -> Elem:
    """``c ? a : b`` for a result known to lie in [lo, hi], held relative to ``base``."""
    if isinstance(c, bool):
        return a if c else b
    if boolean:
        return Sym(0, z3.If(c, _zbool(a), _zbool(b)))
    if lo == hi:
        return int(lo)
    w = width(lo - base, hi - base)
    return Sym(base, z3.If(c, bv(a, w, base), bv(b, w, base)))


def _zbool(e: Elem) -> z3.BoolRef:
    b = as_bool(e)
    return z3.BoolVal(b) if isinstance(b, bool) else b
