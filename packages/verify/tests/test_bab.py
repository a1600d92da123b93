"""Branch and bound's parts are sound: step-function lines, backward bounds, the LP's dual bound."""

from __future__ import annotations

import multiprocessing
import os
import time

import numpy as np
import pytest
from scipy import sparse
from verify_helpers import enumerate_box, layered_case

from ctnn.verify import _bab as bab
from ctnn.verify._bab import LayeredBounds, box_min, lp_min, prove_margin, split_dual
from ctnn.verify._cpsat import solve_margin
from ctnn.verify._layered import evaluate_chain, tabulate_runs
from ctnn.verify._properties import LocalRobustness


@pytest.mark.parametrize("seed", range(4))
def test_step_function_lines_enclose_the_reference(seed):
    net, layers, _, bounds, *_ = layered_case(seed)
    rng = np.random.default_rng(seed)
    for layer in layers:
        b = bounds[layer.acc]
        lo, hi = b.lo.ravel().astype(np.int64), b.hi.ravel().astype(np.int64)
        runs = tabulate_runs(layer, net.ref.constants, lo, hi)
        for _ in range(5):  # random sub-intervals, as branches see them
            a = rng.integers(lo, hi + 1)
            c = rng.integers(lo, hi + 1)
            sub_lo, sub_hi = np.minimum(a, c), np.maximum(a, c)
            z = np.arange(int((sub_hi - sub_lo).max()) + 1)[:, None] + sub_lo[None, :]
            z = np.minimum(z, sub_hi)
            g = evaluate_chain(layer, net.ref.constants, z, layer.acc_dtype)
            for al, cl, cu in runs.candidates(sub_lo, sub_hi):
                assert np.all(al * z + cl <= g + 1e-9) and np.all(g <= al * z + cu + 1e-9)
            al, cl, au, cu = runs.lines(sub_lo, sub_hi)
            assert np.all(al * z + cl <= g + 1e-9) and np.all(g <= au * z + cu + 1e-9)
            vmin, vmax = runs.range(sub_lo, sub_hi)
            assert np.array_equal(vmin, g.min(0)) and np.array_equal(vmax, g.max(0))


@pytest.mark.parametrize("seed", range(4))
def test_backward_bounds_hold_on_executions_and_beat_nothing_impossible(seed):
    net, layers, _, bounds, xlo, xhi, samples = layered_case(seed)
    lb = LayeredBounds(layers, net.ref.constants, xlo, xhi, bounds)
    assert lb.ok
    env = net.ref.run({net.input_name: samples.astype(net.input_dtype)}, keep=True)
    ls, us = lb.root
    for k, layer in enumerate(layers):
        z = np.asarray(env[layer.acc], np.int64).reshape(len(samples), -1)
        assert np.all(ls[k] <= z.min(0)) and np.all(z.max(0) <= us[k])
    y = np.asarray(env[net.output_name], np.int64).reshape(len(samples), -1)
    assert np.array_equal(lb.forward(samples), y)  # the layered view computes the graph itself
    batch = [a[None] for a in ls], [a[None] for a in us]
    rels, alive = lb.relax(*batch, len(layers))
    assert alive.all()
    for other in range(1, y.shape[1]):
        low, _, lam, c = (a[0] for a in lb.margin(0, other, rels, *batch))
        margin = y[:, 0] - y[:, other]
        assert low <= margin.min() + 1e-9
        assert np.all(samples @ lam + c <= margin + 1e-6)  # the affine form under the margin
        lp_low, x_lp, _ = lb.lp_margin(0, other, ls, us)
        assert lp_low <= margin.min() + 1e-9
        assert x_lp is not None and np.all(xlo - 1e-6 <= x_lp) and np.all(x_lp <= xhi + 1e-6)


