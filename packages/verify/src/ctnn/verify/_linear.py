"""Linear bounds: every element enclosed between two affine functions of the inputs.

An interval forgets that two neurons share inputs; an affine form does not. Each
element gets ``LA·x + Lc <= value <= UA·x + Uc`` for every ``x`` in the box (symbolic
intervals, forward). Affine ops map forms exactly, one rule per op in
:data:`LINEAR_RULES`; a univariate chain (a requantization, a lookup table) is tabulated by the
reference over its root's interval and enclosed by two parallel lines through the
extreme residuals, so a step function costs no precision beyond its steps; anything
else falls back to its interval. Concretizing the forms over the box tightens the
interval of each tensor as the walk goes, and properties that compare outputs (the
margin of a label over the others) are checked on the forms themselves, where the
shared inputs cancel.

Arithmetic is float64; concretized bounds are widened by a relative 1e-9 of their
magnitude before rounding to integers, far above float64's accumulated error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from ctnn.quant import REFERENCE_OPS, registrar

from ._chains import ELEMENTWISE, MOVES, ROOT, Rec, const, tabulate
from ._interval import Bounds, reduce_axes

_LIMIT = float(1 << 62)


@dataclass
class Forms:
    """``LA·x + Lc <= value <= UA·x + Uc``; ``LA``/``UA`` are ``[*shape, F]``, ``Lc``/``Uc`` ``[*shape]``."""

    LA: np.ndarray
    Lc: np.ndarray
    UA: np.ndarray
    Uc: np.ndarray

    @classmethod
    def constant(cls, lo: np.ndarray, hi: np.ndarray, n: int) -> Forms:
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        z = np.zeros((*lo.shape, n))
        return cls(z, lo, z, hi)

    def rows(self, sel: Any) -> Forms:
        return Forms(self.LA[sel], self.Lc[sel], self.UA[sel], self.Uc[sel])


def concretize(f: Forms, xlo: np.ndarray, xhi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer bounds implied by the forms over the box (NaN rows give ±limit)."""
    mag_x = np.maximum(np.abs(xlo), np.abs(xhi))
    lo = np.maximum(f.LA, 0) @ xlo + np.minimum(f.LA, 0) @ xhi + f.Lc
    hi = np.maximum(f.UA, 0) @ xhi + np.minimum(f.UA, 0) @ xlo + f.Uc
    tol_lo = 1e-9 * (np.abs(f.LA) @ mag_x + np.abs(f.Lc)) + 1e-9
    tol_hi = 1e-9 * (np.abs(f.UA) @ mag_x + np.abs(f.Uc)) + 1e-9
    lo = np.nan_to_num(np.ceil(lo - tol_lo), nan=-_LIMIT).clip(-_LIMIT, _LIMIT)
    hi = np.nan_to_num(np.floor(hi + tol_hi), nan=_LIMIT).clip(-_LIMIT, _LIMIT)
    return lo.astype(np.int64), hi.astype(np.int64)


def max_of(A: np.ndarray, c: Any, xlo: np.ndarray, xhi: np.ndarray) -> Any:
    """The maximum of ``A·x + c`` over the box, rounded up by the same margin as :func:`concretize`
    (``A [F]`` and a number, or one row per form: ``A [B, F]``, ``c [B]``)."""
    v = np.maximum(A, 0) @ xhi + np.minimum(A, 0) @ xlo + c
    return v + 1e-9 * (np.abs(A) @ np.maximum(np.abs(xlo), np.abs(xhi)) + np.abs(c)) + 1e-9


