"""Argument checks every PTQ entry point shares, with errors that name the bad value."""

from __future__ import annotations

from ._calibrate import CALIBRATIONS, check_calibration
from ._nonlin import NONLINEARITY_KINDS
from ._semantics import check_bits


def check_common(
    weight_bits: int, act_bits: int, in_bits: int, calibration: str, weight_clip: str, nonlinearity: str
) -> tuple[int, int, int]:
    """Check the bit-widths (2..16), the calibration methods and the nonlinearity kind."""
    weight_bits = check_bits(weight_bits, "weight bit-width")
    act_bits = check_bits(act_bits, "activation bit-width")
    in_bits = check_bits(in_bits, "input bit-width")
    check_calibration(calibration)
    if weight_clip not in CALIBRATIONS:
        raise ValueError(f"weight_clip must be one of {CALIBRATIONS}, got {weight_clip!r}")
    if nonlinearity not in NONLINEARITY_KINDS:
        raise ValueError(f"nonlinearity must be one of {NONLINEARITY_KINDS}, got {nonlinearity!r}")
    return weight_bits, act_bits, in_bits
