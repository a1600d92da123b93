"""A cheap, budgeted attack on the numpy reference: corners, then greedy coordinate ascent.

A box with fewer points than the budget is searched exhaustively instead. :func:`ascend` climbs
an integer function (a gap search's) from many random starts, by moves of ``±2^k`` codes.

Integer networks are piecewise constant, so gradients say little; corners of the box and
single-coordinate moves to a bound are where label flips usually are. Whatever it finds
is replayed (reference and onnxruntime) before it is reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

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


#: a gap ascent's random sample over all its boxes, in points
ASCENT_SAMPLES = 1 << 16
#: how many of the best sampled points the ascent climbs from, at most
ASCENT_STARTS = 256
#: the most input codes the ascent holds at once (a sample, or one round's moves): 32 MiB of int64
ASCENT_CODES = 1 << 22
#: the ascent runs points in chunks of about this many seconds (from the rate it measures), so
#: that on a deep graph its deadline is kept to within one chunk
ASCENT_CHUNK_S = 0.05


def ascend(
    values: Callable[[np.ndarray], np.ndarray],
    boxes: list[tuple[np.ndarray, np.ndarray]],
    deadline: float,
    seed: int = 0,
) -> tuple[int, np.ndarray | None, dict[str, Any]]:
    """The largest integer ``values(x)`` that multi-start coordinate ascent finds over a union of boxes.

    A random sample of the boxes (spread by their number of points) gives the starts; from each,
    every move of one input by ``±2^k`` codes (up to the box's width) is tried, and the best
    improving one taken, until no start improves or ``deadline`` passes. Where the gap of two
    quantizations is irregular and the boxes wide, moves of one code or to a bound (the attack's)
    stall on plateaus that longer ones step over. On a graph slow to run, the sample is what fits
    in the time, and the starts as many as let a round take a quarter of what is left.

    Returns ``(value, point, stats)``: ``value`` is attained at ``point`` (``-1, None`` when not
    even one point ran in time).
    """
    rng = np.random.default_rng(seed)
    stats: dict[str, Any] = {"evals": 0, "rounds": 0}
    los = np.stack([np.asarray(lo, np.int64) for lo, _ in boxes])
    his = np.stack([np.asarray(hi, np.int64) for _, hi in boxes])
    logs = np.log2((his - los + 1).astype(float)).sum(1)
    share = np.exp2(logs - logs.max())
    n_feat = los.shape[1]
    owner = rng.choice(len(boxes), size=min(ASCENT_SAMPLES, ASCENT_CODES // n_feat), p=share / share.sum())
    xs = rng.integers(los[owner], his[owner] + 1)
    per_point = 0.0  # seconds, as last measured

    def run(points: np.ndarray) -> np.ndarray:
        """``values`` of the points, or of as many of the first ones as ran before the deadline."""
        nonlocal per_point
        out: list[np.ndarray] = []
        k = 0
        while k < len(points) and time.perf_counter() < deadline:
            n = 64 if not per_point else int(np.clip(ASCENT_CHUNK_S / per_point, 64, 1 << 14))
            t = time.perf_counter()
            out.append(np.asarray(values(points[k : k + n])))
            per_point = max((time.perf_counter() - t) / len(out[-1]), 1e-9)
            k += len(out[-1])
        stats["evals"] += k
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    v = run(xs)
    if not len(v):
        return -1, None, stats
    xs, owner = xs[: len(v)], owner[: len(v)]
    widths = (his - los).max(0)
    scales = [1 << k for k in range(int(widths.max()).bit_length())]
    moves = np.array([(f, s) for f in range(n_feat) for m in scales for s in (-m, m) if m <= widths[f]])
    fit = (deadline - time.perf_counter()) / 4 / (per_point * max(1, len(moves)))
    starts = int(max(1, min(ASCENT_STARTS, ASCENT_CODES // max(1, len(moves) * n_feat), fit)))
    top = np.argsort(-v, kind="stable")[:starts]
    x, val, lo, hi = xs[top], v[top], los[owner[top]], his[owner[top]]
    while len(moves):
        cand = np.repeat(x[:, None, :], len(moves), axis=1)
        rows = np.arange(len(moves))
        cand[:, rows, moves[:, 0]] = np.clip(
            cand[:, rows, moves[:, 0]] + moves[:, 1], lo[:, moves[:, 0]], hi[:, moves[:, 0]]
        )
        g = run(cand.reshape(-1, n_feat))
        done = len(g) // len(moves)  # the starts whose moves all ran
        if not done:
            break
        g = g[: done * len(moves)].reshape(done, len(moves))
        j = g.argmax(1)
        gain = np.zeros(len(x), bool)
        gain[:done] = g[np.arange(done), j] > val[:done]
        stats["rounds"] += 1
        if not gain.any():
            break
        x[gain] = cand[np.flatnonzero(gain), j[gain[:done]]]
        val[gain] = g[gain[:done], j[gain[:done]]]
        if done < len(x):
            break
    k = int(np.argmax(val))
    return int(val[k]), x[k], stats
