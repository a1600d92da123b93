"""Targeted attacks, bias and equivalence equal the exhaustive truth on tiny networks.

Every box here is enumerated on the reference; the verifier runs twice per case: the full
pipeline, and with the attack and the interval stages off so that the SMT solver decides.
"""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from verify_helpers import EXACT_SOLVERS, box_of, enumerate_box, in_range, method_of

from ctnn.quant import ReferenceInterpreter, random_integer_mlp
from ctnn.verify import (
    max_difference,
    verify_argmax_equivalence,
    verify_bias,
    verify_equivalence,
    verify_targeted,
)

# the full pipeline, and each exact solver alone
STAGES = [{}, *({"attack": False, "interval": False, "solver": s} for s in EXACT_SOLVERS)]
# relational queries on small boxes are enumerated when the attack is on: also run bounds + SMT without it
REL_STAGES = [*STAGES, {"attack": False}]


def _run(model, xs):
    return np.asarray(ReferenceInterpreter(model).run({"x": xs.astype(np.int8)})["y"], np.int64)


@pytest.mark.parametrize("kw", STAGES)
def test_targeted_equals_enumeration(tiny_nets, kw):
    methods = set()
    for model, bits, sizes, seed in tiny_nets[:8]:
        lo, hi = in_range(bits)
        rng = np.random.default_rng(seed)
        x0 = rng.integers(lo, hi + 1, size=sizes[0])
        for eps in (0, 1, 2):
            blo, bhi = box_of(x0, eps, lo, hi)
            xs = enumerate_box(blo, bhi)
            pred = np.argmax(_run(model, xs), axis=1)
            for target in range(sizes[-1]):
                r = verify_targeted(model, x0, eps, target, input_range=(lo, hi), **kw)
                assert r.verdict == ("vulnerable" if np.any(pred == target) else "robust"), (
                    seed,
                    eps,
                    target,
                    r,
                )
                if r.vulnerable:
                    cex = np.array(r.counterexample)
                    assert np.all(blo <= cex) and np.all(cex <= bhi)
                    assert int(np.argmax(_run(model, cex[None])[0])) == target == r.counterexample_label
                methods.add(r.method)
    # in the full pipeline, branch and bound's quick round comes before the attack on MLPs
    assert methods >= ({method_of(kw["solver"])} if kw else {"bab"})


def test_targeted_branch_and_bound_equals_enumeration():
    """On MLPs a targeted query is first branch and bound on its opponent's margin: proved, the
    target never wins; where the margin misses at inputs the target does not win at, that is no
    witness, and the exact stage on the whole property decides."""
    methods = set()
    for seed in (*range(6), 14, 18):
        sizes = [[3, 4, 3], [2, 3, 2], [3, 5, 4, 3], [4, 3, 3], [3, 6, 4]][seed % 5]
        bits = 3 + seed % 2
        model = random_integer_mlp(sizes, weight_bits=4, act_bits=4, in_bits=bits, seed=seed).to_onnx()
        lo, hi = in_range(bits)
        x0 = np.random.default_rng(seed).integers(lo, hi + 1, size=sizes[0])
        for eps in (1, 2, 3):
            blo, bhi = box_of(x0, eps, lo, hi)
            pred = np.argmax(_run(model, enumerate_box(blo, bhi)), axis=1)
            for target in range(sizes[-1]):
                r = verify_targeted(model, x0, eps, target, input_range=(lo, hi), attack=False)
                assert r.verdict == ("vulnerable" if np.any(pred == target) else "robust"), (
                    seed,
                    eps,
                    target,
                    r,
                )
                if r.vulnerable:
                    assert int(np.argmax(_run(model, np.array(r.counterexample)[None])[0])) == target
                if r.method != "interval":
                    assert "bab_s" in r.stats, r  # branch and bound ran first
                methods.add((r.method, r.verdict))
    # proofs and witnesses of branch and bound, and proofs only the whole property gives
    assert methods >= {("bab", "robust"), ("bab", "vulnerable"), ("cpsat", "robust")}


def _bias_truth(model, n, sens, values, lo, hi):
    xs = enumerate_box(np.full(n, lo), np.full(n, hi))
    best = 0
    ys = {}
    for v in values:
        x = xs.copy()
        x[:, sens] = v
        ys[v] = _run(model, x)
    for v1, v2 in itertools.combinations(values, 2):
        best = max(best, int(np.abs(ys[v1] - ys[v2]).max()))
    return best


