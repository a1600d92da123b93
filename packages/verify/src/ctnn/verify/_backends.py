"""SMT backends: one z3 encoding, decided by z3 or by bitwuzla.

z3 is the modelling layer and always available. bitwuzla (the optional extra
``ctnn-verify[bitwuzla]``) reads the same query as SMT-LIB2 text, written by z3 from the
very terms the encoder built, so both solvers decide one formula.

A query is a list of constraints plus *goals* (one per way the property can fail, e.g. one
per competing class). Each goal ``g`` is guarded by a fresh Boolean ``p`` (``p => g``) and
checked under the assumption ``p``: one solver instance, its learnt clauses kept from goal
to goal (incremental solving).
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import z3

from ._solver_process import Bitwuzla, Child

#: the names a ``solver=`` argument accepts
SOLVERS = ("z3", "bitwuzla", "cpsat", "auto")

#: ``solver="auto"`` takes the first installed one, by the query's size. Measured in
#: docs/results/verify.md (same encoding, SMT stage only): on the small random MLPs bitwuzla
#: decided 13 of 14 queries to z3's 11, median 2.2 s against 3.0 s; on the MNIST queries (784
#: inputs) z3 decided 1 of 4 and bitwuzla none, median 34 s against 45 s (bitwuzla also pays
#: for the SMT-LIB2 round trip of a large formula, and overruns its time limit there).
AUTO_PREFERENCE = ("bitwuzla", "z3")
#: the order for a query with more free inputs than :data:`AUTO_LARGE_INPUTS`
AUTO_PREFERENCE_LARGE = ("z3", "bitwuzla")
AUTO_LARGE_INPUTS = 256
#: a formula of more symbolic elements than this is decided in a child process that is killed at the
#: deadline (:class:`Session`'s ``isolate``). Measured on random recurrent cells (20 s per query, SMT
#: stage only, docs/results/verify.md): in-process, queries of 20,000-45,000 elements took up to
#: 29.7 s and of 5,000-20,000 up to 21.5 s; in a child, none took over 20.4 s, and decided queries of
#: 2,500-15,000 elements took as long as in-process. Smaller formulas (the MLP queries have 400-1,000
#: elements, many decided in well under a second) stay in-process, without a child's start-up.
#: Isolated, bitwuzla's SMT-LIB2 round trip is stopped at the deadline too, so ``"auto"`` does not
#: avoid it on large formulas: over 20,000 elements bitwuzla decided 1 of 10 queries to z3's none.
ISOLATE_ELEMENTS = 5_000


def available(name: str) -> bool:
    """Whether the backend ``name`` can run here."""
    if name == "z3":
        return True
    if name == "bitwuzla":
        return importlib.util.find_spec("bitwuzla") is not None
    return False


def resolve(solver: str, free_inputs: int | None = None) -> str:
    """The SMT backend: for ``"auto"`` the preferred installed one for a query with ``free_inputs``
    inputs that vary (None: a small one), and the same for ``"cpsat"`` (the SMT stage of a query
    CP-SAT does not take); a named one is checked to be installed."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if solver in ("auto", "cpsat"):
        large = free_inputs is not None and free_inputs > AUTO_LARGE_INPUTS
        return next(s for s in (AUTO_PREFERENCE_LARGE if large else AUTO_PREFERENCE) if available(s))
    if not available(solver):
        raise ModuleNotFoundError(
            f"solver {solver!r} is not installed: pip install 'ctnn-verify[bitwuzla]' (or use solver='z3')"
        )
    return solver


class Session:
    """Constraints asserted once, goals checked one at a time under assumptions.

    ``isolate`` runs the solver in a child process that is killed at each check's deadline
    (:class:`~._solver_process.Child`): the only way to hold it on a formula so large that the
    solver looks at its clock too rarely (see :data:`ISOLATE_ELEMENTS`).
    """

    def __init__(
        self,
        constraints: list[z3.BoolRef],
        goals: list[z3.BoolRef],
        solver: str = "z3",
        timeout_s: float = 3600,
        isolate: bool = False,
    ):
        self.backend = resolve(solver)
        self.timeout_s = timeout_s
        self.guards = [z3.Bool(f"__goal{k}") for k in range(len(goals))]
        self.formula = list(constraints) + [z3.Implies(p, g) for p, g in zip(self.guards, goals)]
        self.stats: dict[str, Any] = {"solver": self.backend, "solver_calls": 0}
        self._last = ""  # the last check's answer: a model is read only after "sat"
        self._s = self._text = None
        if self.backend == "z3" and not isolate:
            self._s = z3.SolverFor("QF_BV")
            self._s.add(*self.formula)
            return
        t = time.perf_counter()
        s = z3.Solver()
        s.add(*self.formula)
        text = s.to_smt2().replace("(check-sat)", "")  # both solvers read one formula, z3's own text
        if isolate:
            self._text = Child(self.backend, text, timeout_s)
        else:
            self._text = Bitwuzla(text, timeout_s)
        self.stats["translate_s"] = time.perf_counter() - t

    def check(self, k: int, timeout_s: float) -> str:
        """``"sat"``, ``"unsat"`` or ``"unknown"`` for goal ``k`` within ``timeout_s``."""
        self.stats["solver_calls"] += 1
        if self._s is not None:
            self._s.set("timeout", max(1, int(timeout_s * 1000)))
            r = self._s.check(self.guards[k])
            self.reason = self._s.reason_unknown() if r == z3.unknown else ""
            return self._answer(str(r))
        r, self.reason = self._text.check(str(self.guards[k]), timeout_s)
        if isinstance(self._text, Child):
            self.stats.update(solver_processes=self._text.starts, solver_processes_stopped=self._text.stopped,
                              solver_process_setup_s=self._text.setup_s)  # fmt: skip
        return self._answer(r)

    def _answer(self, r: str) -> str:
        # anything but a definite sat/unsat (a terminated or interrupted check) is "unknown"
        self._last = r if r in ("sat", "unsat") else "unknown"
        return self._last

    def _need_model(self) -> None:
        if self._last != "sat":
            raise RuntimeError(f"no model to read: the last check answered {self._last or 'nothing'!r}")

    def values(self, variables: list[z3.BitVecRef]) -> list[int]:
        """Signed values of bit-vector variables in the last satisfying assignment.

        Only after a check that answered ``"sat"``: an ``unknown`` (timeout) has no model to replay.
        """
        self._need_model()
        if self._s is not None:
            m = self._s.model()
            return [m.eval(v, model_completion=True).as_signed_long() for v in variables]
        return self._text.values([(str(v), v.size()) for v in variables])

    def z3_model(self) -> z3.ModelRef | None:
        """The in-process z3 model of the last ``"sat"`` (None from a text solver)."""
        self._need_model()
        return self._s.model() if self._s is not None else None

    def close(self) -> None:
        """Stop a solver process now rather than when the session is collected."""
        if isinstance(self._text, Child):
            self._text.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
