"""SMT backends: z3 and bitwuzla decide the same encoding; UNSAT answers are cross-checked."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from verify_helpers import box_of, enumerate_box, exhaustive_truth, in_range

from ctnn.verify import SOLVERS, to_smtlib, verify_robustness
from ctnn.verify._backends import AUTO_LARGE_INPUTS, Session, available, resolve

HAS_BITWUZLA = importlib.util.find_spec("bitwuzla") is not None
needs_bitwuzla = pytest.mark.skipif(not HAS_BITWUZLA, reason="bitwuzla (the optional extra) is not installed")


def test_resolve_and_errors():
    assert SOLVERS == ("z3", "bitwuzla", "auto")
    assert resolve("z3") == "z3" and available("z3")
    assert resolve("auto") in ("z3", "bitwuzla")
    # by the query's size: the measured winner on small queries, z3 on MNIST-sized ones
    assert resolve("auto", 16) == ("bitwuzla" if HAS_BITWUZLA else "z3")
    assert resolve("auto", AUTO_LARGE_INPUTS + 1) == "z3"
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


def _overflowing_requant_net():
    """One dense layer whose int32 accumulator is cast to int64 before ``* M``: ``acc * 2**30``
    wraps in int32 for every |acc| >= 2, so a fused chain that skips the Cast is wrong everywhere."""
    from ctnn.quant import IntegerDense, IntegerMLP

    layer = IntegerDense(weight=np.array([[3, -2], [1, 4]]), bias=np.array([2, 0], np.int32),
                         multiplier=np.full(2, 1 << 30), shift=np.full(2, 30), lo=-128, hi=127,
                         name="fc1")  # fmt: skip
    return IntegerMLP([layer], in_bits=4, weight_bits=4, act_bits=8).to_onnx()


def test_widening_cast_is_kept_in_fused_chains():
    """Regression: the optimized encoding dropped a value-preserving Cast (int32 -> int64) from a fused
    requantization chain and tabulated ``acc * M`` in int32; the solver's model (z3's or bitwuzla's)
    then failed its replay with a WitnessError (digits8, sample 6, eps 3)."""
    from ctnn.verify._verify import _robustness_query

    model, x0, eps, (lo, hi) = _overflowing_requant_net(), np.array([1, 1]), 3, (-8, 7)
    q, _ = _robustness_query(model, x0, eps, None, (lo, hi))
    q.bound()
    enc, _ = q.encode("optimized")
    assert enc.stats["step_functions"] > 0  # the chain is fused: the code path under test
    for x in enumerate_box(*box_of(x0, eps, lo, hi)):
        assert enc.evaluate(x).tolist() == q.net.reference(x)[q.net.output_name].ravel().tolist(), x
    label, robust, _ = exhaustive_truth(model, x0, eps, lo, hi)
    assert not robust
    for solver in [s for s in ("z3", "bitwuzla") if available(s)]:
        r = verify_robustness(
            model, x0, eps, input_range=(lo, hi), attack=False, interval=False, solver=solver
        )
        assert (r.verdict, r.method, r.stats["solver"]) == ("vulnerable", "smt", solver)


def test_unknown_has_no_model():
    """A check that runs out of time answers "unknown" and never yields values to replay."""
    import z3

    x, y = z3.BitVec("d0", 64), z3.BitVec("d1", 64)
    # factoring a 64-bit semiprime: far beyond a millisecond for either solver
    hard = [z3.UGT(x, 1), z3.UGT(y, 1), z3.ULT(x, 1 << 32), z3.ULT(y, 1 << 32)]
    goal = x * y == z3.BitVecVal(4294967291 * 4294967279, 64)
    for solver in [s for s in ("z3", "bitwuzla") if available(s)]:
        s = Session(hard, [goal], solver=solver, timeout_s=0.001)
        with pytest.raises(RuntimeError, match="no model to read"):
            s.values([x])  # nothing checked yet
        assert s.check(0, 0.001) == "unknown"
        with pytest.raises(RuntimeError, match="no model to read: the last check answered 'unknown'"):
            s.values([x, y])
        with pytest.raises(RuntimeError, match="no model to read"):
            s.z3_model()


@needs_bitwuzla
def test_auto_takes_z3_for_a_large_formula(monkeypatch):
    from ctnn.quant import random_integer_mlp

    model = random_integer_mlp([6, 8, 3], weight_bits=4, act_bits=4, in_bits=4, seed=2).to_onnx()
    x = np.array([1, -2, 3, 0, 4, -5])

    def solver_used() -> str:  # straight to the SMT stage: no interval proof, attack or branch and bound
        r = verify_robustness(model, x, 2, input_range=(-8, 7), interval=False, attack=False, timeout_s=30)
        assert r.method == "smt" and r.stats["symbolic_elements"] > 0
        return r.stats["solver"]

    assert solver_used() == "bitwuzla"
    monkeypatch.setattr("ctnn.verify._verify.AUTO_LARGE_ELEMENTS", 0)
    assert solver_used() == "z3"
