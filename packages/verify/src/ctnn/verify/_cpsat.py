"""Exact decisions of one output margin on a layered integer graph, by OR-tools' CP-SAT.

The layered view (:mod:`._layered`) is an integer program as it stands: the inputs are
integer codes in the box, each accumulator an exact integer sum of them, each
requantization a step function given by its runs. Written so (one Boolean per step:
``z >= start`` of the next run), CP-SAT decides it exactly; its linear relaxation with
cuts, clause learning and presolve together prove margins that neither the backward
bounds' branch and bound nor z3's bit-vectors decide in a minute (measured in
docs/results/verify.md). Every value is an integer: no rounding can make a verdict unsound,
and a satisfying input is checked on the numpy reference before it is returned.

On the root box the model also gets the pairs of first-layer steps no input reaches together
(:func:`step_conflicts`), as clauses: each pair's two halfspaces miss each other inside the box,
which CP-SAT's propagation and linear relaxation do not see on their own.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
from ortools.sat.python import cp_model

from ._linear import max_of

#: seconds past its own time limit after which a search is stopped from outside: CP-SAT
#: honours its limit, and this only bounds the damage should one phase not poll it
_GRACE_S = 2.0


def _exact_int(a: np.ndarray, what: str) -> np.ndarray:
    """Integer values held in floats, as int64 (a fraction would be a broken layered view)."""
    r = np.rint(a)
    if not np.array_equal(r, a):
        raise ValueError(f"{what} is not integer-valued: the layered view is broken")
    return r.astype(np.int64)


#: most first-layer step literals whose pairs are checked (the pairs grow with the square)
MAX_LITERALS = 600


def _box_max(v: np.ndarray, d: np.ndarray, mid: np.ndarray, rad: np.ndarray) -> np.ndarray:
    """``max over the box of v·x - d`` for rows ``v [..., F]``, unrounded: the float32 search's
    objective (a certificate is checked by :func:`~._linear.max_of`)."""
    return v @ mid + np.abs(v) @ rad - d


def step_conflicts(C: np.ndarray, D: np.ndarray, owner: np.ndarray, xlo: np.ndarray,
                   xhi: np.ndarray) -> list[tuple[int, int]]:  # fmt: skip
    """The pairs of halfspaces ``C[i]·x >= D[i]`` that no ``x`` of the box meets together.

    ``owner[i]`` names the neuron a literal belongs to; pairs of one neuron are skipped (its
    steps are chained already). A pair is reported only with a certificate: a ``t`` in [0, 1]
    with ``max over the box of t(C[i]·x - D[i]) + (1-t)(C[j]·x - D[j]) < 0``, evaluated in float64
    and rounded up (:func:`~._linear.max_of`); the search for ``t`` (ternary, the maximum is
    convex in ``t``) runs in float32. Sound for real ``x``, so for integer codes too. Pairs that one of the box's
    corners meets (the corner either halfspace reaches furthest into) are skipped unsearched:
    78-81% of them on three MNIST boxes.
    """
    n = len(C)
    if n < 2 or n > MAX_LITERALS:
        return []
    C32, D32 = C.astype(np.float32), D.astype(np.float32)
    mid32, rad32 = ((xlo + xhi) / 2).astype(np.float32), ((xhi - xlo) / 2).astype(np.float32)
    # which halfspaces each corner meets, as bits: a pair some corner meets has a common point
    met = np.packbits(C @ np.where(C > 0, xhi, xlo).T >= D[:, None], axis=1)
    free = owner[:, None] != owner[None, :]
    first, second = np.nonzero(np.triu(free, 1))
    keep = ~(met[first] & met[second]).any(1)
    first, second = first[keep], second[keep]
    found: list[tuple[int, int]] = []
    for a in range(0, len(first), 2048):
        i, j = first[a : a + 2048], second[a : a + 2048]
        lo, hi = np.zeros(len(i), np.float32), np.ones(len(i), np.float32)
        for _ in range(30):
            t1, t2 = lo + (hi - lo) / 3, hi - (hi - lo) / 3
            f1 = _box_max(t1[:, None] * C32[i] + (1 - t1[:, None]) * C32[j], t1 * D32[i] + (1 - t1) * D32[j],
                          mid32, rad32)  # fmt: skip
            f2 = _box_max(t2[:, None] * C32[i] + (1 - t2[:, None]) * C32[j], t2 * D32[i] + (1 - t2) * D32[j],
                          mid32, rad32)  # fmt: skip
            lo, hi = np.where(f1 > f2, t1, lo), np.where(f1 > f2, hi, t2)
        t = ((lo + hi) / 2).astype(np.float64)
        bad = max_of(t[:, None] * C[i] + (1 - t[:, None]) * C[j], -(t * D[i] + (1 - t) * D[j]), xlo, xhi) < 0
        found += list(zip(i[bad].tolist(), j[bad].tolist()))
    return found


def margin_model(layers: list[Any], runs: list[Any], xlo: np.ndarray, xhi: np.ndarray, ls: list[np.ndarray],
                 us: list[np.ndarray], label: int, other: int, threshold: int,
                 conflicts: bool = False, cache: dict | None = None,
                 objective: bool = False) -> tuple[cp_model.CpModel, list[Any]] | None:  # fmt: skip
    """The integer program "some input of the box, with every layer's accumulators in
    ``[ls[k], us[k]]``, has ``y[label] - y[other] < threshold``", and the inputs (ints where
    fixed); None when the intervals already rule it out.

    ``runs[k]`` must tabulate layer ``k``'s step function over (at least) ``[ls[k], us[k]]``.
    Only the two outputs the margin reads are encoded. With ``conflicts``, the pairs of
    first-layer steps that no input of the box reaches together (:func:`step_conflicts`) are
    added as clauses: on MNIST classes that took CP-SAT 3.9–70 s, its solve time 6–18× shorter.
    ``cache`` (a dict kept for one box and graph) holds the pairs between calls: they depend on
    the first layer's intervals alone, not on the classes compared. With ``objective``, the
    model minimizes ``z[label] - z[other]`` (the last layer's accumulators), which changes the
    search and not the answer.
    """
    lits: list[tuple[Any, np.ndarray, int, int]] = []  # first-layer literal, C, D, neuron
    acc: dict[int, Any] = {}  # the last layer's accumulators of the two outputs read
    m = cp_model.CpModel()
    xlo, xhi = _exact_int(xlo, "the box"), _exact_int(xhi, "the box")
    xs: list[Any] = [
        int(a) if a == b else m.new_int_var(int(a), int(b), f"x{i}") for i, (a, b) in enumerate(zip(xlo, xhi))
    ]
    vals: list[Any] = xs
    last = len(layers) - 1
    for k, layer in enumerate(layers):
        W, b = _exact_int(layer.W, f"layer {k}'s weights"), _exact_int(layer.b, f"layer {k}'s bias")
        lo, hi = _exact_int(ls[k], "an interval"), _exact_int(us[k], "an interval")
        R = runs[k]
        free = [i for i, v in enumerate(vals) if not isinstance(v, int)]
        fixed = np.array([0 if not isinstance(v, int) else v for v in vals], np.int64)
        free_vars = [vals[i] for i in free]
        nxt: dict[int, Any] = {}
        for j in range(W.shape[1]) if k < last else sorted({label, other}):
            l_j, u_j = int(lo[j]), int(hi[j])
            if l_j > u_j:
                return None
            const = int(fixed @ W[:, j] + b[j])
            w = W[free, j]
            nz = np.flatnonzero(w)
            if len(nz):
                z = m.new_int_var(l_j, u_j, f"z{k}_{j}")
                m.add(
                    z == cp_model.LinearExpr.weighted_sum([free_vars[i] for i in nz], w[nz].tolist()) + const
                )
            elif not l_j <= const <= u_j:
                return None
            else:
                z, l_j, u_j = const, const, const
            if k == last:
                acc[j] = z
            # the runs that meet [l_j, u_j], merged where the value does not change
            inside = (R.E[:, j] >= l_j) & (R.S[:, j] <= u_j)
            starts, values = R.S[inside, j].astype(np.int64), R.V[inside, j].astype(np.int64)
            new = np.r_[True, values[1:] != values[:-1]]
            starts, values = starts[new], values[new]
            if len(values) == 1:
                nxt[j] = int(values[0])
                continue
            steps = []
            for r in range(1, len(values)):
                up = m.new_bool_var(f"s{k}_{j}_{r}")  # up <=> z has reached run r
                m.add(z >= int(starts[r])).only_enforce_if(up)
                m.add(z <= int(starts[r]) - 1).only_enforce_if(~up)
                if steps:
                    m.add_implication(up, steps[-1])
                steps.append(up)
                if conflicts and k == 0:  # z = W[:, j]·x + b[j] over the whole box
                    lits += [(up, W[:, j], int(starts[r]) - int(b[j]), j),
                             (~up, -W[:, j], int(b[j]) - int(starts[r]) + 1, j)]  # fmt: skip
            g = m.new_int_var(int(values.min()), int(values.max()), f"g{k}_{j}")
            m.add(g == cp_model.LinearExpr.weighted_sum(steps, np.diff(values).tolist()) + int(values[0]))
            nxt[j] = g
        vals = [nxt.get(j, 0) for j in range(max(nxt) + 1)]
        if k == 0 and lits:
            # the literals follow from the first layer's intervals (and, in a one-layer graph,
            # from which two outputs are read)
            key = (lo.tobytes(), hi.tobytes(), (label, other) if last == 0 else None)
            found = None if cache is None else cache.get(key)
            if found is None:
                C = np.array([c for _, c, _, _ in lits], np.float64)
                D = np.array([d for _, _, d, _ in lits], np.float64)
                found = step_conflicts(C, D, np.array([o for *_, o in lits]), xlo.astype(np.float64),
                                       xhi.astype(np.float64))  # fmt: skip
                if cache is not None:
                    cache[key] = found
            for i, j in found:
                m.add_bool_or([~lits[i][0], ~lits[j][0]])
    margin = vals[label] - vals[other]
    if isinstance(margin, int):
        return (m, xs) if margin < threshold else None
    m.add(margin <= threshold - 1)
    if objective and not isinstance(acc[label] - acc[other], int):
        m.minimize(acc[label] - acc[other])
    return m, xs


#: CP-SAT's cut effort: 0 turns its cuts off. On seven MNIST classes that took 12-64 s with
#: the default (1), 1.0-2.5× faster (median 1.55×). Its LP still runs: without it, 94/4 class 9
#: was not decided in 60 s (measured in the 0.6.3 CHANGELOG)
CUT_LEVEL = 0

#: ``solve_margins``'s searches minimize the margin's last accumulators (``z[label] - z[other]``),
#: stopping at the first input below the threshold. On the 52 MNIST queries that reach CP-SAT,
#: 16 timeouts against 19 without it, the same day, and no query lost (0.6.4 CHANGELOG)
OBJECTIVE = True


def _solver(limit: float, workers: int) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = min(max(0.01, float(limit)), 1e7)  # 1e18 overflows the timer
    solver.parameters.num_workers = max(1, int(workers))
    solver.parameters.cut_level = CUT_LEVEL
    solver.parameters.stop_after_first_solution = True  # any input below the threshold decides
    return solver


def answer(status: Any) -> str:
    """A CP-SAT status as a feasibility answer: ``"sat"``, ``"unsat"`` or ``"unknown"`` (out of time)."""
    if status == cp_model.INFEASIBLE:
        return "unsat"
    return "sat" if status in (cp_model.FEASIBLE, cp_model.OPTIMAL) else "unknown"


def is_var(v: Any) -> bool:
    """Whether an element is a CP-SAT variable (else a Python int)."""
    return not isinstance(v, (int, np.integer))


def values(solver: cp_model.CpSolver, elems: Any) -> np.ndarray:
    """The elements' values in ``solver``'s solution (an int element is its own value)."""
    return np.array([solver.value(v) if is_var(v) else int(v) for v in elems], np.int64)


def threshold_of(label: int, other: int) -> int:
    """The least ``y[label] - y[other]`` for which ``label`` still wins: ties go to the lower
    index (numpy's argmax), so a class below ``label`` must stay strictly below it."""
    return 1 if other < label else 0


def _outcome(bounds: Any, solver: cp_model.CpSolver, status: Any, xs: list[Any], label: int, other: int,
             threshold: int) -> tuple[str, np.ndarray | None]:  # fmt: skip
    """``solver``'s answer as ``solve_margin`` returns it; a satisfying input is run on the reference."""
    got = answer(status)
    if got != "sat":
        return got, None
    x = values(solver, xs)
    out = bounds.forward(x[None])[0]
    if not out[label] - out[other] < threshold:
        raise AssertionError(
            f"CP-SAT's input gives y[{label}] - y[{other}] = {out[label] - out[other]} on the reference, "
            f"not below {threshold}: the layered encoding is wrong"
        )
    return "sat", x


def _search(bounds: Any, label: int, problems: list[tuple[int, int, cp_model.CpModel, list[Any]]],
            deadline: float, workers: int) -> list[tuple[str, np.ndarray | None]]:  # fmt: skip
    """Search every ``(other, threshold, model, inputs)`` of ``problems`` until ``deadline``, each
    on its own thread (CP-SAT releases the GIL, so they share the core); the first satisfying
    input stops the others. Each problem's answer as :func:`solve_margin` returns it."""
    solvers = [_solver(deadline - time.perf_counter(), workers) for _ in problems]
    statuses: dict[int, Any] = {}
    errors: list[BaseException] = []

    def search(i: int) -> None:
        try:
            statuses[i] = solvers[i].solve(problems[i][2])
        except BaseException as e:  # noqa: BLE001 -- raised in the caller, below
            errors.append(e)
            statuses[i] = None
        if statuses[i] in (cp_model.FEASIBLE, cp_model.OPTIMAL) or errors:
            for s in solvers:  # one input that misses a margin decides the query
                s.stop_search()

    threads = [threading.Thread(target=search, args=(i,), daemon=True) for i in range(len(problems))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(min(max(0.0, deadline - time.perf_counter()), 1e7) + _GRACE_S)
    for s in solvers:  # only a search that did not poll its limit is still running here
        s.stop_search()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [_outcome(bounds, solvers[i], statuses[i], xs, label, other, thr)
            for i, (other, thr, _, xs) in enumerate(problems)]  # fmt: skip


def solve_margin(bounds: Any, ls: list[np.ndarray], us: list[np.ndarray], label: int, other: int, threshold: int,
                 timeout_s: float, workers: int = 1, conflicts: bool = False) -> tuple[str, np.ndarray | None]:  # fmt: skip
    """Decide exactly whether an input of ``bounds``'s box (a :class:`~._bab.LayeredBounds`)
    whose accumulators lie in ``[ls[k], us[k]]`` has ``y[label] - y[other] < threshold``.

    Returns ``("sat", x)`` (an input that does, confirmed on the reference), ``("unsat",
    None)`` (none does) or ``("unknown", None)`` (``timeout_s`` ran out). ``workers`` is
    CP-SAT's number of search threads; ``conflicts`` adds the first-layer step conflicts
    (:func:`margin_model`), computed once per box and kept in ``bounds.cache`` (0.04–0.27 s
    on the MNIST timeouts' boxes).
    """
    built = margin_model(bounds.layers, bounds.runs, bounds.xlo, bounds.xhi, ls, us, label, other, threshold,
                         conflicts, bounds.cache)  # fmt: skip
    if built is None:
        return "unsat", None
    # the limit is the search's alone: building the model is not counted
    deadline = time.perf_counter() + min(max(0.0, float(timeout_s)), 1e7)
    return _search(bounds, label, [(other, threshold, *built)], deadline, workers)[0]


def solve_margins(bounds: Any, label: int, others: list[int], timeout_s: float, workers: int = 1,
                  objective: bool | None = None) -> tuple[dict[int, str], np.ndarray | None, int | None]:  # fmt: skip
    """Decide the root margins ``y[label] - y[j] >= threshold_of(label, j)`` of every ``j`` in
    ``others`` at once (one CP-SAT search each, on threads, with the step conflicts), for
    ``timeout_s`` seconds of wall clock.

    The searches share the core instead of each getting a fixed slice of the time: one that
    ends early leaves its part to the others, and no search is cut at a share it needed only
    a little more than (MNIST 84/4: class 7 takes about 41 s alone, the others seconds, and an
    equal split of the minute cut it off).

    ``objective`` (default :data:`OBJECTIVE`) has each search minimize the margin's accumulators.

    Returns each class's answer (``"sat"``, ``"unsat"`` or ``"unknown"``) and, at the first
    ``"sat"``, its input (confirmed on the reference) and class; the other searches are then
    stopped and reported ``"unknown"`` unless they had ended.
    """
    deadline = time.perf_counter() + timeout_s
    verdicts: dict[int, str] = {}
    problems = []
    for j in others:
        thr = threshold_of(label, j)
        built = margin_model(bounds.layers, bounds.runs, bounds.xlo, bounds.xhi, *bounds.root, label, j, thr,
                             True, bounds.cache, OBJECTIVE if objective is None else objective)  # fmt: skip
        if built is None:
            verdicts[j] = "unsat"
        else:
            problems.append((j, thr, *built))
    witness, by = None, None
    for (j, *_), (verdict, x) in zip(problems, _search(bounds, label, problems, deadline, workers)):
        verdicts[j] = verdict
        if x is not None and witness is None:
            witness, by = x, j
    return verdicts, witness, by