def enclosing_lines(t: np.ndarray, rlo: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """``(slope, offset)`` of a lower and an upper line enclosing the table ``t`` over roots ``rlo + k``.

    Each line is the tightest of its slope (its offset is the extreme residual over the
    integer roots, so it is sound by construction); the slope is chosen among the chord's,
    the flat one and the chords to the table's extreme points by the least area between
    line and table -- the DeepPoly choice for a ReLU (flat or identity), generalized to
    clipped, stepped requantizations.
    """
    n = len(t)
    if n == 1:
        return (0.0, float(t[0])), (0.0, float(t[0]))
    r = np.arange(n, dtype=float)
    t = t.astype(float)
    cands = {0.0, (t[-1] - t[0]) / (n - 1)}
    for k in (int(np.argmin(t)), int(np.argmax(t))):
        if 0 < k < n - 1:
            cands.update({(t[k] - t[0]) / k, (t[-1] - t[k]) / (n - 1 - k)})
    best_l = best_u = None
    for a in cands:
        resid = t - a * r
        lo, hi = float(resid.min()), float(resid.max())
        area_l, area_u = float((resid - lo).sum()), float((hi - resid).sum())
        if best_l is None or area_l < best_l[0]:
            best_l = (area_l, a, lo)
        if best_u is None or area_u < best_u[0]:
            best_u = (area_u, a, hi)
    # back to the root's own coordinate: value >= a * root + (lo - a * rlo)
    return (best_l[1], best_l[2] - best_l[1] * rlo), (best_u[1], best_u[2] - best_u[1] * rlo)


LinearRule = Callable[[list["Forms | None"], list["np.ndarray | None"], dict[str, Any]], "Forms | None"]

#: op type -> affine rule: input forms (None for a constant input) and constants -> output forms
#: (or None: not affine here, fall back to the interval).
LINEAR_RULES: dict[str, LinearRule] = {}


register_linear = registrar(LINEAR_RULES, "affine-form rule")


def _matmul_forms(a: Forms, b: np.ndarray) -> Forms:
    """``a @ b`` for forms ``a`` [..., K] and a constant ``b`` [K, N] or [K]."""
    b = np.asarray(b, float)
    b2 = b[:, None] if b.ndim == 1 else b
    pos, neg = np.maximum(b2, 0), np.minimum(b2, 0)

    def mm(A: np.ndarray, w: np.ndarray) -> np.ndarray:  # [..., K, F] @ [K, N] -> [..., N, F]
        return np.swapaxes(np.swapaxes(A, -1, -2) @ w, -1, -2)

    # by sign: the lower form takes the lower input form where b > 0 and the upper one where b < 0
    out = Forms(mm(a.LA, pos) + mm(a.UA, neg), a.Lc @ pos + a.Uc @ neg,
                mm(a.UA, pos) + mm(a.LA, neg), a.Uc @ pos + a.Lc @ neg)  # fmt: skip
    if b.ndim == 1:
        out = Forms(out.LA[..., 0, :], out.Lc[..., 0], out.UA[..., 0, :], out.Uc[..., 0])
    return out


def _const_matmul_forms(a: np.ndarray, b: Forms) -> Forms | None:
    """``a @ b`` for a constant ``a`` [..., M, K] and forms ``b`` [K, N]."""
    if b.Lc.ndim != 2 or np.asarray(a).ndim < 2:
        return None
    a = np.asarray(a, float)
    pos, neg = np.maximum(a, 0), np.minimum(a, 0)
    ein = "...mk,knf->...mnf"
    return Forms(
        np.einsum(ein, pos, b.LA) + np.einsum(ein, neg, b.UA), pos @ b.Lc + neg @ b.Uc,
        np.einsum(ein, pos, b.UA) + np.einsum(ein, neg, b.LA), pos @ b.Uc + neg @ b.Lc,
    )  # fmt: skip


@register_linear("MatMul")
def _matmul(forms, consts, attrs):
    if forms[0] is not None and forms[1] is None:
        return _matmul_forms(forms[0], consts[1])
    if forms[0] is None and forms[1] is not None:
        return _const_matmul_forms(consts[0], forms[1])
    return None


@register_linear("MatMulInteger")
def _matmulinteger(forms, consts, attrs):
    a, b = forms[0], forms[1]
    ca, cb = consts[0], consts[1]
    if len(consts) > 2 and consts[2] is not None:  # zero points: the reference subtracts by broadcasting
        if a is not None:
            a = Forms(a.LA, a.Lc - consts[2], a.UA, a.Uc - consts[2])
        else:
            ca = np.asarray(ca, np.int64) - consts[2]
    if len(consts) > 3 and consts[3] is not None:
        if b is not None:
            b = Forms(b.LA, b.Lc - consts[3], b.UA, b.Uc - consts[3])
        else:
            cb = np.asarray(cb, np.int64) - consts[3]
    if len(forms) > 2 and any(f is not None for f in forms[2:]):
        return None
    return _matmul(forms=[a, b], consts=[ca, cb], attrs=attrs)


def _as_forms(f: Forms | None, c: np.ndarray | None, n: int) -> Forms:
    return f if f is not None else Forms.constant(c, c, n)


def _bc(A: np.ndarray, c: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    return np.broadcast_to(A, (*shape, A.shape[-1])), np.broadcast_to(c, shape)


@register_linear("Add", "Sub")
def _add_sub(forms, consts, attrs):
    n = next(f.LA.shape[-1] for f in forms if f is not None)
    a, b = (_as_forms(f, c, n) for f, c in zip(forms, consts))
    shape = np.broadcast_shapes(a.Lc.shape, b.Lc.shape)
    aLA, aLc = _bc(a.LA, a.Lc, shape)
    aUA, aUc = _bc(a.UA, a.Uc, shape)
    bLA, bLc = _bc(b.LA, b.Lc, shape)
    bUA, bUc = _bc(b.UA, b.Uc, shape)
    if attrs["_op"] == "Sub":
        return Forms(aLA - bUA, aLc - bUc, aUA - bLA, aUc - bLc)
    return Forms(aLA + bLA, aLc + bLc, aUA + bUA, aUc + bUc)


@register_linear("Mul")
def _mul(forms, consts, attrs):
    if (forms[0] is None) == (forms[1] is None):
        return None
    f, c = (forms[0], consts[1]) if forms[0] is not None else (forms[1], consts[0])
    c = np.asarray(c, float)
    shape = np.broadcast_shapes(f.Lc.shape, c.shape)
    LA, Lc = _bc(f.LA, f.Lc, shape)
    UA, Uc = _bc(f.UA, f.Uc, shape)
    pos, neg = np.maximum(c, 0), np.minimum(c, 0)
    return Forms(pos[..., None] * LA + neg[..., None] * UA, pos * Lc + neg * Uc,
                 pos[..., None] * UA + neg[..., None] * LA, pos * Uc + neg * Lc)  # fmt: skip


@register_linear("ReduceSum")
def _reducesum(forms, consts, attrs):
    f = forms[0]
    axes = reduce_axes(attrs, consts[1] if len(consts) > 1 else None, f.Lc.ndim)
    if axes is None:
        return f
    keep = bool(attrs.get("keepdims", 1))
    return Forms(f.LA.sum(axis=axes, keepdims=keep), f.Lc.sum(axis=axes, keepdims=keep),
                 f.UA.sum(axis=axes, keepdims=keep), f.Uc.sum(axis=axes, keepdims=keep))  # fmt: skip


class LinearRefiner:
    """Walks alongside the interval pass: forms for affine ops, chains for the rest, tighter bounds."""

    def __init__(self, env: dict[str, Bounds], dtypes: dict[str, np.dtype], input_name: str):
        self.env, self.dtypes = env, dtypes
        b = env[input_name]
        self.xlo = b.lo.ravel().astype(float)
        self.xhi = b.hi.ravel().astype(float)
        self.n = len(self.xlo)
        eye = np.eye(self.n).reshape(*b.lo.shape, self.n)
        self.forms: dict[str, Forms] = {
            input_name: Forms(eye, np.zeros(b.lo.shape), eye, np.zeros(b.lo.shape))
        }
        self.chains: dict[str, np.ndarray] = {}  # per element: (root name, root flat index, Rec) or None
        self._pending: tuple | None = None
        self.stats = {"tables": 0, "tightened": 0}

    # -- element bookkeeping -------------------------------------------------------------------
    def _const_elem(self, name: str, i: int) -> bool:
        b = self.env[name]
        return b.value is not None or b.lo.flat[i] == b.hi.flat[i]

    def _origin(self, name: str, i: int) -> tuple[tuple[str, int], Rec]:
        ch = self.chains.get(name)
        if ch is not None and ch.flat[i] is not None:
            rn, ri, rec = ch.flat[i]
            return (rn, ri), rec
        return (name, i), ROOT

    def _empty_forms(self, name: str) -> Forms:
        shape = self.env[name].lo.shape
        nan = np.full((*shape, self.n), np.nan)
        return Forms(nan, np.full(shape, np.nan), nan.copy(), np.full(shape, np.nan))

    def _resolve(self, name: str, i: int) -> None:
        """Forms (and a tighter interval) for one chain element from its root's forms."""
        f = self.forms.get(name)
        if f is None:
            f = self.forms[name] = self._empty_forms(name)
        if not np.isnan(f.Lc.flat[i]):
            return
        b = self.env[name]
        (rn, ri), rec = self._origin(name, i)
        rb = self.env[rn]
        rlo, rhi = int(rb.lo.flat[ri]), int(rb.hi.flat[ri])
        table = None if rec is ROOT else tabulate(rec, rlo, rhi, self.dtypes[rn])
        if table is None or self._const_elem(name, i) or table.dtype == np.bool_:
            lo, hi = float(b.lo.flat[i]), float(b.hi.flat[i])
            f.LA.reshape(-1, self.n)[i] = 0.0
            f.UA.reshape(-1, self.n)[i] = 0.0
            f.Lc.flat[i], f.Uc.flat[i] = lo, hi
            return
        self.stats["tables"] += 1
        t = table.astype(np.int64)
        self._tighten(name, np.array([i]), np.array([t.min()]), np.array([t.max()]))
        (al, bl), (au, bu) = enclosing_lines(t, rlo)
        rf = self.ensure(rn)
        rLA, rUA = rf.LA.reshape(-1, self.n)[ri], rf.UA.reshape(-1, self.n)[ri]
        rLc, rUc = float(rf.Lc.flat[ri]), float(rf.Uc.flat[ri])
        # a line with a negative slope takes the root's opposite form
        lA, lc = (rLA, rLc) if al >= 0 else (rUA, rUc)
        uA, uc = (rUA, rUc) if au >= 0 else (rLA, rLc)
        f.LA.reshape(-1, self.n)[i] = al * lA
        f.Lc.flat[i] = al * lc + bl
        f.UA.reshape(-1, self.n)[i] = au * uA
        f.Uc.flat[i] = au * uc + bu

    def ensure(self, name: str) -> Forms:
        """Forms for every element of a tensor (resolving chains)."""
        b = self.env[name]
        if b.value is not None:
            return Forms.constant(b.lo, b.hi, self.n)
        f = self.forms.get(name)
        if f is None or np.isnan(f.Lc).any():
            for i in range(b.lo.size):
                self._resolve(name, i)
            f = self.forms[name]
        return f

    def _tighten(self, name: str, idx: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        b = self.env[name]
        keep = np.ones(len(idx), bool) if b.wraps is None else ~b.wraps.ravel()[idx]
        idx, lo, hi = idx[keep], lo[keep], hi[keep]
        old_lo, old_hi = b.lo.ravel()[idx], b.hi.ravel()[idx]
        new_lo, new_hi = np.maximum(old_lo, lo), np.minimum(old_hi, hi)
        if np.any(new_lo > new_hi):
            raise AssertionError(f"{name}: linear bounds contradict the interval pass (a ctnn-verify bug)")
        changed = (new_lo != old_lo) | (new_hi != old_hi)
        if not changed.any():
            return
        self.stats["tightened"] += int(changed.sum())
        b.lo, b.hi = b.lo.copy(), b.hi.copy()
        b.lo.ravel()[idx], b.hi.ravel()[idx] = new_lo, new_hi
        if b.pre_lo is not None:
            b.pre_lo, b.pre_hi = b.pre_lo.copy(), b.pre_hi.copy()
            b.pre_lo.ravel()[idx], b.pre_hi.ravel()[idx] = new_lo, new_hi
        if np.array_equal(b.lo, b.hi):
            b.value = b.lo.astype(self.dtypes[name])

    # -- the walk -------------------------------------------------------------------------------
    def _lut(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> bool:
        """A lookup table: a ``Gather`` from a constant 1-D table at a variable index, elementwise in it."""
        if node.op_type != "Gather" or self.env[node.input[1]].value is not None:
            return False
        table = self.env[node.input[0]].value
        return table is not None and table.ndim == 1 and attrs.get("axis", 0) in (0, -1)

    def before(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
        """Resolve the chain ends this node consumes (so its interval rule sees them tightened)."""
        self._pending = None
        op = node.op_type
        if op in MOVES:
            return
        names = [i for i in node.input if i]
        lut = self._lut(node, attrs)
        if op not in ELEMENTWISE and not lut:
            for name in names:
                if name in self.chains and self.env[name].value is None:
                    for i in range(self.env[name].lo.size):
                        if self.chains[name].flat[i] is not None:
                            self._resolve(name, i)
            return
        # a lookup table is elementwise in its index; the whole table is one constant of the chain
        ins = [node.input[1]] if lut else list(node.input)
        table = [const(self.env[node.input[0]].value, self.dtypes[node.input[0]])] if lut else []
        shape = np.broadcast_shapes(*[self.env[n].lo.shape for n in ins if n])
        maps = [None if not n else np.broadcast_to(np.arange(self.env[n].lo.size).reshape(self.env[n].lo.shape),
                                                   shape) for n in ins]  # fmt: skip
        recs = np.full(shape, None, object)
        for idx in np.ndindex(shape):
            origins, args = set(), list(table)
            for name, m in zip(ins, maps):
                if not name:
                    args.append(None)
                    continue
                i = int(m[idx])
                if self._const_elem(name, i):
                    args.append(const(self.env[name].lo.flat[i], self.dtypes[name]))
                    continue
                key, rec = self._origin(name, i)
                origins.add(key)
                args.append(rec)
            if len(origins) == 1:
                (key,) = origins
                recs[idx] = (key[0], key[1], Rec(op, tuple(args), attrs))
            else:
                for name, m in zip(ins, maps):
                    if name and name in self.chains and not self._const_elem(name, int(m[idx])):
                        if self.chains[name].flat[int(m[idx])] is not None:
                            self._resolve(name, int(m[idx]))
        self._pending = (node, recs)

    def after(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
        """Forms or chains for the node's outputs; tighten their intervals."""
        op = node.op_type
        outs = [o for o in node.output if o]
        if all(self.env[o].value is not None for o in outs):
            return
        ins = list(node.input)
        if op in MOVES or (op == "Gather" and self.env[node.input[1]].value is not None):
            self._move(node, attrs)
            return
        chained = None
        if self._pending is not None and self._pending[0] is node:  # only elementwise ops and tables set it
            recs = self._pending[1]
            chained = np.frompyfunc(lambda r: r is not None, 1, 1)(recs).astype(bool)
            if chained.any():
                self.chains[outs[0]] = recs
            if chained.all():
                return
        name = outs[0]
        b = self.env[name]
        f = None
        rule = LINEAR_RULES.get(op)
        if rule is not None and len(outs) == 1 and not self._wraps(name):
            forms = [None if not i or self.env[i].value is not None else self.ensure(i) for i in ins]
            consts = [None if not i else self.env[i].value for i in ins]
            f = rule(forms, consts, {**attrs, "_op": op})
        if f is None:
            f = Forms.constant(b.lo, b.hi, self.n)
            for o in outs[1:]:
                self.forms[o] = Forms.constant(self.env[o].lo, self.env[o].hi, self.n)
        shape = b.lo.shape
        f = Forms(*(np.array(np.broadcast_to(v, (*shape, self.n) if k % 2 == 0 else shape), dtype=float)
                    for k, v in enumerate((f.LA, f.Lc, f.UA, f.Uc))))  # fmt: skip
        if chained is not None and chained.any():  # chain elements: resolved from their root on demand
            for v in (f.LA, f.Lc, f.UA, f.Uc):
                v[chained] = np.nan
        self.forms[name] = f
        lo, hi = concretize(f, self.xlo, self.xhi)
        self._tighten(name, np.arange(b.lo.size), lo.ravel(), hi.ravel())

    def _wraps(self, name: str) -> bool:
        w = self.env[name].wraps
        return w is not None and bool(w.any())

    def _move(self, node: onnx.NodeProto, attrs: dict[str, Any]) -> None:
        """Moves carry forms and chains along: the op itself, applied to an array of element indices."""
        op = node.op_type
        data = list(node.input) if op == "Concat" else [node.input[0]]
        params = [None if not i else self.env[i].value for i in node.input[len(data) :]]
        sizes = [self.env[d].lo.size for d in data]
        offsets = np.cumsum([0, *sizes])
        idx = [np.arange(n).reshape(self.env[d].lo.shape) + o for d, n, o in zip(data, sizes, offsets)]
        mapped = REFERENCE_OPS[op]([*idx, *params], attrs)
        forms = []
        for d in data:  # rows of unresolved chain elements are NaN: resolved on demand downstream
            if self.env[d].value is not None:
                forms.append(Forms.constant(self.env[d].lo, self.env[d].hi, self.n))
            else:
                if d not in self.forms:
                    self.forms[d] = self._empty_forms(d)
                forms.append(self.forms[d])
        LA = np.concatenate([f.LA.reshape(-1, self.n) for f in forms])
        UA = np.concatenate([f.UA.reshape(-1, self.n) for f in forms])
        Lc = np.concatenate([f.Lc.ravel() for f in forms])
        Uc = np.concatenate([f.Uc.ravel() for f in forms])
        chains = None
        if any(d in self.chains for d in data):
            chains = np.concatenate([self.chains[d].ravel() if d in self.chains else np.full(n, None, object)
                                     for d, n in zip(data, sizes)])  # fmt: skip
        for name, m in zip(node.output, mapped):
            m = np.asarray(m)
            flat = m.ravel()
            self.forms[name] = Forms(LA[flat].reshape(*m.shape, self.n), Lc[flat].reshape(m.shape),
                                     UA[flat].reshape(*m.shape, self.n), Uc[flat].reshape(m.shape))  # fmt: skip
            if chains is not None:
                self.chains[name] = chains[flat].reshape(m.shape)
