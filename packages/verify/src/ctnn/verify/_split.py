"""Input splitting: branch and bound over the box with the (linear) interval pass.

A box the bound pass cannot decide is cut in two along the input that weighs most on the
property's worst margin, and each half is bounded again; a point box is decided exactly,
so the search is complete given time. Each box's centre is tried on the reference on
the way, so a violation found here is replayed like any other witness.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np


def split_search(
    q: Any, deadline: float, max_boxes: int = 1_000_000, give_up: int = 16
) -> tuple[str, np.ndarray | None, int]:
    """``("robust"|"vulnerable"|"open", witness, boxes bounded)`` for the query ``q`` (a _Query).

    After ``give_up`` boxes none of which was proved, the search stops (``"open"``): on a
    box of hundreds of dimensions halving one at a time does not pay, and the time is the
    solver's.
    """
    stack = [(q.lo, q.hi)]
    n = proved = 0
    while stack:
        if time.perf_counter() > deadline or n >= max_boxes or (n >= give_up and proved == 0):
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
        weight = sub.split_weights()
        weight = np.where(hi > lo, weight, -1.0)
        d = int(np.argmax(weight))
        if hi[d] == lo[d]:  # a point the bound pass cannot decide: cannot happen for a sound, exact pass
            return "open", None, n
        mid = (lo[d] + hi[d]) // 2
        left_hi, right_lo = hi.copy(), lo.copy()
        left_hi[d], right_lo[d] = mid, mid + 1
        stack.append((right_lo, hi))
        stack.append((lo, left_hi))
    return "robust", None, n
