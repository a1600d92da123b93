"""Verdicts equal the exhaustive truth on tiny networks: every point of every box is run on the reference."""

from __future__ import annotations

import time

import numpy as np
import pytest
from verify_helpers import SMT_SOLVER, box_of, exhaustive_truth, in_range, method_of, ops_graph, wrap_graph

from ctnn.quant import ReferenceInterpreter, random_integer_mlp
from ctnn.verify import verify_robustness
from ctnn.verify._network import as_network

# (attack, interval): the full pipeline, and the exact solver alone (nothing may decide before it)
STAGES = [(True, True), (False, False)]


def _check(model, x0, eps, lo, hi, seen, label=None, **kw):
    truth_label, robust, bad = exhaustive_truth(model, x0, eps, lo, hi, label)
    r = verify_robustness(model, x0, eps, label=label, input_range=(lo, hi), **kw)
    assert r.label == truth_label
    assert r.verdict == ("robust" if robust else "vulnerable"), (x0.tolist(), eps, kw, r)
    if r.vulnerable:
        blo, bhi = box_of(x0, eps, lo, hi)
        cex = np.array(r.counterexample)
        assert np.all(blo <= cex) and np.all(cex <= bhi)
        assert any(np.array_equal(cex, b) for b in bad)  # one of the enumerated violations
        assert r.counterexample_label != truth_label
    seen.add((r.verdict, r.method))
    return r


@pytest.mark.parametrize(
    "encoding,attack,interval,solver",
    [("naive", *STAGES[0], "auto"), ("optimized", *STAGES[0], "auto"), ("naive", *STAGES[1], SMT_SOLVER),
     ("optimized", *STAGES[1], SMT_SOLVER), ("optimized", *STAGES[1], "cpsat")],
)  # fmt: skip
def test_verdicts_equal_enumeration(tiny_nets, encoding, attack, interval, solver):
    seen: set[tuple[str, str]] = set()
    for model, bits, sizes, seed in tiny_nets:
        lo, hi = in_range(bits)
        rng = np.random.default_rng(seed)
        for x0 in rng.integers(lo, hi + 1, size=(2, sizes[0])):
            for eps in (0, 1, 2, 3):
                r = _check(model, x0, eps, lo, hi, seen, encoding=encoding, attack=attack, interval=interval,
                           solver=solver)  # fmt: skip
                if not (attack or interval):
                    assert r.method == method_of(solver)
    verdicts = {v for v, _ in seen}
    assert verdicts == {"robust", "vulnerable"}, seen  # the test could fail both ways
    if not (attack or interval):  # the solver itself proved and refuted
        assert {("robust", method_of(solver)), ("vulnerable", method_of(solver))} <= seen
    else:  # branch and bound runs before the attack on these MLPs and checks its corners too
        assert ("robust", "interval") in seen
        assert {("vulnerable", "attack"), ("vulnerable", "bab")} & seen


def test_solver_is_called_on_both_verdicts(tiny_nets):
    """SMT really runs (not only the encoding's own interval reasoning) for robust and vulnerable queries."""
    called = set()
    for model, bits, sizes, seed in tiny_nets:
        lo, hi = in_range(bits)
        x0 = np.random.default_rng(seed + 100).integers(lo, hi + 1, size=sizes[0])
        for eps in (1, 2):
            r = _check(model, x0, eps, lo, hi, set(), attack=False, interval=False, solver=SMT_SOLVER)
            if r.stats.get("solver_calls"):
                called.add(r.verdict)
    assert called == {"robust", "vulnerable"}


def test_per_feature_eps_and_a_given_label(tiny_nets):
    seen: set = set()
    for model, bits, sizes, seed in tiny_nets[:6]:
        lo, hi = in_range(bits)
        rng = np.random.default_rng(seed)
        x0 = rng.integers(lo, hi + 1, size=sizes[0])
        eps = rng.integers(0, 4, size=sizes[0])
        _check(model, x0, eps, lo, hi, seen, attack=False)
        n_out = sizes[-1]
        for label in range(n_out):  # a label other than the prediction: x0 itself is a counterexample
            _check(model, x0, 1, lo, hi, seen, label=label, attack=False, interval=False)
    assert {v for v, _ in seen} == {"robust", "vulnerable"}


