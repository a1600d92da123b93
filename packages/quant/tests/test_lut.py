"""Lookup tables: the table is the float function at the codes' real values, and the graph equals numpy."""

import numpy as np
import onnxruntime as ort
import pytest

from ctnn.quant import (
    GraphBuilder,
    ReferenceInterpreter,
    apply_lut,
    container_dtype,
    emit_lut,
    lut_table,
    signed_range,
)


@pytest.mark.parametrize("fn", ["tanh", "sigmoid", "softplus"])
@pytest.mark.parametrize("bits", [3, 6, 8, 10])
def test_lut_graph_equals_numpy_and_onnxruntime(fn, bits):
    lo, hi = signed_range(bits)
    in_scale = 6.0 / hi
    out_lo, out_hi = (lo, hi) if fn == "tanh" else (0, hi)
    out_scale = (1.0 if fn != "softplus" else 6.0) / hi
    table = lut_table(fn, in_scale, bits, out_scale, out_lo, out_hi)
    assert table.shape == (1 << bits,) and table.dtype == np.int64
    assert np.all(np.diff(table) >= 0)  # all three are monotone
    assert table.min() >= out_lo and table.max() <= out_hi
    b = GraphBuilder("lut")
    dt = container_dtype(lo, hi)
    y = b.op("Identity", [emit_lut(b, "x", table, lo, fn)], "y")
    model = b.model([("x", dt, ["N"])], [(y, np.int64, ["N"])])
    codes = np.arange(lo, hi + 1).astype(dt)
    ref = ReferenceInterpreter(model).run({"x": codes})["y"]
    out = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": codes}
    )[0]
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(apply_lut(codes, table, lo), ref)
    # the entries are the float function, rounded half away from zero, up to clipping
    real = {
        "tanh": np.tanh,
        "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
        "softplus": lambda v: np.log1p(np.exp(v)),
    }[fn]
    v = real(in_scale * codes.astype(np.float64)) / out_scale
    expect = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5), out_lo, out_hi)
    np.testing.assert_array_equal(expect, table)


def test_lut_errors():
    with pytest.raises(ValueError, match="unknown LUT function 'gelu'"):
        lut_table("gelu", 0.1, 8, 0.1, -128, 127)
    with pytest.raises(ValueError, match="positive and finite"):
        lut_table("tanh", 0.0, 8, 0.1, -128, 127)
    with pytest.raises(IndexError, match=r"codes must lie in \[-8, 7\]"):
        apply_lut(np.array([8]), np.zeros(16, np.int64), -8)