@pytest.mark.parametrize("kw", REL_STAGES)
def test_bias_gap_equals_enumeration(kw):
    for seed, (sizes, values) in enumerate([([3, 4, 1], [0, 1]), ([3, 3, 1], None), ([2, 4, 3], [-2, 0, 3])]):
        bits = 3
        lo, hi = in_range(bits)
        model = random_integer_mlp(sizes, weight_bits=4, act_bits=4, in_bits=bits, seed=seed).to_onnx()
        sens = seed % sizes[0]
        vals = values if values is not None else list(range(lo, hi + 1))
        truth = _bias_truth(model, sizes[0], sens, vals, lo, hi)
        r = verify_bias(model, sens, sensitive_values=values, input_range=(lo, hi), timeout_s=60, **kw)
        assert r.exact and r.gap == r.bound == truth, (seed, r)
        xa, xb = (np.array(w) for w in r.witness)
        assert np.array_equal(np.delete(xa, sens), np.delete(xb, sens)) and xa[sens] != xb[sens]
        ya, yb = _run(model, xa[None])[0], _run(model, xb[None])[0]
        assert ya.tolist() == r.witness_outputs[0] and yb.tolist() == r.witness_outputs[1]
        assert int(np.abs(ya - yb).max()) == truth


def test_bias_in_a_box_and_one_output():
    lo, hi = in_range(3)
    model = random_integer_mlp([3, 5, 2], weight_bits=4, act_bits=4, in_bits=3, seed=4).to_onnx()
    x0 = np.array([1, -2, 0])
    r = verify_bias(model, 2, x0, 1, sensitive_range=(-2, 2), output=1, input_range=(lo, hi))
    blo, bhi = box_of(x0, 1, lo, hi)
    blo[2], bhi[2] = 0, 0
    xs = enumerate_box(blo, bhi)
    outs = []
    for v in range(-2, 3):
        x = xs.copy()
        x[:, 2] = v
        outs.append(_run(model, x)[:, 1])
    outs = np.stack(outs)
    assert r.exact and r.gap == int((outs.max(0) - outs.min(0)).max())
    assert r.witness_output == 1


def _pair(seed):
    sizes = [[3, 4, 2], [2, 3, 3], [3, 3, 2]][seed % 3]
    bits = 3
    a = random_integer_mlp(sizes, weight_bits=4, act_bits=4, in_bits=bits, seed=seed)
    # the same weights at fewer activation bits: requantized outputs that mostly agree
    b = random_integer_mlp(sizes, weight_bits=4, act_bits=3, in_bits=bits, seed=seed)
    return a.to_onnx(), b.to_onnx(), sizes, bits


