"""32-bit requantization (SMMULR) only where the graph's bounds prove it equal to the 64-bit one."""

from __future__ import annotations

import numpy as np
import pytest

from ctnn.deploy import build
from ctnn.deploy._requant import MULHR, mulhr_multiplier
from ctnn.quant import IntegerDense, IntegerMLP, ReferenceInterpreter, requantize


def _mulhr(v: np.ndarray, mp: int, lo: int, hi: int) -> np.ndarray:
    return np.clip((v.astype(np.int64) * mp + (1 << 31)) >> 32, lo, hi)


@pytest.mark.parametrize(
    "m, s, lo, hi",
    [(25102, 24, 0, 127), (28392, 23, -128, 127), (3, 4, -128, 127), (1, 2, -8, 7), (5 << 12, 42, -128, 127)],
)
def test_accepted_multipliers_equal_the_64_bit_requantization(m, s, lo, hi):
    v = np.arange(-(1 << 20), 1 << 20, dtype=np.int64)
    v = np.concatenate([v, np.array([-(2**31), 2**31 - 1, -(2**31) + 1])])
    ref = requantize(v, m, s, lo, hi)
    t = (m & -m).bit_length() - 1
    tie_free = -(1 << max(s - 1 - t, 0)) + 1  # the smallest value without a negative tie
    mp = mulhr_multiplier(m, s, lo, vmin=tie_free)
    assert mp is not None
    ok = v >= tie_free if lo < 0 else np.ones(v.shape, bool)
    np.testing.assert_array_equal(_mulhr(v[ok], mp, lo, hi), ref[ok])
    if lo < 0 and s - 1 - t >= 0:  # one value further and a tie rounds the other way: refused
        assert mulhr_multiplier(m, s, lo, vmin=tie_free - 1) is None
        tie = np.array([-(1 << (s - 1 - t))], np.int64)
        assert _mulhr(tie, mp, -(2**31), 2**31 - 1)[0] != requantize(tie, m, s, -(2**31), 2**31 - 1)[0]


def test_multipliers_that_do_not_fit_are_refused():
    assert mulhr_multiplier(1 << 20, 21, 0, 0) is None  # M' = 2**31
    assert mulhr_multiplier(3, 40, 0, 0) is None  # 2**8 does not divide M
    assert mulhr_multiplier(-3, 4, 0, 0) is None


def test_c_build_keeps_64_bits_where_a_tie_is_possible(gcc, tmp_path):
    rng = np.random.default_rng(0)
    # layer 1 divides by 4 (M=1, s=2): a negative accumulator 2 (mod 4) is a tie -> 64-bit kept;
    # layer 2's accumulators stay far below its tie bound 2**19 -> SMMULR
    w1 = rng.integers(-3, 4, size=(8, 6))
    w2 = rng.integers(-127, 128, size=(6, 4))
    layers = [
        IntegerDense(w1, np.zeros(6, np.int32), np.array(1), np.array(2), -128, 127, name="fc1"),
        IntegerDense(
            w2, rng.integers(-99, 99, 4).astype(np.int32), np.array(3), np.array(20), -128, 127, "fc2"
        ),
    ]
    model = IntegerMLP(layers, in_bits=8, weight_bits=8, act_bits=8).to_onnx()
    x = rng.integers(-128, 128, size=(500, 8)).astype(np.int8)
    ref = ReferenceInterpreter(model).run({"x": x})["y"]
    res = build(model, target="c", out_dir=tmp_path / "c")
    kernels = (res.out_dir / "kernels.c").read_text()
    assert kernels.count(f"= {MULHR}(") == 1
    assert "/ (int64_t)4" in kernels  # layer 1's truncating 64-bit division by 4 stays
    np.testing.assert_array_equal(res.load().run(x), ref)


def test_digits_sized_mlp_requantizes_in_32_bits(digits_case):
    kernels = (digits_case.c_build.out_dir / "kernels.c").read_text()
    assert kernels.count(f"= {MULHR}(") == 2 and "(int64_t)16777216" not in kernels
