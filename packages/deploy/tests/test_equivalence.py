"""The host (llvm) build and the gcc-compiled generated C equal the numpy reference, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest


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


def _outputs(got, names):
    return got if isinstance(got, dict) else {names[0]: got}


def test_recurrent_graph_is_not_degenerate(graph_case):
    for name, ref in graph_case.refs.items():
        assert np.unique(ref).size > 20, name


def test_recurrent_graph_host_and_c_equal_reference(gcc, graph_case):
    """Unrolled recurrent graphs (Slice, Concat, Split, Gather LUTs, Where, Div, ReduceSum...) on 1000 inputs."""
    from ctnn.deploy import compile_c

    names = list(graph_case.refs)
    for label, runner in (("llvm", graph_case.host), ("C", compile_c(graph_case.c_build.out_dir))):
        got = _outputs(runner.run(graph_case.x), names)
        for name in names:
            _assert_equal(f"{graph_case.name} {label} {name}", got[name].reshape(len(graph_case.x), -1),
                          graph_case.refs[name].reshape(len(graph_case.x), -1))  # fmt: skip


def test_unrolled_steps_share_one_kernel(graph_case):
    """Every time step of an unrolled graph calls the same C kernels: code does not grow with the steps."""
    info = graph_case.c_build.info
    assert len(info["kernels"]) < info["calls"] / 2


@pytest.mark.parametrize(
    "bits",
    [dict(weight_bits=2), dict(weight_bits=4, act_bits=4, in_bits=4), dict(weight_bits=8, act_bits=16),
     dict(weight_bits=12, act_bits=12, in_bits=12), dict(weight_bits=16, act_bits=8, in_bits=8)],
    ids=["w2a8", "w4a4i4", "w8a16", "w12a12i12", "w16a8"],
)  # fmt: skip
def test_bit_widths(bits, tmp_path, gcc):
    """Containers follow the bit-widths (int8 or int16 in and out); host and C equal the reference."""
    from ctnn.deploy import build, build_host, compile_c
    from ctnn.quant import ReferenceInterpreter, random_integer_mlp, signed_range

    model = random_integer_mlp([24, 16, 6], seed=5, **bits).to_onnx()
    lo, hi = signed_range(bits.get("in_bits", 8))
    x = (
        np.random.default_rng(1)
        .integers(lo, hi + 1, size=(1000, 24))
        .astype(np.int8 if hi < 128 else np.int16)
    )
    x[0], x[1] = lo, hi
    ref = ReferenceInterpreter(model).run({"x": x})["y"]
    res = build(model, target="c", out_dir=tmp_path / "c")
    assert res.info["api"].startswith(f"int ctnn_model_run(const {'int8_t' if hi < 128 else 'int16_t'} *in")
    _assert_equal("C", compile_c(res.out_dir).run(x), ref)
    _assert_equal("llvm", build_host(model).run(x), ref)
