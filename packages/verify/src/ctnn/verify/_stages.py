"""What every property's entry point hands the decision procedure: its stage options and one deadline.

:class:`Stages` holds the switches the entry points share (attack, interval pass, encoding, seed,
solver, branch and bound, input splitting), so each passes one object instead of repeating them; :class:`Deadline`
is the one time limit of a whole query or search, from which every inner query takes what is left.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from ._encoder import ENCODINGS
from ._result import VerificationResult
from ._verify import BAB_SHARE, SPLIT_SHARE, _decide, _Query


class Deadline:
    """``timeout_s`` seconds from ``t0`` (a :func:`time.perf_counter` time; default: now)."""

    def __init__(self, timeout_s: float, t0: float | None = None):
        self.t0 = time.perf_counter() if t0 is None else t0
        self.timeout_s = float(timeout_s)
        self.at = self.t0 + self.timeout_s

    def left(self) -> float:
        """Seconds until the deadline (negative once it has passed)."""
        return self.at - time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def within(self, budget_s: float | None = None, floor_s: float = 0.0) -> Deadline:
        """A deadline from now: ``budget_s`` (default: all that is left), cut at this one, >= ``floor_s``."""
        now = time.perf_counter()
        left = self.at - now
        return Deadline(max(left if budget_s is None else min(budget_s, left), floor_s), now)


@dataclass(frozen=True)
class Stages:
    """Which stages decide a query and with which solver (see :func:`~ctnn.verify.verify_robustness`)."""

    attack: bool = True
    interval: bool = True
    encoding: str = "optimized"
    seed: int = 0
    solver: str = "auto"
    #: branch and bound where the property has margins for it (targeted attacks; argmax
    #: equivalence's robustness queries), for :data:`~._verify.BAB_SHARE` of the time
    bab: bool = True
    #: input splitting: of a query's box before the exact stage (:data:`~._verify.SPLIT_SHARE`),
    #: and of a gap search's boxes before its binary search (``GAP_SPLIT_SHARE``)
    split: bool = True

    def __post_init__(self) -> None:
        # checked here too: a relational query on a small box is enumerated and never reaches _decide
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}, got {self.encoding!r}")

    def decide(self, q: _Query, *, eps: Any, deadline: Deadline) -> VerificationResult:
        """Decide ``q`` by ``deadline``; the result's time counts from the deadline's start."""
        opts = {**asdict(self), "bab": BAB_SHARE if self.bab else 0.0,
                "split": SPLIT_SHARE if self.split else 0.0}  # fmt: skip
        return _decide(q, eps=eps, timeout_s=deadline.timeout_s, t0=deadline.t0, **opts)
