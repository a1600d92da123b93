"""The graph walk: an integer ONNX graph and an input box -> a z3 model of one sample.

Two encodings share the per-op rules of :mod:`._smt`:

``"naive"``
    every element is its literal value, one op at a time, with the interval pass's
    widths and phases (dead branches removed, fixed neurons folded to constants);
``"optimized"``
    the same, plus (a) each input is its sample value plus a narrow *perturbation*
    variable and every element is held relative to a natural offset, so sums are as
    wide as their range, not their magnitude; and (b) chains of elementwise ops that
    depend on one element only (a requantization: Cast, Mul, Less, Where, Div, Clip...)
    are fused into a step function of that element over its interval: the reference
    itself tabulates the chain, and the encoding is a few comparisons against constant
    thresholds instead of a multiplier, a divider and their carries.

Both are exact for every input in the box; ``tests/`` hold each to the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import z3

from ctnn.quant import REFERENCE_OPS

from ._bv import Sym, bv, bvval, is_sym, sge, step_chain, width, wrap_int
from ._chains import ELEMENTWISE, MAX_TABLE, MOVES, ROOT, Rec, const, tabulate
from ._errors import UnsupportedError, check_deadline
from ._interval import Bounds
from ._network import Network
from ._smt import SMT_OPS, NodeCtx, obj

ENCODINGS = ("naive", "optimized")

MAX_PIECES = 64  # most steps a fused chain may have before the literal encoding is kept


@dataclass(eq=False)
class _Uni:
    """The univariate origin of an element: ``rec`` evaluated at the value of ``root``."""

    root: Sym
    lo: int
    hi: int
    dtype: np.dtype
    rec: Rec = ROOT


@dataclass
class Encoding:
    """A z3 model of the graph on one input box."""

    net: Network
    encoding: str
    lo: np.ndarray  # the box, flat
    hi: np.ndarray
    inputs: np.ndarray  # flat input elements (ints where the box is a point)
    outputs: np.ndarray  # flat output elements
    out_lo: np.ndarray  # flat output bounds from the interval pass
    out_hi: np.ndarray
    constraints: list[z3.BoolRef]  # the box and the graph's domain (no division by zero)
    bounds: dict[str, Bounds]
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def variables(self) -> list[z3.BitVecRef]:
        return [e.term for e in self.inputs if is_sym(e)]

    def input_codes(self, model: z3.ModelRef) -> np.ndarray:
        """The input sample of a z3 model (a counterexample), flat int64."""
        return np.array([self.value(e, model) for e in self.inputs], np.int64)

    def input_codes_from(self, values: list[int]) -> np.ndarray:
        """The input sample from the signed values of :attr:`variables` (in their order)."""
        it = iter(values)
        return np.array([int(e) if not is_sym(e) else e.off + next(it) for e in self.inputs], np.int64)

    @staticmethod
    def value(e: Any, model: z3.ModelRef) -> int:
        if not is_sym(e):
            return int(e)
        v = model.eval(e.term, model_completion=True)
        if z3.is_bool(e.term):
            return int(z3.is_true(v))
        return e.off + v.as_signed_long()

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """The encoding's outputs on one flat input inside the box (by substitution)."""
        x = np.asarray(x, np.int64).ravel()
        if np.any(x < self.lo) or np.any(x > self.hi):
            raise ValueError("the input is outside the box this encoding was built for")
        subst = [
            (e.term, z3.BitVecVal(int(v) - e.off, e.term.size())) for e, v in zip(self.inputs, x) if is_sym(e)
        ]
        out = []
        for e in self.outputs:
            if not is_sym(e):
                out.append(int(e))
                continue
            t = z3.simplify(z3.substitute(e.term, *subst)) if subst else z3.simplify(e.term)
            out.append(int(z3.is_true(t)) if z3.is_bool(t) else e.off + t.as_signed_long())
        return np.array(out, np.int64)


