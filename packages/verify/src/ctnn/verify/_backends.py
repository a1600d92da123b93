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

#: the names a ``solver=`` argument accepts
SOLVERS = ("z3", "bitwuzla", "auto")

#: ``solver="auto"`` takes the first installed one, by the query's size. Measured in
#: docs/results/verify.md (same encoding, SMT stage only): on the small random MLPs bitwuzla
#: decided 13 of 14 queries to z3's 11, median 2.2 s against 3.0 s; on the MNIST queries (784
#: inputs) z3 decided 1 of 4 and bitwuzla none, median 34 s against 45 s (bitwuzla also pays
#: for the SMT-LIB2 round trip of a large formula, and overruns its time limit there).
AUTO_PREFERENCE = ("bitwuzla", "z3")
#: the order for a query with more free inputs than :data:`AUTO_LARGE_INPUTS`
AUTO_PREFERENCE_LARGE = ("z3", "bitwuzla")
AUTO_LARGE_INPUTS = 256
#: ``solver="auto"`` also takes z3 for a formula of more symbolic elements than this, whatever its
#: inputs: bitwuzla reads z3's SMT-LIB2 text, and that round trip cannot be stopped at the
#: query's deadline. The MLP queries of docs/results/verify.md have 400-1,000 elements (under
#: 0.2 s of round trip); an 8-unit LEM unrolled over 24 steps at 8 bits has 84,590 (15-30 s).
#: The solvers suite's random recurrent cells (20 s, SMT stage only): up to 20,000 elements
#: bitwuzla decided 26 of 44 queries to z3's 10; above, neither decided any of 10.
AUTO_LARGE_ELEMENTS = 20_000


def available(name: str) -> bool:
    """Whether the backend ``name`` can run here."""
    if name == "z3":
        return True
    if name == "bitwuzla":
        return importlib.util.find_spec("bitwuzla") is not None
    return False


def resolve(solver: str, free_inputs: int | None = None) -> str:
    """``"auto"`` -> the preferred installed backend for a query with ``free_inputs`` inputs that
    vary (None: a small one); a named one is checked to be installed."""
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if solver == "auto":
        large = free_inputs is not None and free_inputs > AUTO_LARGE_INPUTS
        return next(s for s in (AUTO_PREFERENCE_LARGE if large else AUTO_PREFERENCE) if available(s))
    if not available(solver):
        raise ModuleNotFoundError(
            f"solver {solver!r} is not installed: pip install 'ctnn-verify[bitwuzla]' (or use solver='z3')"
        )
    return solver


class Session:
    """Constraints asserted once, goals checked one at a time under assumptions."""

    def __init__(
        self,
        constraints: list[z3.BoolRef],
        goals: list[z3.BoolRef],
        solver: str = "z3",
        timeout_s: float = 3600,
    ):
        self.backend = resolve(solver)
        self.timeout_s = timeout_s
        self.guards = [z3.Bool(f"__goal{k}") for k in range(len(goals))]
        self.formula = list(constraints) + [z3.Implies(p, g) for p, g in zip(self.guards, goals)]
        self.stats: dict[str, Any] = {"solver": self.backend, "solver_calls": 0}
        self._last = ""  # the last check's answer: a model is read only after "sat"
        if self.backend == "z3":
            self._s = z3.SolverFor("QF_BV")
            self._s.add(*self.formula)
        else:
            self._bitwuzla_setup()

    # -- bitwuzla: the same formula as SMT-LIB2 text -------------------------------------------
    def _bitwuzla_setup(self) -> None:
        import bitwuzla as bw

        t = time.perf_counter()
        s = z3.Solver()
        s.add(*self.formula)
        text = s.to_smt2().replace("(check-sat)", "")
        self._tm = bw.TermManager()
        self._opts = bw.Options()
        self._opts.set(bw.Option.PRODUCE_MODELS, True)
        # the option is exact where the terminator is only polled: both bound the query
        self._opts.set(bw.Option.TIME_LIMIT_PER, max(1, int(self.timeout_s * 1000)))
        self._bw = bw
        self._parser = bw.Parser(self._tm, self._opts)
        err = self._parser.parse("(set-logic QF_BV)\n" + text, True, False)
        if err:
            raise RuntimeError(f"bitwuzla could not read the query: {err}")
        self._funs = {str(f.symbol()): f for f in self._parser.get_declared_funs()}
        self._b = self._parser.bitwuzla()
        self.stats["translate_s"] = time.perf_counter() - t

    def check(self, k: int, timeout_s: float) -> str:
        """``"sat"``, ``"unsat"`` or ``"unknown"`` for goal ``k`` within ``timeout_s``."""
        ms = max(1, int(timeout_s * 1000))
        self.stats["solver_calls"] += 1
        if self.backend == "z3":
            self._s.set("timeout", ms)
            r = self._s.check(self.guards[k])
            self.reason = self._s.reason_unknown() if r == z3.unknown else ""
            return self._answer(str(r))
        # bitwuzla's time-limit option is fixed per instance: a terminator bounds each check
        deadline = time.perf_counter() + timeout_s
        self._b.configure_terminator(lambda: time.perf_counter() > deadline)
        r = self._b.check_sat(self._funs[str(self.guards[k])])
        self.reason = "timeout" if str(r) == "unknown" else ""
        return self._answer(str(r))

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
        if self.backend == "z3":
            m = self._s.model()
            return [m.eval(v, model_completion=True).as_signed_long() for v in variables]
        out = []
        for v in variables:
            f = self._funs.get(str(v))
            if f is None:  # not in the formula: any value satisfies it
                out.append(0)
                continue
            u = int(self._b.get_value(f).value(10))
            w = v.size()
            out.append(u - (1 << w) if u >= 1 << (w - 1) else u)
        return out

    def z3_model(self) -> z3.ModelRef | None:
        self._need_model()
        return self._s.model() if self.backend == "z3" else None
