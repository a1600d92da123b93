"""The layered view of an MLP-shaped integer graph, for backward (CROWN-style) bounds.

Many integer graphs are a stack ``z_k = a_{k-1} W_k + b_k`` (MatMulInteger, then a constant
Add) followed by a univariate requantization ``a_k = g_k(z_k)`` (one chain of elementwise ops
per element). This module recognizes that shape and stores each ``g_k`` as its *runs*: the
integer intervals of ``z`` on which ``g_k`` is constant, tabulated once by the numpy
reference over the root box's bounds. A branch's narrower interval ``[l, u]`` then gets its
two enclosing lines from the run ends alone: a line's extreme residual against a step
function lies at a run's first or last integer, so a few dozen points stand for thousands
of accumulator values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctnn.quant import REFERENCE_OPS

from ._chains import ELEMENTWISE
from ._network import Network

#: the most table entries (accumulator values x neurons) one layer may tabulate at the root
MAX_TABLE = 1 << 25
#: the most runs one neuron's step function may have (a 16-bit output has too many)
MAX_RUNS = 1024


@dataclass
class Layer:
    """One affine layer and the requantization after it."""

    W: np.ndarray  # [n_in, n_out], integer values in float64, zero points folded into b
    b: np.ndarray  # [n_out] float64, the input's zero point folded in: z = a·W + b exactly
    acc: str  # the accumulator tensor the chain starts from
    acc_dtype: np.dtype
    chain: list  # the (node, attrs) pairs from acc to the layer's output
    out: str


def layers_of(net: Network, dtypes: dict[str, np.dtype]) -> list[Layer] | None:
    """The graph as a list of :class:`Layer`, or None when it is not an MLP-shaped chain."""
    nodes = net.ref.nodes
    consts = net.ref.constants
    cur = net.input_name
    i, layers = 0, []
    while i < len(nodes):
        node, _ = nodes[i]
        if node.op_type != "MatMulInteger" or node.input[0] != cur or node.input[1] not in consts:
            return None
        W = np.asarray(consts[node.input[1]], np.float64)
        if W.ndim != 2:
            return None
        a_zero = b_zero = 0.0
        if len(node.input) > 2 and node.input[2]:
            if node.input[2] not in consts or np.asarray(consts[node.input[2]]).size != 1:
                return None
            a_zero = float(np.asarray(consts[node.input[2]]).ravel()[0])
        if len(node.input) > 3 and node.input[3]:
            if node.input[3] not in consts:
                return None
            b_zero = np.asarray(consts[node.input[3]], np.float64)
        W = W - b_zero
        b = -a_zero * W.sum(0)
        acc = node.output[0]
        i += 1
        if i < len(nodes) and nodes[i][0].op_type == "Add":
            add = nodes[i][0]
            other = [t for t in add.input if t != acc]
            if len(other) == 1 and acc in add.input and other[0] in consts:
                bias = np.asarray(consts[other[0]], np.float64)
                if bias.size not in (1, W.shape[1]):
                    return None
                b = b + bias.ravel()
                acc = add.output[0]
                i += 1
        chain, derived = [], {acc}
        while i < len(nodes) and nodes[i][0].op_type != "MatMulInteger":
            n, attrs = nodes[i]
            if n.op_type not in ELEMENTWISE and n.op_type != "Identity":
                return None
            for t in n.input:
                if (
                    t
                    and t not in derived
                    and (t not in consts or np.asarray(consts[t]).size not in (1, W.shape[1]))
                ):
                    return None
            chain.append((n, attrs))
            derived.update(n.output)
            i += 1
        if not chain:
            return None
        cur = chain[-1][0].output[0]
        layers.append(Layer(W, b, acc, np.dtype(dtypes.get(acc, np.int32)), chain, cur))
    if not layers or cur != net.output_name:
        return None
    return layers


def evaluate_chain(layer: Layer, consts: dict, z: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``g(z)`` elementwise for ``z [K, n_out]`` by the reference's own ops."""
    env = {layer.acc: z.astype(dtype)}
    for node, attrs in layer.chain:
        args = [env[t] if t in env else consts[t] if t else None for t in node.input]
        for name, val in zip(node.output, REFERENCE_OPS[node.op_type](args, attrs)):
            env[name] = val
    return np.broadcast_to(np.asarray(env[layer.out]), z.shape).astype(np.float64)


