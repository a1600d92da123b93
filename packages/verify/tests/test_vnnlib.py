"""VNNLIB: the box-input / linear-output subset, held to exhaustive enumeration on tiny networks."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from verify_helpers import SMT_SOLVER, enumerate_box, in_range

from ctnn.quant import ReferenceInterpreter, Sidecar, TensorQuant, random_integer_mlp, write_sidecar
from ctnn.verify import VnnlibError, read_vnnlib, verify_vnnlib
from ctnn.verify._cli import main
from ctnn.verify._vnnlib import input_codes


def _decls(n_in: int, n_out: int) -> str:
    return "".join(f"(declare-const X_{i} Real)\n" for i in range(n_in)) + "".join(
        f"(declare-const Y_{j} Real)\n" for j in range(n_out)
    )


def _box(lo, hi) -> str:
    return "".join(
        f"(assert (>= X_{i} {a}))\n(assert (<= X_{i} {b}))\n" for i, (a, b) in enumerate(zip(lo, hi))
    )


def _random_condition(rng, n_out: int) -> tuple[str, callable]:
    """A random (or (and ...)) output condition in VNNLIB text, and its truth on integer outputs."""
    disj_txt, disj_fns = [], []
    for _ in range(rng.integers(1, 3)):
        conj_txt, conj_fns = [], []
        for _ in range(rng.integers(1, 3)):
            j, k = rng.choice(n_out, 2, replace=False)
            c = int(rng.integers(-3, 4))
            op = str(rng.choice(["<=", ">=", "<", ">"]))
            form = int(rng.integers(0, 3))
            if form == 0:  # Y_j op Y_k
                conj_txt.append(f"({op} Y_{j} Y_{k})")
                lhs, rhs = (lambda y, j=j: y[j]), (lambda y, k=k: y[k])
            elif form == 1:  # Y_j op c
                conj_txt.append(f"({op} Y_{j} {c}.0)")
                lhs, rhs = (lambda y, j=j: y[j]), (lambda y, c=c: c)
            else:  # (+ Y_j (* -2 Y_k)) op c  (a general linear form)
                conj_txt.append(f"({op} (+ Y_{j} (* -2 Y_{k})) {c})")
                lhs, rhs = (lambda y, j=j, k=k: y[j] - 2 * y[k]), (lambda y, c=c: c)
            cmp = {"<=": np.less_equal, ">=": np.greater_equal, "<": np.less, ">": np.greater}[op]
            conj_fns.append(lambda y, lhs=lhs, rhs=rhs, cmp=cmp: cmp(lhs(y), rhs(y)))
        disj_txt.append("(and " + " ".join(conj_txt) + ")")
        disj_fns.append(lambda y, fs=conj_fns: all(f(y) for f in fs))
    return f"(assert (or {' '.join(disj_txt)}))\n", (lambda y: any(f(y) for f in disj_fns))


def test_vnnlib_verdicts_equal_enumeration(tiny_nets):
    seen = set()
    for model, bits, sizes, seed in tiny_nets:
        lo, hi = in_range(bits)
        rng = np.random.default_rng(seed + 11)
        ref = ReferenceInterpreter(model)
        for _ in range(3):
            a = rng.integers(lo, hi + 1, size=sizes[0])
            b = np.minimum(a + rng.integers(0, 3, size=sizes[0]), hi)
            cond_txt, truth = _random_condition(rng, sizes[-1])
            text = _decls(sizes[0], sizes[-1]) + "; a comment\n" + _box(a, b) + cond_txt
            xs = enumerate_box(a, b)
            ys = ref.run({"x": xs.astype(np.int8)})["y"].astype(np.int64)
            sat = [truth(y) for y in ys]
            # the full pipeline, and each exact solver alone
            for stages, solver in ((True, "auto"), (False, SMT_SOLVER), (False, "cpsat")):
                r = verify_vnnlib(model, text, units="codes", input_range=(lo, hi), attack=stages,
                                  interval=stages, solver=solver)  # fmt: skip
                assert r.verdict == ("vulnerable" if any(sat) else "robust"), (text, r)
                if r.vulnerable:
                    x = np.array(r.counterexample)
                    assert np.all((a <= x) & (x <= b))
                    assert truth(np.array(r.counterexample_output))
                seen.add((r.verdict, r.method))
    assert {v for v, _ in seen} == {"robust", "vulnerable"}, seen
    assert {("robust", "smt"), ("vulnerable", "smt"), ("robust", "cpsat"), ("vulnerable", "cpsat")} <= seen, (
        seen
    )


def _scaled_model(tmp_path):
    net = random_integer_mlp([2, 3, 2], weight_bits=4, act_bits=4, in_bits=4, seed=2)
    path = tmp_path / "m.onnx"
    import onnx

    onnx.save(net.to_onnx(), str(path))
    write_sidecar(path, Sidecar(
        family="mlp", input=TensorQuant("x", [None, 2], 4, -8, 7, 0.25, -8, "int8"),
        output=TensorQuant("y", [None, 2], 4, -8, 7, 0.5, 0, "int8"), weight_bits=4, act_bits=4,
    ))  # fmt: skip
    return net, path


def test_real_units_through_the_sidecar(tmp_path):
    net, path = _scaled_model(tmp_path)
    # X_0 in [0.3, 1.1], X_1 in [-0.1, 0.6]: real = 0.25 * (code + 8)
    spec = read_vnnlib(_decls(2, 2) + _box([0.3, -0.1], [1.1, 0.6]) + "(assert (>= Y_0 1.25))")
    lo, hi = input_codes(spec, 0.25, -8, -8, 7, rounding="quantize")
    tq = TensorQuant("x", [None, 2], 4, -8, 7, 0.25, -8, "int8")
    assert lo.tolist() == tq.quantize(np.array([0.3, -0.1])).tolist()  # the sidecar's own quantizer
    assert hi.tolist() == tq.quantize(np.array([1.1, 0.6])).tolist()
    ilo, ihi = input_codes(spec, 0.25, -8, -8, 7, rounding="inward")
    assert np.all(tq.dequantize(ilo) >= [0.3, -0.1]) and np.all(tq.dequantize(ihi) <= [1.1, 0.6])
    assert np.all(ilo >= lo) and np.all(ihi <= hi)
    # Y_0 >= 1.25 on real outputs  <=>  0.5 * code >= 1.25  <=>  code >= 3 (exact rationals)
    ys = net.forward(enumerate_box(lo, hi))
    r = verify_vnnlib(path, _decls(2, 2) + _box([0.3, -0.1], [1.1, 0.6]) + "(assert (>= Y_0 1.25))")
    assert r.verdict == ("vulnerable" if np.any(ys[:, 0] >= 3) else "robust")
    r2 = verify_vnnlib(path, _decls(2, 2) + _box([0.3, -0.1], [1.1, 0.6]) + "(assert (> Y_0 1.5))")
    assert r2.verdict == ("vulnerable" if np.any(ys[:, 0] > 3) else "robust")
    assert Fraction(1.25) * 4 == 5  # the numbers are read exactly


@pytest.mark.parametrize(
    "body,match",
    [
        ("(declare-fun X_0 () Real)", r":1: the command 'declare-fun'"),
        ("(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (<= (* X_0 X_0) 1))", r":3: an input"),
        (
            "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (>= X_0 0))\n(assert (< X_0 1))",
            r":4: a strict input bound",
        ),
        (
            "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (>= X_0 0))\n(assert (<= X_0 1))\n"
            "(assert (<= (* Y_0 Y_0) 1))",
            r":5: a product of two outputs",
        ),
        (
            "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (>= X_0 0))\n(assert (<= X_0 1))\n"
            "(assert (not (<= Y_0 1)))",
            r":5: 'not'",
        ),
        (
            "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (>= X_0 0))\n(assert (<= Y_0 1))",
            r"X_0 \(declared on line 1\) needs both a lower and an upper bound",
        ),
        (
            "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert (>= X_0 0))\n(assert (<= X_0 1))\n"
            "(check-sat)",
            r":5: the command 'check-sat'",
        ),
        ("(declare-const X_0 Real)\n(assert (<= X_0 1)", r":2: unclosed"),
        ("(declare-const X_1 Real)\n(declare-const Y_0 Real)", r"X_0 is not declared"),
    ],
)
def test_outside_the_subset_is_a_clear_error(body, match):
    with pytest.raises(VnnlibError, match=match):
        read_vnnlib(body)


def test_shape_and_unit_errors(tmp_path):
    net = random_integer_mlp([2, 3, 2], weight_bits=4, act_bits=4, in_bits=4, seed=0).to_onnx()
    three = _decls(3, 2) + _box([0, 0, 0], [1, 1, 1]) + "(assert (>= Y_0 0))"
    with pytest.raises(VnnlibError, match="declares 3 inputs X_i but .* takes 2"):
        verify_vnnlib(net, three, units="codes", input_range=(-8, 7))
    with pytest.raises(VnnlibError, match="need the model's sidecar"):
        verify_vnnlib(net, _decls(2, 2) + _box([0, 0], [1, 1]) + "(assert (>= Y_0 0))", input_range=(-8, 7))
    with pytest.raises(VnnlibError, match="holds no input code"):
        verify_vnnlib(net, _decls(2, 2) + _box([50, 0], [60, 1]) + "(assert (>= Y_0 0))", units="codes",
                      input_range=(-8, 7))  # fmt: skip


def test_cli_vnnlib(tmp_path, capsys):
    net, path = _scaled_model(tmp_path)
    prop = tmp_path / "p.vnnlib"
    prop.write_text(_decls(2, 2) + _box([0.0, 0.0], [3.75, 3.75]) + "(assert (or (and (>= Y_0 -100))))")
    assert main(["vnnlib", str(path), str(prop), "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("sat: property violated")  # every output is >= -100
    assert (tmp_path / "r.json").is_file()
    prop.write_text(_decls(2, 2) + _box([0.0, 0.0], [3.75, 3.75]) + "(assert (>= Y_0 100))")
    assert main(["vnnlib", str(path), str(prop)]) == 0
    assert capsys.readouterr().out.startswith("unsat: property holds")  # codes stop at 7 (3.5)
    prop.write_text(_decls(2, 2) + "(assert (>= X_0 0))\n(assert (<= X_0 1))\n(assert (>= X_1 0))\n"
                    "(assert (<= X_1 1))\n(assert (= Y_0 1))")  # fmt: skip
    assert main(["vnnlib", str(path), str(prop)]) == 2
    assert f"{prop}:9: '='" in capsys.readouterr().err
