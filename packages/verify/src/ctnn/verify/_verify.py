"""Queries: interval pre-pass -> attack (replayed) -> branch and bound or box splitting -> an exact
solver (CP-SAT on the whole graph, or SMT) on what is left."""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import z3

from ._attack import attack as run_attack
from ._bab import prove_robustness
from ._backends import ISOLATE_ELEMENTS, Session, resolve
from ._bv import compare
from ._cpgraph import GraphModel
from ._encoder import ENCODINGS, Encoding, encode
from ._errors import EpsError, OutOfTime, SampleError, UnsupportedError, VerifyError, check_timeout
from ._interval import Bounds, interval_pass
from ._linear import Forms, max_of
from ._network import ModelLike, Network, as_network
from ._properties import LocalRobustness, Property, TargetedAttack
from ._replay import replay
from ._result import VerificationResult
from ._split import split_search

#: branch and bound's share of the time the interval pass and the attack leave: of the 528 MNIST
#: and digits queries, branch and bound left classes open on 32 and the solver decided none of
#: them, so nearly all the time goes to branch and bound and the rest to the solver
BAB_SHARE = 0.95
#: of that stage's time, the share CP-SAT gets: branch and bound first, each class for its equal
#: part of the other 15%, then CP-SAT on the classes it left open, all at once. 15% decided the
#: most of 0.5.2's 25 MNIST timeouts (CHANGELOG 0.6.0); 5% (0.6.3, measured) decided 84/4 and
#: 94/4 but lost 19/4 and 79/4, whose counterexamples only branch and bound finds
EXACT_SHARE = 0.85
#: a targeted query's share for branch and bound (then CP-SAT) on its opponent's margin: the
#: rest goes to the exact stage on the whole property, which decides where no one class
#: always beats the target
TARGETED_BAB_SHARE = 0.5
#: input splitting's share of what is left before the exact stage, where branch and bound did not run
SPLIT_SHARE = 0.5
#: the attack's budget where branch and bound runs (which tries corners of every branch): on
#: those queries, with 2 s, the attack found none of the 63 counterexamples; branch and bound all
ATTACK_S_BAB = 0.5


def _integral(a: np.ndarray, what: str, err: type[Exception]) -> np.ndarray:
    if a.dtype == np.bool_ or a.dtype.kind not in "iuf":
        raise err(f"{what} must be integer codes, got {a.dtype} values")
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            bad = a.ravel()[np.flatnonzero(~np.isfinite(a.ravel()) | (a.ravel() != np.round(a.ravel())))[0]]
            raise err(f"{what} must be integers (codes), got {bad!r}")
    return a.astype(np.int64)


def check_sample(net: Network, x_codes: Any) -> np.ndarray:
    """One sample of input codes -> flat int64, or :class:`SampleError` saying what does not fit."""
    try:
        x = np.asarray(x_codes)
    except (TypeError, ValueError) as exc:
        raise SampleError(f"the sample is not an array of codes: {exc}") from None
    x = _integral(x, "the sample", SampleError)
    if x.size != net.n_features:
        raise SampleError(
            f"the sample has shape {list(x.shape)} ({x.size} values) but input {net.input_name!r} takes "
            f"{net.n_features} values per sample (shape {list(net.sample_shape)})"
        )
    x = x.ravel()
    lo, hi = net.input_range
    out = np.flatnonzero((x < lo) | (x > hi))
    if len(out):
        i = int(out[0])
        raise SampleError(
            f"sample value {int(x[i])} at index {i} is outside the input code range [{lo}, {hi}]"
            f" ({len(out)} value(s) outside)"
        )
    return x


