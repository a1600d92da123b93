"""Two graphs that quantize inputs and outputs differently, compared on every real input and in real units.

The truth is enumerated: every joint cell (a pair of input codes one real quantizes to) of every
feature, run on both graphs; the verifier runs with each exact solver alone as well as whole.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from verify_helpers import EXACT_SOLVERS

from ctnn.quant import ReferenceInterpreter, TensorQuant, random_integer_mlp, signed_range
from ctnn.verify import (
    BoxError,
    OutputGap,
    max_difference,
    verify_argmax_equivalence,
    verify_equivalence,
)
from ctnn.verify._inputs import joint_codes

#: the whole pipeline; bounds and solvers without the attack (small boxes are otherwise
#: enumerated); each exact solver alone
KW = [{}, {"attack": False}, *({"attack": False, "interval": False, "solver": s} for s in EXACT_SOLVERS)]


def _quant(bits: int, scale: float, zero_point: int = 0) -> TensorQuant:
    lo, hi = signed_range(bits)
    return TensorQuant("x", [None], bits, lo, hi, scale, zero_point, "int64")


@pytest.mark.parametrize(
    "qa, qb",
    [
        (_quant(4, 0.25), _quant(3, 0.5)),  # nested grids: every decision point of b is one of a's
        (_quant(4, 0.3, -2), _quant(3, 0.7, 1)),
        (_quant(8, 0.06274509803921569, -128), _quant(6, 0.25396825396825395, -32)),  # the digits models
        (_quant(3, 1.0), _quant(3, 1.0, 1)),
    ],
)
def test_joint_codes_are_the_pairs_real_inputs_quantize_to(qa, qb):
    j = joint_codes(qa, qb)
    # the truth, sampled: a fine grid, and every decision point with its float neighbours
    pts = np.concatenate([(np.arange(q.lo, q.hi) - q.zero_point + 0.5) * q.scale for q in (qa, qb)])
    xs = np.concatenate([np.linspace(pts.min() - 5, pts.max() + 5, 400_001), pts, np.nextafter(pts, np.inf),
                         np.nextafter(pts, -np.inf)])  # fmt: skip
    seen = set(zip(qa.quantize(xs).tolist(), qb.quantize(xs).tolist()))
    assert set(zip(j.a.tolist(), j.b.tolist())) == seen
    # a chain along the real line, each cell once, each with a real that quantizes to it
    assert np.all(np.diff(j.a) >= 0) and np.all(np.diff(j.b) >= 0)
    assert np.all((np.diff(j.a) > 0) | (np.diff(j.b) > 0))
    assert np.array_equal(qa.quantize(j.real), j.a) and np.array_equal(qb.quantize(j.real), j.b)
    assert np.all(np.diff(j.real) > 0)
    lo, hi = j.cells(np.array([qa.lo, qa.hi]), np.array([qa.lo, qa.hi]))
    assert np.all(j.a[lo] == [qa.lo, qa.hi]) and np.all(j.a[hi] == [qa.lo, qa.hi])
    assert lo[0] == 0 and hi[1] == len(j) - 1 and (hi[0] == len(j) - 1 or j.a[hi[0] + 1] > qa.lo)


def _pair(seed: int):
    """An MLP at 4-bit inputs and the same weights read at 3-bit inputs, with the quantizers."""
    sizes = [[2, 3, 2], [3, 3, 2], [2, 4, 3]][seed % 3]
    a = random_integer_mlp(sizes, weight_bits=4, act_bits=4, in_bits=4, seed=seed).to_onnx()
    b = random_integer_mlp(sizes, weight_bits=4, act_bits=3, in_bits=3, seed=seed + 100).to_onnx()
    rng = np.random.default_rng(seed)
    qa = (float(rng.choice([0.25, 0.3, 0.5])), int(rng.integers(-2, 3)), *signed_range(4))
    qb = (float(rng.choice([0.5, 0.6, 0.75])), int(rng.integers(-1, 2)), *signed_range(3))
    return a, b, sizes, qa, qb


def _truth(a, b, sizes, qa, qb, blo, bhi):
    """Every joint cell point of the A-code box: both graphs' inputs and outputs."""
    j = joint_codes(_quant(4, qa[0], qa[1]), _quant(3, qb[0], qb[1]))
    lo, hi = j.cells(blo, bhi)
    cells = np.array(list(itertools.product(*[range(int(u), int(v) + 1) for u, v in zip(lo, hi)])), np.int64)
    xa, xb = j.a[cells], j.b[cells]
    ya = np.asarray(ReferenceInterpreter(a).run({"x": xa.astype(np.int8)})["y"], np.int64)
    yb = np.asarray(ReferenceInterpreter(b).run({"x": xb.astype(np.int8)})["y"], np.int64)
    assert set(map(tuple, xa.tolist())) == set(map(tuple, np.array(list(itertools.product(
        *[range(int(u), int(v) + 1) for u, v in zip(blo, bhi)]))).tolist()))  # fmt: skip
    return xa, xb, ya, yb