@pytest.mark.parametrize(
    "encoding,solver", [("naive", SMT_SOLVER), ("optimized", SMT_SOLVER), ("optimized", "cpsat")]
)
@pytest.mark.parametrize("graph,lo,hi", [(ops_graph, -8, 7), (wrap_graph, -128, 127)])
def test_ops_graph_verdicts_equal_enumeration(graph, lo, hi, encoding, solver):
    """Gather tables, Reshape/Slice/Concat, ReduceSum, Min/Max, Equal/Greater/Where, negative Div;
    int8 arithmetic that wraps around."""
    model = graph()
    seen: set = set()
    rng = np.random.default_rng(7)
    n_in = model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    for x0 in rng.integers(lo, hi + 1, size=(6, n_in)):
        for eps in (0, 1, 2):
            for attack, interval in STAGES:
                _check(model, x0, eps, lo, hi, seen, encoding=encoding, attack=attack, interval=interval,
                       solver=solver)  # fmt: skip
    assert {v for v, _ in seen} == {"robust", "vulnerable"}
    assert ("robust", method_of(solver)) in seen or ("vulnerable", method_of(solver)) in seen


def test_ties_go_to_the_lowest_index():
    """argmax as numpy computes it on the int8 output: a tie is won by the lower index."""
    from verify_helpers import identity_graph

    m = identity_graph(3)
    ref = ReferenceInterpreter(m)
    assert int(np.argmax(ref.run({"x": np.array([[4, 4, 4]], np.int8)})["y"][0])) == 0
    for attack, interval in STAGES:
        kw = {"attack": attack, "interval": interval}
        # x' in {[0,0,0], [1,0,0], [2,0,0]}: [0,0,0] ties, and index 0 wins the tie -> robust
        r = verify_robustness(m, np.array([1, 0, 0]), [1, 0, 0], label=0, **kw)
        assert r.verdict == "robust", r
        # label 1 on x' in {[0,0,0], [0,1,0], [0,2,0]}: only [0,0,0] (a tie, won by 0) is a counterexample
        r = verify_robustness(m, np.array([0, 1, 0]), [0, 1, 0], label=1, **kw)
        assert r.verdict == "vulnerable" and r.counterexample == [0, 0, 0] and r.counterexample_label == 0, r
        # a tie between 1 and 2 goes to 1: label 2 with x' in {[0,1,1], [0,1,2]} fails only at the tie
        r = verify_robustness(m, np.array([0, 1, 2]), [0, 0, 1], label=2, **kw)
        assert r.verdict == "vulnerable" and r.counterexample == [0, 1, 1] and r.counterexample_label == 1, r
        # label 1 with x' in {[0,2,2], [0,2,3]}: 2 never ties 1 from above without winning -> not robust;
        # label 1 with x' in {[0,3,2], [0,3,3]}: the tie [0,3,3] goes to 1 -> robust
        r = verify_robustness(m, np.array([0, 3, 2]), [0, 0, 1], label=1, **kw)
        assert r.verdict == "robust", r


def test_input_splitting_decides_what_the_bounds_alone_cannot(tiny_nets):
    """Without the attack and branch and bound: bounds, then splitting the box, then SMT; splitting
    really decides some."""
    split_decided = set()
    for model, bits, sizes, seed in tiny_nets:
        lo, hi = in_range(bits)
        rng = np.random.default_rng(seed + 7)
        for x0 in rng.integers(lo, hi + 1, size=(2, sizes[0])):
            for eps in (1, 3):
                r = _check(model, x0, eps, lo, hi, set(), attack=False, bab=False)
                if r.method == "interval" and r.stats.get("split_boxes", 0) > 1:
                    split_decided.add(r.verdict)
    assert split_decided == {"robust", "vulnerable"}


