"""SMT backends: z3 and bitwuzla decide the same encoding; UNSAT answers are cross-checked."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from verify_helpers import box_of, enumerate_box, exhaustive_truth, in_range

from ctnn.verify import SOLVERS, to_smtlib, verify_robustness
from ctnn.verify._backends import AUTO_LARGE_INPUTS, Session, available, resolve
from ctnn.verify._cpgraph import CP_OPS

HAS_BITWUZLA = importlib.util.find_spec("bitwuzla") is not None
needs_bitwuzla = pytest.mark.skipif(not HAS_BITWUZLA, reason="bitwuzla (the optional extra) is not installed")


def test_resolve_and_errors():
    assert SOLVERS == ("z3", "bitwuzla", "cpsat", "auto")
    assert resolve("z3") == "z3" and available("z3")
    assert resolve("auto") in ("z3", "bitwuzla")
    # by the query's size: the measured winner on small queries, z3 on MNIST-sized ones
    assert resolve("auto", 16) == ("bitwuzla" if HAS_BITWUZLA else "z3")
    assert resolve("auto", AUTO_LARGE_INPUTS + 1) == "z3"
    assert resolve("cpsat", 16) == resolve("auto", 16)  # for the SMT stage of what CP-SAT does not take
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


def _enumerated_queries(nets):
    """(model, sample, eps, input range, robust?) for ε = 1 and 2 around a random sample of each
    tiny net, the truth by enumeration."""
    for model, bits, sizes, seed in nets:
        lo, hi = in_range(bits)
        x0 = np.random.default_rng(seed + 7).integers(lo, hi + 1, size=sizes[0])
        for eps in (1, 2):
            yield model, x0, eps, (lo, hi), exhaustive_truth(model, x0, eps, lo, hi)[1]


@needs_bitwuzla
def test_solvers_agree_with_enumeration_and_each_other(tiny_nets):
    """Every UNSAT of one solver is an UNSAT of the other, and both equal the exhaustive truth."""
    seen = set()
    for model, x0, eps, (lo, hi), robust in _enumerated_queries(tiny_nets[:8]):
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
def test_auto_keeps_bitwuzla_for_a_large_formula(monkeypatch):
    """Once a large formula is decided in a child process, its size no longer sends "auto" to z3."""
    from ctnn.quant import random_integer_mlp

    model = random_integer_mlp([6, 8, 3], weight_bits=4, act_bits=4, in_bits=4, seed=2).to_onnx()
    x = np.array([1, -2, 3, 0, 4, -5])

    def run() -> dict:  # straight to the SMT stage: no interval proof, attack or branch and bound
        r = verify_robustness(model, x, 2, input_range=(-8, 7), interval=False, attack=False, timeout_s=30)
        assert r.method == "smt" and r.stats["symbolic_elements"] > 0
        assert "MatMulInteger" in r.stats["cpsat_unsupported"]
        return r.stats

    # "auto" gives CP-SAT the graphs it takes: without its MatMulInteger rule it takes none of this one
    monkeypatch.delitem(CP_OPS, "MatMulInteger")

    assert run()["solver"] == "bitwuzla" and "solver_processes" not in run()
    monkeypatch.setattr("ctnn.verify._verify.ISOLATE_ELEMENTS", 0)  # every formula counts as large
    stats = run()
    assert stats["solver"] == "bitwuzla" and stats["solver_processes"] == 1


# -- a solver in a child process: the deadline held on formulas too large for the solver's own clock
SOLVERS_HERE = [s for s in ("z3", "bitwuzla") if available(s)]


@pytest.mark.parametrize("solver", SOLVERS_HERE)
def test_isolated_session_goals_and_values(solver):
    import z3

    x = z3.BitVec("d0", 4)
    with Session([x >= -3, x <= 5], [x > 6, x * 2 == 6, x < -2], solver=solver, isolate=True) as s:
        assert s.check(0, 10) == "unsat"
        assert s.check(1, 10) == "sat" and s.values([x]) == [3]
        assert s.check(2, 10) == "sat" and s.values([x]) == [-3]  # signed values
        assert s.z3_model() is None  # the model lives in the child: values() is the way to it
        assert s.stats["solver_processes"] == 1 and s.stats["solver_processes_stopped"] == 0
        assert not os.path.exists(s._text._path)  # the child took the query's text: none is left behind


@pytest.mark.parametrize("solver", SOLVERS_HERE)
def test_isolated_check_is_killed_at_its_deadline_and_the_next_starts_afresh(solver, monkeypatch):
    """A child whose solver has not answered by the deadline is killed; the session goes on."""
    import z3

    # pigeonhole: 14 distinct values below 13, out of reach of clause learning in seconds
    xs = [z3.BitVec(f"d{i}", 4) for i in range(14)]
    x = xs[0]
    hard = [z3.ULT(v, 13) for v in xs]
    goals = [z3.Distinct(*xs), x == 7]
    with Session(hard, goals, solver=solver, isolate=True) as s:
        assert s.check(1, 30) == "sat" and s.values([x]) == [7]  # the child is up: only the check is timed
        # a negative grace: the parent gives up 1.5 s before the child's solver would, as it must with
        # a solver that overruns its own limit
        monkeypatch.setattr("ctnn.verify._solver_process.GRACE_S", -1.5)
        t = time.perf_counter()
        assert s.check(0, 2.0) == "unknown" and s.reason == "timeout"
        assert time.perf_counter() - t < 1.5  # the parent's deadline, not the solver's
        assert s.stats["solver_processes_stopped"] == 1
        with pytest.raises(RuntimeError, match="no model to read"):
            s.values([x])
        monkeypatch.setattr("ctnn.verify._solver_process.GRACE_S", 0.25)
        assert s.check(1, 30) == "sat" and s.values([x]) == [7]
        assert s.stats["solver_processes"] == 2


@pytest.mark.parametrize("solver", SOLVERS_HERE)
def test_a_child_killed_from_outside_is_an_unknown_answer(solver):
    """A signal that kills the child (the kernel's out-of-memory killer, say) leaves that goal open;
    the next goal gets a new child."""
    import z3

    x = z3.BitVec("d0", 4)
    with Session([x >= -3, x <= 5], [x == 2, x == 3], solver=solver, isolate=True) as s:
        assert s.check(0, 10) == "sat"
        os.kill(s._text._proc.pid, signal.SIGKILL)
        s._text._proc.wait()
        assert s.check(1, 10) == "unknown"
        assert s.reason == f"the {solver} solver process was killed by signal {int(signal.SIGKILL)}"
        assert s.check(1, 10) == "sat" and s.values([x]) == [3]
        assert s.stats["solver_processes"] == 2 and s.stats["solver_processes_stopped"] == 0


def test_child_reports_a_query_it_cannot_read():
    from ctnn.verify._solver_process import Child, ChildError

    c = Child("z3", "(assert (= undeclared 1))", 10)
    with pytest.raises(ChildError, match="the z3 solver process failed: .*undeclared"):
        c.check("__goal0", 10)
    c.close()


@pytest.mark.parametrize("solver", SOLVERS_HERE)
def test_isolated_verdicts_match_enumeration(solver, tiny_nets, monkeypatch):
    """Every formula in a child process: the same verdicts as enumeration, witnesses replayed."""
    monkeypatch.setattr("ctnn.verify._verify.ISOLATE_ELEMENTS", -1)
    seen = set()
    for model, x0, eps, (lo, hi), robust in _enumerated_queries(tiny_nets[:4]):
        r = verify_robustness(model, x0, eps, input_range=(lo, hi), attack=False, interval=False,
                              solver=solver)  # fmt: skip
        assert r.verdict == ("robust" if robust else "vulnerable")
        if r.stats.get("solver_calls"):
            assert r.stats["solver_processes"] == 1
            seen.add(r.verdict)
    assert seen == {"robust", "vulnerable"}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_child_dies_with_its_parent():
    """A parent killed mid-check (a campaign's forced cancel) takes its solver process with it."""
    script = """
import sys, time
import z3
from ctnn.verify._solver_process import Child
xs = [z3.BitVec(f"d{i}", 4) for i in range(14)]
s = z3.Solver()
s.add([z3.ULT(v, 13) for v in xs] + [z3.Implies(z3.Bool("g"), z3.Distinct(*xs))])
c = Child("z3", s.to_smt2().replace("(check-sat)", ""), 60)
c._start(time.perf_counter() + 30)
print(c._proc.pid, flush=True)
c.check("g", 60)
"""
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    child = int(parent.stdout.readline())
    time.sleep(0.5)  # the check is under way
    assert _alive(child)
    parent.kill()
    parent.wait()
    parent.stdout.close()
    t = time.perf_counter()
    while _alive(child) and time.perf_counter() - t < 10:
        time.sleep(0.05)
    assert not _alive(child)
