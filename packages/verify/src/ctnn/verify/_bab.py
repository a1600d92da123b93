"""Branch and bound over neuron splits with backward linear bounds, for MLP-shaped graphs.

The forward forms of :mod:`._linear` relax every neuron once, against the inputs. Bounding
*backward* from the property instead picks each neuron's lower or upper line by the sign
of its coefficient in the property (CROWN, Zhang et al., NeurIPS'18; DeepPoly's
back-substitution), which is tighter on every layer after the first. What the lines cannot
prove is split: one neuron's accumulator interval is cut at a step of its requantization
and each half is bounded again; a narrower interval has tighter lines, and an interval on
one step is exact. The branch with the worst bound is split first.

Sound because a branch's intervals hold for every input of the box that reaches the branch:
its bound, concretized over the whole box, holds for all of them. The float64 sums are
widened by a relative 1e-9 before an integer bound is rounded, as in :mod:`._linear`. A
branch the splits cannot close (every neuron on one step, yet the bound misses) is left
open for the solver: its intervals may describe no input at all.
"""

from __future__ import annotations

import heapq
import itertools
import time
from typing import Any

import numpy as np
import z3
from scipy import sparse
from scipy.optimize import linprog

from ._interval import Bounds
from ._layered import Layer, Runs, evaluate_chain, layers_of, tabulate_runs
from ._linear import Forms, concretize, max_of

_TOL = 1e-9

