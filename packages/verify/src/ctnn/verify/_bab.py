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
open for CP-SAT (:mod:`._cpsat`): its intervals may describe no input at all.
"""

from __future__ import annotations

import heapq
import itertools
import multiprocessing as mp
import queue
import threading
import time
from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

from ._cpsat import solve_margin, solve_margins, threshold_of
from ._interval import Bounds
from ._layered import Layer, Runs, evaluate_chain, layers_of, tabulate_runs
from ._linear import Forms, concretize, max_of

_TOL = 1e-9

Rel = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _flat_mm(a: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``a @ m`` for a stack ``a [..., n]`` and a shared ``m [n, ...]``, as one 2-D product
    (numpy loops over a stack's leading axes: measured 2x slower on the branch batches)."""
    return (a.reshape(-1, a.shape[-1]) @ m).reshape(a.shape[:-1] + m.shape[1:])


def _both_ends(rows: np.ndarray, const: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The forms ``rows·v + const`` and their negations, stacked (``[2n, F]``, ``[2n]``): lower
    bounds of both give each form's range (:func:`_integer_range`)."""
    return np.concatenate([rows, -rows]), np.concatenate([const, -const])


def _integer_range(low: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer quantities' least and greatest values from sound real lower bounds of ``±q``
    (the two halves of the last axis, as :func:`_both_ends` stacks them), rounded inward."""
    n = low.shape[-1] // 2
    return np.ceil(low[..., :n]), np.floor(-low[..., n:])


class LayeredBounds:
    """Backward bounds of one box through an MLP-shaped integer graph.

    Built from the root box: each layer's accumulator interval (exact for the first layer,
    backward bounds for the others, intersected with the interval pass's) and its step
    function's runs over that interval, which every branch's narrower interval reuses.
    The bounding methods take a *batch* of branches: per layer, intervals ``[B, n_k]``.
    One branch at a time cost ~2 ms on the hard MNIST classes, much of it numpy's per-call
    overhead; in batches the cost is the products themselves.
    """

    def __init__(self, layers: list[Layer], consts: dict[str, Any], xlo: np.ndarray, xhi: np.ndarray,
                 bounds: dict[str, Bounds]):  # fmt: skip
        self.layers, self.consts = layers, consts
        #: work that depends on the box and graph alone, kept between calls (CP-SAT's step
        #: conflicts, :func:`~._cpsat.margin_model`)
        self.cache: dict[Any, Any] = {}
        self.xlo, self.xhi = xlo.astype(np.float64), xhi.astype(np.float64)
        self.xmag = np.maximum(np.abs(self.xlo), np.abs(self.xhi))
        self.mid = (self.xlo + self.xhi) / 2
        self.rad_mag = np.stack([(self.xhi - self.xlo) / 2, self.xmag], 1)
        first = layers[0]
        self.H = np.concatenate([first.W.T, -first.W.T])  # the first layer's splits as halfspaces
        self.runs: list[Runs] = []
        ls: list[np.ndarray] = []
        us: list[np.ndarray] = []
        rels: list[Rel] = []
        self.ok = True
        for k, layer in enumerate(layers):
            lo, hi = self._first() if k == 0 else (a[0] for a in self._crown(k, rels))
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
            rels.append(runs.lines(lo[None], hi[None]))
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
        """Lower bounds of ``lam·a_k + const`` over the box, per branch and row
        (``lam [B, m, n_k]``, ``const [B, m]``, ``rels`` the branches' lines per layer).

        Returns the bounds ``[B, m]``; each layer's coefficients on its output (what its
        relaxation costs the bound: the branching score); and the affine forms in the inputs
        the bounds concretize, ``lam_x·x + c_x <= lam·a_k + const`` (``c_x`` already widened).
        """
        const = np.asarray(const, np.float64)
        mag = np.abs(const) if mag is None else mag
        coeffs: list[np.ndarray] = [None] * (k + 1)  # type: ignore[list-item]
        for j in range(k, -1, -1):
            al, cl, au, cu = (r[:, :, None] for r in rels[j])
            pos, neg = np.maximum(lam, 0), np.minimum(lam, 0)
            const = const + (pos @ cl + neg @ cu)[..., 0]
            mag = mag + (pos @ np.abs(cl) - neg @ np.abs(cu))[..., 0]
            coeffs[j] = lam
            lz = pos * rels[j][0][:, None, :] + neg * rels[j][2][:, None, :]
            layer = self.layers[j]
            const = const + _flat_mm(lz, layer.b)
            mag = mag + _flat_mm(np.abs(lz), np.abs(layer.b))
            lam = _flat_mm(lz, layer.W.T)
        c = const - _TOL * mag - _TOL
        # min over the box = lam·mid - |lam|·rad, both exact in float64 for integer ends
        spread = _flat_mm(np.abs(lam), self.rad_mag)
        low = c + _flat_mm(lam, self.mid) - spread[..., 0]
        return low - _TOL * spread[..., 1] - _TOL, coeffs, lam, c

    def halfspaces(self, ls: list[np.ndarray], us: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The branches' first-layer splits as halfspaces ``H x <= h`` of the inputs (exact:
        those accumulators are affine in the inputs). ``H`` is fixed: row ``i`` is neuron
        i's upper end, row ``n + i`` its lower end; returns ``h [B, 2n]`` and which rows each
        branch's splits make binding (``[B, 2n]``), so a row names the same split in every
        branch below."""
        rl, ru = self.root
        b = self.layers[0].b
        h = np.concatenate([us[0] - b, b - ls[0]], axis=1)
        return h, np.concatenate([us[0] < ru[0], ls[0] > rl[0]], axis=1)

    def margin(self, label: int, other: int, rels: list[Rel], ls: list[np.ndarray],
               us: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]:  # fmt: skip
        """Lower bounds of ``y[label] - y[other]`` per branch ``[B]``, the best over the two output
        neurons' candidate lines (each pair a sound relaxation, so the largest bound is
        sound); with the best pair's coefficients per hidden layer ``[B, n_k]``, on the
        inputs ``[B, F]``, and the inputs' form's constant ``[B]``."""
        k = len(self.layers) - 1
        layer = self.layers[k]
        cands = self.runs[k].candidates(ls[k], us[k])
        B, n = ls[k].shape
        nc = len(cands)
        # row p = i * nc + j pairs the label's lower line i with the other's upper line j
        a_l = np.repeat(np.stack([a[:, label] for a, _, _ in cands], 1), nc, axis=1)
        c_l = np.repeat(np.stack([cl[:, label] for _, cl, _ in cands], 1), nc, axis=1)
        a_o = np.tile(np.stack([a[:, other] for a, _, _ in cands], 1), (1, nc))
        c_o = np.tile(np.stack([cu[:, other] for _, _, cu in cands], 1), (1, nc))
        lz = np.zeros((B, nc * nc, n))
        lz[:, :, label] = a_l
        lz[:, :, other] = -a_o
        low, coeffs, lam, c_x = self.backward(k - 1, _flat_mm(lz, layer.W.T), c_l - c_o + _flat_mm(lz, layer.b),
                                              rels, np.abs(c_l) + np.abs(c_o) + _flat_mm(np.abs(lz), np.abs(layer.b)))  # fmt: skip
        best = np.argmax(low, axis=1)
        rows = np.arange(B)
        return low[rows, best], [c[rows, best] for c in coeffs], lam[rows, best], c_x[rows, best]

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

    def _crown(self, k: int, rels: list[Rel], idx: Any = slice(None)) -> tuple[np.ndarray, np.ndarray]:
        L = self.layers[k]
        lam, const = _both_ends(L.W[:, idx].T, L.b[idx])
        B = rels[0][0].shape[0]
        low = self.backward(k - 1, np.broadcast_to(lam, (B,) + lam.shape), np.broadcast_to(const, (B, len(const))),
                            rels)[0]  # fmt: skip
        return _integer_range(low)

    def relax(self, ls: list[np.ndarray], us: list[np.ndarray], start: int,
              outputs: Any = slice(None)) -> tuple[list[Rel], np.ndarray]:  # fmt: skip
        """Tighten the branches' intervals from layer ``start`` on (the lists' entries are
        replaced; of the output layer, only the ``outputs`` a property reads) and relax
        every layer; with which branches some input may reach (``[B]``: an empty interval
        says none does)."""
        rels: list[Rel] = []
        alive = np.ones(len(ls[0]), bool)
        last = len(self.layers) - 1
        for k in range(len(self.layers)):
            if k >= start and k > 0:
                idx = outputs if k == last else slice(None)
                lo, hi = self._crown(k, rels, idx)
                ls[k], us[k] = ls[k].copy(), us[k].copy()
                ls[k][:, idx], us[k][:, idx] = np.maximum(ls[k][:, idx], lo), np.minimum(us[k][:, idx], hi)
            empty = np.any(ls[k] > us[k], axis=1)
            if empty.any():  # keep the dead branches' arrays well formed until they are dropped
                alive &= ~empty
                us[k] = np.maximum(us[k], ls[k])
            rels.append(self.runs[k].lines(ls[k], us[k]))
        return rels, alive

    # -- evaluation ---------------------------------------------------------------------------
    def run(self, xs: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Every layer's accumulators and the graph's output codes for input codes ``xs [B, F]``
        (the reference's own ops)."""
        a, zs = np.asarray(xs, np.float64), []
        for layer in self.layers:
            zs.append(np.rint(a @ layer.W + layer.b))
            a = evaluate_chain(layer, self.consts, zs[-1], layer.acc_dtype)
        return zs, a.astype(np.int64)

    def forward(self, xs: np.ndarray) -> np.ndarray:
        """The graph's output codes for input codes ``xs [B, F]``."""
        return self.run(xs)[1]


def box_min(lam: np.ndarray, const: Any, xlo: np.ndarray, xhi: np.ndarray) -> Any:
    """``min lam·x + const`` over the box (``lam [F]``, or ``[B, F]`` with ``const [B]``),
    rounded down by :func:`~._linear.max_of`'s margin."""
    return -max_of(-lam, -const, xlo, xhi)


def split_dual(lam: np.ndarray, const: np.ndarray, H: np.ndarray, h: np.ndarray, active: np.ndarray,
               xlo: np.ndarray, xhi: np.ndarray, beta: np.ndarray | None = None,
               sweeps: Any = 3) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Sound lower bounds of ``lam·x + const`` over ``{x in box : H x <= h}`` by Lagrangian duality,
    per branch, and the multipliers that give them.

    ``lam [B, F]``, ``const [B]``; ``H [S, F]`` is shared, ``h [B, S]`` and ``active [B, S]``
    (the rows that bind each branch; the others keep a zero multiplier) are per branch.
    ``min_box (lam + Hᵀβ)·x + const - β·h`` holds for every ``β >= 0``; each active ``β_s``
    in turn is set to its exact maximizer (the bound is concave and piecewise linear in
    ``β_s``: walk its breakpoints), ``sweeps`` times (per branch) from ``beta`` (a parent
    branch's multipliers are a good start: one sweep then does what three do from zero).
    This is how a split constraint reaches the inputs without an LP (β-CROWN's idea, Wang
    et al., NeurIPS'21, with coordinate ascent). ``inf`` where one halfspace misses the box.
    """
    B, S = h.shape
    beta = np.zeros((B, S)) if beta is None else np.where(active, np.maximum(beta, 0.0), 0.0)
    sweeps = np.broadcast_to(np.asarray(sweeps), (B,))
    count = active.sum(1)
    order_s = np.argsort(~active, axis=1, kind="stable")  # each branch's binding rows first
    empty = np.zeros(B, bool)
    # the sweeps only choose β: any β >= 0 gives a sound bound, evaluated in float64 at the end,
    # so they run in float32 (half the memory traffic); only "this halfspace misses the box",
    # which closes a branch, is decided exactly
    H32, h32 = H.astype(np.float32), h.astype(np.float32)
    xlo32, xhi32 = xlo.astype(np.float32), xhi.astype(np.float32)
    width = xhi32 - xlo32
    # a row's value at a corner is its value at xlo plus its widths where the corner is xhi:
    # products with the boolean corner mask, not np.where on the bounds (measured 10x slower)
    h_lo = H32 @ xlo32
    F = H.shape[1]
    blk = 16  # the walk's running sum, by blocks: numpy's cumsum is sequential
    nb = -(-F // blk)
    lam_all = (lam + beta @ H).astype(np.float32)  # lam + Hᵀβ, kept current as β changes
    for sweep in range(int(sweeps.max(initial=0))):
        for k in range(int(count.max(initial=0))):
            r = np.flatnonzero((k < count) & (sweep < sweeps) & ~empty)
            if not len(r):
                continue
            s = order_s[r, k]
            row, b_s = np.take(H32, s, axis=0), beta[r, s].astype(np.float32)
            lam_s = lam_all[r] - b_s[:, None] * row
            # slope of the bound in β_s just above 0: the minimizing corner's constraint value
            up = (lam_s < 0) | ((lam_s == 0) & (row <= 0))  # the corner takes xhi there
            rw = row * width
            d0 = h_lo[s] + np.einsum("ij,ij->i", rw, up) - h32[r, s]
            # a halfspace the minimizing corner satisfies wants no multiplier
            new = np.zeros(len(r), np.float32)
            move = np.flatnonzero(d0 > 0)
            if len(move):
                m_r, m_s, m_b, m_d0 = r[move], s[move], b_s[move], d0[move]
                lam_m, row_m, rw_m = lam_s[move], row[move], rw[move]
                flip = lam_m * row_m < 0  # the corner of x_i flips at β = -lam_i/row_i
                t = np.full(lam_m.shape, np.inf, np.float32)
                np.divide(-lam_m, row_m, out=t, where=flip)
                n = len(move)
                flat = (np.argsort(t, axis=1) + (np.arange(n) * F)[:, None]).ravel()
                t = np.take(t, flat).reshape(n, F)
                w = np.take(np.where(flip, np.abs(rw_m), 0.0), flat).reshape(n, F)
                # the slope after breakpoint j is d0 - (weights up to j): the first j where it is
                # <= 0 is the maximizer; found by block sums, then within the block
                wp = np.zeros((n, nb * blk), np.float32)
                wp[:, :F] = w
                csum = np.cumsum(wp.reshape(n, nb, blk).sum(2), 1)
                met = csum[:, -1] >= m_d0  # the slope turns <= 0 somewhere
                jb = np.argmax(csum >= m_d0[:, None], 1)
                rows = np.arange(n)
                before = np.where(jb > 0, csum[rows, jb - 1], 0.0)
                inner = before[:, None] + np.cumsum(wp.reshape(n, nb, blk)[rows, jb], 1)
                j = np.minimum(jb * blk + np.argmax(inner >= m_d0[:, None], 1), F - 1)
                n_flip = flip.sum(1)
                best = np.where(
                    met, t[rows, j], np.where(n_flip > 0, t[rows, np.maximum(n_flip - 1, 0)], m_b)
                )
                misses = ~met & (m_d0 - csum[:, -1] > 1e-6)  # the bound grows without limit
                if misses.any():  # exactly (integer sums in float64): no input of the box meets row s
                    H_m, h_m = H[m_s[misses]], h[m_r[misses], m_s[misses]]
                    misses[misses] = (H_m * np.where(H_m > 0, xlo, xhi)).sum(1) - h_m > 0
                best = np.where(misses, m_b, best)
                empty[m_r[misses]] = True
                new[move] = best
            lam_all[r] += (new - b_s)[:, None] * row
            beta[r, s] = new
    low = box_min(lam + beta @ H, const - (beta * h).sum(1), xlo, xhi)
    return np.where(empty, np.inf, low), beta


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


def _pick(bounds: LayeredBounds, coeffs: list[np.ndarray], rels: list[Rel], ls: list[np.ndarray],
          us: list[np.ndarray], zs: list[np.ndarray] | None = None) -> np.ndarray:  # fmt: skip
    """Per branch, the hidden neuron whose relaxation costs the bound most: rows ``(layer, index,
    split point)``, ``layer = -1`` where no hidden neuron is left to split.

    The cost is the neuron's coefficient times its line's gap to the step function at the
    bound's minimizing input (``zs``: each layer's accumulators there, ``[B, n_k]``): what the
    bound would gain there if the neuron were exact. Without ``zs``, or where every gap there
    is nil, the widest gap over the interval scores (BaBSR-like); it also breaks ties. The gap at the
    point, not the widest, measured on five hard MNIST classes: 1.0-3.4x fewer branches
    (10435 -> 3081, 30347 -> 15975, 5005 -> 3391; one 1363 -> 1431), and image 23 at ε = 4
    class 3 proved in 19,000 branches, 15 s, where the widest gap took over 50 s.

    From the first layer while it has any: its splits are halfspaces of the inputs, which
    :func:`split_dual` enforces, so they pay off further down the tree than a deeper split
    that only narrows one interval (measured on the MNIST queries: several classes open after
    15 s with deeper splits first are proved in under 6 s; with the gap at the point, deeper
    splits whenever they score higher left three of four classes open at 60 s). Output neurons are left
    to the LP: split alone, they make branches no input reaches. One cheap score rather than
    bounding the children of a few candidates (filtered smart branching): on four hard MNIST
    classes, three candidates per branch took 2.0-2.4x longer to prove each, with fewer branches.
    """
    B = len(ls[0])
    out = np.full((B, 3), -1, np.int64)
    todo = np.ones(B, bool)
    rows = np.arange(B)
    for k, (lz, (al, cl, au, cu)) in enumerate(zip(coeffs, rels)):
        lo, hi = ls[k], us[k]
        m = bounds.runs[k].splits(lo, hi)
        can = m >= lo
        band = np.maximum((au - al) * lo + cu - cl, (au - al) * hi + cu - cl)
        s = np.where(can, np.abs(lz) * band, 0.0)  # the widest gap
        if zs is not None:
            z = np.clip(zs[k], lo, hi)
            g = bounds.runs[k].value(z)
            gap = np.where(lz > 0, g - (al * z + cl), (au * z + cu) - g)
            at = np.where(can, np.abs(lz) * np.maximum(gap, 0.0), 0.0)
            s = np.where(at.max(1, keepdims=True) > 0, at + 1e-6 * s, s)
        i = np.argmax(s, axis=1)
        take = todo & (s[rows, i] > 0)
        out[take] = np.stack([np.full(B, k), i, m[rows, i]], 1)[take]
        todo &= ~take
    return out


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


#: parents expanded per bounding call: their children are bounded together, as one batch
BATCH = 64


class _Search:
    """One margin's branch and bound: the queue of open branches and the batch bounding step.

    A branch is stored as one row: its intervals per layer (lower ends, then upper ends),
    the two bounds' split multipliers and whether they are warm (see :func:`split_dual`).
    """

    def __init__(self, bounds: LayeredBounds, label: int, other: int, threshold: int, violated: Any,
                 leaf_s: float, deadline: float):  # fmt: skip
        self.b, self.label, self.other, self.threshold = bounds, label, other, threshold
        self.violated, self.leaf_s, self.deadline = violated, leaf_s, deadline
        out = bounds.layers[-1]
        self.diff_w = out.W[:, label] - out.W[:, other]
        self.diff_b = np.array([out.b[label] - out.b[other]])
        sizes = [layer.W.shape[1] for layer in bounds.layers]
        self.ends = np.cumsum([0] + sizes + sizes + [len(bounds.H)] * 2 + [1])
        self.heap: list = []
        self.counter = itertools.count()
        self.stuck = False
        self.stop: Any = threading.Event()  # set by another worker that found a witness
        self.n = 0

    def unpack(self, states: np.ndarray) -> list:
        """Rows -> ``[ls per layer, us per layer, margin multipliers, difference multipliers, warm]``."""
        parts = [states[:, a:b] for a, b in zip(self.ends[:-1], self.ends[1:])]
        K = len(self.b.layers)
        return [parts[:K], parts[K : 2 * K], *parts[2 * K :]]  # type: ignore[list-item]

    def pack(self, ls: list[np.ndarray], us: list[np.ndarray], beta_m: np.ndarray, beta_d: np.ndarray,
             warm: np.ndarray) -> np.ndarray:  # fmt: skip
        """Branches as rows: the inverse of :meth:`unpack`."""
        return np.concatenate([*ls, *us, beta_m, beta_d, warm[:, None]], axis=1)

    def children(self, states: np.ndarray, picks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each parent's two children: the picked neuron's interval cut after its split point,
        then narrowed to what the parent's splits leave of it (:meth:`reach`). Returns the
        children and which of them some input may reach (``[2P]``)."""
        kids = np.repeat(states, 2, axis=0)
        k, i, m = np.repeat(picks, 2, axis=0).T
        upper = np.tile([True, False], len(states))  # the first child keeps z <= m
        K = len(self.b.layers)
        col = np.where(upper, self.ends[K + k], self.ends[k]) + i
        kids[np.arange(len(kids)), col] = np.where(upper, m, m + 1)
        reach = np.ones(len(kids), bool)
        first = np.flatnonzero(picks[:, 0] == 0)
        if len(first):
            zmin, zmax = self.reach(states[first], picks[first, 1])
            lo_col, hi_col = self.ends[0] + picks[first, 1], self.ends[K] + picks[first, 1]
            below, above = 2 * first, 2 * first + 1
            kids[below, lo_col] = np.maximum(kids[below, lo_col], zmin)
            kids[above, hi_col] = np.minimum(kids[above, hi_col], zmax)
            reach[below] = kids[below, lo_col] <= kids[below, hi_col]
            reach[above] = kids[above, lo_col] <= kids[above, hi_col]
        return kids, reach

    def reach(self, parents: np.ndarray, neurons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The least and greatest accumulator of each parent's first-layer neuron over the inputs
        its splits leave (the box cut by its halfspaces), rounded to integers inward.

        One sweep of :func:`split_dual` on the neuron's own weights. A child whose half of the
        interval lies beyond them is empty; the other's interval shrinks to them. Measured on
        three hard MNIST classes: 11-29% of the children the margin's bounds kept were empty
        (HiGHS found their first-layer halfspaces infeasible), and the coordinate ascent on the
        margin's multipliers missed them: an empty set's certificate needs several multipliers at
        once, and from zero each one alone lowers the bound. On the neuron's own weights one row
        at a time finds about half (of 40 open branches sampled on one class, 14 empty against
        28 before). With it, five hard classes took 1.8-2.5x fewer branches and 1.4-1.9x less
        time, and two classes open at 60 s were proved (in 20 and 44 s). An LP per child instead
        (HiGHS, ~2 ms each): up to half the branches, 1.6-5.4x the time.
        """
        b = self.b
        ls, us, *_ = self.unpack(parents)
        h, active = b.halfspaces(ls, us)
        lam, const = _both_ends(b.layers[0].W[:, neurons].T, b.layers[0].b[neurons])
        low, _ = split_dual(lam, const, b.H, np.concatenate([h, h]), np.concatenate([active, active]), b.xlo, b.xhi,
                            None, 1)  # fmt: skip
        return _integer_range(low)  # inf: no input reaches the parent

    def expand(self, states: np.ndarray, parent: np.ndarray, start: int) -> np.ndarray | None:
        """Bound a batch of branches, try their corners, queue the open ones; a witness if found."""
        b, last = self.b, len(self.b.layers) - 1
        self.n += len(states)
        ls, us, warm_m, warm_d, warm = self.unpack(states)
        rels, alive = b.relax(ls, us, start, [self.label, self.other])
        low, coeffs, lam, c_x = b.margin(self.label, self.other, rels, ls, us)
        low = np.maximum(low, parent)  # the parent's bound holds on the child's part of the box
        keep = np.flatnonzero(alive & (np.ceil(low) < self.threshold))
        if not len(keep):
            return None
        ls, us, coeffs = [a[keep] for a in ls], [a[keep] for a in us], [a[keep] for a in coeffs]
        rels = [tuple(a[keep] for a in r) for r in rels]
        low, lam, c_x, warm_m, warm_d = low[keep], lam[keep], c_x[keep], warm_m[keep], warm_d[keep]
        sweeps = np.where(warm[keep, 0] > 0, 1, 3)
        h, active = b.halfspaces(ls, us)
        m_low, beta_m = split_dual(lam, c_x, b.H, h, active, b.xlo, b.xhi, warm_m, sweeps)
        low = np.maximum(low, m_low)
        # the accumulators' difference, bounded backward, then through the output steps exactly
        B = len(keep)
        d_low, d_coeffs, d_lam, d_c = b.backward(last - 1, np.broadcast_to(self.diff_w, (B, 1, len(self.diff_w))),
                                                 np.broadcast_to(self.diff_b, (B, 1)), rels)  # fmt: skip
        d_coeffs, d_lam = [c[:, 0] for c in d_coeffs], d_lam[:, 0]
        d_dual, beta_d = split_dual(d_lam, d_c[:, 0], b.H, h, active, b.xlo, b.xhi, warm_d, sweeps)
        d = np.maximum(d_low[:, 0], d_dual)
        step = np.array([
            b.step_margin(self.label, self.other, int(np.ceil(d[i])), ls[last][i], us[last][i])
            if np.isfinite(d[i]) and np.ceil(low[i]) < self.threshold else -np.inf
            for i in range(B)
        ])  # fmt: skip
        alt = step > low
        low = np.where(alt, step, low)
        coeffs = [np.where(alt[:, None], dc, c) for dc, c in zip(d_coeffs, coeffs)]
        lam = np.where(alt[:, None], d_lam, lam)
        keep = np.flatnonzero(np.ceil(low) < self.threshold)
        if not len(keep):
            return None
        # two candidates per branch: the minimizing corner of the bound's affine form, and that of
        # its Lagrangian with the split multipliers, which heeds the branch's splits (MNIST image 91
        # at ε = 1: the counterexample after 255 branches instead of 105,000)
        lam = lam[keep]
        lam_b = lam + np.where(alt[keep, None], beta_d[keep], beta_m[keep]) @ b.H
        corners = np.where(np.concatenate([lam, lam_b]) > 0, b.xlo, b.xhi)
        zs, outs = b.run(corners)
        hit = self.violated(outs)
        if hit.any():
            return corners[int(np.argmax(hit))]
        ls, us, low = [a[keep] for a in ls], [a[keep] for a in us], low[keep]
        rels = [tuple(a[keep] for a in r) for r in rels]
        # scored at the bound's own minimizing corner (the first half)
        picks = _pick(b, [a[keep] for a in coeffs], rels, ls, us, [z[: len(keep)] for z in zs])
        flat = picks[:, 0] < 0
        if flat.any():
            picks[flat] = _pick(b, [c[keep][flat] for c in d_coeffs], [tuple(a[flat] for a in r) for r in rels],
                                [a[flat] for a in ls], [a[flat] for a in us])  # fmt: skip
        states = self.pack(ls, us, beta_m[keep], beta_d[keep], active[keep].any(1))
        for i in range(len(keep)):
            low_i, pick = float(low[i]), tuple(int(v) for v in picks[i])
            if pick[0] < 0:  # the lines are as tight as splits make them: the LP enforces the splits
                w, low_i, pick = self.leaf([a[i] for a in ls], [a[i] for a in us], low_i)
                if w is not None:
                    return w
                if pick is None:
                    continue
            heapq.heappush(self.heap, (low_i, next(self.counter), states[i], pick))
        return None

    def run(self, max_branches: int, batch: int, until: int | None = None) -> np.ndarray | None:
        """Split the ``batch`` worst open branches at a time until none is left, the deadline,
        ``max_branches`` or ``stop`` (set by another worker), or ``until`` open branches; a
        witness if found."""
        heap = self.heap
        while heap and (until is None or len(heap) < until):
            if time.perf_counter() > self.deadline or self.n >= max_branches or self.stop.is_set():
                return None
            took = [heapq.heappop(heap) for _ in range(min(batch, len(heap)))]
            picks = np.array([t[3] for t in took])
            kids, reach = self.children(np.stack([t[2] for t in took]), picks)
            if not reach.any():
                continue
            w = self.expand(
                kids[reach], np.repeat([t[0] for t in took], 2)[reach], int(picks[:, 0].min()) + 1
            )
            if w is not None:
                return w
        return None

    def verdict(self, witness: np.ndarray | None) -> str:
        """Where the search stands: a witness, open branches (or leaves CP-SAT left open), or none."""
        if witness is not None:
            return "violated"
        return "open" if self.stuck or self.heap else "proved"

    def leaf(self, ls: list[np.ndarray], us: list[np.ndarray],
             low: float) -> tuple[np.ndarray | None, float, tuple[int, int, int] | None]:  # fmt: skip
        """A branch with no hidden neuron left to split: the LP over every layer bounds it and
        suggests an output-layer split; failing that, CP-SAT decides it exactly.
        Returns a witness, the branch's bound and its split (None: closed or left open)."""
        b = self.b
        lp_low, x_lp, lp_layers = b.lp_margin(self.label, self.other, ls, us)
        if np.ceil(lp_low) >= self.threshold:
            return None, lp_low, None
        if x_lp is not None:
            x = np.clip(np.rint(x_lp), b.xlo, b.xhi)
            if self.violated(b.forward(x[None]))[0]:
                return x, lp_low, None
            pick = _lp_pick(b, lp_layers, ls, us)
            if pick is not None:
                return None, max(low, lp_low), pick
        left = self.deadline - time.perf_counter()
        r, x = (
            solve_margin(b, ls, us, self.label, self.other, self.threshold, min(self.leaf_s, left))
            if left > 0
            else ("unknown", None)
        )
        if r == "sat":  # solve_margin ran it on the reference: the margin misses there
            if self.violated(b.forward(x[None]))[0]:
                return x, lp_low, None
            r = "unknown"  # and the property holds (a targeted query's opponent): not provable here
        self.stuck = self.stuck or r == "unknown"
        return None, lp_low, None


def prove_margin(
    bounds: LayeredBounds, label: int, other: int, threshold: int, deadline: float, violated: Any,
    max_branches: int = 200_000, leaf_s: float = 10.0, batch: int = BATCH, workers: int = 1,
) -> tuple[str, np.ndarray | None, int]:  # fmt: skip
    """Branch and bound on ``y[label] - y[other] >= threshold`` over the box.

    The ``batch`` worst branches are split at a time and their children bounded together
    (the tree does not depend on the order: each branch's bound is its own). With ``workers``
    > 1 the open branches are dealt to that many forked processes once there are enough of
    them (:func:`_in_parallel`). Returns ``("proved" | "violated" | "open", witness,
    branches)``; a witness is an input whose output ``violated`` (the property's own check on
    reference outputs) confirms.
    """
    search = _Search(bounds, label, other, threshold, violated, leaf_s, deadline)
    ls, us = bounds.root
    cold = np.zeros((1, len(bounds.H)))
    root = search.pack([a[None] for a in ls], [a[None] for a in us], cold, cold, np.zeros(1))
    w = search.expand(root, np.array([-np.inf]), len(bounds.layers))
    if w is None and workers > 1:
        w = search.run(max_branches, batch, until=2 * workers * batch)
        if w is None and len(search.heap) >= workers * batch:
            return _in_parallel(search, workers, max_branches, batch)
    if w is None:
        w = search.run(max_branches, batch)
    return search.verdict(w), w, search.n


def _in_parallel(
    search: _Search, workers: int, max_branches: int, batch: int
) -> tuple[str, np.ndarray | None, int]:
    """Go on with ``search``'s open branches in ``workers`` forked processes, dealt round robin
    from the worst bound down (so each gets its share of the hard ones); a witness from one
    stops the others. Forked, not spawned: the children inherit the bounds and the property's
    check as they are, nothing is pickled but the results."""
    ctx = mp.get_context("fork")
    results, stop = ctx.Queue(), ctx.Event()
    heap = sorted(search.heap)
    procs = []
    for i in range(workers):
        search.heap = heap[i::workers]
        procs.append(
            ctx.Process(
                target=_work, args=(search, max_branches // workers, batch, results, stop), daemon=True
            )
        )
        procs[-1].start()
    got: list[tuple] = []
    try:
        while len(got) < workers:
            try:
                got.append(results.get(timeout=0.5))
            except queue.Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if dead and results.empty():
                    raise RuntimeError(
                        f"a branch-and-bound worker process died (exit code {dead[0]})"
                    ) from None
                continue
            if got[-1][0] == "error":
                raise RuntimeError(f"a branch-and-bound worker failed: {got[-1][1]}")
            if got[-1][0] == "violated":
                stop.set()
    finally:
        stop.set()
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.terminate()
    n = search.n + sum(g[2] for g in got)
    hit = [g for g in got if g[0] == "violated"]
    if hit:
        return "violated", hit[0][1], n
    return ("open" if any(g[0] == "open" for g in got) else "proved"), None, n


def _work(search: _Search, max_branches: int, batch: int, results: Any, stop: Any) -> None:
    """One worker process of :func:`_in_parallel`: its part of the tree, to the end or the deadline."""
    try:
        search.n, search.stop = 0, stop
        w = search.run(max_branches, batch)
        results.put((search.verdict(w), w, search.n))
    except Exception as e:  # noqa: BLE001 -- reported to the parent, which raises it
        results.put(("error", f"{type(e).__name__}: {e}", 0))


def prove_robustness(net: Any, dtypes: dict[str, np.dtype], interval: dict[str, Bounds], lo: np.ndarray,
                     hi: np.ndarray, label: int, classes: list[int], deadline: float, violated: Any,
                     workers: int = 1, exact: float = 0.0) -> tuple[set[int], np.ndarray | None, dict[str, Any]] | None:  # fmt: skip
    """Branch and bound on each class that may beat ``label`` in the box (the easiest first),
    each on ``workers`` processes, for ``1 - exact`` of its equal part of the time; the classes
    it leaves open then go to CP-SAT together, until ``deadline`` (:func:`~._cpsat.solve_margins`,
    ``workers`` threads each). With ``exact`` 0, branch and bound alone, each class its equal
    part of what is left.

    Returns the classes proved unable to win, a witness input (or None) and stats; None when
    the graph is not MLP-shaped or too wide to tabulate. Ties go to the lower index, as in
    the property: a class below ``label`` must stay strictly below it. A witness is an input
    whose output ``violated`` (the property's check): where a margin misses at an input the
    property holds at (a targeted query's, whose ``label`` is only its opponent), that
    margin stays open.
    """
    layers = layers_of(net, dtypes)
    if layers is None:
        return None
    bounds = LayeredBounds(layers, net.ref.constants, lo, hi, interval)
    if not bounds.ok:
        return None
    ls, us = ([a[None] for a in side] for side in bounds.root)
    rels, _ = bounds.relax(ls, us, len(layers))
    order = sorted(classes, key=lambda j: -bounds.margin(label, j, rels, ls, us)[0][0])
    proved: set[int] = set()
    stats: dict[str, Any] = {"bab_branches": 0, "cpsat_s": 0.0, "cpsat_classes": 0, "witness_by": None}
    # with an exact share, branch and bound gets (1 - exact) of each class's equal part of the
    # time, fixed now; what it leaves open goes to CP-SAT together, for all the time left
    part = (1 - exact) * max(0.0, deadline - time.perf_counter()) / max(1, len(order)) if exact > 0 else None
    pending: list[int] = []
    for n, j in enumerate(order):
        now = time.perf_counter()
        if now >= deadline:
            break
        until = now + part if part is not None else now + (deadline - now) / (len(order) - n)
        verdict, x, branches = prove_margin(bounds, label, j, threshold_of(label, j), until, violated,
                                            workers=workers)  # fmt: skip
        stats["bab_branches"] += branches
        if verdict == "violated":
            stats["witness_by"] = "bab"
            return proved, x, stats
        if verdict == "proved":
            proved.add(j)
        else:
            pending.append(j)
    now = time.perf_counter()
    if pending and exact > 0 and now < deadline:
        verdicts, x, _ = solve_margins(bounds, label, pending, deadline - now, workers)
        stats["cpsat_s"] += time.perf_counter() - now
        stats["cpsat_classes"] += sum(v != "unknown" for v in verdicts.values())
        if x is not None and violated(bounds.forward(x[None]))[0]:
            stats["witness_by"] = "cpsat"
            return proved, x, stats
        proved.update(j for j, v in verdicts.items() if v == "unsat")
    return proved, None, stats
