"""Input splitting: branch and bound over the box with the (linear) interval pass.

A box the bound pass cannot decide is cut in two along the input that weighs most on the
property's worst margin, and each half is bounded again; a point box is decided exactly,
so the search is complete given time. Each box's centre is tried on the reference on
the way, so a violation found here is replayed like any other witness.

:func:`split_search` decides a property that way; :func:`max_search` finds the largest value of an
integer function (a relational query's output gap) over a union of boxes.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ._errors import OutOfTime


def split_search(
    q: Any, deadline: float, max_boxes: int = 1_000_000, give_up: int = 16, patience: float = 0.1
) -> tuple[str, np.ndarray | None, int]:
    """``("robust"|"vulnerable"|"open", witness, boxes bounded)`` for the query ``q`` (a _Query).

    After ``give_up`` boxes, or ``patience`` of its time, with no box proved, the search stops
    (``"open"``): on a box of hundreds of dimensions halving one at a time does not pay, nor on a
    deep graph whose bounds are slow, and the time is the solver's.
    """
    stack = [(q.lo, q.hi)]
    n = proved = 0
    start = time.perf_counter()
    wait = patience * (deadline - start)
    while stack:
        now = time.perf_counter()
        if now > deadline or n >= max_boxes or (proved == 0 and (n >= give_up or now - start > wait)):
            return "open", None, n
        lo, hi = stack.pop()
        sub = q.sub(lo, hi)
        n += 1
        if sub.proved_by_bounds():
            proved += 1
            continue
        centre = (lo + hi) // 2
        if q.prop.violated(q.net.outputs(centre[None]))[0]:
            return "vulnerable", centre, n
        # a point the bound pass cannot decide: cannot happen for a sound, exact pass
        if np.array_equal(lo, hi):
            return "open", None, n
        left, right = halves(lo, hi, sub.split_weights())
        stack.append(right)
        stack.append(left)
    return "robust", None, n


def halves(lo: np.ndarray, hi: np.ndarray, weight: np.ndarray) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    """The box ``[lo, hi]`` (not a point) cut in two at the middle of its heaviest input by ``weight``."""
    d = int(np.argmax(np.where(hi > lo, weight, -1.0)))
    mid = (lo[d] + hi[d]) // 2
    left_hi, right_lo = hi.copy(), lo.copy()
    left_hi[d], right_lo[d] = mid, mid + 1
    return (lo, left_hi), (right_lo, hi)


def box_points(lo: np.ndarray, hi: np.ndarray, chunk: int = 1 << 15) -> Iterator[tuple[int, np.ndarray]]:
    """Every point of the box, as ``(index of the first, points [B, F])`` chunks of ``chunk`` points."""
    axes = [np.arange(a, b + 1) for a, b in zip(lo, hi)]
    shape = [len(a) for a in axes]
    total = int(np.prod(shape))
    for start in range(0, total, chunk):
        flat = np.arange(start, min(start + chunk, total))
        yield start, np.stack([a[i] for a, i in zip(axes, np.unravel_index(flat, shape))], -1)


#: boxes with at most this many points are run point by point rather than bounded and cut again:
#: on a small MLP, bounding one box costs about as much as running a few thousand points
ENUMERATE_BOX = 4096


def max_search(
    boxes: list[tuple[np.ndarray, np.ndarray]],
    upper: Callable[[np.ndarray, np.ndarray], tuple[int, np.ndarray]],
    values: Callable[[np.ndarray], np.ndarray],
    deadline: float,
    best: tuple[int, np.ndarray],
    bound: int,
    patience: float = 0.1,
) -> tuple[tuple[int, np.ndarray], int, dict[str, Any]]:
    """The largest integer ``values(x)`` over a union of boxes, by best-first branch and bound.

    ``upper(lo, hi)`` gives a proved bound on the values in a box and how much each input weighs on
    it (the box is cut along the heaviest input); ``values(xs)`` runs a batch ``[B, F]`` of points.
    ``best`` is a known ``(value, point)`` and ``bound`` a proved bound over all the boxes. The box
    with the highest bound is cut first, so the proved bound falls as fast as the bounds allow; a
    box whose bound is at most the best value found is dropped, and a box of at most
    :data:`ENUMERATE_BOX` points is run point by point.

    Returns ``((value, point), bound, stats)``: ``value`` is attained at ``point``; no point of
    the boxes exceeds ``bound``, and they are equal when the search ran to the end. It stops at
    ``deadline``, or when it has made no progress (lowered the proved bound, or closed a box by its
    bound or by running its points) for ``patience`` of its time: on a box of many inputs, or a
    deep graph whose bounds are slow, halving one input at a time rarely pays, and the caller's
    exact stage has the time.
    """
    value, point = best
    heap: list[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]] = []
    # ties in the heap go last in, first out: the search dives to boxes small enough to close
    order = itertools.count(0, -1)
    stats = {"boxes": 0, "closed": 0, "points": 0, "stopped": ""}

    def consider(lo: np.ndarray, hi: np.ndarray, cap: int) -> None:
        nonlocal value, point
        if np.prod((hi - lo + 1).astype(float)) <= ENUMERATE_BOX:
            _, grid = next(box_points(lo, hi, ENUMERATE_BOX))
            v = values(grid)
            stats["points"] += len(grid)
            k = int(np.argmax(v))
            if v[k] > value:
                value, point = int(v[k]), grid[k]
            stats["closed"] += 1
            return
        stats["boxes"] += 1
        ub, weight = upper(lo, hi)
        ub = min(ub, cap)  # a sub-box's bounds may come out looser than its parent's
        centre = (lo + hi) // 2
        v = int(values(centre[None])[0])
        if v > value:
            value, point = v, centre
        if ub > value:
            heapq.heappush(heap, (-ub, next(order), lo, hi, weight))
        else:
            stats["closed"] += 1

    roots = [(np.asarray(lo, np.int64), np.asarray(hi, np.int64)) for lo, hi in boxes]
    for k, (lo, hi) in enumerate(roots):
        try:
            consider(lo, hi, bound)
        except OutOfTime:  # a bound pass past the deadline: this box and the rest stay whole
            for lo, hi in roots[k:]:
                heapq.heappush(heap, (-bound, next(order), lo, hi, (hi - lo).astype(float)))
            stats["stopped"] = "time"
            return (value, point), max(value, -heap[0][0]), stats
    now = time.perf_counter()
    wait = patience * (deadline - now)
    proved, progress = (-heap[0][0] if heap else value), (stats["closed"], now)  # at the last progress
    while heap and -heap[0][0] > value:
        now = time.perf_counter()
        if now > deadline:
            stats["stopped"] = "time"
            break
        if -heap[0][0] < proved or stats["closed"] > progress[0]:
            proved, progress = -heap[0][0], (stats["closed"], now)
        elif now - progress[1] > wait:
            stats["stopped"] = "no progress"
            break
        cap, _, lo, hi, weight = heapq.heappop(heap)
        try:
            for half in halves(lo, hi, weight):
                consider(*half, -cap)
        except OutOfTime:  # the box's bound stands for both halves
            heapq.heappush(heap, (cap, next(order), lo, hi, weight))
            stats["stopped"] = "time"
            break
    bound = max(value, -heap[0][0]) if heap else value
    return (value, point), bound, stats
