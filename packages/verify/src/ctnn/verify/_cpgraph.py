"""Any graph of the integer dialect as one CP-SAT model, for the exact stage of graphs that are
not layered (recurrent cells, product graphs of two networks, LUT nonlinearities).

Every element of every tensor is an integer: a CP-SAT variable with the interval pass's bounds
as its domain, or a Python int where the pass fixed it. Each op is a handful of CP-SAT
constraints with the reference's exact meaning (:data:`CP_OPS`): affine ops are linear
equalities, a product of two variables is CP-SAT's multiplication, ``Div`` its division
(rounded toward zero, as the reference), a ``Gather`` from a constant table an element
constraint, a comparison a reified inequality, and wrap-around to a narrow dtype one more
integer. CP-SAT decides such models by propagation, clause learning and its linear relaxation,
without bit-blasting the products and tables that make the same query slow for z3 and bitwuzla
(measured in docs/results/verify.md). An op it does not know raises
:class:`~._errors.UnsupportedError`, and the query goes to the SMT solver instead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from ortools.sat.python import cp_model

from ctnn.quant import REFERENCE_OPS, registrar

from ._cpsat import _GRACE_S, _solver, answer, is_var, values
from ._errors import UnsupportedError, check_deadline
from ._interval import Bounds
from ._network import Network
from ._properties import fold

#: the most a value may reach: CP-SAT's integers are int64, and its linear sums need headroom
LIMIT = 2**53

#: ops that only move elements: decided by running the reference on the elements' indices
STRUCTURAL = frozenset({"Identity", "Reshape", "Squeeze", "Unsqueeze", "Slice", "Concat", "Split", "Cast"})

#: the most elements a ``ReduceSum`` input may have (its coefficients are found per element)
MAX_REDUCE = 4096

Rule = Callable[
    ["GraphModel", Any, dict[str, Any], list[Any], list[np.ndarray], list[np.ndarray]], list[np.ndarray]
]

#: op type -> CP-SAT rule: ``(graph, node, attrs, inputs, los, his) -> exact elements of each output``
#: (``los``/``his``: each output's exact bounds)
CP_OPS: dict[str, Rule] = {}


register_cp = registrar(CP_OPS, "CP-SAT encoding")


def _objects(a: Any) -> np.ndarray:
    """A tensor's elements as an object array (variables stay, constants become ints)."""
    return np.asarray(a, dtype=object) if isinstance(a, np.ndarray) and a.dtype == object else _ints(a)


def _affine(terms: Iterable[tuple[int, Any]]) -> tuple[int, list[Any], list[int]]:
    """``sum(c * v)`` split into its constant part and its variables with their (nonzero) coefficients."""
    terms = [(int(c), v) for c, v in terms if int(c)]
    const = sum(c * int(v) for c, v in terms if not is_var(v))
    return const, [v for _, v in terms if is_var(v)], [c for c, v in terms if is_var(v)]


def _ints(a: Any) -> np.ndarray:
    """A constant tensor as an object array of Python ints (bools as 0/1)."""
    v = np.asarray(a)
    out = np.empty(v.size, object)
    out[:] = [int(e) for e in v.ravel()]
    return out.reshape(v.shape)


