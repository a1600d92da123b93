"""Clear errors: graphs outside the dialect, TVM import failures, missing gcc, half-written builds."""

from __future__ import annotations

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from ctnn.deploy import (
    DeployError,
    FrontendError,
    ToolchainError,
    build,
    build_host,
    compile_c,
    get_target,
    lower,
)
from ctnn.quant import DialectError


def _relu_graph() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.INT8, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.INT8, ["N", 4])
    node = helper.make_node("Relu", ["x"], ["y"], name="act1")
    return helper.make_model(
        helper.make_graph([node], "bad", [x], [y]), opset_imports=[helper.make_opsetid("", 17)]
    )


def _float_graph() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    node = helper.make_node("Identity", ["x"], ["y"], name="id")
    return helper.make_model(
        helper.make_graph([node], "bad", [x], [y]), opset_imports=[helper.make_opsetid("", 17)]
    )


@pytest.mark.parametrize("target", ["c", "llvm"])
def test_op_outside_the_dialect_names_node_and_op(target, tmp_path):
    with pytest.raises(DialectError, match=r"node 'act1' uses op 'Relu', outside the integer dialect"):
        build(_relu_graph(), target=target, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_float_tensor_is_outside_the_dialect(tmp_path):
    path = tmp_path / "float.onnx"
    onnx.save(_float_graph(), str(path))
    with pytest.raises(DialectError, match=r"float.onnx.*'x'.*FLOAT"):
        lower(path)


def test_missing_file():
    with pytest.raises(DialectError, match="no such file"):
        build_host("does/not/exist.onnx")


def test_tvm_import_failure_names_the_node(small_model, monkeypatch):
    from tvm.relax.frontend.onnx import onnx_frontend

    def broken(cls, bb, inputs, attr, params):
        raise RuntimeError("converter exploded")

    monkeypatch.setattr(onnx_frontend.Clip, "_impl_v13", classmethod(broken))
    with pytest.raises(
        FrontendError, match=r"could not import node 'fc1/rq/clip' \(op Clip\).*converter exploded"
    ):
        lower(small_model)


def test_only_the_batch_dimension_may_be_symbolic():
    m = _relu_graph()
    m.graph.node[0].op_type = "Identity"
    m.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "F"
    with pytest.raises(FrontendError, match=r"symbolic dimension 'F' at axis 1"):
        lower(m)


def test_unknown_target(small_model):
    with pytest.raises(
        DeployError, match=r"unknown target 'vta'.*available: c, cortex-m3, cortex-m4, fpga, host, llvm"
    ):
        get_target("vta")


def test_missing_compiler_says_what_to_install(small_model, tmp_path, monkeypatch):
    res = build(small_model, target="c", out_dir=tmp_path / "b")
    with pytest.raises(ToolchainError, match=r"'no-such-cc' not found.*apt-get install gcc"):
        compile_c(res.out_dir, cc="no-such-cc")
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolchainError, match=r"'gcc' not found on PATH"):
        compile_c(res.out_dir)
    assert not (res.out_dir / "ctnn_model_host").exists()


def test_compile_error_is_reported(small_model, tmp_path, gcc):
    res = build(small_model, target="c", out_dir=tmp_path / "b")
    (res.out_dir / "model.c").write_text("this is not C\n")
    with pytest.raises(ToolchainError, match=r"compiling .* failed"):
        compile_c(res.out_dir)


def test_failed_build_leaves_nothing(small_model, tmp_path, monkeypatch):
    from ctnn.deploy._targets._c import CTarget

    def fail(self, lowered, out_dir):
        (out_dir / "model.c").write_text("half")
        raise DeployError("simulated failure")

    monkeypatch.setattr(CTarget, "build", fail)
    with pytest.raises(DeployError, match="simulated failure"):
        build(small_model, target="c", out_dir=tmp_path / "out")
    assert os.listdir(tmp_path) == []


def test_failed_rebuild_keeps_the_previous_build(small_model, tmp_path, monkeypatch):
    from ctnn.deploy._targets._c import CTarget

    first = build(small_model, target="c", out_dir=tmp_path / "out")
    before = (first.out_dir / "model.c").read_text()
    monkeypatch.setattr(CTarget, "build", lambda self, lowered, out_dir: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        build(small_model, target="c", out_dir=tmp_path / "out")
    assert (first.out_dir / "model.c").read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_rebuild_replaces_a_build_but_never_other_files(small_model, tmp_path):
    build(small_model, target="c", out_dir=tmp_path / "out")
    build(small_model, target="c", out_dir=tmp_path / "out")  # replaces the earlier build
    assert sorted(os.listdir(tmp_path)) == ["out"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(DeployError, match="not a ctnn-deploy build; not replacing it"):
        build(small_model, target="c", out_dir=mine)
    assert (mine / "notes.txt").read_text() == "keep me"


def test_codes_are_checked(small_model):
    host = build_host(small_model)
    with pytest.raises(ValueError, match=r"codes in \[0, 300\] do not fit int8"):
        host.run(np.array([[0] * 15 + [300]]))
    with pytest.raises(ValueError, match=r"expected shape \[N, 16\]"):
        host.run(np.zeros((2, 15), np.int8))
    with pytest.raises(TypeError, match="integer codes"):
        host.run(np.zeros((2, 16), np.float32))
    assert host.run(np.zeros((0, 16), np.int8)).shape == (0, 4)
