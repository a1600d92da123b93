"""Univariate chains: runs of elementwise ops whose result depends on one element only.

A requantization (Cast, Mul, Less, Sub/Add, Where, Div, Clip, Cast) maps each
accumulator element to one output code. Such a run is recorded as a small expression
(:class:`Rec`) over its *root* element, and the numpy reference itself tabulates it over
the root's interval. The encoder turns the table into a step function; the linear bound
pass into two lines that enclose it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ctnn.quant import REFERENCE_OPS

#: ops whose every output element is a function of the same-index input elements
ELEMENTWISE = frozenset(
    {"Add", "Sub", "Mul", "Div", "Clip", "Min", "Max", "Cast", "Less", "Greater", "Equal", "Where"}
)
#: ops that only move elements
MOVES = frozenset({"Identity", "Reshape", "Squeeze", "Unsqueeze", "Slice", "Concat", "Split"})
#: the largest root interval that is tabulated
MAX_TABLE = 1 << 18


@dataclass(eq=False)
class Rec:
    """A chain: ``op`` over sub-chains (``root``: the chain's input; ``const``: a fixed value)."""

    op: str
    args: tuple = ()
    attrs: dict[str, Any] | None = None
    value: np.ndarray | None = None


ROOT = Rec("root")


def const(value: Any, dtype: np.dtype) -> Rec:
    return Rec("const", value=np.asarray(value, dtype=dtype))


def _eval(rec: Rec, r: np.ndarray, memo: dict[int, np.ndarray]) -> np.ndarray:
    if rec is ROOT:
        return r
    if rec.op == "const":
        return rec.value
    got = memo.get(id(rec))
    if got is None:
        args = [None if a is None else _eval(a, r, memo) for a in rec.args]
        got = memo[id(rec)] = REFERENCE_OPS[rec.op](args, rec.attrs)[0]
    return got


def tabulate(rec: Rec, lo: int, hi: int, dtype: np.dtype) -> np.ndarray | None:
    """The chain's value at every root value in [lo, hi] (None: too wide, or undefined somewhere)."""
    if hi - lo >= MAX_TABLE:
        return None
    r = np.arange(lo, hi + 1, dtype=np.int64).astype(dtype)
    try:
        return np.broadcast_to(_eval(rec, r, {}), r.shape)
    except (ZeroDivisionError, ValueError, IndexError, OverflowError):
        return None
