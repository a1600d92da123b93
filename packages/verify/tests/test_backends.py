"""SMT backends: z3 and bitwuzla decide the same encoding; UNSAT answers are cross-checked."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from verify_helpers import exhaustive_truth, in_range

from ctnn.verify import SOLVERS, to_smtlib, verify_robustness
from ctnn.verify._backends import Session, available, resolve

HAS_BITWUZLA = importlib.util.find_spec("bitwuzla") is not None
needs_bitwuzla = pytest.mark.skipif(not HAS_BITWUZLA, reason="bitwuzla (the optional extra) is not installed")


def test_resolve_and_errors():
    assert SOLVERS == ("z3", "bitwuzla", "auto")
    assert resolve("z3") == "z3" and available("z3")
    assert resolve("auto") in ("z3", "bitwuzla")
    if not HAS_BITWUZLA:
        assert resolve("auto") == "z3"
        with pytest.raises(ModuleNotFoundError, match=r"ctnn-verify\[bitwuzla\]"):
            resolve("bitwuzla")
    with pytest.raises(ValueError, match="solver must be one of"):
        resolve("cvc5")
    with pytest.raises(ValueError, match="solver must be one of"):
        resolve("yices")


@needs_bitwuzla
def test_session_goals_and_values():
    import z3

    x = z3.BitVec("d0", 4)
    s = Session([x >= -3, x <= 5], [x > 6, x * 2 == 6], solver="bitwuzla")
    assert s.check(0, 10) == "unsat"  # x > 6 is outside [-3, 5]
    assert s.check(1, 10) == "sat"  # learnt facts of goal 0 do not leak into goal 1
    assert s.values([x]) == [3]
    s = Session([x >= -3, x <= 5], [x < -2], solver="bitwuzla")
    assert s.check(0, 10) == "sat" and s.values([x]) == [-3]  # signed values


@needs_bitwuzla
def test_solvers_agree_with_enumeration_and_each_other(tiny_nets):
    """Every UNSAT of one solver is an UNSAT of the other, and both equal the exhaustive truth."""
    seen = set()
    for model, bits, sizes, seed in tiny_nets[:8]:
        lo, hi = in_range(bits)
        x0 = np.random.default_rng(seed + 7).integers(lo, hi + 1, size=sizes[0])
        for eps in (1, 2):
            label, robust, _ = exhaustive_truth(model, x0, eps, lo, hi)
            verdicts = {}
            for solver in ("z3", "bitwuzla"):
                r = verify_robustness(model, x0, eps, input_range=(lo, hi), attack=False, interval=False,
                                      solver=solver)  # fmt: skip
                assert r.method == "smt"
                verdicts[solver] = r.verdict
                if r.stats.get("solver_calls"):
                    assert r.stats["solver"] == solver
                    seen.add((solver, r.verdict))
            assert verdicts["z3"] == verdicts["bitwuzla"] == ("robust" if robust else "vulnerable")
    # both solvers really proved and refuted something
    assert {("bitwuzla", "robust"), ("bitwuzla", "vulnerable"), ("z3", "robust")} <= seen, seen


@needs_bitwuzla
def test_bitwuzla_reads_the_exported_query():
    """The SMT-LIB2 export parses in bitwuzla and has the answer the pipeline gives."""
    import bitwuzla as bw

    from ctnn.quant import random_integer_mlp

    model = random_integer_mlp([3, 4, 3], weight_bits=4, act_bits=4, in_bits=4, seed=3).to_onnx()
    x0 = np.array([1, -2, 3])
    text = to_smtlib(model, x0, 3, input_range=(-8, 7))
    tm = bw.TermManager()
    p = bw.Parser(tm, bw.Options())
    p.parse(text.replace("(check-sat)", ""), True, False)
    got = str(p.bitwuzla().check_sat())
    want = verify_robustness(model, x0, 3, input_range=(-8, 7), attack=False, interval=False).verdict
    assert got == {"robust": "unsat", "vulnerable": "sat"}[want]
