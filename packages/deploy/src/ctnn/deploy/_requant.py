"""32-bit requantization for the C targets, where the graph's value bounds prove it exact.

The integer dialect requantizes an int32 accumulator ``v`` in int64::

    clip(trunc_div(where(v*M < 0, v*M - 2**(s-1), v*M + 2**(s-1)), 2**s), lo, hi)

(round half away from zero). On a 32-bit core that is a 64-bit multiply, a 64-bit
compare, two 64-bit adds and a 64-bit shift per element. :func:`requant32` replaces the
chain with ``clip(mulhr(v, M'), lo, hi)`` where ``mulhr(v, M') = (v*M' + 2**31) >> 32``
(one ``SMMULR`` on Cortex-M4, ``ctnn_dot_mulhr`` in ``ctnn_dot.h``) and
``M' = M * 2**(32-s)``. Both are the same rational ``v*M / 2**s`` rounded to nearest;
they differ only on ties of negative values (``mulhr`` rounds them up). The rewrite is
made only when that cannot change a result:

- ``M > 0``, the offset is ``2**(s-1)``, the divisor ``2**s``, and ``M'`` is an integer
  below ``2**31`` (so ``v*M'`` is exact in the 64-bit product);
- ``lo >= 0`` (a negative value clips to ``lo`` either way), or the graph's bounds
  prove ``v > -2**(s-1-t)`` where ``2**t`` divides ``M``: a tie needs
  ``v ≡ 2**(s-1-t) (mod 2**(s-t))``, so a smaller ``|v|`` has none.

The bounds come from one forward pass over the Relax bindings (:func:`intervals`):
input dtypes, constants, ``matmul`` by a constant matrix column by column, ``add``,
``subtract``, ``multiply``, ``maximum``, ``minimum`` and casts; anything else gets its
dtype's range, and an int32 sum that could wrap gets int32's range. Otherwise the
64-bit chain stays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: the micro-kernel in ctnn_dot.h: round(v * m / 2**32), ties up
MULHR = "ctnn_dot_mulhr"


def _dtype_range(dtype: str) -> tuple[int, int]:
    if dtype == "bool":
        return 0, 1
    info = np.iinfo(np.dtype(dtype))
    return int(info.min), int(info.max)


def _const(e: Any) -> np.ndarray | None:
    from tvm.ir.expr import Constant

    return e.value.numpy() if isinstance(e, Constant) else None


def _matmul_interval(a: tuple[int, int], w: np.ndarray) -> tuple[int, int]:
    w = w.astype(np.int64)
    lo = np.minimum(w * a[0], w * a[1]).sum(axis=-2)
    hi = np.maximum(w * a[0], w * a[1]).sum(axis=-2)
    return int(lo.min(initial=0)), int(hi.max(initial=0))


def interval(e: Any, known: dict[str, tuple[int, int]]) -> tuple[int, int] | None:
    """``(min, max)`` over the elements of the integer expression ``e``; ``known``: bounds of vars by name."""
    from tvm import relax

    c = _const(e)
    if c is not None:
        return (int(c.min()), int(c.max())) if c.size and c.dtype.kind in "iub" else None
    dt = getattr(getattr(e, "ty", None), "dtype", None)
    if dt is None or not _int(str(dt)):
        return None
    full = _dtype_range(str(dt))
    if isinstance(e, relax.Var):
        return known.get(e.name, full)
    r = _eval(e, lambda a: interval(a, known)) if isinstance(e, relax.Call) else None
    if r is None or r[0] < full[0] or r[1] > full[1]:
        return full  # unknown, or an integer op that could wrap
    return r


def intervals(func: Any) -> dict[str, tuple[int, int]]:
    """``{var name: (min, max)}`` for the integer vars of ``func`` (a name bound twice: the union).

    By name: a pattern rewrite rebuilds the bindings (new Var objects, the same names)."""
    known: dict[str, tuple[int, int]] = {}

    def put(name: str, r: tuple[int, int] | None) -> None:
        if r is not None:
            old = known.get(name, r)
            known[name] = (min(old[0], r[0]), max(old[1], r[1]))

    for p in func.params:
        put(p.name, interval(p, {}))
    for block in func.body.blocks:
        for b in block.bindings:
            put(b.var.name, interval(b.value, known))
    return known


def _int(dtype: str) -> bool:
    return dtype == "bool" or np.dtype(dtype).kind in "iu"


def _eval(call: Any, of: Any) -> tuple[int, int] | None:
    name = getattr(call.op, "name", "")
    args = call.args
    if name == "relax.astype":
        return of(args[0])
    if name == "relax.matmul":
        a, w = of(args[0]), _const(args[1])
        return _matmul_interval(a, w) if a is not None and w is not None and w.ndim == 2 else None
    if name not in ("relax.add", "relax.subtract", "relax.multiply", "relax.maximum", "relax.minimum"):
        return None
    if len(args) != 2:
        return None
    a, b = of(args[0]), of(args[1])
    if a is None or b is None:
        return None
    if name == "relax.add":
        return a[0] + b[0], a[1] + b[1]
    if name == "relax.subtract":
        return a[0] - b[1], a[1] - b[0]
    if name == "relax.multiply":
        p = [x * y for x in a for y in b]
        return min(p), max(p)
    if name == "relax.maximum":
        return max(a[0], b[0]), max(a[1], b[1])
    return min(a[0], b[0]), min(a[1], b[1])


def mulhr_multiplier(m: int, s: int, lo: int, vmin: int) -> int | None:
    """``M'`` for which ``clip(mulhr(v, M'))`` equals the 64-bit requantization, or None (see module doc)."""
    if m <= 0 or s < 1:
        return None
    if s <= 32:
        mp = m << (32 - s)
    elif m % (1 << (s - 32)) == 0:
        mp = m >> (s - 32)
    else:
        return None
    if mp >= 1 << 31:
        return None
    t = (m & -m).bit_length() - 1  # 2**t divides M
    if lo < 0 and s - 1 - t >= 0 and vmin <= -(1 << (s - 1 - t)):
        return None  # a negative tie is possible
    return mp


def _requant_primfunc(shape: tuple[int, ...], mp: int, lo: int, hi: int) -> Any:
    from tvm import te, tirx

    shape = tuple(tirx.IntImm("int64", d) for d in shape)  # as LegalizeOps writes them (FuseTIR compares)
    v = te.placeholder(shape, "int32", name="v")

    def body(*i):
        r = tirx.call_pure_extern("int32", MULHR, v(*i), tirx.const(mp, "int32"))
        return tirx.max(tirx.min(r, tirx.const(hi, "int32")), tirx.const(lo, "int32"))

    y = te.compute(shape, body, name="requant32")
    return te.create_prim_func([v, y]).with_attr("op_pattern", 0)  # elementwise: fuses into the dense


def requant32(mod: Any) -> Any:
    """Replace each provably exact 64-bit requantization chain of ``main`` by a 32-bit one (module doc)."""
    from tvm import relax
    from tvm.relax.dpl import is_const, is_op, wildcard

    from ._rewrite import _shape

    bounds = intervals(mod["main"])
    v = wildcard()
    mc, zc, hc1, hc2, dc, loc, hic = (is_const() for _ in range(7))
    prod = is_op("relax.multiply")(is_op("relax.astype")(v), mc)
    rounded = is_op("relax.where")(
        is_op("relax.less")(prod, zc), is_op("relax.subtract")(prod, hc1), is_op("relax.add")(prod, hc2)
    )
    pattern = is_op("relax.minimum")(is_op("relax.maximum")(is_op("relax.divide")(rounded, dc), loc), hic)
    funcs: dict[tuple, Any] = {}
    bb = relax.BlockBuilder(mod)

    def scalar(m: Any, p: Any) -> int | None:
        c = m[p].value.numpy()
        return int(c) if c.ndim == 0 and c.dtype.kind in "iu" else None

    def chain(call: Any, m: Any) -> tuple | None:
        """(shape, M, s, lo, hi) of a requantization of an int32 tensor by scalars, or None."""
        x = m[v]
        shape = _shape(x)
        if shape is None or str(x.ty.dtype) != "int32" or str(call.ty.dtype) != "int64":
            return None
        vals = [scalar(m, p) for p in (mc, zc, hc1, hc2, dc, loc, hic)]
        if any(val is None for val in vals):
            return None
        mult, zero, h1, h2, d, lo, hi = vals  # type: ignore[misc]
        s = d.bit_length() - 1
        if zero != 0 or d != 1 << s or h1 != h2 or s < 1 or h1 != 1 << (s - 1) or lo > hi:
            return None
        if not (-(2**31) <= lo and hi < 2**31):
            return None
        return shape, mult, s, lo, hi

    def key(call: Any) -> str | None:  # the chain's maximum, a variable of the original bindings
        a = call.args[0]
        return a.name if isinstance(a, relax.Var) else None

    # 1. decide on the original bindings (their bounds are the ones computed above); nothing changes
    decisions: dict[str, tuple | None] = {}

    def analyse(call: Any, m: Any) -> Any:
        k, c = key(call), chain(call, m)
        if k is not None and c is not None:
            mp = mulhr_multiplier(c[1], c[2], c[3], (interval(m[v], bounds) or _dtype_range("int32"))[0])
            decisions[k] = None if k in decisions or mp is None else (*c, mp)  # a name twice: neither
        return call

    _rewrite_main(bb, pattern, analyse)

    # 2. rewrite: a chain whose decision was yes and whose constants are the ones decided on. Bounds
    # are never looked up here: variables created by earlier replacements may reuse old names.
    def rw(call: Any, m: Any) -> Any:
        d, c = decisions.get(key(call) or ""), chain(call, m)
        if d is None or c is None or c != d[:5]:
            return call
        shape, _, _, lo, hi, mp = d
        fkey = (shape, mp, lo, hi)
        if fkey not in funcs:
            funcs[fkey] = bb.add_func(_requant_primfunc(shape, mp, lo, hi), f"ctnn_requant32_{len(funcs)}")
        out = relax.call_tir(funcs[fkey], (m[v],), relax.TensorType(shape, "int32"))
        return relax.op.astype(out, "int64")

    # the PrimFuncs are added while rewriting: rewrite the module the BlockBuilder holds
    new_main = _rewrite_main(bb, pattern, rw)
    mod = bb.get()
    mod["main"] = new_main
    return relax.transform.DeadCodeElimination()(mod)


def _rewrite_main(bb: Any, pattern: Any, fn: Any) -> Any:
    from tvm.relax.dpl import rewrite_call

    return rewrite_call(pattern, fn, bb.get()["main"])