Rel = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class LayeredBounds:
    """Backward bounds of one box through an MLP-shaped integer graph.

    Built from the root box: each layer's accumulator interval (exact for the first layer,
    backward bounds for the others, intersected with the interval pass's) and its step
    function's runs over that interval, which every branch's narrower interval reuses.
    """

    def __init__(self, layers: list[Layer], consts: dict[str, Any], xlo: np.ndarray, xhi: np.ndarray,
                 bounds: dict[str, Bounds]):  # fmt: skip
        self.layers, self.consts = layers, consts
        self.xlo, self.xhi = xlo.astype(np.float64), xhi.astype(np.float64)
        self.xmag = np.maximum(np.abs(self.xlo), np.abs(self.xhi))
        self.runs: list[Runs] = []
        ls: list[np.ndarray] = []
        us: list[np.ndarray] = []
        rels: list[Rel] = []
        self.ok = True
        for k, layer in enumerate(layers):
            lo, hi = self._first() if k == 0 else self._crown(k, rels)
            b = bounds.get(layer.acc)
            if b is not None and b.lo.size == lo.size:
                lo, hi = np.maximum(lo, b.lo.ravel()), np.minimum(hi, b.hi.ravel())
            info = np.iinfo(layer.acc_dtype)
            # an accumulator that may wrap is not the integer sum the bounds assume
            runs = (
                None if lo.min() < info.min or hi.max() > info.max else tabulate_runs(layer, consts, lo, hi)
            )
            if runs is None:
                self.ok = False
                return
            self.runs.append(runs)
            ls.append(lo)
            us.append(hi)
            rels.append(runs.lines(lo, hi))
        self.root = (ls, us)
        self.monotone = np.all(np.diff(self.runs[-1].V, axis=0) >= 0, axis=0)

    # -- bounds -------------------------------------------------------------------------------
    def _first(self) -> tuple[np.ndarray, np.ndarray]:
        """The first layer's accumulators are affine in the inputs: their box bounds are exact."""
        L = self.layers[0]
        lo, hi = concretize(Forms(L.W.T, L.b, L.W.T, L.b), self.xlo, self.xhi)
        return lo.astype(np.float64), hi.astype(np.float64)

    def backward(self, k: int, lam: np.ndarray, const: np.ndarray, rels: list[Rel],
                 mag: np.ndarray | None = None) -> tuple[np.ndarray, list, np.ndarray, np.ndarray]:  # fmt: skip
        """Lower bounds of ``lam·a_k + const`` over the box (rows of ``lam [m, n_k]``).

        Returns the bounds; each layer's coefficients on its output (what its relaxation
        costs the bound: the branching score); and the affine forms in the inputs the bounds
        concretize, ``lam_x·x + c_x <= lam·a_k + const`` (``c_x`` already widened).
        """
        const = const.astype(np.float64)
        mag = np.abs(const) if mag is None else mag
        coeffs: list[np.ndarray] = [None] * (k + 1)  # type: ignore[list-item]
        for j in range(k, -1, -1):
            al, cl, au, cu = rels[j]
            pos, neg = np.maximum(lam, 0), np.minimum(lam, 0)
            const = const + pos @ cl + neg @ cu
            mag = mag + pos @ np.abs(cl) - neg @ np.abs(cu)
            coeffs[j] = lam
            lz = pos * al + neg * au
            layer = self.layers[j]
            const = const + lz @ layer.b
            mag = mag + np.abs(lz) @ np.abs(layer.b)
            lam = lz @ layer.W.T
        c = const - _TOL * mag - _TOL
        low = c + np.maximum(lam, 0) @ self.xlo + np.minimum(lam, 0) @ self.xhi
        return low - _TOL * (np.abs(lam) @ self.xmag) - _TOL, coeffs, lam, c

    def split_halfspaces(self, ls: list[np.ndarray],
                         us: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """The branch's first-layer splits as halfspaces ``H x <= h`` (exact: those accumulators
        are affine in the inputs), with a key per row (``i`` for neuron i's upper end, ``-1 - i``
        for its lower end) that names the same split in every branch below."""
        rl, ru = self.root
        layer = self.layers[0]
        up, down = np.flatnonzero(us[0] < ru[0]), np.flatnonzero(ls[0] > rl[0])
        H = np.concatenate([layer.W[:, up].T, -layer.W[:, down].T])
        h = np.concatenate([us[0][up] - layer.b[up], layer.b[down] - ls[0][down]])
        return H, h, np.concatenate([up, -1 - down])

    def margin(self, label: int, other: int, rels: list[Rel], ls: list[np.ndarray],
               us: list[np.ndarray]) -> tuple[float, list[np.ndarray], np.ndarray, float]:  # fmt: skip
        """A lower bound of ``y[label] - y[other]``, the best over the two output neurons' candidate
        lines (each pair a sound relaxation, so the largest bound is sound); with the best pair's
        coefficients per layer, on the inputs, and the inputs' form's constant."""
        k = len(self.layers) - 1
        layer = self.layers[k]
        n = layer.W.shape[1]
        cands = self.runs[k].candidates(ls[k], us[k])
        rows, const, mag = [], [], []
        for a_l, c_l, _ in cands:
            for a_o, _, c_o in cands:
                lz = np.zeros(n)
                lz[label] += a_l[label]
                lz[other] -= a_o[other]
                rows.append(lz)
                const.append(c_l[label] - c_o[other])
                mag.append(abs(c_l[label]) + abs(c_o[other]))
        lz = np.array(rows)
        low, coeffs, lam, c_x = self.backward(k - 1, lz @ layer.W.T, np.array(const) + lz @ layer.b, rels,
                                              np.array(mag) + np.abs(lz) @ np.abs(layer.b))  # fmt: skip
        best = int(np.argmax(low))
        top = np.zeros((1, n))
        top[0, label], top[0, other] = 1.0, -1.0
        return float(low[best]), [c[best : best + 1] for c in coeffs] + [top], lam[best], float(c_x[best])

    def lp_margin(self, label: int, other: int, ls: list[np.ndarray],
                  us: list[np.ndarray]) -> tuple[float, np.ndarray | None, list[np.ndarray] | None]:  # fmt: skip
        """A lower bound of ``y[label] - y[other]`` from the LP over every layer at once.

        Variables: inputs, accumulators ``z_k`` (bounded by the branch's intervals, so every
        split is enforced exactly) and outputs ``a_k`` (bounded by the step function's range),
        tied by ``z_k = a_{k-1} W_k + b_k`` and by every candidate line of each step function.
        Returns the bound, the LP's inputs and its per-layer ``(z_k, a_k)`` (None if infeasible).
        """
        F = len(self.xlo)
        sizes = [layer.W.shape[1] for layer in self.layers]
        z_off, a_off = [], []
        off = F
        for n in sizes:
            z_off.append(off)
            a_off.append(off + n)
            off += 2 * n
        nv = off
        vlo, vhi = np.empty(nv), np.empty(nv)
        vlo[:F], vhi[:F] = self.xlo, self.xhi
        eq_rows, eq_b, ub_rows, ub_b = [], [], [], []
        for k, layer in enumerate(self.layers):
            n = sizes[k]
            lo, hi = ls[k], us[k]
            zs, as_ = z_off[k], a_off[k]
            vlo[zs : zs + n], vhi[zs : zs + n] = lo, hi
            vals = self.runs[k].range(lo, hi)
            vlo[as_ : as_ + n], vhi[as_ : as_ + n] = vals
            prev = slice(0, F) if k == 0 else slice(a_off[k - 1], a_off[k - 1] + sizes[k - 1])
            blk = sparse.lil_matrix((n, nv))
            blk[:, prev] = -layer.W.T
            blk[:, zs : zs + n] = sparse.identity(n)
            eq_rows.append(blk.tocsr())
            eq_b.append(layer.b)
            idx = np.arange(n)
            for a, cl, cu in self.runs[k].candidates(lo, hi):
                # a·z + cl <= out  and  out <= a·z + cu
                ub_rows.append(sparse.csr_matrix((np.r_[a, -np.ones(n)], (np.r_[idx, idx], np.r_[zs + idx, as_ + idx])),
                                                 shape=(n, nv)))  # fmt: skip
                ub_b.append(-cl)
                ub_rows.append(sparse.csr_matrix((np.r_[-a, np.ones(n)], (np.r_[idx, idx], np.r_[zs + idx, as_ + idx])),
                                                 shape=(n, nv)))  # fmt: skip
                ub_b.append(cu)
        c = np.zeros(nv)
        c[a_off[-1] + label], c[a_off[-1] + other] = 1.0, -1.0
        low, v = lp_min(c, sparse.vstack(ub_rows).tocsr(), np.concatenate(ub_b), sparse.vstack(eq_rows).tocsr(),
                        np.concatenate(eq_b), vlo, vhi)  # fmt: skip
        if v is None:
            return low, None, None
        layers_v = [(v[z_off[k] : z_off[k] + n], v[a_off[k] : a_off[k] + n]) for k, n in enumerate(sizes)]
        return low, v[:F], layers_v

    def step_margin(self, label: int, other: int, d: int, lo: np.ndarray, hi: np.ndarray) -> float:
        """A lower bound of ``g_label(z_label) - g_other(z_other)`` given ``z_label - z_other >= d``.

        With both step functions nondecreasing, ``g_label(z_label) >= g_label(max(z_other + d,
        lo_label))``, so the least of that minus ``g_other(z_other)`` over the other's values
        with ``z_other + d <= hi_label`` bounds the margin exactly in the outputs' own steps (no
        line around a step is lost); ``inf`` when no pair of values fits. ``-inf`` where a step
        function is not monotone or the span is too wide.
        """
        runs = self.runs[-1]
        if not (self.monotone[label] and self.monotone[other]):
            return -np.inf
        l_o, u_o = int(lo[other]), min(int(hi[other]), int(hi[label]) - d)
        if u_o < l_o:
            return np.inf
        if u_o - l_o > 1 << 20:
            return -np.inf
        zo = np.arange(l_o, u_o + 1, dtype=np.float64)
        zl = np.maximum(zo + d, lo[label])
        return float((runs.column(label, zl) - runs.column(other, zo)).min())

    def _crown(self, k: int, rels: list[Rel]) -> tuple[np.ndarray, np.ndarray]:
        L = self.layers[k]
        n = L.W.shape[1]
        lam = np.concatenate([L.W.T, -L.W.T])
        const = np.concatenate([L.b, -L.b])
        low = self.backward(k - 1, lam, const, rels)[0]
        return np.ceil(low[:n]), np.floor(-low[n:])

    def relax(self, ls: list[np.ndarray], us: list[np.ndarray], start: int) -> list[Rel] | None:
        """Tighten the intervals from layer ``start`` on (in place) and relax every layer;
        None when some interval is empty (no input reaches the branch)."""
        rels: list[Rel] = []
        for k in range(len(self.layers)):
            if k >= start and k > 0:
                lo, hi = self._crown(k, rels)
                ls[k], us[k] = np.maximum(ls[k], lo), np.minimum(us[k], hi)
            if np.any(ls[k] > us[k]):
                return None
            rels.append(self.runs[k].lines(ls[k], us[k]))
        return rels

    # -- evaluation ---------------------------------------------------------------------------
    def forward(self, xs: np.ndarray) -> np.ndarray:
        """The graph's output codes for input codes ``xs [B, F]`` (the reference's own ops)."""
        a = np.asarray(xs, np.float64)
        for layer in self.layers:
            a = evaluate_chain(layer, self.consts, np.rint(a @ layer.W + layer.b), layer.acc_dtype)
        return a.astype(np.int64)


def box_min(lam: np.ndarray, const: float, xlo: np.ndarray, xhi: np.ndarray) -> float:
    """``min lam·x + const`` over the box, rounded down by :func:`~._linear.max_of`'s margin."""
    return -max_of(-lam, -const, xlo, xhi)


def split_dual(lam: np.ndarray, const: float, H: np.ndarray, h: np.ndarray, xlo: np.ndarray, xhi: np.ndarray,
               beta: np.ndarray | None = None, sweeps: int = 3) -> tuple[float, np.ndarray]:  # fmt: skip
    """A sound lower bound of ``lam·x + const`` over ``{x in box : H x <= h}`` by Lagrangian duality,
    and the multipliers that give it.

    ``min_box (lam + Hᵀβ)·x + const - β·h`` holds for every ``β >= 0``; each ``β_s`` in turn is
    set to its exact maximizer (the bound is concave and piecewise linear in ``β_s``: walk
    its breakpoints), ``sweeps`` times from ``beta`` (a parent branch's multipliers are a
    good start: one sweep then does what three do from zero). This is how a split constraint
    reaches the inputs without an LP (β-CROWN's idea, Wang et al., NeurIPS'21, with
    coordinate ascent). ``inf`` when one halfspace misses the box.
    """
    beta = np.zeros(len(h)) if beta is None else np.maximum(beta, 0.0)
    width = xhi - xlo
    for _ in range(sweeps):
        for s in range(len(h)):
            row = H[s]
            lam_s = lam + H.T @ beta - beta[s] * row
            # slope of the bound in β_s just above 0: the minimizing corner's constraint value
            pos = (lam_s > 0) | ((lam_s == 0) & (row > 0))
            d0 = float(row @ np.where(pos, xlo, xhi)) - h[s]
            if d0 <= 0:
                beta[s] = 0.0
                continue
            flip = (row != 0) & (lam_s * row < 0)  # the corner of x_i flips at β = -lam_i/row_i
            t = -lam_s[flip] / row[flip]
            order = np.argsort(t)
            drop = np.cumsum((np.abs(row[flip]) * width[flip])[order])
            k = int(np.searchsorted(-(d0 - drop), 0.0, side="left"))  # first point where the slope <= 0
            if k >= len(order):
                if d0 - (drop[-1] if len(drop) else 0.0) > 1e-6:
                    return float("inf"), beta  # the bound grows without limit: the halfspace misses the box
                if not len(order):
                    continue
                k = len(order) - 1
            beta[s] = float(t[order][k])
    return box_min(lam + H.T @ beta, const - float(beta @ h), xlo, xhi), beta


def lp_min(c: np.ndarray, A_ub: Any, b_ub: np.ndarray, A_eq: Any, b_eq: np.ndarray, vlo: np.ndarray,
           vhi: np.ndarray) -> tuple[float, np.ndarray | None]:  # fmt: skip
    """A sound lower bound of ``c·v`` over ``{v in [vlo, vhi] : A_ub v <= b_ub, A_eq v = b_eq}``
    (``inf``: proved empty), and the LP's minimizer.

    HiGHS solves the LP in floating point; only its duals are used, in the Lagrangian bound
    ``min_box (c + A_ubᵀy + A_eqᵀw)·v - y·b_ub - w·b_eq`` (any ``y >= 0`` and ``w``), which is
    evaluated here: the solver's tolerances cannot make the bound unsound.
    """
    bnds = np.stack([vlo, vhi], 1)
    r = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=b_eq, bounds=bnds, method="highs")
    if r.status == 0:
        y = np.maximum(-r.ineqlin.marginals, 0.0)
        w = -r.eqlin.marginals
        lam = c + A_ub.T @ y + A_eq.T @ w
        return box_min(lam, -float(y @ b_ub) - float(w @ b_eq), vlo, vhi), r.x
    if r.status != 2:
        return -float("inf"), None
    # infeasible: the phase-one LP (every row relaxed by t >= 0, t minimized) has a dual
    # y >= 0 with min_box y·(A v - b) > 0, which certifies that no v satisfies the rows
    A = sparse.vstack([A_ub, A_eq, -A_eq]).tocsr()
    b = np.concatenate([b_ub, b_eq, -b_eq])
    n = len(c)
    r = linprog(np.r_[np.zeros(n), 1.0], A_ub=sparse.hstack([A, -np.ones((A.shape[0], 1))]), b_ub=b,
                bounds=np.r_[bnds, [[0.0, np.inf]]], method="highs")  # fmt: skip
    if r.status != 0:
        return -float("inf"), None
    y = np.maximum(-r.ineqlin.marginals, 0.0)
    if box_min(A.T @ y, -float(y @ b), vlo, vhi) > 0:
        return float("inf"), None
    return -float("inf"), None


