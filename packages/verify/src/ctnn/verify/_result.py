"""The one result type of a verification query."""

from __future__ import annotations

import builtins
from dataclasses import asdict, dataclass, field
from typing import Any

VERDICTS = ("robust", "vulnerable", "unknown")
METHODS = ("interval", "attack", "bab", "cpsat", "smt", "enumeration")


@dataclass
class VerificationResult:
    """The answer to one query.

    ``verdict`` is ``"robust"`` (proved: no input in the box changes the prediction),
    ``"vulnerable"`` (``counterexample`` is an input in the box, replayed on the numpy
    reference and in onnxruntime, whose prediction is ``counterexample_label`` != ``label``)
    or ``"unknown"`` (the solver ran out of time; ``reason`` says why, and for local robustness
    ``stats["open_classes"]`` names the classes not yet proved unable to win, where the stages
    that ran track them). ``method`` is what
    decided: the interval pre-pass, the attack, branch and bound on backward linear bounds
    (``"bab"``, MLP-shaped graphs), CP-SAT on the integer program of such a graph where
    branch and bound left a class open (``"cpsat"``: it decided at least one class), the SMT
    solver, or (relational queries on a small box) ``"enumeration"`` of every point.
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


@dataclass
class GapResult:
    """The largest output gap of a relational query (bias, or two graphs' difference): input
    splitting, then a binary search of exact queries.

    ``gap`` is attained by the witness pair (both inputs replayed on the reference and in
    onnxruntime); ``bound`` is proved: no pair in the query's domain differs by more.
    ``exact`` is ``gap == bound`` (False when a query timed out; ``reason`` says which).
    Gaps are in output codes, or in real units when ``scale`` is not 1 (``gap_codes / scale``
    is then what the integer search found, see ``units``).
    """

    kind: str
    gap: float
    bound: float
    exact: bool
    output: int | None
    witness: tuple[list[int], list[int]] | None = None
    witness_outputs: tuple[list[int], list[int]] | None = None
    witness_output: int | None = None
    #: where the two graphs quantize inputs differently: a real input (one per feature) that gives
    #: the witness's codes in both, checked by both quantizers
    real_witness: list[float] | None = None
    units: str = "codes"
    queries: list[dict[str, Any]] = field(default_factory=list)
    total_time_s: float = 0.0
    reason: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    #: the stage before the binary search: input splitting (``boxes`` bounded, ``points`` run, the
    #: ``gap`` and ``bound`` it left, ``time_s``, and why it ``stopped`` early if it did), or on
    #: boxes small enough, every point run once (``enumerated``; no binary search follows)
    split: dict[str, Any] = field(default_factory=dict)
    #: the coordinate ascent on the gap before input splitting: the ``gap`` it reached (from the
    #: boxes' centres' ``start``), the points run (``evals``), its ``rounds`` and ``time_s``;
    #: empty where it did not run (the attack off, or boxes small enough to enumerate)
    ascent: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class EquivalenceResult:
    """Whether two integer graphs agree everywhere in a box.

    ``verdict`` is ``"equivalent"`` (proved), ``"different"`` (``counterexample`` is an input
    in the box, replayed in both graphs, where they differ by more than ``delta`` — or, for
    ``property == "argmax"``, predict different classes) or ``"unknown"`` (timeout).
    """

    verdict: str
    property: str
    delta: float
    method: str
    counterexample: list[int] | None = None
    outputs: tuple[list[int], list[int]] | None = None
    #: each graph's input codes on the counterexample (they differ where the graphs quantize
    #: inputs differently; ``counterexample`` is the first graph's) and a real input giving both
    inputs: tuple[list[int], list[int]] | None = None
    real_input: list[float] | None = None
    difference: float | None = None
    units: str = "codes"
    total_time_s: float = 0.0
    reason: str = ""
    stats: dict[str, Any] = field(default_factory=dict)

    @builtins.property
    def equivalent(self) -> bool:
        return self.verdict == "equivalent"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)