class _Walker:
    def __init__(
        self, net: Network, dtypes: dict[str, np.dtype], bounds: dict[str, Bounds], encoding: str,
        deadline: float | None = None,
    ):  # fmt: skip
        if encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
        self.net, self.dtypes, self.bounds = net, dtypes, bounds
        self.deadline = deadline
        self.optimized = encoding == "optimized"
        self.assumptions: list[z3.BoolRef] = []
        self._mat: dict[int, tuple[Sym, Sym]] = {}
        self.stats = {"symbolic_elements": 0, "constant_elements": 0, "step_functions": 0, "literal_chains": 0,
                      "max_width": 0}  # fmt: skip

    # -- the univariate fusion of the optimized encoding ---------------------------------------
    def _root(self, e: Any, lo: int, hi: int, dtype: np.dtype) -> Any:
        if is_sym(e) and e.uni is None and self.optimized:
            e.uni = _Uni(e, lo, hi, np.dtype(dtype))
        return e

    def materialize(self, e: Any) -> Any:
        """A fused chain as a step function of its root (or its literal encoding if too many steps)."""
        if not is_sym(e) or e.uni is None or e.uni.rec is ROOT:
            return e
        hit = self._mat.get(id(e))
        if hit is not None:
            return hit[1]
        u = e.uni
        out = e
        table = tabulate(u.rec, u.lo, u.hi, u.dtype)
        if table is not None:
            steps = np.flatnonzero(table[1:] != table[:-1]) + 1
            if len(steps) < MAX_PIECES:
                out = self._steps(u, table, steps)
        self.stats["step_functions" if out is not e else "literal_chains"] += 1
        self._mat[id(e)] = (e, out)
        return out

    def _steps(self, u: _Uni, table: np.ndarray, steps: np.ndarray) -> Sym | int | bool:
        root = u.root
        # the root's sort, read once: z3 builds a SortRef on every query of it
        term, w_root = root.term, None if root.is_bool else root.term.size()

        def above(i: int) -> z3.BoolRef:  # root >= u.lo + i
            if w_root is None:
                return term
            return sge(term, bvval(u.lo + int(i) - root.off, w_root))

        if table.dtype == np.bool_:
            res = Sym(0, step_chain(above, table, steps))
        else:
            vals = table.astype(np.int64)
            if len(steps) == 0:
                return int(vals[0])
            vlo, vhi = int(vals.min()), int(vals.max())
            # anchor at the value the root's offset maps to: the sample's own value
            base = int(vals[min(max(root.off - u.lo, 0), len(vals) - 1)]) if not root.is_bool else vlo
            res = Sym(base, step_chain(above, vals, steps, base, width(vlo - base, vhi - base)))
        vlo, vhi = (0, 1) if table.dtype == np.bool_ else (int(table.min()), int(table.max()))
        res.uni = _Uni(res, vlo, vhi, table.dtype)  # a chain root of its own from here on
        return res

    def _fuse_inputs(self, node, attrs, ins, shape):
        """Per output element: continue the inputs' common chain, or materialize them."""
        bins = [None if a is None else np.broadcast_to(obj(a), shape) for a in ins]
        new = [None if a is None else np.array(b, dtype=object) for a, b in zip(ins, bins)]
        recs = np.full(shape, None, object)
        for idx in np.ndindex(shape):
            es = [None if b is None else b[idx] for b in bins]
            syms = [e for e in es if is_sym(e)]
            roots = {id(e.uni.root) for e in syms if e.uni is not None}
            u = syms[0].uni if syms else None
            if len(roots) == 1 and all(e.uni is not None for e in syms) and u.hi - u.lo < MAX_TABLE:
                args = tuple(
                    None if e is None else e.uni.rec if is_sym(e) else const(e, self.dtypes[node.input[k]])
                    for k, e in enumerate(es)
                )
                recs[idx] = (u, Rec(node.op_type, args, attrs), es)
            else:
                for k, e in enumerate(es):
                    if is_sym(e):
                        new[k][idx] = self.materialize(e)
        return new, recs

    # -- the walk -----------------------------------------------------------------------------
    def _finish(self, arr: np.ndarray, name: str) -> np.ndarray:
        """Apply the dtype (wrap-around), narrow to the interval, fold constants."""
        b, dtype = self.bounds[name], self.dtypes[name]
        arr = np.asarray(arr, dtype=object)
        if arr.shape != b.lo.shape:
            raise AssertionError(f"{name}: encoded shape {arr.shape} != interval shape {b.lo.shape}")
        boolean = dtype == np.bool_
        signed = boolean or np.issubdtype(dtype, np.signedinteger)
        bits = dtype.itemsize * 8
        out = np.empty(arr.shape, object)
        all_const = True
        for idx in np.ndindex(arr.shape):
            e = arr[idx]
            lo, hi = int(b.lo[idx]), int(b.hi[idx])
            wraps = b.wraps is not None and bool(b.wraps[idx])
            if not is_sym(e):
                e = bool(e) if boolean else wrap_int(int(e), bits, signed) if wraps else int(e)
            elif lo == hi:
                e = bool(lo) if boolean else lo
                self.stats["constant_elements"] += 1
            elif not e.is_bool:
                if wraps:  # reduce modulo 2**bits, as the container does
                    t = bv(e, bits)
                    e = Sym(0, t if signed else z3.ZeroExt(1, t))
                w = width(lo - e.off, hi - e.off)
                if e.term.size() > w:
                    e = Sym(e.off, z3.Extract(w - 1, 0, e.term), e.uni)
            if is_sym(e):
                all_const = False
                self.stats["symbolic_elements"] += 1
                if not e.is_bool:
                    self.stats["max_width"] = max(self.stats["max_width"], e.term.size())
            out[idx] = e
        if all_const:
            return out.astype(dtype)
        return out

    def check_time(self, where: str) -> None:
        # a large unrolled graph can take longer to encode than the whole query may
        check_deadline(self.deadline, where)

    def run(self, inputs: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        net = self.net
        env: dict[str, np.ndarray] = dict(net.ref.constants)
        env[net.input_name] = inputs
        for node, attrs in net.ref.nodes:
            self.check_time(node.name)
            ins = [env[i] if i else None for i in node.input]
            if all(a is None or a.dtype != object for a in ins):  # constant folding: the reference itself
                env.update(zip(node.output, REFERENCE_OPS[node.op_type](ins, attrs)))
                continue
            rule = SMT_OPS.get(node.op_type)
            if rule is None:
                raise UnsupportedError(f"node {node.name!r}: no SMT encoding for op {node.op_type!r}")
            ctx = NodeCtx(
                node, attrs,
                ins=[self.bounds[i] if i else None for i in node.input],
                outs=[self.bounds[o] for o in node.output],
                out_dtypes=[self.dtypes[o] for o in node.output],
                offsets=self.optimized, assumptions=self.assumptions,
            )  # fmt: skip
            recs = None
            if self.optimized and node.op_type in ELEMENTWISE:
                ins, recs = self._fuse_inputs(node, attrs, ins, ctx.shape(0))
            elif self.optimized and node.op_type not in MOVES:
                ins = [a if a is None or a.dtype != object else np.frompyfunc(self.materialize, 1, 1)(a)
                       for a in ins]  # fmt: skip
            outs = rule(ctx, ins)
            for name, arr in zip(node.output, outs):
                arr = self._finish(arr, name)
                if arr.dtype == object and self.optimized:
                    self._attach(arr, recs, name)
                env[name] = arr
        return env[net.output_name], env

    def _attach(self, arr: np.ndarray, recs: np.ndarray | None, name: str) -> None:
        b, dtype = self.bounds[name], self.dtypes[name]
        for idx in np.ndindex(arr.shape):
            e = arr[idx]
            if not is_sym(e):
                continue
            rec = None if recs is None else recs[idx]
            if rec is not None and not any(e is x for x in rec[2]):
                u = rec[0]
                arr[idx] = Sym(e.off, e.term, _Uni(u.root, u.lo, u.hi, u.dtype, rec[1]))
            else:
                self._root(e, int(b.lo[idx]), int(b.hi[idx]), dtype)


def encode(
    net: Network,
    lo: np.ndarray,
    hi: np.ndarray,
    dtypes: dict[str, np.dtype],
    bounds: dict[str, Bounds],
    encoding: str = "optimized",
    center: np.ndarray | None = None,
    deadline: float | None = None,
) -> Encoding:
    """Encode the graph on the box [lo, hi] (flat); ``center`` anchors the perturbation variables.

    Past ``deadline`` (a ``time.perf_counter()`` value), it raises :class:`~._errors.OutOfTime`.
    """
    lo, hi = np.asarray(lo, np.int64).ravel(), np.asarray(hi, np.int64).ravel()
    walker = _Walker(net, dtypes, bounds, encoding, deadline)
    center = (lo + hi) // 2 if center is None else np.clip(np.asarray(center, np.int64).ravel(), lo, hi)
    elems = np.empty(len(lo), object)
    constraints: list[z3.BoolRef] = []
    for i, (a, b) in enumerate(zip(lo.tolist(), hi.tolist())):
        if a == b:
            elems[i] = a
            continue
        base = int(center[i]) if walker.optimized else 0
        w = width(a - base, b - base)
        v = z3.BitVec(f"d{i}" if walker.optimized else f"x{i}", w)
        if a - base > -(1 << (w - 1)):
            constraints.append(v >= z3.BitVecVal(a - base, w))
        if b - base < (1 << (w - 1)) - 1:
            constraints.append(v <= z3.BitVecVal(b - base, w))
        elems[i] = walker._root(Sym(base, v), a, b, net.input_dtype)
    x = elems.reshape(net.sample_shape)
    if all(not is_sym(e) for e in elems):
        x = x.astype(net.input_dtype)
    y, _ = walker.run(x)
    y = np.asarray(y).ravel()
    if y.dtype == object:
        walker.check_time("outputs")
        y = np.array([walker.materialize(e) for e in y], dtype=object)
    ob = bounds[net.output_name]
    stats = dict(walker.stats, smt_inputs=int(sum(is_sym(e) for e in elems)))
    return Encoding(
        net, encoding, lo, hi, elems, y.astype(object), ob.lo.ravel(), ob.hi.ravel(),
        constraints + walker.assumptions, bounds, stats,
    )  # fmt: skip
