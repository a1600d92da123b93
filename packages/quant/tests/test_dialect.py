"""Graphs outside the dialect get errors that name the file, node, op or tensor."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from ctnn.quant import DialectError, load_model, random_integer_mlp, read_sidecar


def test_not_onnx(tmp_path):
    p = tmp_path / "junk.onnx"
    p.write_bytes(b"this is not a protobuf \x00\xff\x13")
    with pytest.raises(DialectError, match="junk.onnx: not an ONNX model"):
        load_model(p)


def test_missing_file(tmp_path):
    with pytest.raises(DialectError, match="no such file"):
        load_model(tmp_path / "absent.onnx")


def _graph_with(node, in_type=TensorProto.INT8, out_type=TensorProto.INT8):
    g = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", in_type, [1, 4])],
        [helper.make_tensor_value_info("y", out_type, [1, 4])],
    )  # fmt: skip
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_unsupported_op_names_op_and_node(tmp_path):
    m = _graph_with(helper.make_node("Relu", ["x"], ["y"], name="act1"), TensorProto.FLOAT, TensorProto.FLOAT)
    p = tmp_path / "float.onnx"
    onnx.save(m, p)
    with pytest.raises(DialectError, match=r"node 'act1' uses op 'Relu'"):
        load_model(p)


def test_float_tensor_is_rejected(tmp_path):
    m = _graph_with(
        helper.make_node("Identity", ["x"], ["y"], name="id"), TensorProto.FLOAT, TensorProto.FLOAT
    )
    p = tmp_path / "f.onnx"
    onnx.save(m, p)
    with pytest.raises(DialectError, match="'x' has type FLOAT"):
        load_model(p)


def test_old_opset_is_rejected():
    m = _graph_with(helper.make_node("Identity", ["x"], ["y"]))
    m.opset_import[0].version = 11
    from ctnn.quant import check_model

    with pytest.raises(DialectError, match="opset 11"):
        check_model(m)


def test_sidecar_roundtrip_and_stale_hash(tmp_path):
    from ctnn.quant import Sidecar, TensorQuant, write_sidecar

    p = tmp_path / "m.onnx"
    onnx.save(random_integer_mlp([4, 3, 2], seed=1).to_onnx(), p)
    tq = TensorQuant("x", [None, 4], 8, -128, 127, 0.1, -128)
    write_sidecar(p, Sidecar("mlp", tq, TensorQuant("y", [None, 2], 8, -128, 127, 0.5), 8, 8))
    sc = read_sidecar(p)
    assert sc.input.zero_point == -128 and len(sc.onnx_sha256) == 64
    codes = sc.input.quantize(np.array([0.0, 0.04, 0.06, 25.5, 100.0]))
    assert list(codes) == [-128, -128, -127, 127, 127]
    onnx.save(random_integer_mlp([4, 3, 2], seed=2).to_onnx(), p)
    with pytest.raises(ValueError, match="sha256 does not match"):
        read_sidecar(p)


def test_the_input_code_range_is_the_sidecars_else_the_dtypes(tmp_path):
    from ctnn.quant import Sidecar, TensorQuant, input_code_range, sidecar_path, write_sidecar

    p = tmp_path / "m.onnx"
    onnx.save(random_integer_mlp([4, 3, 2], seed=1).to_onnx(), p)
    assert input_code_range(p, np.int8) == (-128, 127)  # no sidecar yet
    tq = TensorQuant("x", [None, 4], 8, -100, 90, 0.1, -100)
    write_sidecar(p, Sidecar("mlp", tq, TensorQuant("y", [None, 2], 8, -128, 127, 0.5), 8, 8))
    assert input_code_range(p, np.int8) == (-100, 90)
    assert input_code_range(None, np.int16) == (-32768, 32767)  # an in-memory graph
    sidecar_path(p).unlink()
    assert input_code_range(p, np.uint8) == (0, 255)


def test_core_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, ctnn.quant; ctnn.quant.random_integer_mlp([3,2]).to_onnx(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