def _box(seed, sizes, eps):
    lo, hi = signed_range(4)
    x0 = np.random.default_rng(seed + 7).integers(lo, hi + 1, size=sizes[0])
    return x0, np.maximum(x0 - eps, lo), np.minimum(x0 + eps, hi)


@pytest.mark.parametrize("kw", KW)
def test_equivalence_across_input_quantizations_equals_enumeration(kw):
    kept = set()
    for seed in range(3):
        a, b, sizes, qa, qb = _pair(seed)
        x0, blo, bhi = _box(seed, sizes, 2)
        xa, xb, ya, yb = _truth(a, b, sizes, qa, qb, blo, bhi)
        iq = (qa, qb)
        # in codes
        diff = int(np.abs(ya - yb).max())
        g = max_difference(a, b, x0, 2, input_quants=iq, **kw)
        assert g.exact and g.gap == diff, (seed, kw, g)
        wa, wb = (np.array(w) for w in g.witness)
        k = np.flatnonzero((xa == wa).all(1) & (xb == wb).all(1))
        assert len(k) and np.abs(ya[k[0]] - yb[k[0]]).max() == diff  # a real pair of the chain
        assert np.array_equal(_quant(4, qa[0], qa[1]).quantize(np.array(g.real_witness)), wa)
        assert np.array_equal(_quant(3, qb[0], qb[1]).quantize(np.array(g.real_witness)), wb)
        for delta in (diff, diff - 1):
            r = verify_equivalence(a, b, x0, 2, delta=delta, input_quants=iq, **kw)
            assert r.verdict == ("equivalent" if delta >= diff else "different"), (seed, delta, kw, r)
            if not r.equivalent:
                ca, cb = (np.array(v) for v in r.inputs)
                assert np.array_equal(ca, r.counterexample)
                k = np.flatnonzero((xa == ca).all(1) & (xb == cb).all(1))
                assert len(k) and np.abs(ya[k[0]] - yb[k[0]]).max() > delta
                assert np.array_equal(_quant(3, qb[0], qb[1]).quantize(np.array(r.real_input)), cb)
        # the same predicted class on every real input
        same = bool((np.argmax(ya, 1) == np.argmax(yb, 1)).all())
        r = verify_argmax_equivalence(a, b, x0, 2, input_quants=iq, **kw)
        assert r.verdict == ("equivalent" if same else "different"), (seed, kw, r)
        kept.add("kept_class" in r.stats)
    # without the attack, the MLPs are first asked to keep one class each, each on its own codes
    assert kept == ({True, False} if kw == {"attack": False} else {False})


@pytest.mark.parametrize("kw", KW)
def test_real_units_across_quantizations_equal_enumeration(kw):
    scales = ((0.375, 1), (0.8125, -1))
    for seed in range(3):
        a, b, sizes, qa, qb = _pair(seed)
        x0, blo, bhi = _box(seed, sizes, 1)
        xa, xb, ya, yb = _truth(a, b, sizes, qa, qb, blo, bhi)
        real = np.abs(scales[0][0] * (ya - scales[0][1]) - scales[1][0] * (yb - scales[1][1])).max()
        common = dict(units="real", scales=scales, input_quants=(qa, qb), **kw)
        g = max_difference(a, b, x0, 1, **common)
        assert g.exact and g.gap == real and g.bound == real, (seed, kw, g)
        for delta, verdict in ((real, "equivalent"), (real - 1 / 16, "different")):
            r = verify_equivalence(a, b, x0, 1, delta=delta, **common)
            assert r.verdict == verdict, (seed, delta, kw, r)
            assert verdict == "equivalent" or r.difference > delta
        # scales with long binary fractions: factors near 2^52, and a search over the gaps they can
        # take (a few thousand, so about 12 steps), where one over the integers would take about 55
        long = ((0.1, 1), (0.3, -1))
        real = np.abs(0.1 * (ya - 1) - 0.3 * (yb + 1)).max()
        g = max_difference(a, b, x0, 1, units="real", scales=long, input_quants=(qa, qb), **kw)
        assert g.exact and g.gap == pytest.approx(real, rel=1e-12) and len(g.queries) <= 16, (seed, kw, g)


