"""Relational queries: two runs in one product graph, decided by the usual stages and replayed as a pair.

A :class:`Pairing` holds the product graph (:mod:`._product`) and how its input columns feed
the two runs. Every witness is replayed twice: the product graph on the reference and in
onnxruntime (by the query itself), then each run on its own graph, again on the reference and
in onnxruntime, which must reproduce the product's halves exactly.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ._attack import ascend
from ._errors import BoxError, OutOfTime, WitnessError
from ._inputs import JointCodes
from ._network import Network
from ._product import common_dtype, n_outputs, product_graph
from ._properties import OutputGap, Property, weighed_dtype
from ._replay import replay
from ._result import GapResult, VerificationResult
from ._split import box_points, max_search
from ._stages import Deadline, Stages
from ._verify import _integral, _Query, check_eps, check_sample


def input_box(
    net: Network, x_codes: Any = None, eps: Any = None, box: tuple[Any, Any] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The flat box ``(lo, hi)``: ``box`` itself, an L∞ ball ``x_codes ± eps``, or the whole input domain.

    Raises :class:`BoxError` naming the first value that does not fit the input codes.
    """
    rlo, rhi = net.input_range
    if box is not None:
        if x_codes is not None or eps is not None:
            raise BoxError("give either box=(lo, hi) or x_codes and eps, not both")
        try:
            lo, hi = box
        except (TypeError, ValueError):
            raise BoxError(f"box must be a pair (lo, hi) of input code arrays, got {box!r}") from None
        lo, hi = (_box_side(net, v, what) for v, what in ((lo, "lower"), (hi, "upper")))
        bad = np.flatnonzero(lo > hi)
        if len(bad):
            i = int(bad[0])
            raise BoxError(
                f"the box is empty at feature {i}: lower bound {int(lo[i])} > upper bound {int(hi[i])}"
            )
        return lo, hi
    if x_codes is None:
        if eps is not None:
            raise BoxError("eps needs a sample (x_codes) to centre the box on")
        return np.full(net.n_features, rlo, np.int64), np.full(net.n_features, rhi, np.int64)
    x = check_sample(net, x_codes)
    e = check_eps(0 if eps is None else eps, net.n_features)
    return np.maximum(x - e, rlo), np.minimum(x + e, rhi)


def _box_side(net: Network, v: Any, what: str) -> np.ndarray:
    a = np.asarray(v)
    if a.ndim == 0:
        a = np.full(net.n_features, a)
    a = _integral(a, f"the box's {what} bounds", BoxError).ravel()
    if a.size != net.n_features:
        raise BoxError(f"the box's {what} bounds have {a.size} values, the input takes {net.n_features}")
    rlo, rhi = net.input_range
    out = np.flatnonzero((a < rlo) | (a > rhi))
    if len(out):
        i = int(out[0])
        raise BoxError(
            f"the box's {what} bound {int(a[i])} at feature {i} is outside the input code range "
            f"[{rlo}, {rhi}]"
        )
    return a


def check_output(m: int, output: Any) -> int | None:
    """``output`` as an index into ``m`` outputs (None: all), or :class:`BoxError` naming it."""
    if output is None:
        return None
    if (
        isinstance(output, (bool, np.bool_))
        or not isinstance(output, (int, np.integer))
        or not 0 <= int(output) < m
    ):
        raise BoxError(f"output {output!r} is out of range: the graph has {m} output(s), indices 0..{m - 1}")
    return int(output)


#: boxes with at most this many points are decided by running every point (when the attack is on):
#: a batched reference run of a small network costs microseconds per point
ENUMERATE_MAX = 1 << 20
ENUMERATE_CHUNK = 1 << 15