def leaf_witness(bounds: LayeredBounds, ls: list[np.ndarray], us: list[np.ndarray], label: int, other: int,
                 threshold: int, timeout_s: float) -> tuple[str, np.ndarray | None]:  # fmt: skip
    """Decide a branch exactly with z3 (linear integer arithmetic): an input of the box whose
    accumulators lie in the branch's intervals and whose margin misses ``threshold``.

    Returns ``("sat", x)``, ``("unsat", None)`` (no input reaches the branch with a violation)
    or ``("unknown", None)``. Exact: the accumulators are integer sums (no wrap, checked at
    the root), each step function is its runs on the branch's interval.
    """
    s = z3.SolverFor("QF_LIA")
    s.set("timeout", max(1, int(timeout_s * 1000)))
    xlo, xhi = bounds.xlo.astype(np.int64), bounds.xhi.astype(np.int64)
    xs: list[Any] = []
    for i in range(len(xlo)):
        if xlo[i] == xhi[i]:
            xs.append(int(xlo[i]))
            continue
        v = z3.Int(f"x{i}")
        s.add(v >= int(xlo[i]), v <= int(xhi[i]))
        xs.append(v)
    a: list[Any] = xs
    for k, layer in enumerate(bounds.layers):
        W = layer.W.astype(np.int64)
        b = layer.b.astype(np.int64)
        runs = bounds.runs[k]
        nxt: list[Any] = []
        for j in range(W.shape[1]):
            lo, hi = int(ls[k][j]), int(us[k][j])
            terms = [int(W[i, j]) * a[i] for i in np.flatnonzero(W[:, j]) if not isinstance(a[i], int)]
            fixed = sum(int(W[i, j]) * a[i] for i in np.flatnonzero(W[:, j]) if isinstance(a[i], int))
            z = z3.Sum(terms) + fixed + int(b[j]) if terms else fixed + int(b[j])
            if isinstance(z, int):
                if not lo <= z <= hi:
                    return "unsat", None
            else:
                s.add(z >= lo, z <= hi)
            inside = (runs.E[:, j] >= lo) & (runs.S[:, j] <= hi)
            ends, vals = runs.E[inside, j], runs.V[inside, j]
            if isinstance(z, int) or len(set(vals.tolist())) == 1:
                nxt.append(runs.value_at(j, z if isinstance(z, int) else lo))
                continue
            g: Any = int(vals[-1])
            for e, v in zip(ends[-2::-1], vals[-2::-1]):
                g = z3.If(z <= int(e), int(v), g)
            nxt.append(g)
        a = nxt
    margin = a[label] - a[other]
    if isinstance(margin, int) and margin >= threshold:
        return "unsat", None
    if not isinstance(margin, int):
        s.add(margin < threshold)
    r = s.check()
    if r == z3.unsat:
        return "unsat", None
    if r != z3.sat:
        return "unknown", None
    m = s.model()
    x = np.array(
        [v if isinstance(v, int) else m.eval(v, model_completion=True).as_long() for v in xs], np.int64
    )
    return "sat", x


