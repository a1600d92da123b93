"""The one result type of a verification query."""

from __future__ import annotations

import builtins
from dataclasses import asdict, dataclass, field
from typing import Any

VERDICTS = ("robust", "vulnerable", "unknown")
METHODS = ("interval", "attack", "smt")


@dataclass
class VerificationResult:
    """The answer to one query.

    ``verdict`` is ``"robust"`` (proved: no input in the box changes the prediction),
    ``"vulnerable"`` (``counterexample`` is an input in the box, replayed on the numpy
    reference and in onnxruntime, whose prediction is ``counterexample_label`` != ``label``)
    or ``"unknown"`` (the solver ran out of time; ``reason`` says why). ``method`` is what
    decided: the interval pre-pass, the attack, or the SMT solver.
    """

    verdict: str
    label: int
    eps: int | list[int]
    method: str
    counterexample: list[int] | None = None
    counterexample_label: int | None = None
    counterexample_output: list[int] | None = None
    solver_time_s: float = 0.0
    total_time_s: float = 0.0
    property: str = "robustness"
    encoding: str = ""
    reason: str = ""
    stats: dict[str, Any] = field(default_factory=dict)

    @builtins.property  # (the field `property` shadows the builtin in this class body)
    def robust(self) -> bool:
        return self.verdict == "robust"

    @builtins.property
    def vulnerable(self) -> bool:
        return self.verdict == "vulnerable"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)
