"""CP-SAT's margin decisions equal enumeration of the whole box, on the root's intervals and on branches'."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from verify_helpers import enumerate_box, layered_case

from ctnn.verify._bab import LayeredBounds, prove_robustness
from ctnn.verify._cpsat import solve_margin, solve_margins, step_conflicts
from ctnn.verify._properties import LocalRobustness


def _truth(lb: LayeredBounds, ls, us, label: int, other: int, thr: int) -> np.ndarray:
    """Every input of the box whose accumulators lie in the intervals and whose margin is below ``thr``."""
    xs = enumerate_box(lb.xlo, lb.xhi)
    zs, y = lb.run(xs)
    inside = np.ones(len(xs), bool)
    for k, z in enumerate(zs):
        cols = slice(None) if k < len(zs) - 1 else [label, other]
        inside &= np.all((ls[k][cols] <= z[:, cols]) & (z[:, cols] <= us[k][cols]), axis=1)
    return xs[inside & (y[:, label] - y[:, other] < thr)]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), eps=st.integers(1, 2), narrow=st.booleans(), conflicts=st.booleans(),
       data=st.data())  # fmt: skip
def test_solve_margin_equals_enumeration(seed, eps, narrow, conflicts, data):
    """sat exactly where some input of the branch misses the margin (its witness one of them),
    unsat where none does: on the root's intervals, and on random narrower ones (a branch); with
    and without the first-layer step conflicts."""
    net, layers, _, bounds, xlo, xhi, _ = layered_case(seed, sizes=(4, 6, 5, 3), eps=eps)
    lb = LayeredBounds(layers, net.ref.constants, xlo, xhi, bounds)
    assert lb.ok
    ls, us = [a.copy() for a in lb.root[0]], [a.copy() for a in lb.root[1]]
    if narrow:  # a hidden layer's intervals cut at random points inside the root's
        rng = np.random.default_rng(seed)
        k = data.draw(st.integers(0, len(layers) - 2))
        cut = rng.integers(ls[k], us[k] + 1)
        keep_low = rng.random(len(cut)) < 0.5
        us[k] = np.where(keep_low, cut, us[k])
        ls[k] = np.where(keep_low, ls[k], cut)
    n_out = layers[-1].W.shape[1]
    label = data.draw(st.integers(0, n_out - 1))
    other = data.draw(st.integers(0, n_out - 2))
    other += other >= label
    thr = data.draw(st.integers(-1, 2))
    bad = _truth(lb, ls, us, label, other, thr)
    r, x = solve_margin(lb, ls, us, label, other, thr, 30.0, conflicts=conflicts)
    assert r == ("sat" if len(bad) else "unsat")
    if r == "sat":
        assert any(np.array_equal(x, b) for b in bad)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_step_conflicts_are_pairs_no_input_meets(seed):
    """Every reported pair of halfspaces has no integer point of the box in common (enumerated),
    and pairs of one owner are never reported."""
    rng = np.random.default_rng(seed)
    F, n = 3, 12
    xlo = rng.integers(-3, 2, F).astype(np.float64)
    xhi = xlo + rng.integers(0, 4, F)
    C = rng.integers(-4, 5, (n, F)).astype(np.float64)
    xs = enumerate_box(xlo, xhi).astype(np.float64)
    meets = xs @ C.T
    # thresholds around the values the box takes, so some pairs meet and some do not
    D = np.array([rng.choice(meets[:, i]) for i in range(n)]) + rng.integers(-1, 2, n)
    meets = meets >= D
    owner = rng.integers(0, 6, n)
    for i, j in step_conflicts(C, D, owner, xlo, xhi):
        assert owner[i] != owner[j]
        assert not np.any(meets[:, i] & meets[:, j]), (i, j)


def test_step_conflicts_finds_pairs_that_miss():
    """In the box [0, 2]²: x1 + x2 >= 3 and x1 + x2 <= 2 never meet; x1 >= 1 and x2 >= 1 do.
    x1 >= 2, x2 >= 2 and x1 + x2 <= 3 meet two by two (never all three): no pair."""
    box = np.zeros(2), np.full(2, 2.0)
    C = np.array([[1.0, 1.0], [-1.0, -1.0], [1.0, 0.0], [0.0, 1.0]])
    got = step_conflicts(C, np.array([3.0, -2.0, 1.0, 1.0]), np.arange(4), *box)
    assert (0, 1) in got and (2, 3) not in got
    C = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    D = np.array([2.0, 2.0, -3.0])
    assert step_conflicts(C, D, np.arange(3), *box) == []


def test_step_conflicts_are_kept_per_box():
    """The conflicts are computed once per box: every class's CP-SAT call after the first reuses
    them, and each verdict still equals enumeration."""
    net, layers, _, bounds, xlo, xhi, _ = layered_case(3, sizes=(4, 6, 5, 3), eps=2)
    lb = LayeredBounds(layers, net.ref.constants, xlo, xhi, bounds)
    kept = None
    for other in (1, 2):
        bad = _truth(lb, *lb.root, 0, other, 0)
        assert solve_margin(lb, *lb.root, 0, other, 0, 30.0, conflicts=True)[0] == (
            "sat" if len(bad) else "unsat"
        )
        assert len(lb.cache) == 1
        # the same list, not one computed again under the same key
        kept = next(iter(lb.cache.values())) if kept is None else kept
        assert next(iter(lb.cache.values())) is kept


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), eps=st.integers(1, 2), objective=st.booleans(), data=st.data())
def test_solve_margins_equals_enumeration_class_by_class(seed, eps, objective, data):
    """All classes at once, on threads: each class decided is decided as enumeration says; a
    witness misses its class's margin; only a search stopped by another's witness is unknown.
    With the margin's accumulators minimized or not."""
    net, layers, _, bounds, xlo, xhi, _ = layered_case(seed, sizes=(4, 6, 5, 3), eps=eps)
    lb = LayeredBounds(layers, net.ref.constants, xlo, xhi, bounds)
    n_out = layers[-1].W.shape[1]
    label = data.draw(st.integers(0, n_out - 1))
    others = [j for j in range(n_out) if j != label]
    verdicts, x, by = solve_margins(lb, label, others, 30.0, objective=objective)
    assert sorted(verdicts) == others
    truth = {j: len(_truth(lb, *lb.root, label, j, 1 if j < label else 0)) > 0 for j in others}
    for j, v in verdicts.items():
        assert v in ({"sat", "unsat"} if x is None else {"sat", "unsat", "unknown"})
        if v != "unknown":
            assert v == ("sat" if truth[j] else "unsat"), (j, v)
    if x is None:
        assert by is None and not any(truth.values())
    else:
        assert verdicts[by] == "sat" and np.all((lb.xlo <= x) & (x <= lb.xhi))
        out = lb.forward(x[None])[0]
        assert out[label] - out[by] < (1 if by < label else 0)