@pytest.mark.parametrize("kw", REL_STAGES)
def test_equivalence_equals_enumeration(kw):
    for seed in range(4):
        a, b, sizes, bits = _pair(seed)
        lo, hi = in_range(bits)
        x0 = np.random.default_rng(seed).integers(lo, hi + 1, size=sizes[0])
        blo, bhi = box_of(x0, 2, lo, hi)
        xs = enumerate_box(blo, bhi)
        ya, yb = _run(a, xs), _run(b, xs)
        diff = int(np.abs(ya - yb).max())
        for delta in sorted({0, diff // 2, diff - 1, diff} - {-1}):
            r = verify_equivalence(a, b, x0, 2, delta=delta, input_range=(lo, hi), **kw)
            assert r.verdict == ("equivalent" if diff <= delta else "different"), (seed, delta, r)
            if not r.equivalent:
                x = np.array(r.counterexample)
                assert r.difference > delta
                assert r.outputs == (_run(a, x[None])[0].tolist(), _run(b, x[None])[0].tolist())
        g = max_difference(a, b, x0, 2, input_range=(lo, hi), **kw)
        assert g.exact and g.gap == diff
        same = np.argmax(ya, 1) == np.argmax(yb, 1)
        r = verify_argmax_equivalence(a, b, x0, 2, input_range=(lo, hi), **kw)
        assert r.verdict == ("equivalent" if same.all() else "different"), (seed, r)
        if not r.equivalent:
            x = np.array(r.counterexample)
            assert np.argmax(_run(a, x[None])[0]) != np.argmax(_run(b, x[None])[0])


def test_argmax_equivalence_by_kept_class_equals_enumeration():
    """Two MLPs that each keep one class over the box agree everywhere: the proof by two robustness
    queries, and the product graph where either class moves (for a graph and itself, together)."""
    ways = set()
    for seed in (*range(8), 19, 22):  # 19 and 22: the first graph keeps its class, the second does not
        sizes = [[3, 4, 2], [2, 3, 3], [3, 3, 2], [4, 5, 3]][seed % 4]
        a, b = (
            random_integer_mlp(sizes, weight_bits=4, act_bits=k, in_bits=3, seed=seed).to_onnx()
            for k in (4, 3)
        )
        lo, hi = in_range(3)
        x0 = np.random.default_rng(seed).integers(lo, hi + 1, size=sizes[0])
        for other, eps in itertools.product((a, b), (1, 3)):
            blo, bhi = box_of(x0, eps, lo, hi)
            xs = enumerate_box(blo, bhi)
            same = np.argmax(_run(a, xs), 1) == np.argmax(_run(other, xs), 1)
            # the attack off: a box this small is otherwise enumerated
            r = verify_argmax_equivalence(a, other, x0, eps, input_range=(lo, hi), attack=False)
            assert r.verdict == ("equivalent" if same.all() else "different"), (seed, eps, r)
            if not r.equivalent:
                x = np.array(r.counterexample)
                assert np.argmax(_run(a, x[None])[0]) != np.argmax(_run(other, x[None])[0])
            ways.add((r.verdict, "kept_class" in r.stats))
    assert ways >= {("equivalent", True), ("equivalent", False), ("different", False)}


def test_equivalence_in_real_units():
    a, b, sizes, bits = _pair(1)
    lo, hi = in_range(bits)
    xs = enumerate_box(np.full(sizes[0], lo), np.full(sizes[0], hi))
    (sa, za), (sb, zb) = (0.375, 0), (0.8125, 1)
    diff = np.abs(sa * (_run(a, xs) - za) - sb * (_run(b, xs) - zb)).max()
    g = max_difference(a, b, units="real", scales=((sa, za), (sb, zb)), input_range=(lo, hi))
    assert g.exact and g.gap == pytest.approx(diff) and g.units == "real"
    for delta, verdict in ((diff, "equivalent"), (diff - 0.0625, "different")):
        r = verify_equivalence(
            a, b, delta=delta, units="real", scales=((sa, za), (sb, zb)), input_range=(lo, hi)
        )
        assert r.verdict == verdict


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), eps=st.integers(0, 3), delta=st.integers(0, 6))
def test_equivalence_hypothesis(seed, eps, delta):
    sizes = [3, 3, 2]
    lo, hi = in_range(3)
    a = random_integer_mlp(sizes, weight_bits=3, act_bits=4, in_bits=3, seed=seed).to_onnx()
    b = random_integer_mlp(sizes, weight_bits=3, act_bits=4, in_bits=3, seed=seed + 1).to_onnx()
    x0 = np.random.default_rng(seed).integers(lo, hi + 1, size=3)
    blo, bhi = box_of(x0, eps, lo, hi)
    xs = enumerate_box(blo, bhi)
    diff = int(np.abs(_run(a, xs) - _run(b, xs)).max())
    r = verify_equivalence(a, b, x0, eps, delta=delta, input_range=(lo, hi), attack=False, interval=False)
    assert r.verdict == ("equivalent" if diff <= delta else "different")