class GraphModel:
    """An integer graph on the box ``[lo, hi]`` as a CP-SAT model.

    ``inputs`` holds the flattened input's elements and ``outputs`` the flattened output's
    (CP-SAT variables, or ints where the bounds fix them); :meth:`solve` decides a condition
    on them built with :meth:`gt`, :meth:`any` and :meth:`all`.
    """

    def __init__(self, net: Network, dtypes: dict[str, np.dtype], bounds: dict[str, Bounds], lo: np.ndarray,
                 hi: np.ndarray, deadline: float | None = None) -> None:  # fmt: skip
        t = time.perf_counter()
        self.model = cp_model.CpModel()
        self.dtypes = dtypes
        self._domains: dict[int, tuple[int, int]] = {}
        self._constants: dict[int, Any] = {}
        self.inputs = np.array([self.var(a, c, "x") for a, c in zip(lo.ravel(), hi.ravel())] or [], object)
        env: dict[str, np.ndarray] = {net.input_name: self.inputs.reshape(net.sample_shape)}
        for node, attrs in net.ref.nodes:
            check_deadline(deadline, node.name)  # raises OutOfTime
            outs = [bounds[o] for o in node.output]
            if all(b.value is not None for b in outs):
                env.update({o: _ints(b.value) for o, b in zip(node.output, outs)})
                continue
            rule = CP_OPS.get(node.op_type)
            if rule is None:
                raise UnsupportedError(f"node {node.name!r}: op {node.op_type!r} has no CP-SAT encoding")
            ins = [None if not i else env[i] if i in env else _ints(bounds[i].value) for i in node.input]
            for name, b in zip(node.output, outs):
                reach = max(-int(b.exact_lo.min(initial=0)), int(b.exact_hi.max(initial=0)))
                if reach >= LIMIT:
                    raise UnsupportedError(f"node {node.name!r}: tensor {name!r} may reach magnitude {reach}, "
                                           "beyond CP-SAT's integers")  # fmt: skip
            got = rule(self, node, attrs, ins, [b.exact_lo for b in outs], [b.exact_hi for b in outs])
            for name, b, v in zip(node.output, outs, got):
                env[name] = self._wrap(v, b, dtypes[name])
        self.outputs = np.asarray(env[net.output_name], object).ravel()
        self.stats = {"cp_variables": len(self.model.proto.variables),
                      "cp_constraints": len(self.model.proto.constraints),
                      "cp_build_s": time.perf_counter() - t}  # fmt: skip

    # -- elements ---------------------------------------------------------------------------
    def var(self, lo: int, hi: int, name: str = "v") -> Any:
        """A variable in ``[lo, hi]``, or the int itself if ``lo == hi``."""
        lo, hi = int(lo), int(hi)
        if lo == hi:
            return lo
        # a 0/1 element is a literal, so that a Where can branch on it
        v = self.model.new_bool_var(name) if (lo, hi) == (0, 1) else self.model.new_int_var(lo, hi, name)
        self._domains[v.index] = (lo, hi)
        return v

    def domain(self, v: Any) -> tuple[int, int]:
        """An element's bounds."""
        return (int(v), int(v)) if not is_var(v) else self._domains[v.index]

    def linear(self, terms: Iterable[tuple[int, Any]], const: int, lo: int, hi: int) -> Any:
        """``const + sum(c * v)``, known to lie in ``[lo, hi]``, as one element."""
        fixed, xs, cs = _affine(terms)
        const += fixed
        if not xs:
            return int(const)
        if cs == [1] and const == 0:
            return xs[0]
        out = self.var(lo, hi)
        if is_var(out):
            self.model.add(out == cp_model.LinearExpr.weighted_sum(xs, cs) + const)
        return out

    def constant(self, value: int) -> Any:
        """``value`` as a fixed variable (for constraints that take variables only)."""
        value = int(value)
        if value not in self._constants:
            self._constants[value] = self.model.new_constant(value)
        return self._constants[value]

    def _wrap(self, v: np.ndarray, b: Bounds, dtype: np.dtype) -> np.ndarray:
        """Exact values stored in ``dtype``: two's-complement wrap-around where they may leave it."""
        v = np.asarray(v, object)
        if dtype == np.bool_:
            return v
        info = np.iinfo(dtype)
        if int(b.exact_lo.min(initial=0)) >= info.min and int(b.exact_hi.max(initial=0)) <= info.max:
            return v
        span = 1 << info.bits
        out = np.empty(v.shape, object)
        for idx in np.ndindex(v.shape):
            e, elo, ehi = v[idx], int(b.exact_lo[idx]), int(b.exact_hi[idx])
            if info.min <= elo and ehi <= info.max:
                out[idx] = e
                continue
            if not is_var(e):
                out[idx] = int(np.asarray(int(e)).astype(np.int64).astype(dtype))
                continue
            # e = w + span * k with w in the dtype's range
            k = self.var((elo - info.max + span - 1) // span, (ehi - info.min) // span, "k")
            w = self.var(int(b.lo[idx]), int(b.hi[idx]), "w")
            self.model.add(e == w + span * k)
            out[idx] = w
        return out

    # -- conditions -------------------------------------------------------------------------
    def le(self, terms: Iterable[tuple[int, Any]], bound: int) -> Any:
        """The literal ``sum(c * v) <= bound`` (a bool where the bounds decide it)."""
        fixed, xs, cs = _affine(terms)
        if any(abs(c) >= LIMIT for c in cs):
            raise UnsupportedError(f"a coefficient of {max(abs(c) for c in cs)} is beyond CP-SAT's integers")
        bound -= fixed
        lo = sum(c * self.domain(v)[0 if c > 0 else 1] for c, v in zip(cs, xs))
        hi = sum(c * self.domain(v)[1 if c > 0 else 0] for c, v in zip(cs, xs))
        if hi <= bound:
            return True
        if lo > bound:
            return False
        expr = cp_model.LinearExpr.weighted_sum(xs, cs)
        lit = self.model.new_bool_var("le")
        self.model.add(expr <= int(bound)).only_enforce_if(lit)
        self.model.add(expr >= int(bound) + 1).only_enforce_if(~lit)
        return lit

    def gt(self, a: Any, b: Any, k: int = 0) -> Any:
        """The literal ``a - b > k``."""
        return self.neg(self.le([(1, a), (-1, b)], k))

    def any(self, lits: Iterable[Any]) -> Any:
        """The literal ``or(lits)``."""
        return fold(lits, True, self._or)

    def all(self, lits: Iterable[Any]) -> Any:
        """The literal ``and(lits)``."""
        return fold(lits, False, self._and)

    @staticmethod
    def neg(lit: Any) -> Any:
        """The literal ``not lit``."""
        return (not lit) if isinstance(lit, bool) else ~lit

    def _or(self, lits: list[Any]) -> Any:
        out = self.model.new_bool_var("or")
        self.model.add_bool_or(lits).only_enforce_if(out)
        for lit in lits:
            self.model.add_implication(lit, out)
        return out

    def _and(self, lits: list[Any]) -> Any:
        out = self.model.new_bool_var("and")
        self.model.add_bool_and(lits).only_enforce_if(out)
        self.model.add_bool_or([~lit for lit in lits] + [out])
        return out

    # -- solving ----------------------------------------------------------------------------
    def solve(
        self, cond: Any, deadline: float, workers: int = 1
    ) -> tuple[str, np.ndarray | None, np.ndarray | None]:
        """Search for an input of the box where ``cond`` holds, until ``deadline``
        (``time.perf_counter()``): ``("sat", x, y)`` with the output ``y`` the model claims for ``x``
        (both replayed by the caller), ``("unsat", None, None)`` or ``("unknown", None, None)``."""
        if isinstance(cond, bool):
            raise ValueError("a condition the bounds decide needs no search")
        self.model.add_bool_and([cond])
        invalid = self.model.validate()  # e.g. a sum whose terms could overflow CP-SAT's int64
        if invalid:
            raise UnsupportedError(f"CP-SAT rejects the graph's model: {invalid}")
        solver = _solver(deadline - time.perf_counter(), workers)
        # CP-SAT honours its limit; the timer only bounds a phase that does not poll it
        timer = threading.Timer(max(0.0, deadline - time.perf_counter()) + _GRACE_S, solver.stop_search)
        timer.daemon = True
        timer.start()
        try:
            status = solver.solve(self.model)
        finally:
            timer.cancel()
        self.stats.update(cp_status=solver.status_name(status), cp_conflicts=int(solver.num_conflicts),
                          cp_branches=int(solver.num_branches))  # fmt: skip
        got = answer(status)
        if got == "sat":
            return "sat", values(solver, self.inputs), values(solver, self.outputs)
        return got, None, None


# -- rules ----------------------------------------------------------------------------------


def _elementwise(fn: Callable[..., Any]) -> Rule:
    """A rule applying ``fn(graph, *elements, lo, hi)`` to each output element (inputs broadcast)."""

    def rule(g: GraphModel, node: Any, attrs: dict[str, Any], ins: list[Any], los: list, his: list) -> list:
        lo, hi = los[0], his[0]
        args = [np.broadcast_to(_objects(a), lo.shape) for a in ins]
        out = np.empty(lo.shape, object)
        for idx in np.ndindex(lo.shape):
            elems = [a[idx] for a in args]
            if not any(is_var(e) for e in elems):  # the pass bounded the tensor, not this element
                ref = REFERENCE_OPS[node.op_type]([np.asarray(int(e), np.int64) for e in elems], attrs)[0]
                out[idx] = int(ref)
            else:
                out[idx] = fn(g, *elems, int(lo[idx]), int(hi[idx]))
        return [out]

    return rule


@register_cp("Add")
@_elementwise
def _add(g: GraphModel, a: Any, b: Any, lo: int, hi: int) -> Any:
    return g.linear([(1, a), (1, b)], 0, lo, hi)


@register_cp("Sub")
@_elementwise
def _sub(g: GraphModel, a: Any, b: Any, lo: int, hi: int) -> Any:
    return g.linear([(1, a), (-1, b)], 0, lo, hi)


@register_cp("Mul")
@_elementwise
def _mul(g: GraphModel, a: Any, b: Any, lo: int, hi: int) -> Any:
    if not is_var(a) or not is_var(b):
        c, v = (int(a), b) if not is_var(a) else (int(b), a)
        return g.linear([(c, v)], 0, lo, hi)
    out = g.var(lo, hi)
    if is_var(out):  # else the bounds fixed the product
        g.model.add_multiplication_equality(out, [a, b])
    return out


@register_cp("Div")
@_elementwise
def _div(g: GraphModel, a: Any, b: Any, lo: int, hi: int) -> Any:
    if not is_var(b):
        if int(b) == 0:
            raise UnsupportedError("Div by a constant 0: the reference is undefined on every input")
        den = g.constant(b)
    else:  # the reference is undefined at 0: only inputs where it is defined count (as in the SMT encoding)
        dlo, dhi = g.domain(b)
        den = b
        if dlo <= 0 <= dhi:
            parts = [p for p in ([dlo, -1], [1, dhi]) if p[0] <= p[1]]
            den = g.model.new_int_var_from_domain(cp_model.Domain.from_intervals(parts), "den")
            g.model.add(den == b)
    out = g.var(lo, hi)
    g.model.add_division_equality(
        out if is_var(out) else g.constant(out), a if is_var(a) else g.constant(a), den
    )
    return out


def _compare(op: str) -> Rule:
    def fn(g: GraphModel, a: Any, b: Any, lo: int, hi: int) -> Any:
        lit = g.var(lo, hi, op)
        if not is_var(lit):
            return lit
        if op == "Less":
            g.model.add(a < b).only_enforce_if(lit)
            g.model.add(a >= b).only_enforce_if(~lit)
        elif op == "Greater":
            g.model.add(a > b).only_enforce_if(lit)
            g.model.add(a <= b).only_enforce_if(~lit)
        else:
            g.model.add(a == b).only_enforce_if(lit)
            g.model.add(a != b).only_enforce_if(~lit)
        return lit

    return _elementwise(fn)


for _op in ("Less", "Greater", "Equal"):
    register_cp(_op)(_compare(_op))


@register_cp("Where")
@_elementwise
def _where(g: GraphModel, c: Any, a: Any, b: Any, lo: int, hi: int) -> Any:
    if not is_var(c):
        return a if int(c) else b
    out = g.var(lo, hi)
    if not is_var(out):
        return out
    g.model.add(out == a).only_enforce_if(c)
    g.model.add(out == b).only_enforce_if(~c)
    return out


def _extremum(op: str) -> Rule:
    def fn(g: GraphModel, *args: Any) -> Any:
        *elems, lo, hi = args
        out = g.var(lo, hi)
        if is_var(out):
            (g.model.add_max_equality if op == "Max" else g.model.add_min_equality)(out, list(elems))
        return out

    return _elementwise(fn)


for _op in ("Max", "Min"):
    register_cp(_op)(_extremum(_op))


@register_cp("Clip")
def _clip(g: GraphModel, node: Any, attrs: dict[str, Any], ins: list[Any], los: list, his: list) -> list:
    lo = los[0]
    x = _objects(ins[0])
    given = [None if len(ins) <= k or ins[k] is None else _objects(ins[k]).ravel() for k in (1, 2)]
    if any(v is not None and any(is_var(e) for e in v) for v in given):
        raise UnsupportedError(f"node {node.name!r}: Clip with a variable bound")
    bounds = [None if v is None else int(v[0]) for v in given]
    out = np.empty(lo.shape, object)
    for idx in np.ndindex(lo.shape):
        e = x[idx]
        if not is_var(e):
            lo_e = int(e) if bounds[0] is None else max(int(e), bounds[0])
            out[idx] = lo_e if bounds[1] is None else min(lo_e, bounds[1])
            continue
        elo, ehi = g.domain(e)
        if bounds[0] is not None and elo < bounds[0]:
            t = g.var(max(elo, bounds[0]), max(ehi, bounds[0]))
            if is_var(t):
                g.model.add_max_equality(t, [e, bounds[0]])
            e, elo, ehi = t, max(elo, bounds[0]), max(ehi, bounds[0])
        if bounds[1] is not None and ehi > bounds[1] and is_var(e):
            t = g.var(min(elo, bounds[1]), min(ehi, bounds[1]))
            if is_var(t):
                g.model.add_min_equality(t, [e, bounds[1]])
            e = t
        out[idx] = e
    return [out]


@register_cp("Gather")
def _gather(g: GraphModel, node: Any, attrs: dict[str, Any], ins: list[Any], los: list, his: list) -> list:
    data, idx = _objects(ins[0]), _objects(ins[1])
    if not any(is_var(e) for e in idx.ravel()):
        return _structural(g, node, attrs, ins, los, his)
    if any(is_var(e) for e in data.ravel()) or data.ndim != 1:
        raise UnsupportedError(
            f"node {node.name!r}: Gather with a variable index reads a constant 1-D table only"
        )
    table = [int(v) for v in data]
    n = len(table)
    lo = los[0]
    out = np.empty(lo.shape, object)
    for k in np.ndindex(lo.shape):
        e = idx[k]
        if not is_var(e):
            out[k] = table[int(e)]
            continue
        ilo, ihi = g.domain(e)
        # a negative index counts from the end, as in the reference; outside [-n, n) it is undefined
        ilo, ihi = max(ilo, -n), min(ihi, n - 1)
        if ilo > ihi:
            raise UnsupportedError(f"node {node.name!r}: Gather index always outside the table")
        pos = g.var(0, ihi - ilo, "i")
        g.model.add(pos == e - ilo)
        sub = [table[i] for i in range(ilo, ihi + 1)]
        t = g.var(min(sub), max(sub))
        if is_var(t):
            g.model.add_element(pos, sub, t)
        out[k] = t
    return [out]


@register_cp(*sorted(STRUCTURAL))
def _structural(
    g: GraphModel, node: Any, attrs: dict[str, Any], ins: list[Any], los: list, his: list
) -> list:
    """Ops that move elements: the reference run on element ids says where each one goes."""
    op = node.op_type
    if op == "Cast":  # the value stays; a narrower dtype's wrap-around comes after every rule
        if g.dtypes.get(node.output[0]) == np.bool_:
            raise UnsupportedError(f"node {node.name!r}: Cast to bool")
        return [_objects(ins[0])]
    # the elements of the first input move (of every input, for Concat); the rest (starts,
    # shapes, axes, indices) are constants the reference reads
    moved = range(len(ins)) if op == "Concat" else [0]
    pool: list[Any] = []
    ids: list[np.ndarray | None] = []
    for k, a in enumerate(ins):
        if a is None or k not in moved:
            ids.append(None if a is None else np.asarray(a, np.int64))
            continue
        a = _objects(a)
        ids.append(np.arange(len(pool), len(pool) + a.size, dtype=np.int64).reshape(a.shape))
        pool.extend(a.ravel())
    outs = REFERENCE_OPS[op](ids, attrs)
    return [np.array([pool[int(i)] for i in np.ravel(o)] or [], object).reshape(np.shape(o)) for o in outs]


def _linear_map(g: GraphModel, x: np.ndarray, coef: np.ndarray, const: np.ndarray, lo: np.ndarray,
                hi: np.ndarray) -> np.ndarray:  # fmt: skip
    """``out[j] = const[j] + sum_i coef[i, j] * x[i]`` for flat ``x``."""
    out = np.empty(coef.shape[1], object)
    flo, fhi = lo.ravel(), hi.ravel()
    for j in range(coef.shape[1]):
        nz = np.flatnonzero(coef[:, j])
        out[j] = g.linear([(int(coef[i, j]), x[i]) for i in nz], int(const[j]), int(flo[j]), int(fhi[j]))
    return out.reshape(lo.shape)


@register_cp("MatMulInteger", "MatMul")
def _matmul(g: GraphModel, node: Any, attrs: dict[str, Any], ins: list[Any], los: list, his: list) -> list:
    a, w = _objects(ins[0]), _objects(ins[1])
    zps = ins[2:] if node.op_type == "MatMulInteger" else []
    if any(is_var(e) for e in w.ravel()) or any(
        z is not None and any(is_var(e) for e in _objects(z).ravel()) for z in zps
    ):
        raise UnsupportedError(f"node {node.name!r}: {node.op_type} of two variable tensors")
    if w.ndim != 2 or a.ndim not in (1, 2):
        raise UnsupportedError(f"node {node.name!r}: {node.op_type} of shapes {a.shape} x {w.shape}")
    W = np.asarray(w, np.int64)
    za = 0 if len(zps) < 1 or zps[0] is None else np.asarray(zps[0], np.int64)
    zb = 0 if len(zps) < 2 or zps[1] is None else np.asarray(zps[1], np.int64)
    if np.ndim(za) > 0 and np.size(za) > 1:
        raise UnsupportedError(f"node {node.name!r}: a per-row A zero point")
    W = W - np.broadcast_to(zb, W.shape[1:])[None, :] if np.ndim(zb) else W - int(zb)
    za = int(np.ravel(za)[0]) if np.ndim(za) else int(za)
    rows = a.reshape(-1, a.shape[-1])
    lo, hi = los[0].reshape(rows.shape[0], -1), his[0].reshape(rows.shape[0], -1)
    out = np.stack([_linear_map(g, r, W, -za * W.sum(0), lo[i], hi[i]) for i, r in enumerate(rows)])
    return [out.reshape(los[0].shape)]


@register_cp("ReduceSum")
def _reduce_sum(
    g: GraphModel, node: Any, attrs: dict[str, Any], ins: list[Any], los: list, his: list
) -> list:
    x = _objects(ins[0])
    if x.size > MAX_REDUCE:
        raise UnsupportedError(f"node {node.name!r}: ReduceSum over {x.size} elements")
    consts = [None if a is None else np.asarray(a, np.int64) for a in ins[1:]]
    # which input elements each output sums: the reference run on one-hot inputs
    coef = np.stack([np.ravel(REFERENCE_OPS["ReduceSum"]([e.reshape(x.shape), *consts], attrs)[0])
                     for e in np.eye(x.size, dtype=np.int64)])  # fmt: skip
    return [_linear_map(g, x.ravel(), coef, np.zeros(coef.shape[1], np.int64), los[0], his[0])]
