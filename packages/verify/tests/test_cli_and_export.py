"""The ctnn-verify CLI, the SMT-LIB export, the result's JSON and the torch-free import."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import z3

from ctnn.quant import Sidecar, TensorQuant, random_integer_mlp, write_sidecar
from ctnn.verify import VerificationResult, to_smtlib, verify_robustness
from ctnn.verify._cli import main
from ctnn.verify._network import Network


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("m")
    p = d / "mlp.onnx"
    onnx.save(random_integer_mlp([3, 4, 3], weight_bits=4, act_bits=4, in_bits=4, seed=1).to_onnx(), p)
    q = TensorQuant("x", [None, 3], 4, -8, 7, 0.1)
    write_sidecar(p, Sidecar("mlp", q, TensorQuant("y", [None, 3], 4, -8, 7, 0.5), 4, 4))
    return p


def test_cli_writes_the_verdict_and_json(model_file, tmp_path, capsys):
    x = tmp_path / "x.npy"
    np.save(x, np.array([[1, -2, 3]], np.int8))
    out = tmp_path / "r.json"
    assert main(["robustness", str(model_file), "--input", str(x), "--eps", "2", "--json", str(out)]) == 0
    line = capsys.readouterr().out
    body = json.loads(out.read_text())
    assert body["verdict"] in ("robust", "vulnerable") and line.startswith(body["verdict"])
    direct = verify_robustness(model_file, np.array([1, -2, 3]), 2)  # the sidecar's range [-8, 7]
    assert Network(model_file).input_range == (-8, 7)
    assert Network(onnx.load(model_file)).input_range == (-128, 127)  # in memory: the int8 input's range
    assert direct.verdict == body["verdict"] and body["eps"] == 2
    if body["verdict"] == "vulnerable":
        assert all(-8 <= v <= 7 for v in body["counterexample"])


def test_cli_names_the_classes_a_timeout_leaves_open(model_file, tmp_path, capsys):
    x, out = tmp_path / "x.npy", tmp_path / "r.json"
    lines = []
    for row in np.random.default_rng(0).integers(-8, 8, size=(8, 3)):
        np.save(x, row[None].astype(np.int8))
        assert main(["robustness", str(model_file), "--input", str(x), "--eps", "2", "--timeout", "1e-6", "--no-attack",
                     "--json", str(out)]) == 0  # fmt: skip
        line, body = capsys.readouterr().out, json.loads(out.read_text())
        if body["verdict"] == "unknown":
            named = ", ".join(map(str, body["stats"]["open_classes"]))
            assert f"(classes still open: {named})" in line
            lines.append(line)
    assert lines  # a microsecond stops the query in its interval pass: every class is still open


def test_cli_sample_index_and_errors(model_file, tmp_path, capsys):
    xs = tmp_path / "xs.npy"
    np.save(xs, np.array([[1, -2, 3], [0, 0, 0]]))
    assert main(["robustness", str(model_file), "--input", str(xs), "--eps", "1", "--sample-index", "1"]) == 0
    assert main(["robustness", str(model_file), "--input", str(xs), "--eps", "1"]) == 2
    assert "pick one with --sample-index" in capsys.readouterr().err
    assert (
        main(["robustness", str(model_file), "--input", str(xs), "--eps", "-1", "--sample-index", "0"]) == 2
    )
    assert "eps must be >= 0, got -1" in capsys.readouterr().err
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"junk")
    assert main(["robustness", str(junk), "--input", str(xs), "--eps", "1", "--sample-index", "0"]) == 2
    assert "not an ONNX model" in capsys.readouterr().err
    assert main(["robustness", str(model_file), "--input", str(xs), "--eps", "1", "--sample-index", "1",
                 "--workers", "0"]) == 2  # fmt: skip
    assert "workers must be a positive integer, got 0" in capsys.readouterr().err


def test_cli_reads_codes_from_an_npz(model_file, tmp_path, capsys):
    rows = np.array([[1, -2, 3], [0, 0, 0]], np.int8)
    npz, bare, other = tmp_path / "s.npz", tmp_path / "bare.npz", tmp_path / "other.npz"
    np.savez(npz, codes=rows, labels=np.array([0, 1]))  # ctnn-quant codes / campaign sample files
    np.savez(bare, rows)
    np.savez(other, x=rows, y=rows)
    base = ["robustness", str(model_file), "--eps", "1", "--sample-index", "1", "--json"]
    assert main([*base, str(tmp_path / "a.json"), "--input", str(npz)]) == 0
    assert main([*base, str(tmp_path / "b.json"), "--input", str(bare)]) == 0
    direct = verify_robustness(model_file, rows[1], 1)
    for name in ("a.json", "b.json"):
        body = json.loads((tmp_path / name).read_text())
        assert body["verdict"] == direct.verdict and body["label"] == direct.label
    capsys.readouterr()
    assert main([*base, str(tmp_path / "c.json"), "--input", str(other)]) == 2
    assert (
        "an .npz of input codes needs an array named 'codes'; it holds ['x', 'y']" in capsys.readouterr().err
    )


def test_the_entry_point_runs(model_file, tmp_path):
    x = tmp_path / "x.npy"
    np.save(x, np.array([1, -2, 3]))
    # the console script's entry: exit handlers run and the output is flushed before it leaves by os._exit
    script = ("import atexit, sys; from ctnn.verify._cli import entry; "
              "atexit.register(lambda: print('handler ran')); sys.argv[0] = 'ctnn-verify'; entry()")  # fmt: skip
    args = ["robustness", str(model_file), "--input", str(x), "--eps", "1", "--no-attack"]
    r = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] in ("robust", "vulnerable") and r.stdout.endswith("handler ran\n")
    bad = subprocess.run([sys.executable, "-c", script, *args[:-2], "-1"], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "eps must be >= 0, got -1" in bad.stderr


@pytest.mark.parametrize("encoding", ["naive", "optimized"])
def test_smtlib_export_agrees_with_the_verdict(encoding):
    model = random_integer_mlp([3, 4, 3], weight_bits=4, act_bits=4, in_bits=4, seed=4).to_onnx()
    rng = np.random.default_rng(0)
    answers = set()
    for x0 in rng.integers(-8, 8, size=(6, 3)):
        for eps in (1, 3):
            text = to_smtlib(model, x0, eps, input_range=(-8, 7), encoding=encoding)
            assert "(check-sat)" in text
            s = z3.Solver()
            s.add(z3.parse_smt2_string(text))
            r = verify_robustness(model, x0, eps, input_range=(-8, 7), encoding=encoding)
            assert (s.check() == z3.sat) == r.vulnerable
            answers.add(r.verdict)
    assert answers == {"robust", "vulnerable"}


def test_result_to_dict_is_json():
    model = random_integer_mlp([3, 4, 3], weight_bits=4, act_bits=4, in_bits=4, seed=4).to_onnx()
    r = verify_robustness(
        model, np.array([0, 1, 2]), [1, 0, 2], input_range=(-8, 7), attack=False, interval=False, solver="z3"
    )
    d = json.loads(json.dumps(r.to_dict()))
    assert d["eps"] == [1, 0, 2] and d["method"] == "smt" and d["property"] == "robustness"
    assert set(d) >= {"verdict", "label", "counterexample", "counterexample_label", "solver_time_s",
                      "total_time_s", "stats"}  # fmt: skip
    assert d["stats"]["smt_inputs"] == 2  # the feature with eps 0 is a constant, not a variable
    assert isinstance(r, VerificationResult)


def test_verify_never_imports_torch():
    code = "import sys, ctnn.verify, ctnn.verify._cli; assert 'torch' not in sys.modules, 'torch imported'"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