def check_eps(eps: Any, n: int) -> np.ndarray:
    """ε in input codes (a scalar or one per feature) -> flat int64, or :class:`EpsError`."""
    if isinstance(eps, bool):
        raise EpsError(f"eps must be an integer number of input codes, got {eps!r}")
    try:
        e = np.asarray(eps)
    except (TypeError, ValueError):
        raise EpsError(f"eps must be an integer number of input codes, got {eps!r}") from None
    if e.dtype == np.bool_ or e.dtype.kind not in "iuf":
        raise EpsError(f"eps must be an integer number of input codes, got {eps!r}")
    if e.dtype.kind == "f" and (not np.all(np.isfinite(e)) or np.any(e != np.round(e))):
        raise EpsError(f"eps is measured in input codes and must be an integer, got {eps!r}")
    e = e.astype(np.int64)
    if np.any(e < 0):
        raise EpsError(f"eps must be >= 0, got {int(e.ravel()[np.argmax(e.ravel() < 0)])}")
    if e.ndim == 0:
        return np.full(n, int(e), np.int64)
    if e.size != n:
        raise EpsError(f"a per-feature eps needs {n} values, got shape {list(e.shape)}")
    return e.ravel()


def _box(net: Network, x: np.ndarray, eps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = net.input_range
    return np.maximum(x - eps, lo), np.minimum(x + eps, hi)


class _Query:
    """One query on one box, carrying what every stage shares."""

    def __init__(self, net: Network, prop: Property, x0: np.ndarray, lo: np.ndarray, hi: np.ndarray):
        self.net, self.prop, self.x0, self.lo, self.hi = net, prop, x0, lo, hi
        env = net.reference(x0, keep=True)
        self.y0 = np.asarray(env[net.output_name]).ravel().astype(np.int64)
        self.dtypes = {k: np.asarray(v).dtype for k, v in env.items()}
        self._bounds: dict[str, Bounds] | None = None
        self.linear: Any = None

    def sub(self, lo: np.ndarray, hi: np.ndarray, deadline: float | None = None) -> _Query:
        """The same query on a sub-box, bounded (:class:`~._errors.OutOfTime` past ``deadline``)."""
        q = copy.copy(self)
        q.lo, q.hi, q.x0 = lo, hi, np.clip(self.x0, lo, hi)
        q.bound(deadline=deadline)
        return q

    def bound(self, linear: bool = True, deadline: float | None = None) -> None:
        """The interval pass (tightened by linear bounds): every tensor's bounds, the output's forms."""
        shape = self.net.sample_shape
        box = {self.net.input_name: (self.lo.reshape(shape), self.hi.reshape(shape))}
        self._bounds, self.linear = interval_pass(
            self.net.ref.nodes, self.net.ref.constants, self.dtypes, box, linear=linear, deadline=deadline
        )

    @property
    def bounds(self) -> dict[str, Bounds]:
        if self._bounds is None:
            self.bound()
        return self._bounds

    def forms(self) -> Forms | None:
        """The output's affine forms in the inputs (flat), if the pass kept them."""
        if self.linear is None:
            return None
        f = self.linear.ensure(self.net.output_name)
        n = self.linear.n
        return Forms(f.LA.reshape(-1, n), f.Lc.ravel(), f.UA.reshape(-1, n), f.Uc.ravel())

    def proved_by_bounds(self) -> bool:
        out = self.bounds[self.net.output_name]
        if self.prop.proved_by_bounds(out.lo.ravel(), out.hi.ravel()):
            return True
        forms = self.forms()
        return forms is not None and self.prop.proved_by_forms(forms, self.linear.xlo, self.linear.xhi)

    def bab_margins(self) -> tuple[int, list[int]] | None:
        """The margins ``y[c] - y[j]`` whose proof for every ``j`` listed proves the property,
        as ``(c, [j, ...])``, for branch and bound: robustness's label against every other
        class; a targeted query's opponent (:meth:`~._properties.TargetedAttack.opponent`)
        against the target, which cannot win where that class always beats it."""
        if isinstance(self.prop, LocalRobustness):
            return self.prop.label, [j for j in range(len(self.y0)) if j != self.prop.label]
        forms = self.forms()
        if isinstance(self.prop, TargetedAttack) and forms is not None:
            return self.prop.opponent(forms, self.linear.xlo, self.linear.xhi), [self.prop.label]
        return None

    def split_weights(self) -> np.ndarray:
        """How much each input weighs on the property's worst margin (the widest input without forms)."""
        forms = self.forms()
        w = None if forms is None else self.prop.split_weights(forms, self.linear.xlo, self.linear.xhi)
        width = (self.hi - self.lo).astype(float)
        return width if w is None else w * width

    def encode(self, encoding: str, deadline: float | None = None) -> tuple[Encoding, z3.BoolRef | bool]:
        enc = encode(self.net, self.lo, self.hi, self.dtypes, self.bounds, encoding, center=self.x0,
                     deadline=deadline)  # fmt: skip
        return enc, self.prop.violation(enc.outputs, enc.out_lo, enc.out_hi)

    def solver(self, enc: Encoding, cond: z3.BoolRef, timeout_s: float) -> z3.Solver:
        s = z3.SolverFor("QF_BV")
        s.set("timeout", max(1, int(timeout_s * 1000)))
        s.add(*enc.constraints)
        s.add(cond)
        return s


def _decide(
    q: _Query,
    *,
    eps: Any,
    timeout_s: float,
    attack: bool,
    interval: bool,
    encoding: str,
    seed: int,
    t0: float,
    split: float = SPLIT_SHARE,
    bab: float = BAB_SHARE,
    solver: str = "auto",
    workers: int = 1,
) -> VerificationResult:
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    label = getattr(q.prop, "label", -1)
    exact = solver  # "cpsat" or "auto": the whole graph in CP-SAT where that applies
    solver = resolve(solver, int(np.count_nonzero(q.hi > q.lo)))  # the SMT backend
    common = {"label": label, "eps": eps, "property": q.prop.name, "encoding": encoding}
    stats: dict[str, Any] = {"box_log2_size": round(float(np.log2((q.hi - q.lo + 1).astype(float)).sum()), 2)}

    def done(verdict: str, method: str, **kw: Any) -> VerificationResult:
        return VerificationResult(verdict, method=method, total_time_s=time.perf_counter() - t0,
                                  stats=stats, **common, **kw)  # fmt: skip

    def witness(
        x: np.ndarray, method: str, expected: np.ndarray | None = None, **kw: Any
    ) -> VerificationResult:
        y = replay(q.net, q.prop, x, q.lo, q.hi, expected)
        return done("vulnerable", method, counterexample=np.asarray(x, np.int64).tolist(),
                    counterexample_label=int(np.argmax(y)), counterexample_output=y.tolist(), **kw)  # fmt: skip

    bab_proved: set[int] = set()
    others = [j for j in range(len(q.y0)) if j != label]

    def out_of_time(method: str) -> VerificationResult:
        if isinstance(q.prop, LocalRobustness):
            stats["open_classes"] = [j for j in others if j not in bab_proved]
        return done("unknown", method, reason="timeout")

    t = time.perf_counter()
    try:
        q.bound(linear=True, deadline=t0 + timeout_s)
    except OutOfTime:  # a graph too large to bound in the time: no class is ruled out
        stats["interval_s"] = time.perf_counter() - t
        return out_of_time("interval")
    proved = interval and q.proved_by_bounds()
    stats["interval_s"] = time.perf_counter() - t
    if proved:
        return done("robust", "interval")
    layered = False
    margins = q.bab_margins() if interval and bab > 0 else None
    use_bab = margins is not None
    robustness = isinstance(q.prop, LocalRobustness)

    def bab_round(deadline: float, exact: float = 0.0) -> VerificationResult | None:
        """Branch and bound on the classes still open, until ``deadline``; CP-SAT on what it
        leaves open, for the ``exact`` share of each class's time."""
        nonlocal layered
        t = time.perf_counter()
        top, rivals = margins
        open_ = [j for j in rivals if j not in bab_proved]
        got = prove_robustness(q.net, q.dtypes, q.bounds, q.lo, q.hi, top, open_, deadline, q.prop.violated,
                               workers, exact)  # fmt: skip
        if got is None:
            return None
        layered = True
        proved_now, x, st = got
        bab_proved.update(proved_now)
        for key in ("bab_branches", "cpsat_s", "cpsat_classes"):
            stats[key] = stats.get(key, 0) + st[key]
        stats["bab_s"] = stats.get("bab_s", 0.0) + time.perf_counter() - t - st["cpsat_s"]
        stats["bab_classes_proved"] = len(bab_proved)
        if x is not None:
            return witness(x, st["witness_by"])
        if bab_proved.issuperset(rivals):
            return done("robust", "cpsat" if stats["cpsat_classes"] else "bab")
        return None

    if use_bab:  # the quick proofs first: most classes fall at the root, in milliseconds
        r = bab_round(time.perf_counter() + min(1.0, 0.02 * timeout_s))
        if r is not None:
            return r
    if attack:
        t = time.perf_counter()
        budget = min(ATTACK_S_BAB if layered else 2.0, 0.1 * timeout_s)
        x, evals = run_attack(q.net, q.prop, q.x0, q.lo, q.hi, time_s=budget, seed=seed)
        stats.update(attack_s=time.perf_counter() - t, attack_evals=evals)
        if x is not None:
            return witness(x, "attack")
    if use_bab and layered:
        t = time.perf_counter()
        share = bab if robustness else min(bab, TARGETED_BAB_SHARE)
        r = bab_round(t + share * (timeout_s - (t - t0)), EXACT_SHARE)
        if r is not None:
            return r
    if interval and split > 0 and not layered:
        t = time.perf_counter()
        left = timeout_s - (t - t0)
        verdict, x, boxes = split_search(q, t + split * left)
        stats.update(split_s=time.perf_counter() - t, split_boxes=boxes)
        if verdict == "robust":
            return done("robust", "interval")
        if verdict == "vulnerable":
            return witness(x, "interval")
    t = time.perf_counter()
    if t >= t0 + timeout_s:  # no time left to encode, let alone solve
        return out_of_time("smt")
    # robustness's SMT stage takes only the classes branch and bound left open; other properties
    # are whole again after it
    if exact == "cpsat" or (exact == "auto" and not (layered and robustness) and encoding == "optimized"):
        r = _graph_stage(
            q, t0 + timeout_s, workers, done, witness, out_of_time, stats, required=exact == "cpsat"
        )
        if r is not None:
            return r
        t = time.perf_counter()
    try:
        enc, cond = q.encode(encoding, deadline=t0 + timeout_s)
    except OutOfTime:
        stats["encode_s"] = time.perf_counter() - t
        return out_of_time("smt")
    stats.update(encode_s=time.perf_counter() - t, **enc.stats)
    if cond is False:  # the encoding's own interval reasoning leaves no candidate output
        return done("robust", "smt")
    if cond is True:  # every input violates: the sample itself is a witness
        return witness(q.x0, "smt")
    goals = (
        _robustness_goals(q, enc, stats, bab_proved)
        if isinstance(q.prop, LocalRobustness) and interval
        else None
    )
    if goals == []:
        return done("robust", "smt")
    classes = None
    if goals is not None:
        classes, goals = [j for j, _ in goals], [c for _, c in goals]
    return _solve(q, enc, cond, solver, t0 + timeout_s, done, witness, stats, goals, classes)


def _graph_stage(q: _Query, deadline: float, workers: int, done: Any, witness: Any, out_of_time: Any,
                 stats: dict[str, Any], required: bool) -> VerificationResult | None:  # fmt: skip
    """The whole graph and the property as one CP-SAT model (:mod:`._cpgraph`), searched until
    ``deadline``. None where CP-SAT cannot take the graph or the property and is not ``required``:
    the SMT solver takes the query (the reason is in ``stats["cpsat_unsupported"]``)."""
    t = time.perf_counter()
    try:
        g = GraphModel(q.net, q.dtypes, q.bounds, q.lo, q.hi, deadline=deadline)
        cond = q.prop.cp_violation(g, g.outputs)
        if cond is False:  # the model's own bounds leave no candidate output
            return done("robust", "cpsat")
        if cond is True:  # every input violates: the sample itself is a witness
            return witness(q.x0, "cpsat")
        verdict, x, y = g.solve(cond, deadline, workers)
    except UnsupportedError as e:
        if required:
            raise
        stats["cpsat_unsupported"] = str(e)
        return None
    except OutOfTime:
        stats["cpsat_s"] = time.perf_counter() - t
        return out_of_time("cpsat")
    stats.update(g.stats, cpsat_s=time.perf_counter() - t)
    if verdict == "sat":
        return witness(x, "cpsat", y)
    if verdict == "unsat":
        return done("robust", "cpsat")
    return out_of_time("cpsat")


def _robustness_goals(q: _Query, enc: Encoding, stats: dict[str, Any],
                      proved: set[int] = frozenset()) -> list[tuple[int, z3.BoolRef]] | None:  # fmt: skip
    """One ``(class, goal)`` per class that may beat the label: classes the linear margin rules out
    (or branch and bound proved, ``proved``) are dropped, the rest ordered by that margin,
    smallest first (the quick UNSATs before the hard ones)."""
    if q.linear is None:
        return None
    f = q.linear.ensure(q.net.output_name)
    n = q.linear.n
    UA, Uc, LA, Lc = f.UA.reshape(-1, n), f.Uc.ravel(), f.LA.reshape(-1, n), f.Lc.ravel()
    L = q.prop.label
    lo, hi = enc.out_lo, enc.out_hi
    ranked = []
    for j in range(len(enc.outputs)):
        if j == L or j in proved:
            continue
        gap = max_of(UA[j] - LA[L], Uc[j] - Lc[L], q.linear.xlo, q.linear.xhi)
        if np.floor(gap) <= (-1 if j < L else 0):
            continue
        c = compare(">=" if j < L else ">", enc.outputs[j], int(lo[j]), int(hi[j]), enc.outputs[L],
                    int(lo[L]), int(hi[L]))  # fmt: skip
        if c is True:
            return None  # cannot happen for a sound pass: leave it to the generic path
        if c is not False:
            ranked.append((gap, j, c))
    stats["classes_ruled_out_by_margin"] = len(enc.outputs) - 1 - len(ranked)
    return [(j, c) for _, j, c in sorted(ranked, key=lambda g: g[:2])]


def goals_of(cond: z3.BoolRef) -> list[z3.BoolRef]:
    """A violation condition as separate goals: one per disjunct (e.g. per competing class)."""
    return list(cond.children()) if z3.is_or(cond) else [cond]


def _solve(q: _Query, enc: Encoding, cond: z3.BoolRef, solver: str, deadline: float, done: Any,
           witness: Any, stats: dict[str, Any], goals: list[z3.BoolRef] | None = None,
           classes: list[int] | None = None) -> VerificationResult:  # fmt: skip
    """The SMT stage: each goal checked incrementally on one solver instance; sat -> a replayed
    witness. ``classes[k]`` names goal ``k``'s class, for ``stats["open_classes"]``."""
    t = time.perf_counter()
    goals = goals_of(cond) if goals is None else goals
    isolate = enc.stats["symbolic_elements"] > ISOLATE_ELEMENTS
    with Session(enc.constraints, goals, solver, timeout_s=deadline - t, isolate=isolate) as session:
        return _check_goals(q, enc, session, t, deadline, done, witness, stats, goals, classes)


def _check_goals(q: _Query, enc: Encoding, session: Session, t: float, deadline: float, done: Any, witness: Any,
            stats: dict[str, Any], goals: list[z3.BoolRef], classes: list[int] | None) -> VerificationResult:  # fmt: skip
    """:func:`_solve`'s loop: each goal on ``session`` (built at ``t``) until one is sat or time is up."""
    stats["goals"] = len(goals)
    open_goals: list[int] = []
    reason = ""
    for k in range(len(goals)):
        left = deadline - time.perf_counter()
        if left <= 0:
            open_goals += range(k, len(goals))
            reason = reason or "timeout"
            break
        r = session.check(k, left)
        if r == "unsat":
            continue
        if r == "sat":
            stats.update(session.stats)
            solver_s = time.perf_counter() - t
            x = enc.input_codes_from(session.values(enc.variables))
            m = session.z3_model()
            expected = (np.array([enc.value(e, m) for e in enc.outputs], np.int64) if m is not None
                        else enc.evaluate(x))  # fmt: skip
            return witness(x, "smt", expected, solver_time_s=solver_s)
        open_goals.append(k)
        reason = reason or session.reason
    stats.update(session.stats, open_goals=len(open_goals))
    if classes is not None and open_goals:
        stats["open_classes"] = sorted(classes[k] for k in open_goals)
    solver_s = time.perf_counter() - t
    if not open_goals:
        return done("robust", "smt", solver_time_s=solver_s)
    return done("unknown", "smt", solver_time_s=solver_s, reason=reason or "unknown")


def _robustness_query(
    model: ModelLike | Network, x_codes: Any, eps: Any, label: int | None, input_range: tuple[int, int] | None
) -> tuple[_Query, Any]:
    net = as_network(model, input_range)
    x0 = check_sample(net, x_codes)
    e = check_eps(eps, net.n_features)
    lo, hi = _box(net, x0, e)
    q = _Query(net, LocalRobustness(0), x0, lo, hi)
    n_out = len(q.y0)
    if label is None:
        label = int(np.argmax(q.y0))
    elif isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= int(label) < n_out:
        raise SampleError(
            f"label must be an integer in [0, {n_out}) (the graph has {n_out} outputs), got {label!r}"
        )
    q.prop = LocalRobustness(int(label))
    eps_out = int(e[0]) if np.ndim(eps) == 0 else e.tolist()
    return q, eps_out


def verify_robustness(
    model: ModelLike,
    x_codes: Any,
    eps: int | Any,
    label: int | None = None,
    timeout_s: float = 60.0,
    attack: bool = True,
    *,
    input_range: tuple[int, int] | None = None,
    encoding: str = "optimized",
    interval: bool = True,
    seed: int = 0,
    solver: str = "auto",
    bab: bool = True,
    workers: int = 1,
) -> VerificationResult:
    """Local robustness of an integer ONNX graph in an L∞ box of ``eps`` input codes.

    The box is every input ``x'`` with ``|x'[i] - x_codes[i]| <= eps[i]``, intersected with
    the input code range (``input_range``, else the sidecar next to a model file, else the
    input dtype). The graph is robust iff ``argmax(y(x')) == label`` for every ``x'`` in the
    box, with numpy's argmax on the integer output (ties go to the lowest index). ``label``
    defaults to the reference's prediction on ``x_codes``.

    Per query: the interval pass (``interval``) → a cheap attack on the reference (``attack``)
    → on an MLP-shaped graph, branch and bound on backward linear bounds per competing class
    (``bab``, :data:`BAB_SHARE` of the time left), then CP-SAT on the exact integer program of
    the classes it leaves open, all at once, for :data:`EXACT_SHARE` of it → z3 on the classes left, with
    ``timeout_s`` for the whole query. A counterexample is always replayed on the reference and in onnxruntime
    before it is returned. ``solver`` is ``"z3"``, ``"bitwuzla"`` (the optional extra) or
    ``"auto"`` (the one measured faster for the query's size, of those installed).
    ``workers`` > 1 deals branch and bound's open branches to that many forked processes
    (POSIX only) and gives CP-SAT as many search threads: for one query at a time on several
    cores; a campaign already runs one query per core.

    >>> import numpy as np
    >>> from ctnn.quant import random_integer_mlp
    >>> from ctnn.verify import verify_robustness
    >>> model = random_integer_mlp([4, 6, 3], weight_bits=4, act_bits=4, in_bits=4, seed=1).to_onnx()
    >>> r = verify_robustness(model, np.array([1, -2, 3, 0]), eps=1, input_range=(-8, 7))
    >>> r.verdict in ("robust", "vulnerable")
    True
    """
    t0 = time.perf_counter()
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise VerifyError(f"workers must be a positive integer, got {workers!r}")
    timeout_s = check_timeout(timeout_s)
    q, eps_out = _robustness_query(model, x_codes, eps, label, input_range)
    return _decide(q, eps=eps_out, timeout_s=timeout_s, attack=attack, interval=interval, encoding=encoding,
                   seed=seed, t0=t0, solver=solver, bab=BAB_SHARE if bab else 0.0, workers=int(workers))  # fmt: skip


def to_smtlib(
    model: ModelLike,
    x_codes: Any,
    eps: int | Any,
    label: int | None = None,
    *,
    input_range: tuple[int, int] | None = None,
    encoding: str = "optimized",
) -> str:
    """The robustness query as SMT-LIB2 text (QF_BV): satisfiable iff a counterexample exists.

    >>> import numpy as np
    >>> from ctnn.quant import random_integer_mlp
    >>> from ctnn.verify import to_smtlib
    >>> model = random_integer_mlp([3, 4, 2], weight_bits=4, act_bits=4, in_bits=4, seed=0).to_onnx()
    >>> "(check-sat)" in to_smtlib(model, np.array([0, 1, 2]), eps=2, input_range=(-8, 7))
    True
    """
    q, eps_out = _robustness_query(model, x_codes, eps, label, input_range)
    enc, cond = q.encode(encoding)
    s = z3.SolverFor("QF_BV")
    s.add(*enc.constraints)
    s.add(z3.BoolVal(cond) if isinstance(cond, bool) else cond)
    header = (
        f"; ctnn-verify: local robustness of {q.net.source}, label {q.prop.label}, eps {eps_out}, "
        f"encoding {encoding}\n; inputs: {', '.join(str(v) for v in enc.variables) or 'none'} "
        "(value = sample code + variable)\n" if encoding == "optimized" else
        f"; ctnn-verify: local robustness of {q.net.source}, label {q.prop.label}, eps {eps_out}, "
        f"encoding {encoding}\n"
    )  # fmt: skip
    return header + "(set-logic QF_BV)\n" + s.to_smt2()


def interval_bounds(
    model: ModelLike, lo: Any, hi: Any, *, input_range: tuple[int, int] | None = None, linear: bool = True
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Sound int64 bounds ``(lo, hi)`` of every tensor of the graph for inputs in the box [lo, hi].

    ``linear`` tightens the interval pass with affine forms of the inputs (symbolic intervals).

    >>> import numpy as np
    >>> from ctnn.quant import random_integer_mlp
    >>> from ctnn.verify import interval_bounds
    >>> model = random_integer_mlp([3, 4, 2], in_bits=4, seed=0).to_onnx()
    >>> b = interval_bounds(model, np.full(3, -2), np.full(3, 2))
    >>> bool(np.all(b["y"][0] <= b["y"][1]))
    True
    """
    net = as_network(model, input_range)
    lo, hi = check_sample(net, lo), check_sample(net, hi)
    if np.any(lo > hi):
        raise SampleError("the box is empty: lo > hi somewhere")
    env = net.reference(lo, keep=True)
    dtypes = {k: np.asarray(v).dtype for k, v in env.items()}
    shape = net.sample_shape
    box = {net.input_name: (lo.reshape(shape), hi.reshape(shape))}
    b, refiner = interval_pass(net.ref.nodes, net.ref.constants, dtypes, box, linear=linear)
    if refiner is not None:  # a chain that ends at the output (a requantization) has no reader to resolve it
        refiner.ensure(net.output_name)
    return {k: (v.lo, v.hi) for k, v in b.items()}