def _pick(bounds: LayeredBounds, coeffs: list[np.ndarray], rels: list[Rel], ls: list[np.ndarray],
          us: list[np.ndarray]) -> tuple[int, int, int] | None:  # fmt: skip
    """The hidden neuron whose relaxation costs the bound most: ``(layer, index, split point)``.

    From the first layer while it has any: its splits are halfspaces of the inputs, which
    :func:`split_dual` enforces, so they pay off further down the tree than a deeper split
    that only narrows one interval (measured on the MNIST queries: several classes open after
    15 s with deeper splits first are proved in under 6 s). Output neurons are left to the LP:
    split alone, they make branches no input reaches. One cheap score rather than bounding the
    children of a few candidates (filtered smart branching): on four hard MNIST classes, three
    candidates per branch took 2.0-2.4x longer to prove each, with fewer branches.
    """
    for k, (lz, (al, cl, au, cu)) in enumerate(zip(coeffs[:-1], rels[:-1])):
        lo, hi = ls[k], us[k]
        band = np.maximum((au - al) * lo + cu - cl, (au - al) * hi + cu - cl)
        m = bounds.runs[k].splits(lo, hi)
        s = np.where(m >= lo, np.abs(lz[0]) * band, 0.0)
        i = int(np.argmax(s))
        if s[i] > 0:
            return k, i, int(m[i])
    return None


