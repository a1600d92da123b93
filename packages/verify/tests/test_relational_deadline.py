"""The gap searches (bias, maximal difference) and relational queries honour one deadline.

Each network here takes the exact search far longer than the timeout (the bias search below needs
about 40 s with z3 on a shared 2-core machine, the enumeration of the equivalence box about 20 s),
so each call must stop on its deadline and still report what it proved: a bracket
``gap <= truth <= bound`` (the truth by enumeration), ``gap`` attained by the replayed witness pair.
The time bound is loose (5x the timeout) so that a loaded machine passes; a search that gave each
query the whole timeout, or enumerated past the deadline, takes several times longer.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
from verify_helpers import enumerate_box, in_range

from ctnn.quant import ReferenceInterpreter, random_integer_mlp
from ctnn.verify import max_difference, verify_bias, verify_equivalence

LO, HI = -8, 7
SLACK = 5.0  # elapsed time allowed, in multiples of the timeout


def _run(model, xs):
    return np.asarray(ReferenceInterpreter(model).run({"x": np.asarray(xs).astype(np.int8)})["y"], np.int64)


def _mlp(sizes, act_bits=6, seed=1):
    return random_integer_mlp(sizes, weight_bits=6, act_bits=act_bits, in_bits=4, seed=seed).to_onnx()


def _grid(n):
    return np.array(list(itertools.product(range(LO, HI + 1), repeat=n)), np.int64)


def _timed(fn, **kw):
    t = time.perf_counter()
    r = fn(**kw)
    return r, time.perf_counter() - t


def _check_bracket(r, truth, elapsed, timeout_s):
    assert elapsed < SLACK * timeout_s, (elapsed, r.queries)
    assert r.total_time_s <= elapsed
    assert r.gap <= truth <= r.bound, (truth, r)
    assert r.exact == (r.gap == r.bound)
    if not r.exact:
        assert r.reason.startswith(f"the gap is in [{r.gap}, {r.bound}]: "), r.reason


def _check_witness(model_a, model_b, r, sens=None):
    xa, xb = (np.array(w) for w in r.witness)
    ya, yb = _run(model_a, xa[None])[0], _run(model_b, xb[None])[0]
    assert (ya.tolist(), yb.tolist()) == tuple(r.witness_outputs)
    assert int(np.abs(ya - yb).max()) == r.gap
    if sens is not None:
        assert np.array_equal(np.delete(xa, sens), np.delete(xb, sens))


def test_bias_search_brackets_the_gap_by_the_deadline():
    timeout_s = 1.5
    model = _mlp([4, 16, 16, 1])
    xs = _grid(4)
    ys = []
    for v in (LO, HI):
        x = xs.copy()
        x[:, 0] = v
        ys.append(_run(model, x))
    truth = int(np.abs(ys[0] - ys[1]).max())
    # input splitting off: on four inputs it would decide the gap before the binary search starts
    r, elapsed = _timed(
        verify_bias, model=model, sensitive=0, sensitive_values=[LO, HI], input_range=(LO, HI),
        attack=False, solver="z3", timeout_s=timeout_s, split=False,
    )  # fmt: skip
    _check_bracket(r, truth, elapsed, timeout_s)
    _check_witness(model, model, r, sens=0)
    assert r.queries and sum(q["time_s"] for q in r.queries) <= elapsed


def test_max_difference_brackets_the_gap_by_the_deadline():
    timeout_s = 1.5
    a, b = _mlp([4, 16, 16, 2]), _mlp([4, 16, 16, 2], act_bits=5)
    xs = _grid(4)
    truth = int(np.abs(_run(a, xs) - _run(b, xs)).max())
    r, elapsed = _timed(
        max_difference, model_a=a, model_b=b, input_range=(LO, HI), attack=False, solver="z3",
        timeout_s=timeout_s,
    )  # fmt: skip
    _check_bracket(r, truth, elapsed, timeout_s)
    _check_witness(a, b, r)
    assert r.witness[0] == r.witness[1]


def test_enumeration_stops_at_the_deadline():
    """A box small enough to enumerate (2^20 points) but slow to: unknown on time, never a false verdict."""
    timeout_s = 1.0
    a = _mlp([5, 64, 64, 2])
    r, elapsed = _timed(verify_equivalence, model_a=a, model_b=a, input_range=(LO, HI), timeout_s=timeout_s)
    assert elapsed < SLACK * timeout_s
    assert r.method == "enumeration" and r.verdict in ("equivalent", "unknown")
    if r.verdict == "unknown":
        assert "timeout" in r.reason and r.stats["enumerated"] < 1 << 20


def test_bias_over_many_boxes_stops_at_the_deadline():
    """Every pair of five sensitive values is a box of its own (enumerated): the search stops between them."""
    timeout_s = 0.5  # the first threshold holds on every box: enumerating all ten takes about 3 s
    values = [-8, -4, 0, 4, 7]
    model = _mlp([5, 32, 32, 1], seed=5)  # a gap (24) well below the first threshold tried
    xs = _grid(4)
    outs = []
    for v in values:
        x = np.insert(xs, 0, v, axis=1)
        outs.append(_run(model, x)[:, 0])
    outs = np.stack(outs)
    truth = int((outs.max(0) - outs.min(0)).max())
    r, elapsed = _timed(
        verify_bias, model=model, sensitive=0, sensitive_values=values, input_range=(LO, HI),
        timeout_s=timeout_s,
    )  # fmt: skip
    _check_bracket(r, truth, elapsed, timeout_s)
    _check_witness(model, model, r, sens=0)


def test_a_bound_pass_out_of_time_leaves_the_dtype_bound(monkeypatch):
    from ctnn.verify._errors import OutOfTime

    a, b = _mlp([10, 6, 2], seed=1), _mlp([10, 6, 2], seed=2)  # 16^10 inputs: no enumeration

    def late(deadline, where):
        raise OutOfTime(where)

    monkeypatch.setattr("ctnn.verify._interval.check_deadline", late)
    r = max_difference(a, b, input_range=(LO, HI), timeout_s=30)
    # int8 outputs can differ by 255 at most; the search itself stops at once (its queries' bound passes)
    assert r.bound == 255 and not r.exact and r.total_time_s < 30
    assert r.reason.startswith(f"the gap is in [{r.gap}, 255]: ")
    _check_witness(a, b, r)


def test_the_gap_ascent_keeps_its_deadline_on_a_slow_graph():
    """A graph that takes 0.2 ms a point would take 13 s for the ascent's sample alone: the ascent
    runs what fits by its deadline, in chunks sized from the rate it measures, and what it
    reports is attained."""
    from ctnn.verify._attack import ascend

    def values(xs):
        time.sleep(2e-4 * len(xs))
        return np.asarray(xs).sum(1)

    box = (np.full(6, -50), np.full(6, 50))
    t = time.perf_counter()
    value, point, stats = ascend(values, [box], t + 0.5)
    elapsed = time.perf_counter() - t
    assert elapsed < 0.5 * SLACK and 0 < stats["evals"] < 1 << 16, (elapsed, stats)
    assert value == int(values(point[None])[0]) and np.all(box[0] <= point) and np.all(point <= box[1])


def test_an_undecided_probe_leaves_the_thresholds_above_it_open(monkeypatch):
    """The binary search's first query asks whether the witness is the largest gap. Where that one
    threshold cannot be decided (here: every query at it says unknown), the thresholds above it
    are still tried: the search finds the largest gap and proves it."""
    import ctnn.verify._relational as rel

    a, b = _mlp([3, 6, 1], seed=1), _mlp([3, 6, 1], act_bits=4, seed=1)
    truth = int(np.abs(_run(a, _grid(3)) - _run(b, _grid(3))).max())
    real = rel.decide_boxes
    stuck: list[int] = []

    def give_up_at_the_witness(pairing, prop, boxes, stages, deadline):
        if not stuck:
            stuck.append(prop.threshold)  # the probe
        if prop.threshold == stuck[0]:
            return rel._timed_out(prop, deadline, "given up (test)"), None
        return real(pairing, prop, boxes, stages, deadline)

    monkeypatch.setattr(rel, "decide_boxes", give_up_at_the_witness)
    # the attack and input splitting off: the binary search has the whole box to itself
    r = max_difference(a, b, input_range=(LO, HI), timeout_s=60, attack=False, split=False)
    assert stuck and r.queries[0]["threshold"] == stuck[0] < truth and r.queries[0]["verdict"] == "unknown"
    assert r.exact and r.gap == r.bound == truth, r
    _check_witness(a, b, r)


def test_an_undecided_probe_at_the_answer_is_not_asked_again_halfway(monkeypatch):
    """Where the ascent found the largest gap and its query cannot be decided, the thresholds
    above it are proved one by one; when halving comes back down to the witness, the probe's
    query is not run again there, only once more at the end with all the time left."""
    import ctnn.verify._relational as rel

    lo, hi = in_range(7)
    a = random_integer_mlp([3, 8, 1], weight_bits=6, act_bits=6, in_bits=7, seed=0).to_onnx()
    b = random_integer_mlp([3, 8, 1], weight_bits=6, act_bits=4, in_bits=7, seed=0).to_onnx()
    xs = enumerate_box(np.full(3, lo), np.full(3, hi))
    truth = int(np.abs(_run(a, xs) - _run(b, xs)).max())
    real = rel.decide_boxes

    def give_up_at_the_answer(pairing, prop, boxes, stages, deadline):
        if prop.threshold == truth:
            return rel._timed_out(prop, deadline, "given up (test)"), None
        return real(pairing, prop, boxes, stages, deadline)

    monkeypatch.setattr(rel, "decide_boxes", give_up_at_the_answer)
    r = max_difference(a, b, input_range=(lo, hi), timeout_s=60, split=False)
    assert r.ascent["gap"] == r.gap == truth and r.bound == truth + 1, r
    asked = [q["threshold"] for q in r.queries]
    assert asked[0] == asked[-1] == truth and asked.count(truth) == 2, r.queries
    assert all(q["verdict"] == "robust" for q in r.queries[1:-1]), r.queries
