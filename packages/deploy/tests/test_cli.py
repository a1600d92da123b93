"""The ctnn-deploy command line: build a graph, run a build directory, report errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from ctnn.deploy._cli import main
from ctnn.quant import ReferenceInterpreter


@pytest.fixture
def files(small_model, tmp_path):
    model = tmp_path / "mlp.onnx"
    onnx.save(small_model, str(model))
    codes = np.random.default_rng(0).integers(-128, 128, size=(64, 16)).astype(np.int8)
    np.save(tmp_path / "codes.npy", codes)
    ref = ReferenceInterpreter(small_model).run({"x": codes})["y"]
    return model, tmp_path / "codes.npy", ref


@pytest.mark.parametrize("target", ["c", "host"])
def test_build_then_run(target, files, tmp_path, capsys, request):
    if target == "c":
        request.getfixturevalue("gcc")
    model, codes, ref = files
    out = tmp_path / f"build-{target}"
    assert main(["build", str(model), "--target", target, "--out", str(out)]) == 0
    manifest = json.loads((out / "ctnn_build.json").read_text())
    assert manifest["target"] == {"host": "llvm"}.get(target, target)
    if target == "c":
        for name in ("model.c", "model.h", "kernels.c", "main.c", "ctnn_model.mk", "include/tvm/ffi/c_api.h"):
            assert (out / name).is_file(), name
        assert "int ctnn_model_run(const int8_t *in, int8_t *out)" in capsys.readouterr().out
    else:
        assert (out / "model.so").is_file()
    result = tmp_path / f"y-{target}.npy"
    assert main(["run", str(out), "--input", str(codes), "--output", str(result), "--check"]) == 0
    assert np.array_equal(np.load(result), ref)
    assert "64/64 samples equal to the reference" in capsys.readouterr().err


def test_run_prints_outputs(files, tmp_path, capsys, gcc):
    model, codes, ref = files
    out = tmp_path / "b"
    assert main(["build", str(model), "--out", str(out), "--compile"]) == 0
    assert (out / "ctnn_model_host").is_file()
    capsys.readouterr()
    assert main(["run", str(out), "--input", str(codes)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "# y: int8 [64, 4]"
    assert np.array_equal(np.array([[int(v) for v in ln.split()] for ln in lines[1:]]), ref)


def test_run_reads_the_codes_of_a_samples_file(files, tmp_path, capsys):
    model, codes, ref = files
    out = tmp_path / "b"
    assert main(["build", str(model), "--target", "host", "--out", str(out)]) == 0
    samples = tmp_path / "samples.npz"  # as ctnn-quant codes writes it
    np.savez(samples, codes=np.load(codes), labels=np.zeros(64, np.int64), indices=np.arange(64))
    capsys.readouterr()
    assert (
        main(["run", str(out), "--input", str(samples), "--output", str(tmp_path / "y.npy"), "--check"]) == 0
    )
    assert np.array_equal(np.load(tmp_path / "y.npy"), ref)
    np.savez(samples, x=np.load(codes), labels=np.zeros(64, np.int64))  # keyed by the input's name
    assert main(["run", str(out), "--input", str(samples), "--output", str(tmp_path / "y2.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "y2.npy"), ref)
    np.savez(samples, a=np.load(codes), labels=np.zeros(64, np.int64))
    assert main(["run", str(out), "--input", str(samples)]) == 2
    assert "needs an array named 'x' or 'codes'; it holds ['a', 'labels']" in capsys.readouterr().err


def test_run_feeds_a_graph_of_two_inputs_by_name(tmp_path, capsys):
    import onnx
    from onnx import TensorProto, helper

    io = [helper.make_tensor_value_info(n, TensorProto.INT32, ["N", 4]) for n in ("a", "b", "y")]
    g = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"], name="add")], "two", io[:2], io[2:])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "two.onnx"))
    out = tmp_path / "b"
    assert main(["build", str(tmp_path / "two.onnx"), "--target", "host", "--out", str(out)]) == 0
    a, b = np.arange(12, dtype=np.int32).reshape(3, 4), np.full((3, 4), -5, np.int32)
    np.savez(tmp_path / "ab.npz", b=b, a=a)
    assert (
        main(["run", str(out), "--input", str(tmp_path / "ab.npz"), "--output", str(tmp_path / "y.npy")]) == 0
    )
    assert np.array_equal(np.load(tmp_path / "y.npy"), a + b)
    np.savez(tmp_path / "a.npz", a=a, labels=np.zeros(3))
    capsys.readouterr()
    assert main(["run", str(out), "--input", str(tmp_path / "a.npz")]) == 2
    assert "a.npz: no array for the graph's inputs ['b']; it holds ['a', 'labels']" in capsys.readouterr().err


def test_errors_are_reported_not_raised(tmp_path, capsys):
    assert main(["build", str(tmp_path / "missing.onnx"), "--out", str(tmp_path / "o")]) == 2
    assert "ctnn-deploy: error:" in capsys.readouterr().err
    assert main(["run", str(tmp_path), "--input", str(tmp_path / "x.npy")]) == 2
    assert "not a ctnn-deploy build directory" in capsys.readouterr().err
