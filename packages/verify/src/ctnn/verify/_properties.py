"""Properties a query can ask of a graph's output, keyed by name in :data:`PROPERTIES`.

A property states what a counterexample is, four ways that must agree: on interval
bounds (can the pre-pass prove there is none?), on concrete outputs (for the attack and
for replaying witnesses), as an attack score, and as a z3 condition for the solver.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import z3

from ._bv import compare

#: property name -> class
PROPERTIES: dict[str, type[Property]] = {}


def register_property(name: str) -> Callable[[type[Property]], type[Property]]:
    """Register a property class under ``name``."""

    def deco(cls: type[Property]) -> type[Property]:
        cls.name = name
        PROPERTIES[name] = cls
        return cls

    return deco


class Property(ABC):
    """What counts as a counterexample, given the (flat) output of one sample."""

    name: ClassVar[str] = ""

    @abstractmethod
    def proved_by_bounds(self, lo: np.ndarray, hi: np.ndarray) -> bool:
        """True if no output inside the bounds [lo, hi] is a counterexample."""

    def proved_by_forms(self, forms: Any, xlo: np.ndarray, xhi: np.ndarray) -> bool:
        """True if the outputs' affine forms (:class:`~._linear.Forms`, flat) rule out a counterexample."""
        return False

    def split_weights(self, forms: Any, xlo: np.ndarray, xhi: np.ndarray) -> np.ndarray | None:
        """Per input, how much it moves the bound that is furthest from proving the property."""
        return None

    @abstractmethod
    def score(self, y: np.ndarray) -> np.ndarray:
        """Per row of ``y`` [B, n_out]: an integer that is > 0 exactly on counterexamples."""

    @abstractmethod
    def violation(self, y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> z3.BoolRef | bool:
        """The z3 condition for a counterexample, on the output elements ``y`` within [lo, hi]."""

    def violated(self, y: np.ndarray) -> np.ndarray:
        return self.score(np.atleast_2d(y)) > 0

    def params(self) -> dict[str, Any]:
        return {}


@register_property("robustness")
class LocalRobustness(Property):
    """The prediction stays ``label``: ``argmax(y) == label`` with numpy's ties-to-lowest-index rule.

    So the output at index ``j`` beats the label if ``y[j] > y[label]``, or ``y[j] == y[label]``
    and ``j < label``. A counterexample is an output where some ``j`` beats the label.
    """

    def __init__(self, label: int):
        self.label = int(label)

    def _margins(self, n: int) -> np.ndarray:
        """What y[j] - y[label] must exceed for j to win: -1 below the label (ties win), 0 above."""
        return np.where(np.arange(n) < self.label, -1, 0)

    def proved_by_bounds(self, lo, hi):
        lo, hi = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
        best = hi - lo[self.label] - self._margins(len(lo))  # > 0: j might win
        best[self.label] = 0
        return bool(np.all(best <= 0))

    def proved_by_forms(self, forms, xlo, xhi):
        from ._linear import max_of

        L = self.label
        margins = self._margins(len(forms.Lc))
        for j in range(len(forms.Lc)):
            if j == L:
                continue
            # the most y[j] - y[label] can be, with the inputs they share cancelling
            if np.floor(max_of(forms.UA[j] - forms.LA[L], forms.Uc[j] - forms.Lc[L], xlo, xhi)) > margins[j]:
                return False
        return True

    def split_weights(self, forms, xlo, xhi):
        from ._linear import max_of

        L = self.label
        gaps = [(max_of(forms.UA[j] - forms.LA[L], forms.Uc[j] - forms.Lc[L], xlo, xhi), j)
                for j in range(len(forms.Lc)) if j != L]  # fmt: skip
        j = max(gaps)[1]
        return np.abs(forms.UA[j] - forms.LA[L])

    def score(self, y):
        y = np.asarray(y, np.int64)
        s = y - y[:, [self.label]] - self._margins(y.shape[1])[None, :]
        s[:, self.label] = np.iinfo(np.int64).min // 2
        return s.max(axis=1)

    def violation(self, y, lo, hi):
        L = self.label
        conds = []
        for j in range(len(y)):
            if j == L:
                continue
            c = compare(">=" if j < L else ">", y[j], int(lo[j]), int(hi[j]), y[L], int(lo[L]), int(hi[L]))
            if c is True:
                return True
            if c is not False:
                conds.append(c)
        if not conds:
            return False
        return conds[0] if len(conds) == 1 else z3.Or(conds)

    def params(self):
        return {"label": self.label}
