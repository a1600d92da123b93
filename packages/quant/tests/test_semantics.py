"""The integer arithmetic: rounding, truncation, bit ranges, multipliers."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ctnn.quant import BitWidthError, check_bits, quantize_multiplier, round_div, signed_range, trunc_div


@given(st.integers(-(2**40), 2**40), st.integers(-(2**20), 2**20).filter(lambda d: d != 0))
def test_trunc_div_matches_c_semantics(a, d):
    q = int(trunc_div(np.int64(a), np.int64(d)))
    expected = abs(a) // abs(d) * (1 if (a < 0) == (d < 0) else -1)
    assert q == expected
    assert a - q * d == int(np.fmod(a, d))  # C's remainder keeps the dividend's sign


@given(st.integers(-(2**40), 2**40), st.integers(0, 20))
def test_round_div_is_half_away_from_zero(p, s):
    got = int(round_div(np.int64(p), s))
    exact = p / 2**s
    # half away from zero, computed exactly with integers
    mag = (2 * abs(p) + 2**s) // (2 ** (s + 1))
    assert got == (mag if p >= 0 else -mag)
    assert abs(got - exact) <= 0.5


def test_round_div_ties():
    assert list(round_div(np.array([5, -5, 3, -3, 2, -2]), 1)) == [3, -3, 2, -2, 1, -1]


@pytest.mark.parametrize("bits", [2, 4, 8, 16])
def test_signed_range(bits):
    assert signed_range(bits) == (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


@pytest.mark.parametrize("bad", [1, 17, 0, -3, 8.0, "8", True])
def test_bits_out_of_range_is_a_clear_error(bad):
    with pytest.raises(BitWidthError, match="2..16"):
        check_bits(bad)


@given(st.floats(1e-6, 1e3))
@settings(max_examples=200)
def test_quantize_multiplier_precision(real):
    m, s = quantize_multiplier(real)
    assert 0 < m < 2**31 and s >= 0
    assert abs(m / 2**s - real) / real < 2**-13