def test_prove_robustness_with_cp_sat_alone_equals_enumeration():
    """Branch and bound given no time (``exact=1``): CP-SAT decides every class, both ways."""
    seen = set()
    for seed in range(8):
        net, layers, dtypes, bounds, xlo, xhi, _ = layered_case(seed, sizes=(4, 6, 5, 3), eps=2)
        lb = LayeredBounds(layers, net.ref.constants, xlo, xhi, bounds)
        xs = enumerate_box(xlo, xhi)
        y = lb.forward(xs)
        label = int(np.argmax(lb.forward(((xlo + xhi) // 2)[None])[0]))
        prop = LocalRobustness(label)
        others = [j for j in range(y.shape[1]) if j != label]
        got = prove_robustness(net, dtypes, bounds, xlo, xhi, label, others, 1e18, prop.violated, exact=1.0)
        proved, x, stats = got
        wins = prop.violated(y)
        if x is None:
            assert not wins.any() and proved == set(others)
            seen.add("robust")
        else:
            assert prop.violated(lb.forward(x[None]))[0] and np.all((xlo <= x) & (x <= xhi))
            seen.add("vulnerable")
        assert stats["bab_branches"] <= len(others)  # only the roots: CP-SAT had all the time
    assert seen == {"robust", "vulnerable"}


def test_a_witness_the_reference_disowns_fails_loudly(monkeypatch):
    """CP-SAT's input is run on the reference; one that does not miss the margin there is a bug."""
    net, layers, _, bounds, xlo, xhi, _ = layered_case(3, sizes=(4, 6, 5, 3), eps=2)
    lb = LayeredBounds(layers, net.ref.constants, xlo, xhi, bounds)
    xs = enumerate_box(xlo, xhi)
    y = lb.forward(xs)
    label, other = 0, 1
    thr = int((y[:, label] - y[:, other]).max()) + 1  # every input misses it: sat
    assert solve_margin(lb, *lb.root, label, other, thr, 30.0)[0] == "sat"
    monkeypatch.setattr(
        lb, "forward", lambda x: np.zeros((len(x), y.shape[1]), np.int64) + 10 * np.eye(y.shape[1])[label]
    )
    with pytest.raises(AssertionError, match="layered encoding is wrong"):
        solve_margin(lb, *lb.root, label, other, thr, 30.0)