@pytest.mark.parametrize("enumerate_box", [4096, 1])
def test_max_search_finds_the_largest_value_and_brackets_it_when_stopped(monkeypatch, enumerate_box):
    """Branch and bound over boxes on a function with one peak, whose bound on a box is exact or one
    above: the search cuts to the peak (also with every box bounded down to single points), and a
    search stopped at once still brackets it."""
    from ctnn.verify._split import max_search

    monkeypatch.setattr("ctnn.verify._split.ENUMERATE_BOX", enumerate_box)

    rng = np.random.default_rng(0)
    for case in range(6):
        n = 2 + case % 3
        w = rng.choice([-2, -1, 1, 2], size=n)
        c = rng.integers(-20, 21, size=n)

        def values(xs, w=w, c=c):  # a peak at c, lower everywhere else
            return -np.abs(np.asarray(xs) - c) @ np.abs(w) + 100

        def upper(lo, hi, c=c, w=w, loose=case % 2):
            nearest = np.clip(c, lo, hi)
            return int(values(nearest[None])[0]) + loose, np.abs(w) * (hi - lo)  # sound

        boxes = [(np.full(n, -40), np.full(n, 40)), (np.full(n, -10), np.full(n, 60))]
        truth = max(int(values(np.clip(c, lo, hi)[None])[0]) for lo, hi in boxes)
        start = (int(values(np.zeros((1, n), np.int64))[0]), np.zeros(n, np.int64))
        (value, point), bound, stats = max_search(
            boxes, upper, values, time.perf_counter() + 30, start, 10**6
        )
        assert value == bound == truth == int(values(point[None])[0]), (case, stats)
        assert any(np.all(lo <= point) and np.all(point <= hi) for lo, hi in boxes)
        # out of time at once: the start is kept, and the bound still covers the truth
        (value, point), bound, stats = max_search(boxes, upper, values, time.perf_counter() - 1, start, 10**6)
        assert stats["stopped"] == "time" and value == int(values(point[None])[0]) <= truth <= bound < 10**6


def test_gap_search_by_input_splitting_equals_enumeration():
    """On a few inputs, input splitting alone finds the exact bias and maximal difference:
    no binary-search query is left to run, and the witness pair is replayed. (The attack is off:
    with it, boxes this small would be enumerated instead.)"""
    lo, hi = in_range(5)
    decided = 0
    for seed in range(4):
        sizes = [[3, 8, 1], [4, 6, 2], [3, 5, 4, 1], [4, 8, 2]][seed]
        a = random_integer_mlp(sizes, weight_bits=5, act_bits=5, in_bits=5, seed=seed).to_onnx()
        b = random_integer_mlp(sizes, weight_bits=5, act_bits=4, in_bits=5, seed=seed).to_onnx()
        xs = enumerate_box(np.full(sizes[0], lo), np.full(sizes[0], hi))
        ya, yb = _run(a, xs), _run(b, xs)
        x_lo, x_hi = xs.copy(), xs.copy()
        x_lo[:, 0], x_hi[:, 0] = lo, hi
        truths = {
            "bias": int(np.abs(_run(a, x_lo) - _run(a, x_hi)).max()),
            "difference": int(np.abs(ya - yb).max()),
        }
        for kind, r in (
            ("bias", verify_bias(a, 0, sensitive_values=[lo, hi], input_range=(lo, hi), attack=False)),
            ("difference", max_difference(a, b, input_range=(lo, hi), attack=False)),
        ):
            assert r.exact and r.gap == r.bound == truths[kind], (seed, kind, r)
            assert r.split["gap"] <= truths[kind] <= r.split["bound"], (seed, kind, r.split)
            decided += r.split["bound"] == truths[kind] and not r.queries
            ma, mb = (a, a) if kind == "bias" else (a, b)
            xa, xb = (np.array(w) for w in r.witness)
            assert int(np.abs(_run(ma, xa[None])[0] - _run(mb, xb[None])[0]).max()) == r.gap
    assert decided >= 6, decided


def test_gap_search_on_small_boxes_runs_every_point_once():
    """Boxes small enough to enumerate are run once for the largest gap, not once per threshold."""
    lo, hi = in_range(4)
    model = random_integer_mlp([4, 6, 2], weight_bits=4, act_bits=4, in_bits=4, seed=3).to_onnx()
    values = [-8, 0, 7]
    xs = enumerate_box(np.full(3, lo), np.full(3, hi))
    outs = np.stack([_run(model, np.insert(xs, 1, v, axis=1)) for v in values])
    truth = int((outs.max(0) - outs.min(0)).max())
    r = verify_bias(model, 1, sensitive_values=values, input_range=(lo, hi), timeout_s=60)
    assert r.exact and r.gap == truth and not r.queries
    assert r.split["enumerated"] and r.split["points"] == 3 * 16**3, r.split  # three pairs of values
    xa, xb = (np.array(w) for w in r.witness)
    assert int(np.abs(_run(model, xa[None])[0] - _run(model, xb[None])[0]).max()) == truth


