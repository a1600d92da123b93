"""The integer arithmetic of ctnn: bit ranges, rounding division and requantization.

One rounding rule everywhere: *round half away from zero*, computed with a
truncating division so that ONNX ``Div``, C's ``/``, z3's ``bvsdiv`` and Verilog's
signed ``/`` all agree::

    round_div(p, d) = trunc((p + sign(p) * (d // 2)) / d)      for d = 2**s > 0

A requantization maps an accumulator to a b-bit code::

    y = clip(round_div(acc * M, 2**s), lo, hi)

with an integer multiplier ``0 < M < 2**31`` and a shift ``s >= 0``.
"""

from __future__ import annotations

import math

import numpy as np

MIN_BITS = 2
MAX_BITS = 16


class BitWidthError(ValueError):
    """A bit-width outside the supported range 2..16."""


def check_bits(bits: int, what: str = "bit-width") -> int:
    """Return ``bits`` if it is an int in 2..16, else raise :class:`BitWidthError`."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise BitWidthError(f"{what} must be an integer in {MIN_BITS}..{MAX_BITS}, got {bits!r}")
    if not MIN_BITS <= int(bits) <= MAX_BITS:
        raise BitWidthError(f"{what} must be in {MIN_BITS}..{MAX_BITS}, got {bits}")
    return int(bits)


def signed_range(bits: int) -> tuple[int, int]:
    """The two's-complement range of a signed ``bits``-bit code."""
    check_bits(bits)
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def container_dtype(lo: int, hi: int) -> np.dtype:
    """The smallest signed integer container that holds every value in [lo, hi]."""
    for dt in (np.int8, np.int16, np.int32, np.int64):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dt)
    raise OverflowError(f"range [{lo}, {hi}] does not fit in int64")


def trunc_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Integer division truncating toward zero (C semantics; numpy's ``//`` floors)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if np.any(b == 0):
        raise ZeroDivisionError("integer division by zero")
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q)


def round_div(p: np.ndarray, shift: np.ndarray | int) -> np.ndarray:
    """Divide by ``2**shift``, rounding half away from zero, via truncating division."""
    p = np.asarray(p, dtype=np.int64)
    d = np.left_shift(np.int64(1), np.asarray(shift, dtype=np.int64))
    half = d // 2
    return trunc_div(np.where(p < 0, p - half, p + half), d)


def requantize(
    acc: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int, lo: int, hi: int
) -> np.ndarray:
    """``clip(round_div(acc * M, 2**s), lo, hi)`` in int64."""
    p = np.asarray(acc, dtype=np.int64) * np.asarray(multiplier, dtype=np.int64)
    return np.clip(round_div(p, shift), lo, hi)


def quantize_multiplier(real: float, precision_bits: int = 15) -> tuple[int, int]:
    """Approximate a positive real factor as ``M / 2**s`` with ``2**(p-1) <= M < 2**p``.

    A 15-bit multiplier keeps ``acc * M`` narrow (good for SMT bit-vector widths)
    while its relative error, below 2**-14, is far under one output code.
    """
    if not math.isfinite(real) or real <= 0:
        raise ValueError(f"requantization factor must be positive and finite, got {real}")
    shift = precision_bits - 1 - math.floor(math.log2(real))
    m = round(real * 2.0**shift)
    if m >= 1 << precision_bits:  # rounding carried into a new bit
        m //= 2
        shift -= 1
    while shift < 0:  # factor >= 2**(p-1): fold the excess into M by precision loss
        m *= 2
        shift += 1
    if m >= 1 << 31:
        raise ValueError(f"requantization factor {real} is too large for an int32 multiplier")
    return int(m), int(shift)


def asymmetric_scale(xmin: float, xmax: float, bits: int) -> tuple[float, int]:
    """Scale and zero point mapping real ``[xmin, xmax]`` (widened to contain 0) onto all b-bit codes.

    The data's minimum lands on the lowest code: ``real = scale * (q - zero_point)``.
    """
    lo, hi = signed_range(bits)
    xmin, xmax = min(xmin, 0.0), max(xmax, xmin + 1e-12)
    scale = (xmax - xmin) / (hi - lo)
    return scale, int(lo - round(xmin / scale))