def _lp_pick(bounds: LayeredBounds, lp_layers: list, ls: list[np.ndarray],
             us: list[np.ndarray]) -> tuple[int, int, int] | None:  # fmt: skip
    """The neuron whose LP output is furthest from its step function at the LP's accumulator."""
    best, pick = 1e-6, None
    for k, (z, a) in enumerate(lp_layers):
        runs = bounds.runs[k]
        g = runs.value(np.clip(np.rint(z), ls[k], us[k]))
        m = runs.splits(ls[k], us[k])
        gap = np.where(m >= ls[k], np.abs(a - g), 0.0)
        i = int(np.argmax(gap))
        if gap[i] > best:
            best, pick = float(gap[i]), (k, i, int(m[i]))
    return pick


def prove_margin(
    bounds: LayeredBounds, label: int, other: int, threshold: int, deadline: float, violated: Any,
    max_branches: int = 200_000, leaf_s: float = 10.0,
) -> tuple[str, np.ndarray | None, int]:  # fmt: skip
    """Branch and bound on ``y[label] - y[other] >= threshold`` over the box.

    Returns ``("proved" | "violated" | "open", witness, branches)``; a witness is an input
    whose output ``violated`` (the property's own check on reference outputs) confirms.
    """
    last = len(bounds.layers) - 1
    out_layer = bounds.layers[last]
    diff_w = out_layer.W[:, label] - out_layer.W[:, other]
    diff_b = np.array([out_layer.b[label] - out_layer.b[other]])
    counter = itertools.count()
    heap: list = []
    stuck = False
    n = 0

    def dual(lam: np.ndarray, c: float, hs: tuple, warm: dict[int, float]) -> tuple[float, dict[int, float]]:
        """:func:`split_dual` warm-started from the parent's multipliers (one sweep then suffices)."""
        H, h, keys = hs
        beta0 = np.array([warm.get(int(k), 0.0) for k in keys])
        low, beta = split_dual(lam, c, H, h, bounds.xlo, bounds.xhi, beta0, sweeps=1 if warm else 3)
        return low, dict(zip(keys.tolist(), beta.tolist()))

    def bound(ls: list[np.ndarray], us: list[np.ndarray], start: int, parent: float,
              warm: tuple[dict, dict]) -> tuple | None:  # fmt: skip
        """The branch's margin bound (None: no input reaches it) and what branching needs:
        ``(low, coeffs, lam, rels, alternative coeffs, multipliers)``."""
        rels = bounds.relax(ls, us, start)
        if rels is None:
            return None
        low, coeffs, lam, c_x = bounds.margin(label, other, rels, ls, us)
        low = max(low, parent)  # the parent's bound holds on the child's part of the box
        if np.ceil(low) >= threshold:
            return low, coeffs, lam, rels, None, warm
        hs = bounds.split_halfspaces(ls, us)
        duals = warm
        if len(hs[1]):
            m_low, m_beta = dual(lam, c_x, hs, warm[0])
            low = max(low, m_low)
        # the accumulators' difference, bounded backward, then through the output steps exactly
        d_low, d_coeffs, d_lam, d_c = bounds.backward(last - 1, diff_w[None], diff_b, rels)
        d = float(d_low[0])
        if len(hs[1]):
            d_dual, d_beta = dual(d_lam[0], float(d_c[0]), hs, warm[1])
            d = max(d, d_dual)
            duals = (m_beta, d_beta)
        alt = d_coeffs + [coeffs[-1]]
        if np.isfinite(d):
            m = bounds.step_margin(label, other, int(np.ceil(d)), ls[last], us[last])
            if m > low:
                low, coeffs, lam = m, alt, d_lam[0]
        return low, coeffs, lam, rels, alt, duals

    def child(ls: list[np.ndarray], us: list[np.ndarray], pick: tuple[int, int, int], side: int) -> tuple:
        k, i, m = pick
        cl, cu = [a.copy() for a in ls], [a.copy() for a in us]
        if side == 0:
            cu[k][i] = m
        else:
            cl[k][i] = m + 1
        return cl, cu

    def push(ls: list[np.ndarray], us: list[np.ndarray], start: int, parent: float,
             warm: tuple[dict, dict]) -> np.ndarray | None:  # fmt: skip
        """Bound a branch, check its corners, queue it."""
        nonlocal stuck, n
        n += 1
        got = bound(ls, us, start, parent, warm)
        if got is None:
            return None
        low, coeffs, lam, rels, alt, duals = got
        if np.ceil(low) >= threshold:
            return None
        cands = [np.where(lam > 0, bounds.xlo, bounds.xhi)]
        pick = _pick(bounds, coeffs, rels, ls, us) or _pick(bounds, alt, rels, ls, us)
        if pick is None:  # the lines are as tight as splits make them: the LP enforces the splits
            lp_low, x_lp, lp_layers = bounds.lp_margin(label, other, ls, us)
            if np.ceil(lp_low) >= threshold:
                return None
            if x_lp is not None:
                cands.append(np.clip(np.rint(x_lp), bounds.xlo, bounds.xhi))
                pick = _lp_pick(bounds, lp_layers, ls, us)
                low = max(low, lp_low)
        hit = violated(bounds.forward(np.array(cands)))
        if hit.any():
            return cands[int(np.argmax(hit))]
        if pick is None:  # nothing left to split: the solver decides the branch exactly
            left = deadline - time.perf_counter()
            r, x = (
                leaf_witness(bounds, ls, us, label, other, threshold, min(leaf_s, left))
                if left > 0
                else ("unknown", None)
            )
            if r == "sat":
                if not violated(bounds.forward(x[None]))[0]:
                    raise AssertionError(
                        "a branch-and-bound leaf witness does not violate the property on the reference"
                    )
                return x
            stuck = stuck or r == "unknown"
            return None
        heapq.heappush(heap, (low, next(counter), ls, us, pick, duals))
        return None

    ls, us = ([a.copy() for a in side] for side in bounds.root)
    w = push(ls, us, len(bounds.layers), -np.inf, ({}, {}))
    if w is not None:
        return "violated", w, n
    while heap:
        if time.perf_counter() > deadline or n >= max_branches:
            return "open", None, n
        low, _, ls, us, pick, duals = heapq.heappop(heap)
        for side in (0, 1):
            w = push(*child(ls, us, pick, side), pick[0] + 1, low, duals)
            if w is not None:
                return "violated", w, n
    return ("open" if stuck else "proved"), None, n