def test_branch_and_bound_decides_both_ways_and_agrees_with_enumeration(tiny_nets):
    """Without the attack, branch and bound on backward bounds proves and refutes (its witness replayed),
    and every verdict equals the enumeration."""
    decided = set()
    for model, bits, sizes, seed in tiny_nets:
        lo, hi = in_range(bits)
        rng = np.random.default_rng(seed + 11)
        for x0 in rng.integers(lo, hi + 1, size=(3, sizes[0])):
            for eps in (1, 2, 3):
                r = _check(model, x0, eps, lo, hi, set(), attack=False)
                if r.method == "bab":
                    decided.add(r.verdict)
    assert decided == {"robust", "vulnerable"}


def test_attack_decides_when_branch_and_bound_is_off(tiny_nets):
    """The attack stage alone finds replayed witnesses (branch and bound usually finds them first)."""
    seen: set[tuple[str, str]] = set()
    for model, bits, sizes, seed in tiny_nets[:6]:
        lo, hi = in_range(bits)
        rng = np.random.default_rng(seed)
        for x0 in rng.integers(lo, hi + 1, size=(2, sizes[0])):
            for eps in (2, 3):
                _check(model, x0, eps, lo, hi, seen, bab=False)
    assert ("vulnerable", "attack") in seen


def test_unknown_names_every_class_that_wins_somewhere(tiny_nets):
    """A query cut short by its timeout says which classes are still open: every class that some
    input of the box makes the prediction is among them, and the label never is."""
    unknown = 0
    for model, bits, sizes, seed in tiny_nets:
        lo, hi = in_range(bits)
        ref = ReferenceInterpreter(model)
        x0 = np.random.default_rng(seed + 5).integers(lo, hi + 1, size=sizes[0])
        for eps, timeout, bab in ((2, 1e-6, True), (3, 1e-6, True), (3, 0.01, False), (3, 0.03, False)):
            label, robust, bad = exhaustive_truth(model, x0, eps, lo, hi)
            r = verify_robustness(
                model, x0, eps, input_range=(lo, hi), timeout_s=timeout, attack=False, bab=bab
            )
            if r.verdict != "unknown":
                assert r.verdict == ("robust" if robust else "vulnerable")
                continue
            unknown += 1
            winners = (
                set(np.argmax(ref.run({"x": bad.astype(np.int8)})["y"], 1).tolist()) if len(bad) else set()
            )
            open_ = r.stats["open_classes"]
            assert winners <= set(open_) and label not in open_, (winners, open_, r)
    assert unknown  # the timeouts are short enough to leave some queries open


def test_input_splitting_gives_up_without_a_proof():
    """On a box it cannot prove piece by piece, splitting stops with no box proved: after
    ``give_up`` boxes, or once ``patience`` of its time has gone (slow bounds)."""
    from ctnn.verify._properties import LocalRobustness
    from ctnn.verify._split import split_search
    from ctnn.verify._verify import _Query

    model = random_integer_mlp([16, 24, 24, 4], weight_bits=4, act_bits=4, in_bits=4, seed=0).to_onnx()
    net = as_network(model, (-8, 7))
    x0 = np.random.default_rng(0).integers(-8, 8, 16)
    lo, hi = np.maximum(x0 - 3, -8), np.minimum(x0 + 3, 7)
    q = _Query(net, LocalRobustness(int(np.argmax(net.outputs(x0[None])[0]))), x0, lo, hi)
    verdict, _, n = split_search(q, time.perf_counter() + 600, give_up=12, patience=1.0)
    assert (verdict, n) == ("open", 12)
    verdict, _, n = split_search(q, time.perf_counter() + 600, give_up=12, patience=0.0)
    assert (verdict, n) == ("open", 0)  # no time to wait for a proof: the solver has it all
