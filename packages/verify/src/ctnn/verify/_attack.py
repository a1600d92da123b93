"""A cheap, budgeted attack on the numpy reference: corners, then greedy coordinate ascent.

A box with fewer points than the budget is searched exhaustively instead.

Integer networks are piecewise constant, so gradients say little; corners of the box and
single-coordinate moves to a bound are where label flips usually are. Whatever it finds
is replayed (reference and onnxruntime) before it is reported.
"""

from __future__ import annotations

import time

import numpy as np

from ._network import Network
from ._properties import Property


def attack(
    net: Network,
    prop: Property,
    x0: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    max_evals: int = 20_000,
    time_s: float = 2.0,
    seed: int = 0,
) -> tuple[np.ndarray | None, int]:
    """A flat input in [lo, hi] that violates ``prop`` on the reference (or None), and the evals used."""
    deadline = time.perf_counter() + time_s
    rng = np.random.default_rng(seed)
    free = np.flatnonzero(lo < hi)
    evals = 0

    def score(xs: np.ndarray) -> np.ndarray:
        nonlocal evals
        evals += len(xs)
        return prop.score(net.outputs(xs))

    def corners(n: int) -> np.ndarray:
        return np.where(rng.random((n, len(lo))) < 0.5, lo, hi)

    if np.log2((hi - lo + 1).astype(float)).sum() <= np.log2(max_evals):  # a small box: try all of it
        grid = np.stack(np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(lo, hi)], indexing="ij"), -1)
        grid = grid.reshape(-1, len(lo))
        s = score(grid)
        return (grid[int(np.argmax(s))] if s.max() > 0 else None), evals
    start = np.vstack([x0, lo, hi, corners(48), rng.integers(lo, hi + 1, size=(16, len(lo)))])
    s = score(start)
    if s.max() > 0:
        return start[int(np.argmax(s))], evals
    x, best = start[int(np.argmax(s))].copy(), int(s.max())
    while len(free) and evals < max_evals and time.perf_counter() < deadline:
        # every move of one coordinate to a bound or by one code, plus all improving moves at once
        moves = []
        for v in (lo, hi, np.clip(x - 1, lo, hi), np.clip(x + 1, lo, hi)):
            cand = np.repeat(x[None, :], len(free), axis=0)
            cand[np.arange(len(free)), free] = v[free]
            moves.append(cand)
        cand = np.vstack(moves)
        s = score(cand)
        if s.max() > 0:
            return cand[int(np.argmax(s))], evals
        gain = s.reshape(4, len(free)) - best
        combo = x.copy()
        better = gain.max(axis=0) > 0
        combo[free[better]] = np.stack(moves)[
            gain.argmax(axis=0)[better], np.flatnonzero(better), free[better]
        ]
        sc = score(combo[None, :])
        if sc[0] > 0:
            return combo, evals
        if max(int(s.max()), int(sc[0])) > best:
            x, best = (
                (combo, int(sc[0])) if sc[0] >= s.max() else (cand[int(np.argmax(s))].copy(), int(s.max()))
            )
        else:  # a local maximum: restart from a random corner
            x = corners(1)[0]
            best = int(score(x[None, :])[0])
            if best > 0:
                return x, evals
    return None, evals