@pytest.mark.parametrize("ku, kd", [(3, 7), (7, 3), (5, 5), (2**52 + 1, 3 * 2**50)])
def test_weighted_gap_steps_are_the_comparison(ku, kd):
    """``ku·a - kd·b > t`` over a grid of codes, as steps, at thresholds on and between its values."""
    ulo, uhi, dlo, dhi = -5, 6, -4, 3
    a, b = np.meshgrid(np.arange(ulo, uhi + 1), np.arange(dlo, dhi + 1), indexing="ij")
    vals = np.unique(ku * a - kd * b)
    for t in [*vals[:: max(1, len(vals) // 9)], vals[3] + 1, int(vals.min()) - 1, int(vals.max())]:
        steps = OutputGap(1, int(t), weights=(ku, kd)).steps(ku, kd, ulo, uhi, dlo, dhi)
        by_steps = np.zeros_like(a, bool)
        for v, c in steps:
            by_steps |= (a >= v) & (b <= c)
        assert np.array_equal(by_steps, ku * a - kd * b > t), t


def test_two_quantizations_errors(tmp_path):
    a, b, sizes, qa, qb = _pair(0)
    with pytest.raises(BoxError, match="input_quants must be a pair"):
        verify_equivalence(a, b, input_quants=(qa,))
    with pytest.raises(BoxError, match=r"an input quantization is scale, \(scale, zero_point\) or"):
        verify_equivalence(a, b, input_quants=(qa, (0.5, 0, 3)))
    with pytest.raises(BoxError, match="scale must be positive"):
        verify_equivalence(a, b, input_quants=(qa, (0.0, 0)))
    with pytest.raises(BoxError, match=r"wider than its input quantizer's \[-4, 3\]"):
        verify_equivalence(a, b, input_range=(-8, 7), input_quants=((0.5, 0, -4, 3), qb))


@pytest.mark.parametrize("seed, eps", [(21, 1), (41, 2), (47, 2), (52, 1), (58, 3)])
def test_argmax_equivalence_keeps_class_on_each_graphs_own_codes(seed, eps):
    """Each MLP's robustness query runs on the codes its joint cells quantize to: on the other
    graph's codes, the kept class can be proved where the graphs disagree (seeds 21, 47, 58) or
    missed where they agree (41, 52)."""
    a, b, sizes, qa, qb = _pair(seed)
    x0, blo, bhi = _box(seed, sizes, eps)
    _, _, ya, yb = _truth(a, b, sizes, qa, qb, blo, bhi)
    same = bool((np.argmax(ya, 1) == np.argmax(yb, 1)).all())
    r = verify_argmax_equivalence(a, b, x0, eps, input_quants=(qa, qb), attack=False)
    assert r.verdict == ("equivalent" if same else "different") and ("kept_class" in r.stats) == same


@pytest.mark.parametrize("solver", EXACT_SOLVERS)
def test_weighted_gap_on_wide_outputs_is_the_product(monkeypatch, solver):
    """Outputs too wide for steps are compared as products (z3: wide bit-vectors; CP-SAT: one line)."""
    monkeypatch.setattr("ctnn.verify._properties.STEP_VALUES", 1)
    scales = ((0.375, 1), (0.8125, -1))
    for seed in range(2):
        a, b, sizes, qa, qb = _pair(seed)
        x0, blo, bhi = _box(seed, sizes, 1)
        _, _, ya, yb = _truth(a, b, sizes, qa, qb, blo, bhi)
        real = np.abs(0.375 * (ya - 1) - 0.8125 * (yb + 1)).max()
        g = max_difference(a, b, x0, 1, units="real", scales=scales, input_quants=(qa, qb), attack=False,
                           interval=False, solver=solver)  # fmt: skip
        assert g.exact and g.gap == real, (seed, g)


def test_sidecars_give_the_quantizers_and_the_cli_reports_real_inputs(tmp_path, capsys):
    """Two files whose sidecars quantize inputs differently: the CLI compares them on real inputs,
    as the API does with the same quantizers given."""
    import json

    import onnx

    from ctnn.quant import Sidecar, write_sidecar
    from ctnn.verify._cli import main

    a, b, sizes, qa, qb = _pair(2)
    out = ((0.375, 1), (0.8125, -1))
    for name, model, q, (s, z), bits in (("a", a, qa, out[0], 4), ("b", b, qb, out[1], 3)):
        onnx.save(model, tmp_path / f"{name}.onnx")
        lo, hi = signed_range(bits)
        write_sidecar(tmp_path / f"{name}.onnx", Sidecar(
            "mlp", TensorQuant("x", [None, sizes[0]], bits, lo, hi, q[0], q[1], "int8"),
            TensorQuant("y", [None, sizes[-1]], 8, -128, 127, s, z, "int8"), weight_bits=4, act_bits=bits))  # fmt: skip
    x0, _, _ = _box(2, sizes, 1)
    np.save(tmp_path / "x.npy", x0)
    files = [str(tmp_path / "a.onnx"), str(tmp_path / "b.onnx")]
    args = ["--input", str(tmp_path / "x.npy"), "--eps", "1", "--units", "real"]
    assert main(["equivalence", *files, *args, "--max", "--json", str(tmp_path / "g.json")]) == 0
    g = json.loads((tmp_path / "g.json").read_text())
    direct = max_difference(a, b, x0, 1, units="real", scales=out, input_quants=(qa, qb))
    assert g["exact"] and g["gap"] == direct.gap and g["real_witness"] is not None
    assert "real input" in capsys.readouterr().out
    assert main(["equivalence", *files, *args, "--delta", str(g["gap"] - 0.01)]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    assert line.startswith("different") and "real input" in line
