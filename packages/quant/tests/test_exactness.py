"""The numpy reference equals onnxruntime, and the graph equals the integer semantics."""

import numpy as np
import onnxruntime as ort
import pytest

from ctnn.quant import ReferenceInterpreter, check_model, container_dtype, random_integer_mlp, signed_range


def _ort(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    "sizes,wb,ab,ib",
    [([64, 32, 10], 8, 8, 8), ([64, 32, 10], 6, 6, 8), ([64, 32, 10], 4, 4, 8),
     ([16, 24, 12, 5], 3, 5, 4), ([20, 8, 3], 12, 10, 8), ([10, 6, 4], 2, 2, 2)],
)  # fmt: skip
def test_reference_equals_onnxruntime_on_random_inputs(sizes, wb, ab, ib):
    net = random_integer_mlp(sizes, weight_bits=wb, act_bits=ab, in_bits=ib, seed=wb * 100 + ab)
    model = net.to_onnx()
    check_model(model)
    lo, hi = signed_range(ib)
    rng = np.random.default_rng(0)
    x = rng.integers(lo, hi + 1, size=(1000, sizes[0]))
    x[0], x[1] = lo, hi  # the extremes
    ref = ReferenceInterpreter(model).run({"x": x})["y"]
    out = _ort(model).run(None, {"x": x.astype(container_dtype(lo, hi))})[0]
    assert out.dtype == ref.dtype
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(net.forward(x), ref.astype(np.int64))
    # the outputs are not degenerate: the test could fail
    assert len(np.unique(ref)) > 3


def test_reference_keeps_intermediates_and_wraps_like_hardware():
    net = random_integer_mlp([8, 4, 2], seed=3)
    env = ReferenceInterpreter(net.to_onnx()).run({"x": np.zeros((1, 8))}, keep=True)
    assert env["fc1/matmul"].dtype == np.int32 and env["fc1/rq/prod"].dtype == np.int64
    from ctnn.quant import REFERENCE_OPS

    wrapped = REFERENCE_OPS["Add"]([np.array([127], np.int8), np.array([1], np.int8)], {})[0]
    assert wrapped.dtype == np.int8 and wrapped[0] == -128


def _mmi_model(a_shape, b, a_zp, b_zp):
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["y"], name="mm")],
        "zp",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, list(a_shape))],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [a_shape[0], b.shape[1]])],
        initializer=[
            helper.make_tensor("b", TensorProto.UINT8, list(b.shape), b.ravel().tolist()),
            helper.make_tensor("az", TensorProto.UINT8, list(a_zp.shape), a_zp.ravel().tolist()),
            helper.make_tensor("bz", TensorProto.UINT8, list(b_zp.shape), b_zp.ravel().tolist()),
        ],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9  # onnx 1.23 writes IR 14 by default; onnxruntime 1.31 reads up to 13
    return model


def test_matmulinteger_zero_points_follow_the_onnx_spec():
    """A 1-D a_zero_point is per row of A; a 1-D b_zero_point is per column of B."""
    a = np.array([[1, 2, 3], [4, 5, 6]], np.uint8)
    b = np.array([[1, 0], [0, 1], [2, 3]], np.uint8)
    a_zp, b_zp = np.array([1, 2], np.uint8), np.array([0, 1], np.uint8)
    from ctnn.quant import REFERENCE_OPS, DialectError

    ref = REFERENCE_OPS["MatMulInteger"]([a, b, a_zp, b_zp], {})[0]
    np.testing.assert_array_equal(ref, (a.astype(np.int64) - a_zp[:, None]) @ (b.astype(np.int64) - b_zp))
    # onnxruntime takes only a scalar a_zero_point, so the dialect refuses a per-row one
    with pytest.raises(DialectError, match="node 'mm' .*a_zero_point 'az'"):
        check_model(_mmi_model(a.shape, b, a_zp, b_zp))
    model = _mmi_model(a.shape, b, np.array(2, np.uint8), b_zp)
    ref = ReferenceInterpreter(model).run({"a": a})["y"]
    np.testing.assert_array_equal(ref, (a.astype(np.int64) - 2) @ (b.astype(np.int64) - b_zp))
    np.testing.assert_array_equal(_ort(model).run(None, {"a": a})[0], ref)