def test_lp_bound_is_sound_and_an_empty_set_is_certified():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = 5
        A = sparse.csr_matrix(rng.integers(-3, 4, size=(4, n)).astype(float))
        b = rng.integers(-2, 6, size=4).astype(float)
        E = sparse.csr_matrix(np.zeros((0, n)))
        c = rng.normal(size=n)
        vlo, vhi = np.full(n, -2.0), np.full(n, 2.0)
        low, v = lp_min(c, A, b, E, np.zeros(0), vlo, vhi)
        pts = rng.uniform(-2, 2, size=(20000, n))
        ok = np.all(pts @ A.toarray().T <= b, axis=1)
        if ok.any():
            assert low <= (pts[ok] @ c).min() + 1e-9
        if np.isinf(low) and low > 0:
            assert not ok.any()
    # x <= -1 and x >= 1 on the box [-2, 2]: empty, and proved so
    A = sparse.csr_matrix(np.array([[1.0], [-1.0]]))
    low, v = lp_min(np.array([1.0]), A, np.array([-1.0, -1.0]), sparse.csr_matrix(np.zeros((0, 1))),
                    np.zeros(0), np.array([-2.0]), np.array([2.0]))  # fmt: skip
    assert low == np.inf and v is None


def test_branch_and_bound_verdicts_match_sampling_and_leaves_are_exact():
    found = set()
    for seed in range(6):
        net, layers, dtypes, bounds, xlo, xhi, samples = layered_case(seed, sizes=(4, 6, 5, 3), eps=2)
        lb = LayeredBounds(layers, net.ref.constants, xlo, xhi, bounds)
        y = lb.forward(samples)
        label = int(np.argmax(lb.forward(((xlo + xhi) // 2)[None])[0]))
        prop = LocalRobustness(label)
        for other in range(y.shape[1]):
            if other == label:
                continue
            thr = 1 if other < label else 0
            verdict, x, _ = prove_margin(lb, label, other, thr, 1e18, prop.violated)
            found.add(verdict)
            margin = y[:, label] - y[:, other]
            if verdict == "proved":
                assert margin.min() >= thr
            if verdict == "violated":
                assert np.all(xlo <= x) and np.all(x <= xhi)
                assert prop.violated(lb.forward(x[None]))[0]  # some class beats the label there
            # the exact leaf query on the root intervals agrees with sampling where sampling found a violation
            if margin.min() < thr:
                r, w = solve_margin(lb, *lb.root, label, other, thr, 30.0)
                assert r == "sat"
                out = lb.forward(w[None])[0]
                assert out[label] - out[other] < thr
    assert {"proved", "violated"} <= found


def test_branch_and_bound_on_forked_workers_builds_the_same_tree(monkeypatch):
    """Dealt to two processes, every class gets the verdict it gets in one, and a proof the
    same number of branches (a branch's bound is its own, so the tree cannot depend on who
    bounds it)."""
    forks = []
    real = bab._in_parallel
    monkeypatch.setattr(bab, "_in_parallel", lambda *a, **k: forks.append(1) or real(*a, **k))
    for seed in range(6):
        net, layers, dtypes, bounds, xlo, xhi, samples = layered_case(seed, sizes=(6, 10, 8, 4), eps=3)
        lb = LayeredBounds(layers, net.ref.constants, xlo, xhi, bounds)
        label = int(np.argmax(lb.forward(((xlo + xhi) // 2)[None])[0]))
        prop = LocalRobustness(label)
        for other in range(lb.layers[-1].W.shape[1]):
            if other == label:
                continue
            thr = 1 if other < label else 0
            one = prove_margin(lb, label, other, thr, 1e18, prop.violated, batch=1)
            two = prove_margin(lb, label, other, thr, 1e18, prop.violated, batch=1, workers=2)
            assert one[0] == two[0]
            if one[0] == "proved":
                assert one[2] == two[2]
            if two[0] == "violated":
                assert prop.violated(lb.forward(two[1][None]))[0]
    assert forks  # some trees were big enough to deal out


def test_a_failing_worker_is_an_error_in_the_parent():
    net, layers, dtypes, bounds, xlo, xhi, samples = layered_case(1, sizes=(6, 10, 8, 4), eps=3)
    lb = LayeredBounds(layers, net.ref.constants, xlo, xhi, bounds)
    parent = os.getpid()

    def violated(y):
        if os.getpid() != parent:
            raise ValueError("boom in the worker")
        return np.zeros(len(y), bool)

    with pytest.raises(RuntimeError, match="boom in the worker"):
        bab._in_parallel(_open_search(lb, violated), 2, 1000, 1)


def test_a_witness_from_one_worker_stops_the_others():
    """Only the first worker to check an output "finds" a witness; the other, which never would,
    must stop too instead of running to its deadline."""
    net, layers, dtypes, bounds, xlo, xhi, samples = layered_case(1, sizes=(6, 10, 8, 4), eps=3)
    lb = LayeredBounds(layers, net.ref.constants, xlo, xhi, bounds)
    parent, finder = os.getpid(), multiprocessing.get_context("fork").Value("i", 0)

    def violated(y):
        if os.getpid() == parent:
            return np.zeros(len(y), bool)
        with finder.get_lock():
            if finder.value == 0:
                finder.value = os.getpid()
        return np.full(len(y), finder.value == os.getpid())

    search = _open_search(lb, violated, deadline=time.perf_counter() + 300)
    t = time.perf_counter()
    verdict, x, n = bab._in_parallel(search, 2, 10**9, 1)
    assert verdict == "violated" and x is not None and len(x) == len(xlo)
    assert time.perf_counter() - t < 60  # the other worker's deadline was 300 s away


def _open_search(lb, violated, deadline=1e18):
    search = bab._Search(lb, 0, 1, 10**6, violated, 1.0, deadline)  # a margin no network reaches: all open
    ls, us = lb.root
    cold = np.zeros((1, len(lb.H)))
    search.expand(search.pack([a[None] for a in ls], [a[None] for a in us], cold, cold, np.zeros(1)),
                  np.array([-np.inf]), len(lb.layers))  # fmt: skip
    search.run(1000, 1, until=4)
    assert len(search.heap) >= 2
    return search


@pytest.mark.parametrize("seed", range(3))
def test_step_margin_is_the_exact_least_difference_of_the_output_steps(seed):
    net, layers, _, bounds, xlo, xhi, samples = layered_case(seed)
    lb = LayeredBounds(layers, net.ref.constants, xlo, xhi, bounds)
    ls, us = lb.root
    runs, out = lb.runs[-1], len(layers) - 1
    rng = np.random.default_rng(seed)
    checked = 0
    for label, other in [(0, 1), (1, 2), (2, 0)]:
        if not (lb.monotone[label] and lb.monotone[other]):
            continue
        lo, hi = ls[out].copy(), us[out].copy()
        for _ in range(4):  # random sub-intervals and accumulator-difference bounds, as branches see them
            for j in (label, other):
                a, c = sorted(rng.integers(ls[out][j], us[out][j] + 1, size=2))
                lo[j], hi[j] = a, c
            d = int(rng.integers(lo[label] - hi[other] - 1, hi[label] - lo[other] + 2))
            zl = np.arange(lo[label], hi[label] + 1)
            zo = np.arange(lo[other], hi[other] + 1)
            ok = zl[:, None] - zo[None, :] >= d
            gl, go = runs.column(label, zl.astype(float)), runs.column(other, zo.astype(float))
            exact = (gl[:, None] - go[None, :])[ok].min() if ok.any() else np.inf
            assert lb.step_margin(label, other, d, lo, hi) == exact
            checked += 1
    assert checked


def test_children_lose_no_input_their_parent_reaches():
    narrowed = dropped = 0
    for seed in range(6):
        net, layers, _, bounds, xlo, xhi, _ = layered_case(seed, sizes=(4, 6, 5, 3), eps=2)
        lb = LayeredBounds(layers, net.ref.constants, xlo, xhi, bounds)
        search = bab._Search(lb, 0, 1, 0, LocalRobustness(0).violated, 1.0, 1e18)
        z = lb.run(enumerate_box(xlo, xhi))[0][0]  # every input's first-layer accumulators
        rng = np.random.default_rng(seed)
        P = 40
        ls, us = ([np.repeat(a[None], P, 0) for a in side] for side in lb.root)
        picks = np.zeros((P, 3), np.int64)
        for p in range(P):  # a parent: a few random first-layer splits, then a neuron to split
            for i in rng.choice(len(ls[0][p]), size=3, replace=False):
                cut = rng.integers(ls[0][p, i], us[0][p, i] + 1)
                if rng.random() < 0.5:
                    us[0][p, i] = cut
                else:
                    ls[0][p, i] = cut
            i = int(rng.integers(len(ls[0][p])))
            picks[p] = 0, i, rng.integers(ls[0][p, i], max(us[0][p, i], ls[0][p, i] + 1))
        cold = np.zeros((P, len(lb.H)))
        states = search.pack(ls, us, cold, cold, np.zeros(P))
        kids, reach = search.children(states, picks)
        kls, kus, *_ = search.unpack(kids)
        for c in range(2 * P):
            p, i, m = c // 2, picks[c // 2, 1], picks[c // 2, 2]
            side = z[:, i] <= m if c % 2 == 0 else z[:, i] > m
            inside = side & np.all((ls[0][p] <= z) & (z <= us[0][p]), axis=1)
            if not reach[c]:
                assert not inside.any()  # only a child no input reaches is dropped
                dropped += 1
                continue
            assert np.all((kls[0][c] <= z[inside]) & (z[inside] <= kus[0][c]))
            narrowed += int(
                kus[0][c, i] - kls[0][c, i] < (m - ls[0][p, i] if c % 2 == 0 else us[0][p, i] - m - 1)
            )
    assert narrowed and dropped  # the parents' splits do cut their children here


def test_split_dual_step_is_the_exact_maximizer():
    # one binding row, one sweep from zero: the bound is the best over all its breakpoints
    # (F spans several of the walk's blocks of 16, and not a whole number of them)
    rng = np.random.default_rng(1)
    B, F = 40, 53
    H = rng.integers(-31, 32, size=(1, F)).astype(float)
    lam = rng.normal(size=(B, F)) * 10
    xlo, xhi = np.full(F, -3.0), np.full(F, 4.0)
    h = rng.integers(-60, 60, size=(B, 1)).astype(float)
    low, _ = split_dual(lam, np.zeros(B), H, h, np.ones((B, 1), bool), xlo, xhi, None, 1)
    moved = 0
    for i in range(B):
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -lam[i] / H[0]
        cands = np.r_[0.0, t[np.isfinite(t) & (t > 0)]]
        best = max(box_min(lam[i] + c * H[0], -c * h[i, 0], xlo, xhi) for c in cands)
        if not np.isfinite(low[i]):  # the row misses the box: nothing of it is feasible
            assert (H[0] * np.where(H[0] > 0, xlo, xhi)).sum() > h[i, 0]
            continue
        assert low[i] == pytest.approx(best, rel=1e-5, abs=1e-4)
        moved += best > box_min(lam[i], 0.0, xlo, xhi) + 1e-6
    assert moved > B // 4  # most rows do bind


def test_split_dual_is_sound_from_any_warm_start():
    rng = np.random.default_rng(0)
    n, m, B = 6, 4, 30
    H = rng.integers(-3, 4, size=(m, n)).astype(float)
    lam, h = rng.normal(size=(B, n)), rng.integers(-2, 5, size=(B, m)).astype(float)
    active = rng.random((B, m)) < 0.7  # each branch binds its own rows
    xlo, xhi = np.full(n, -2.0), np.full(n, 2.0)
    warm = np.abs(rng.normal(size=(B, m))) * 3
    warm[::3] = 0.0
    sweeps = 1 + np.arange(B) % 2
    low, beta = split_dual(lam, np.full(B, 0.5), H, h, active, xlo, xhi, warm, sweeps)
    assert np.all(beta >= 0) and np.all(beta[~active] == 0)
    pts = rng.uniform(-2, 2, size=(20000, n))
    unbounded = 0
    for i in range(B):
        ok = np.all(pts @ H[active[i]].T <= h[i, active[i]], axis=1)
        if ok.any():
            assert low[i] <= (pts[ok] @ lam[i]).min() + 0.5 + 1e-9
        # the multipliers it returns give the bound it returns
        if np.isfinite(low[i]):
            assert low[i] == pytest.approx(box_min(lam[i] + H.T @ beta[i], 0.5 - beta[i] @ h[i], xlo, xhi))
        else:
            unbounded += 1
            assert not ok.any()
        # one branch alone gets the bound it gets in the batch
        one = split_dual(lam[i : i + 1], np.array([0.5]), H, h[i : i + 1], active[i : i + 1], xlo, xhi,
                         warm[i : i + 1], sweeps[i : i + 1])[0][0]  # fmt: skip
        assert one == pytest.approx(low[i])
    assert unbounded < B