def test_ascent_steps_over_plateaus_to_the_peak():
    """A function of wide plateaus around one peak, over two boxes: the random sample lands on the
    peak's plateau by chance only, one-code moves never leave a plateau, and the ascent's moves of
    ``2^k`` codes climb to it. Out of time at once, it reports nothing."""
    from ctnn.verify._attack import ascend

    rng = np.random.default_rng(1)
    for case in range(4):
        n = 3 + case % 2
        c = rng.integers(-150, 150, size=n)

        def values(xs, c=c):  # plateaus 16 codes wide, the highest (100) around c
            return 100 - (np.abs(np.asarray(xs) - c) // 16).sum(1)

        boxes = [(np.full(n, -300), np.full(n, 300)), (c - 40, c + 300)]
        value, point, stats = ascend(values, boxes, time.perf_counter() + 30, seed=case)
        assert value == 100 == int(values(point[None])[0]), (case, value, stats)
        assert any(np.all(lo <= point) and np.all(point <= hi) for lo, hi in boxes)
        assert stats["rounds"] >= 2 and stats["evals"] > 1 << 16
        assert ascend(values, boxes, time.perf_counter() - 1) == (-1, None, {"evals": 0, "rounds": 0})


def test_gap_search_climbs_before_it_splits():
    """On boxes too large to enumerate, the ascent's gap is attained and bounds the result from
    below; the search then ends at the exact gap of the enumeration. Where the ascent reached it,
    the binary search (alone, without input splitting) needs one query: is there a larger gap?"""
    lo, hi = in_range(7)
    climbed = 0
    for seed in range(2):
        sizes = [3, 8, 1]
        a = random_integer_mlp(sizes, weight_bits=6, act_bits=6, in_bits=7, seed=seed).to_onnx()
        b = random_integer_mlp(sizes, weight_bits=6, act_bits=4, in_bits=7, seed=seed).to_onnx()
        xs = enumerate_box(np.full(3, lo), np.full(3, hi))  # 2^21 points: above ENUMERATE_MAX
        truth = int(np.abs(_run(a, xs) - _run(b, xs)).max())
        for split in (True, False)[: 2 - seed]:
            r = max_difference(a, b, input_range=(lo, hi), timeout_s=60, split=split)
            assert r.exact and r.gap == truth, (seed, r)
            assert r.ascent["start"] <= r.ascent["gap"] <= truth and r.ascent["evals"] >= 1 << 16, r.ascent
            if not split and r.ascent["gap"] == truth:
                assert [(q["threshold"], q["verdict"]) for q in r.queries] == [(truth, "robust")], r.queries
        climbed += r.ascent["gap"] == truth
    assert climbed >= 1, climbed


def test_equivalence_on_a_wide_box_climbs_first():
    """On a box too large to enumerate, ``verify_equivalence`` first runs the gap's ascent: below the
    largest difference it answers ``different`` with a replayed witness (the ascent's, where it
    reaches above ``delta``); at it, ``equivalent``, as enumeration says."""
    lo, hi = in_range(7)
    climbed = 0
    for seed in range(2):
        a = random_integer_mlp([3, 8, 1], weight_bits=6, act_bits=6, in_bits=7, seed=seed).to_onnx()
        b = random_integer_mlp([3, 8, 1], weight_bits=6, act_bits=4, in_bits=7, seed=seed).to_onnx()
        xs = enumerate_box(np.full(3, lo), np.full(3, hi))  # 2^21 points: above ENUMERATE_MAX
        truth = int(np.abs(_run(a, xs) - _run(b, xs)).max())
        r = verify_equivalence(a, b, input_range=(lo, hi), delta=truth - 1, timeout_s=60)
        assert r.verdict == "different" and r.difference == truth, (seed, r)
        ya, yb = _run(a, np.array([r.inputs[0]]))[0], _run(b, np.array([r.inputs[1]]))[0]
        assert [ya.tolist(), yb.tolist()] == list(r.outputs) and int(np.abs(ya - yb).max()) == truth
        climbed += r.method == "ascent" and r.stats["ascent"]["gap"] == truth
        if seed == 0:
            r = verify_equivalence(a, b, input_range=(lo, hi), delta=truth, timeout_s=60)
            assert r.verdict == "equivalent" and "ascent" not in r.stats, r
    assert climbed >= 1, climbed