def prove_robustness(net: Any, dtypes: dict[str, np.dtype], interval: dict[str, Bounds], lo: np.ndarray,
                     hi: np.ndarray, label: int, classes: list[int], deadline: float,
                     violated: Any) -> tuple[set[int], np.ndarray | None, dict[str, Any]] | None:  # fmt: skip
    """Branch and bound on each class that may beat ``label`` in the box (the easiest first).

    Returns the classes proved unable to win, a witness input (or None) and stats; None when
    the graph is not MLP-shaped or too wide to tabulate. Ties go to the lower index, as in
    the property: a class below ``label`` must stay strictly below it.
    """
    layers = layers_of(net, dtypes)
    if layers is None:
        return None
    bounds = LayeredBounds(layers, net.ref.constants, lo, hi, interval)
    if not bounds.ok:
        return None
    ls, us = bounds.root
    rels = bounds.relax([a.copy() for a in ls], [a.copy() for a in us], len(layers))
    order = sorted(classes, key=lambda j: -bounds.margin(label, j, rels, ls, us)[0])
    proved: set[int] = set()
    stats = {"bab_branches": 0}
    for n, j in enumerate(order):
        now = time.perf_counter()
        if now >= deadline:
            break
        share = now + (deadline - now) / (len(order) - n)
        verdict, x, branches = prove_margin(bounds, label, j, 1 if j < label else 0, share, violated)
        stats["bab_branches"] += branches
        if verdict == "violated":
            return proved, x, stats
        if verdict == "proved":
            proved.add(j)
    return proved, None, stats