class Pairing:
    """The product of two runs: ``a`` on ``cols[index_a]`` and ``b`` on ``cols[index_b]``; with
    ``joint``, the columns are joint cells (:mod:`._inputs`) and each run reads its codes of them.

    The product's outputs are both runs' outputs less their ``zero_points``; the gaps between them
    are weighed by ``factors`` (:meth:`gap`), outside the graph."""

    def __init__(
        self,
        a: Network,
        b: Network,
        n_cols: int,
        index_a: np.ndarray,
        index_b: np.ndarray,
        col_range: tuple[int, int],
        factors: tuple[int, int] = (1, 1),
        zero_points: tuple[int, int] = (0, 0),
        joint: JointCodes | None = None,
    ):
        self.a, self.b = a, b
        self.index_a, self.index_b = np.asarray(index_a, np.int64), np.asarray(index_b, np.int64)
        self.factors, self.zero_points, self.joint = factors, zero_points, joint
        self.m = n_outputs(a)
        model = product_graph(
            a,
            b,
            n_cols,
            self.index_a,
            self.index_b,
            zero_points=zero_points,
            in_dtype=common_dtype(col_range),
            tables=self.tables,
        )
        self.net = Network(model, input_range=col_range)

    @property
    def tables(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Each run's table from a column's value to its code (None: the value is the code)."""
        return (None, None) if self.joint is None else (self.joint.a, self.joint.b)

    def gap(self, threshold: int, output: int | None = None) -> OutputGap:
        """The property ``|k_a·a_j - k_b·b_j| > threshold`` on the product's outputs."""
        return OutputGap(self.m, threshold, output, self.factors)

    def query(self, prop: Property, lo: np.ndarray, hi: np.ndarray, x0: np.ndarray | None = None) -> _Query:
        x0 = (lo + hi) // 2 if x0 is None else np.clip(x0, lo, hi)
        return _Query(
            self.net, prop, np.asarray(x0, np.int64), np.asarray(lo, np.int64), np.asarray(hi, np.int64)
        )

    def runs(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The two runs' inputs for one flat product input."""
        cols = np.asarray(cols, np.int64)
        xa, xb = cols[self.index_a], cols[self.index_b]
        ta, tb = self.tables
        return (xa if ta is None else ta[xa]), (xb if tb is None else tb[xb])

    def real_input(self, cols: np.ndarray) -> list[float] | None:
        """A real input that both runs of ``cols`` quantize from (checked), or None without joint cells."""
        return None if self.joint is None else self.joint.real_input(np.asarray(cols, np.int64)[self.index_a])

    def replay_pair(self, cols: Any, y_product: Any) -> tuple[np.ndarray, np.ndarray]:
        """Run both inputs on their own graphs (reference and onnxruntime); they must match the product."""
        outs = []
        y_product = np.asarray(y_product, np.int64).ravel()
        for net, x, half, z in zip(
            (self.a, self.b), self.runs(cols), (y_product[: self.m], y_product[self.m :]), self.zero_points
        ):
            y_ref = np.asarray(net.reference(x)[net.output_name])
            y_ort = np.asarray(net.onnxruntime(x))
            if not np.array_equal(y_ref.ravel(), y_ort.ravel()):
                raise WitnessError(
                    f"the reference and onnxruntime disagree on a witness of {net.source}: "
                    f"{y_ref.ravel().tolist()} vs {y_ort.ravel().tolist()} (x = {x.tolist()})"
                )
            y = y_ref.ravel().astype(np.int64)
            if not np.array_equal(y - z, half):
                raise WitnessError(
                    f"{net.source} alone gives {y.tolist()} on x = {x.tolist()}, but the product graph "
                    f"claims {half.tolist()} (zero point {z}): a bug in ctnn-verify"
                )
            outs.append(y)
        return outs[0], outs[1]


def enumerated(lo: np.ndarray, hi: np.ndarray, stages: Stages) -> bool:
    """Whether :func:`decide_boxes` decides the box by running every point of it: at most
    :data:`ENUMERATE_MAX` points, with the attack on."""
    return stages.attack and np.log2((hi - lo + 1).astype(float)).sum() <= np.log2(ENUMERATE_MAX)


def decide_boxes(
    pairing: Pairing,
    prop: Property,
    boxes: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    stages: Stages,
    deadline: Deadline,
) -> tuple[VerificationResult, tuple[np.ndarray, np.ndarray] | None]:
    """Decide ``prop`` on every box of the product (a union) by ``deadline``: the first witness, else
    robust or unknown (a box not reached in time, or a small box's enumeration cut short, is unknown).

    Returns the query's result (on the product graph) and, for a witness, the two runs' replayed outputs.
    """
    unknown: VerificationResult | None = None
    last: VerificationResult | None = None
    for k, (lo, hi, x0) in enumerate(boxes):
        if k and deadline.left() <= 0:
            # the first box always runs its cheap stages; later ones would only overrun the deadline
            return _timed_out(prop, deadline, f"timeout before box {k + 1} of {len(boxes)}"), None
        if enumerated(lo, hi, stages):
            r = _enumerate(pairing, prop, lo, hi, deadline)
        else:
            # a floor: the cheap stages may still decide when the time is all but gone
            r = stages.decide(
                pairing.query(prop, lo, hi, x0), eps=None, deadline=deadline.within(floor_s=0.01)
            )
        last = r
        if r.vulnerable:
            return r, pairing.replay_pair(r.counterexample, r.counterexample_output)
        if r.verdict == "unknown":
            unknown = r
    return (unknown or last), None


def _timed_out(prop: Property, deadline: Deadline, reason: str) -> VerificationResult:
    return VerificationResult(
        "unknown", label=-1, eps=None, property=prop.name, method="smt", reason=reason,
        total_time_s=deadline.elapsed(),
    )  # fmt: skip


def _enumerate(
    pairing: Pairing, prop: Property, lo: np.ndarray, hi: np.ndarray, deadline: Deadline
) -> VerificationResult:
    """Decide a small box exactly by running the product graph on every point of it (in chunks)."""
    t0 = time.perf_counter()
    total = int(np.prod((hi - lo + 1).astype(float)))
    stats = {"box_log2_size": round(float(np.log2(total)), 2), "enumerated": total}
    common = {"label": -1, "eps": None, "property": prop.name, "method": "enumeration", "stats": stats}
    for start, grid in box_points(lo, hi, ENUMERATE_CHUNK):
        if start and deadline.left() <= 0:
            stats["enumerated"] = start
            return VerificationResult(
                "unknown", total_time_s=time.perf_counter() - t0, reason="timeout (enumeration)", **common
            )
        bad = np.flatnonzero(prop.violated(pairing.net.outputs(grid)))
        if len(bad):
            x = grid[int(bad[0])]
            y = replay(pairing.net, prop, x, lo, hi)
            return VerificationResult(
                "vulnerable",
                counterexample=x.tolist(),
                counterexample_output=y.tolist(),
                total_time_s=time.perf_counter() - t0,
                **common,
            )
    return VerificationResult("robust", total_time_s=time.perf_counter() - t0, **common)


def _enumerate_gap(pairing: Pairing, boxes: list, gaps: Any, deadline: Deadline,
                   best: tuple[int, tuple[np.ndarray, np.ndarray]]) -> tuple[Any, bool, dict[str, Any]]:  # fmt: skip
    """The largest gap over boxes small enough to enumerate (:func:`enumerated`), every point run once:
    ``((gap, (x, y)), complete, stats)``; not ``complete`` where the deadline came first (``gap`` is
    then the largest seen)."""
    t = time.perf_counter()
    gap, witness = best
    stats = {"enumerated": True, "points": 0, "stopped": ""}
    for lo, hi, _ in boxes:
        for _, grid in box_points(lo, hi, ENUMERATE_CHUNK):
            if stats["points"] and deadline.left() <= 0:
                stats.update(stopped="time", time_s=time.perf_counter() - t)
                return (gap, witness), False, stats
            y = pairing.net.outputs(grid)
            g = gaps(y)
            k = int(np.argmax(g))
            if g[k] > gap:
                gap, witness = int(g[k]), (grid[k], y[k])
            stats["points"] += len(grid)
    stats["time_s"] = time.perf_counter() - t
    return (gap, witness), True, stats


def upper_gap(pairing: Pairing, boxes: list, output: int | None, deadline: float | None = None) -> int:
    """A proved bound on ``|a_j - b_j|`` over the boxes, from interval and linear bounds
    (:class:`~._errors.OutOfTime` past ``deadline``)."""
    prop = pairing.gap(0, output)
    best = 0
    for lo, hi, x0 in boxes:
        q = pairing.query(prop, lo, hi, x0)
        q.bound(linear=True, deadline=deadline)
        best = max(best, _gap_bound(q))
    return best


def _gap_bound(q: _Query) -> int:
    """A proved bound on the output gap of ``q`` (an :class:`OutputGap` query, bounded) over its box."""
    prop = q.prop
    out = q.bounds[q.net.output_name]
    olo, ohi = out.lo.ravel().astype(np.int64), out.hi.ravel().astype(np.int64)
    forms = q.forms()
    best = None
    for u, d, ku, kd in prop._pairs():
        v = ku * int(ohi[u]) - kd * int(olo[d])
        if forms is not None:
            v = min(v, int(np.floor(prop.most(forms, u, d, ku, kd, q.linear.xlo, q.linear.xhi))))
        best = v if best is None else max(best, v)
    return best


def _output_ranges(pairing: Pairing) -> list[tuple[int, int]]:
    """Each run's product outputs (less its zero point) can reach at most its output dtype's range."""
    out = []
    for net, z in zip((pairing.a, pairing.b), pairing.zero_points):
        lo = np.full(net.n_features, net.input_range[0], np.int64)
        info = np.iinfo(np.asarray(net.reference(lo)[net.output_name]).dtype)
        out.append((int(info.min) - z, int(info.max) - z))
    return out


def _range_gap(pairing: Pairing) -> int:
    """The trivial bound: the widest the two outputs can differ given their dtypes (the SMT-only search)."""
    (alo, ahi), (blo, bhi) = _output_ranges(pairing)
    ka, kb = pairing.factors
    return max(ka * ahi - kb * blo, kb * bhi - ka * alo)


#: weighted gaps: the search runs over the achievable values where the two output ranges have at
#: most this many pairs of values
GAP_VALUES = 1 << 22


def _gap_values(pairing: Pairing) -> np.ndarray | None:
    """Every value ``|k_a·a - k_b·b|`` can take, sorted, where the runs' outputs are weighed
    (``factors`` not ``(1, 1)``); None where every integer may be one, or the pairs are too many.

    In real units the weights are large and the achievable gaps sparse: a binary search over them
    takes about ``log2`` of their number of steps, where one over the integers would take ~60."""
    if pairing.factors == (1, 1):
        return None
    (alo, ahi), (blo, bhi) = _output_ranges(pairing)
    if (ahi - alo + 1) * (bhi - blo + 1) > GAP_VALUES:
        return None
    ka, kb = pairing.factors
    dtype = weighed_dtype(max(ka, kb), max(abs(alo), ahi, abs(blo), bhi))
    a = ka * np.arange(alo, ahi + 1).astype(dtype)
    b = kb * np.arange(blo, bhi + 1).astype(dtype)
    return np.unique(np.abs(a[:, None] - b[None, :]))


def _snap(values: np.ndarray | None, v: int) -> int:
    """The largest achievable gap at or below ``v`` (``v`` itself where any integer may be one)."""
    if values is None:
        return v
    i = int(np.searchsorted(values, v, side="right")) - 1
    return int(values[i]) if i >= 0 else v


def _threshold(values: np.ndarray | None, best: int, ceiling: int) -> int:
    """The middle threshold in ``[best, ceiling)``: of the integers, or of the achievable gaps."""
    if values is None:
        return (best + ceiling) // 2
    lo, hi = np.searchsorted(values, [best, ceiling], side="left")
    return int(values[(lo + hi) // 2])


def max_gap(
    pairing: Pairing,
    boxes: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    stages: Stages,
    deadline: Deadline,
    *,
    kind: str,
    output: int | None = None,
    scale: int = 1,
    units: str = "codes",
    params: dict[str, Any] | None = None,
) -> GapResult:
    """The largest ``|a_j - b_j|`` over the boxes: every point once where the boxes are small enough
    (:func:`_enumerate_gap`); else a coordinate ascent on the gap for a witness (:func:`_ascend_gap`,
    where ``stages.attack``), input splitting on the gap (:func:`_split_gap`, where ``stages.split``
    and ``stages.interval``), then a binary search on the threshold, one query per step.

    Invariant: a replayed witness pair attains ``gap``; no pair exceeds ``bound``. A query
    ``gap > t`` with ``gap <= t < bound`` either finds a pair above ``t`` (raising ``gap``) or proves
    there is none (lowering ``bound`` to ``t``), until they meet or ``deadline`` passes: the whole
    search shares it, each query taking part of what is left. Then ``exact`` is False and
    ``[gap, bound]`` brackets the largest gap, ``gap`` still attained by the replayed witness.
    """
    m = pairing.m
    measure = pairing.gap(0, output)  # the gaps of product outputs, per row
    gaps = measure.gaps
    values = _gap_values(pairing)
    # the starting witness: the best box centre
    best, witness = -1, None
    for lo, hi, x0 in boxes:
        x = (lo + hi) // 2 if x0 is None else np.clip(x0, lo, hi)
        y = pairing.net.outputs(x[None])[0]
        g = int(gaps(y[None])[0])
        if g > best:
            best, witness = g, (x, y)
    small = all(enumerated(lo, hi, stages) for lo, hi, _ in boxes)
    ascent: dict[str, Any] = {}
    if _climbs(boxes, stages):
        (best, witness), ascent = _ascend_gap(pairing, boxes, gaps, deadline, (best, witness), stages.seed)
    bounded = stages.interval
    try:
        start = upper_gap(pairing, boxes, output, deadline.at) if bounded else _range_gap(pairing)
    except OutOfTime:  # graphs too large to bound in the time: the dtypes' bound, and no search
        start, bounded = _range_gap(pairing), False
    bound = max(start, best)
    split: dict[str, Any] = {}
    reason = ""
    if best < bound and small:
        # every point once, where the binary search would run them once per threshold
        (best, witness), complete, split = _enumerate_gap(pairing, boxes, gaps, deadline, (best, witness))
        bound = best if complete else bound
        reason = "" if complete else "the enumeration ran out of time"
    elif bounded and stages.split and best < bound:
        (best, witness), bound, split = _split_gap(pairing, boxes, output, deadline, (best, witness), bound)
    bound = _snap(values, bound)
    queries: list[dict[str, Any]] = []
    # thresholds at or above an undecided one are not tried again, until every one below it is
    # settled: then it has all the time left, once. An enumeration leaves none to try.
    retried = bool(split.get("enumerated"))
    ceiling = best if retried else bound  # never above bound
    overrun = 0.0  # the most a query ran past its share: encoding and solvers check their deadline coarsely
    # the first query asks whether the witness is already the largest gap: where the ascent or input
    # splitting found it, one proof ends the search, where bisection from it takes about
    # log2(bound - gap) of them; a larger gap found instead raises the lower end as a step would
    probe = PROBE_FIRST and best < ceiling
    asked: int | None = None  # the probe's threshold, where it was undecided
    while best < ceiling or (best < bound and not retried):
        left = deadline.left() - overrun
        if left <= 0:
            reason = "time ran out"
            break
        if probe:
            t, share = best, (left if left < 3 else left / 3)
        elif best < ceiling:
            t = _threshold(values, best, ceiling)
            if t == asked:  # the probe's query, undecided: it caps now, and is retried last
                ceiling, asked = t, None
                continue
            # a third of what is left per query (all of it near the end): a hard query above the true
            # gap must not eat the budget that lower, easier thresholds could use
            share = left if left < 3 else left / 3
        else:
            t, share, retried = ceiling, left, True
        tq = time.perf_counter()
        r, _ = decide_boxes(pairing, pairing.gap(t, output), boxes, stages, deadline.within(share))
        took = time.perf_counter() - tq
        overrun = max(overrun, took - share)
        queries.append({"threshold": t, "verdict": r.verdict, "method": r.method, "time_s": took})
        if r.vulnerable:
            y = np.asarray(r.counterexample_output, np.int64)
            g = int(gaps(y[None])[0])
            if g <= t or g > bound:
                raise WitnessError(
                    f"a witness for gap > {t} has gap {g} (proved bound {bound}): a bug in ctnn-verify"
                )
            best, witness = g, (np.asarray(r.counterexample, np.int64), y)
            if best > ceiling:  # the undecided threshold is passed: those above it are open again
                ceiling = bound
        elif r.robust:
            bound = ceiling = t
        else:
            reason = f"query gap > {t} undecided ({r.reason})"
            if probe:  # an undecided probe caps nothing: the thresholds above the witness stay open
                asked = t
            else:
                ceiling = t
        probe = False
    reason = "" if best == bound else f"the gap is in [{best}, {bound}]: {reason or 'time ran out'}"
    x, y = witness
    ya, yb = pairing.replay_pair(x, y)
    xa, xb = pairing.runs(x)
    idx = list(range(m)) if output is None else [output]
    return GapResult(
        kind=kind,
        gap=best / scale if scale != 1 else best,
        bound=bound / scale if scale != 1 else bound,
        exact=best == bound,
        output=output,
        witness=(xa.tolist(), xb.tolist()),
        witness_outputs=(ya.tolist(), yb.tolist()),
        real_witness=pairing.real_input(x),
        witness_output=idx[int(np.argmax(measure.gap_per_output(y[None])[0]))],
        units=units,
        queries=queries,
        total_time_s=deadline.elapsed(),
        reason=reason,
        params=params or {},
        split=split,
        ascent=ascent,
    )


#: a gap search's binary search first asks whether its witness is the largest gap (measured: 0.8.0)
PROBE_FIRST = True

#: the share of a gap search's time that its coordinate ascent may take, before input splitting
ASCENT_SHARE = 0.05


def _climbs(boxes: list, stages: Stages) -> bool:
    """Whether the gap's ascent runs: with the attack on, where a box is too large to enumerate."""
    return stages.attack and not all(enumerated(lo, hi, stages) for lo, hi, _ in boxes)


def _ascend_gap(pairing: Pairing, boxes: list, gaps: Any, deadline: Deadline,
                best: tuple[int, tuple[np.ndarray, np.ndarray]], seed: int) -> tuple[Any, dict[str, Any]]:  # fmt: skip
    """The coordinate ascent on the gap (:func:`~._attack.ascend`) for :data:`ASCENT_SHARE` of the
    time: ``((gap, (x, y)), stats)``, the better of ``best`` and what it found."""
    t = time.perf_counter()
    gap, witness = best
    value, x, stats = ascend(lambda xs: gaps(pairing.net.outputs(xs)), [(lo, hi) for lo, hi, _ in boxes],
                             t + ASCENT_SHARE * deadline.left(), seed)  # fmt: skip
    stats.update(start=gap, gap=max(gap, value), time_s=time.perf_counter() - t)
    if value > gap:
        gap, witness = value, (x, pairing.net.outputs(x[None])[0])
    return (gap, witness), stats


def ascent_witness(
    pairing: Pairing, prop: OutputGap, boxes: list, stages: Stages, deadline: Deadline
) -> VerificationResult | None:
    """A replayed witness for ``prop`` (an output gap above its threshold) from the coordinate ascent
    on the gap (:func:`_ascend_gap`), or None. It runs where the attack is on and a box is too
    large to enumerate: on a few wide inputs (two quantizations of a regressor) it finds in a
    second the differences the attack's one-code moves do not reach, and the exact stage runs
    out of time on."""
    if not _climbs(boxes, stages):
        return None
    t = time.perf_counter()
    (gap, witness), stats = _ascend_gap(pairing, boxes, prop.gaps, deadline, (-1, None), stages.seed)
    if gap <= prop.threshold:
        return None
    x = witness[0]
    lo, hi = next((lo, hi) for lo, hi, _ in boxes if np.all(lo <= x) and np.all(x <= hi))
    y = replay(pairing.net, prop, x, lo, hi)
    return VerificationResult(
        "vulnerable", label=-1, eps=None, property=prop.name, method="ascent", counterexample=x.tolist(),
        counterexample_output=y.tolist(), total_time_s=time.perf_counter() - t, stats={"ascent": stats},
    )  # fmt: skip


#: the share of a gap search's time that input splitting may take before the binary search
GAP_SPLIT_SHARE = 0.5


def _split_gap(pairing: Pairing, boxes: list, output: int | None, deadline: Deadline,
               best: tuple[int, tuple[np.ndarray, np.ndarray]], bound: int) -> tuple[Any, int, dict[str, Any]]:  # fmt: skip
    """Input splitting on the gap (:func:`~._split.max_search`) for :data:`GAP_SPLIT_SHARE` of
    the time: ``((gap, (x, y)), bound, stats)``, the witness ``x`` with its product output ``y``."""
    t = time.perf_counter()
    prop = pairing.gap(0, output)
    q = pairing.query(prop, boxes[0][0], boxes[0][1])

    def upper(lo: np.ndarray, hi: np.ndarray) -> tuple[int, np.ndarray]:
        sub = q.sub(lo, hi, deadline.at)
        return _gap_bound(sub), sub.split_weights()

    def values(xs: np.ndarray) -> np.ndarray:
        return prop.gaps(pairing.net.outputs(xs))

    gap, (x, y) = best
    (gap, x), bound, stats = max_search([(lo, hi) for lo, hi, _ in boxes], upper, values,
                                        t + GAP_SPLIT_SHARE * deadline.left(), (gap, x), bound)  # fmt: skip
    stats.update(gap=gap, bound=bound, time_s=time.perf_counter() - t)
    return (gap, (x, pairing.net.outputs(x[None])[0])), bound, stats
