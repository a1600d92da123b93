"""Every property on unrolled integer recurrent graphs (Lipschitz RNN, LTC, LEM), held to enumeration.

The verifier runs with the attack and interval stages off, so the exact solver (SMT, or CP-SAT on
the whole graph) decides each query.
"""

from __future__ import annotations

import numpy as np
import pytest
from verify_helpers import EXACT_SOLVERS, box_of, enumerate_box
from verify_recurrent import BUILDERS

from ctnn.quant import ReferenceInterpreter
from ctnn.verify import (
    max_difference,
    verify_argmax_equivalence,
    verify_bias,
    verify_robustness,
    verify_targeted,
)

LO, HI = -4, 3
SMT = {"attack": False, "interval": False, "timeout_s": 120}


def _run(model, xs):
    return np.asarray(ReferenceInterpreter(model).run({"x": xs.astype(np.int8)})["y"], np.int64)


@pytest.mark.parametrize("family", sorted(BUILDERS))
@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("solver", EXACT_SOLVERS)
def test_recurrent_properties_equal_enumeration(family, steps, solver):
    a = BUILDERS[family](steps, seed=3).to_onnx()
    b = BUILDERS[family](steps, seed=4).to_onnx()
    n = 2 * steps
    x0 = np.random.default_rng(steps).integers(LO, HI + 1, size=n)
    eps = 1
    blo, bhi = box_of(x0, eps, LO, HI)
    xs = enumerate_box(blo, bhi)
    ya, yb = _run(a, xs), _run(b, xs)
    pred = np.argmax(ya, 1)
    kw = {"input_range": (LO, HI), **SMT, "solver": solver}

    r = verify_robustness(a, x0, eps, **kw)
    assert r.verdict == ("robust" if np.all(pred == pred[len(xs) // 2]) else "vulnerable")
    for target in range(ya.shape[1]):
        r = verify_targeted(a, x0, eps, target, **kw)
        assert r.verdict == ("vulnerable" if np.any(pred == target) else "robust"), (family, steps, target)

    diff = int(np.abs(ya - yb).max())
    g = max_difference(a, b, x0, eps, **kw)
    assert g.exact and g.gap == diff
    r = verify_argmax_equivalence(a, b, x0, eps, **kw)
    assert r.verdict == ("equivalent" if np.array_equal(pred, np.argmax(yb, 1)) else "different")

    # bias: feature 0 is the sensitive attribute at every time step; the others range over the box
    sens = list(range(0, n, 2))
    g = verify_bias(a, sens, box=(blo, bhi), sensitive_values=[-1, 2], **kw)
    pts = enumerate_box(blo, bhi)
    outs = []
    for v in (-1, 2):
        p = pts.copy()
        p[:, sens] = v
        outs.append(_run(a, p))
    assert g.exact and g.gap == int(np.abs(outs[0] - outs[1]).max()), (family, steps, g)
    xa, xb = (np.array(w) for w in g.witness)
    assert set(xa[sens]) == {-1} and set(xb[sens]) == {2}
    assert set(np.flatnonzero(xa != xb).tolist()) <= set(sens)