@dataclass
class Runs:
    """A step function per neuron as runs: ``g(z) = V[r]`` for ``S[r] <= z <= E[r]``.

    ``S``/``E``/``V`` are ``[R, n]``; a neuron with fewer runs repeats its last one.
    """

    S: np.ndarray
    E: np.ndarray
    V: np.ndarray

    @staticmethod
    def _lift(a: np.ndarray, like: np.ndarray) -> np.ndarray:
        """``a [R, n]`` shaped to broadcast against ``like [..., n]`` (a batch of branches)."""
        return a.reshape(a.shape[:1] + (1,) * (like.ndim - 1) + a.shape[1:])

    def value(self, z: np.ndarray) -> np.ndarray:
        """``g(z)`` for one value per neuron (``z [..., n]`` within the tabulated range)."""
        r = (self._lift(self.S, z) <= z[None]).sum(0) - 1
        return self.V[np.maximum(r, 0), np.arange(self.V.shape[1])]

    def value_at(self, j: int, z: int) -> int:
        """``g_j(z)`` for one neuron ``j``."""
        return int(self.column(j, np.array([z], np.float64))[0])

    def column(self, j: int, z: np.ndarray) -> np.ndarray:
        """``g_j(z)`` for many values ``z`` of one neuron ``j``."""
        r = np.searchsorted(self.S[:, j], z, side="right") - 1
        return self.V[np.maximum(r, 0), j]

    def range(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The least and greatest value of ``g`` on ``[lo, hi]`` per neuron."""
        V = self._lift(self.V, lo)
        inside = (self._lift(self.E, lo) >= lo) & (self._lift(self.S, lo) <= hi)
        return np.where(inside, V, np.inf).min(0), np.where(inside, V, -np.inf).max(0)

    def candidates(self, lo: np.ndarray, hi: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Sound lines per neuron for a few slopes: ``(a, cl, cu)`` with ``a·z + cl <= g(z) <= a·z + cu``
        on the integers of ``[lo, hi]`` (``[n]``, or ``[B, n]`` for a batch of branches).

        Slopes: flat, the chord, the chord to the first maximum and the one from the last
        minimum (DeepPoly's choices for a ReLU, generalized). Each offset is the extreme
        residual over the run ends, where a line's residual against a step function peaks.
        """
        g_lo, g_hi = self.value(lo), self.value(hi)
        Z = self._lift(np.concatenate([self.S, self.E]), lo)
        G = self._lift(np.concatenate([self.V, self.V]), lo)
        Zc = np.clip(Z, lo, hi).astype(np.float64)
        Gc = np.where(Z < lo, g_lo, np.where(Z > hi, g_hi, G))
        width = (hi - lo).astype(np.float64)
        gmax, gmin = Gc.max(0), Gc.min(0)
        z_first_max = np.where(Gc == gmax, Zc, np.inf).min(0)
        z_last_min = np.where(Gc == gmin, Zc, -np.inf).max(0)
        slopes = [
            np.zeros_like(width),
            (g_hi - g_lo) / np.maximum(width, 1.0),
            np.where(z_first_max > lo, (gmax - g_lo) / np.maximum(z_first_max - lo, 1.0), 0.0),
            np.where(z_last_min < hi, (g_hi - gmin) / np.maximum(hi - z_last_min, 1.0), 0.0),
        ]
        out = []
        for a in slopes:
            a = np.where(width == 0, 0.0, a)
            resid = Gc - a * Zc
            out.append((a, resid.min(0), resid.max(0)))
        return out

    def lines(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, ...]:
        """Lower and upper lines ``al·z + cl <= g(z) <= au·z + cu`` on the integers of ``[lo, hi]``:
        of :meth:`candidates`, the lower line with the highest mean over the interval (least
        area), the upper line with the lowest."""
        mid = (lo + hi) / 2.0
        best_l = best_u = None
        for a, cl, cu in self.candidates(lo, hi):
            ml, mu = a * mid + cl, a * mid + cu
            if best_l is None:
                best_l, best_u = [a, cl, ml], [a, cu, mu]
                continue
            take = ml > best_l[2]
            best_l = [np.where(take, x, y) for x, y in zip((a, cl, ml), best_l)]
            take = mu < best_u[2]
            best_u = [np.where(take, x, y) for x, y in zip((a, cu, mu), best_u)]
        return best_l[0], best_l[1], best_u[0], best_u[1]

    def splits(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Per neuron, the split point ``m`` nearest the interval's middle with ``g(m) != g(m+1)``
        (``lo - 1`` where ``g`` is constant on ``[lo, hi]``)."""
        ends = self._lift(self.E, lo)  # the last integer of each run: g changes right after it
        inside = (ends >= lo) & (ends < hi)
        mid = (lo + hi) / 2.0
        dist = np.where(inside, np.abs(ends - mid), np.inf)
        r = dist.argmin(0)
        m = self.E[r, np.arange(self.E.shape[1])]
        return np.where(np.isfinite(dist.min(0)), m, lo - 1)


def tabulate_runs(layer: Layer, consts: dict, lo: np.ndarray, hi: np.ndarray) -> Runs | None:
    """The runs of the layer's chain over ``[lo, hi]`` per neuron (None: too large to tabulate)."""
    lo, hi = lo.astype(np.int64), hi.astype(np.int64)
    K = int((hi - lo).max()) + 1
    n = len(lo)
    if K * n > MAX_TABLE:
        return None
    k = np.arange(K, dtype=np.int64)[:, None]
    z = np.minimum(lo[None, :] + k, hi[None, :])
    try:
        t = evaluate_chain(layer, consts, z, layer.acc_dtype)
    except (ZeroDivisionError, ValueError, OverflowError, IndexError):
        return None
    change = np.zeros_like(t, dtype=bool)
    change[0] = True
    change[1:] = (t[1:] != t[:-1]) & (z[1:] != z[:-1])
    counts = change.sum(0)
    R = int(counts.max())
    if R > MAX_RUNS:
        return None
    S = np.empty((R, n))
    V = np.empty((R, n))
    E = np.empty((R, n))
    for j in range(n):
        idx = np.flatnonzero(change[:, j])
        s = z[idx, j].astype(np.float64)
        v = t[idx, j]
        e = np.append(s[1:] - 1, float(hi[j]))
        pad = R - len(idx)
        S[:, j] = np.concatenate([s, np.full(pad, s[-1])])
        V[:, j] = np.concatenate([v, np.full(pad, v[-1])])
        E[:, j] = np.concatenate([e, np.full(pad, e[-1])])
    return Runs(S, E, V)
