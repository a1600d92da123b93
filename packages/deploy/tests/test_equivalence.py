"""The host (llvm) build and the gcc-compiled generated C equal the numpy reference, bit for bit."""

from __future__ import annotations

import numpy as np


def _assert_equal(name, got, ref):
    assert got.dtype == ref.dtype and got.shape == ref.shape
    bad = np.flatnonzero(np.any(got != ref, axis=1))
    assert bad.size == 0, f"{name}: {bad.size} of {len(ref)} samples differ, first {bad[:5]}"


def test_inputs_cover_the_whole_range(case):
    assert case.x.shape[0] >= 1000
    assert case.x.min() == -128 and case.x.max() == 127
    # the reference output is not degenerate (the test would be weak otherwise)
    assert np.unique(case.ref).size > 20


def test_lowered_signature(case):
    (inp,), (out,) = case.lowered.inputs, case.lowered.outputs
    assert (inp.name, inp.dtype, inp.shape[0], inp.batched) == ("x", "int8", 1, True)
    assert (out.name, out.dtype, out.shape) == ("y", "int8", (1, 10))


def test_host_llvm_equals_reference(case):
    _assert_equal(f"{case.name} llvm", case.host.run(case.x), case.ref)


def test_generated_c_equals_reference(gcc, case):
    from ctnn.deploy import compile_c

    mod = compile_c(case.c_build.out_dir)
    _assert_equal(f"{case.name} C", mod.run(case.x), case.ref)


def test_build_result_load_runs_the_c_program(gcc, case):
    got = case.c_build.load().run(case.x[:50])
    _assert_equal(f"{case.name} C", got, case.ref[:50])


def test_several_outputs_and_an_output_that_is_the_input(tmp_path, gcc):
    """Graph outputs that are intermediates (or the input itself) get their own pointer in the C API."""
    from onnx import TensorProto, helper

    from ctnn.deploy import build, build_host, compile_c
    from ctnn.quant import ReferenceInterpreter, random_integer_mlp

    model = random_integer_mlp([16, 12, 4], seed=1).to_onnx()
    model.graph.output.append(helper.make_tensor_value_info("fc1/out", TensorProto.INT8, ["N", 12]))
    model.graph.output.append(helper.make_tensor_value_info("x", TensorProto.INT8, ["N", 16]))
    x = np.random.default_rng(0).integers(-128, 128, size=(300, 16)).astype(np.int8)
    ref = ReferenceInterpreter(model).run({"x": x})
    res = build(model, target="c", out_dir=tmp_path / "c")
    assert res.info["api"] == "int ctnn_model_run(const int8_t *in, int8_t *out0, int8_t *out1, int8_t *out2)"
    for runner in (compile_c(res.out_dir), build_host(model)):
        got = runner.run(x)
        assert set(got) == {"y", "fc1/out", "x"}
        for name, value in got.items():
            _assert_equal(f"{type(runner).__name__} {name}", value, ref[name])
