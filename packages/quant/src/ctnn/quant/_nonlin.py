"""Pointwise nonlinearities on integer codes: a lookup table or a piecewise-linear Where chain.

Both map a clipped input code ``q ∈ [in_lo, in_hi]`` to an output code in
``[out_lo, out_hi]`` with exact integer arithmetic that every consumer (the numpy
reference, onnxruntime, z3, TVM, C, Verilog) computes identically.

* :class:`LutActivation` — ``Gather(table, q − in_lo)``, one entry per input code
  (see :mod:`ctnn.quant._lut`).
* :class:`PwlActivation` — ``S`` segments with integer breakpoints
  ``k_0 = in_lo < k_1 < … < k_S = in_hi + 1``; on segment j::

      y = clip(c_j + round_div((q − k_j) · M_j, 2**s), out_lo, out_hi)

  ``c_j`` is the function's code at ``k_j`` and ``M_j / 2**s`` (a signed int32
  multiplier, one shift for all segments) the chord's slope per input code. In ONNX
  each segment's value is computed for the whole tensor and a chain
  ``r = Where(Less(q, k_j), r, v_j)`` picks it (ops: Cast, Sub, Mul, Less, Add,
  Where, Div, Clip — all already in the dialect).

:func:`make_activation` builds either from a named float function and the two scales.
Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ._graph import GraphBuilder
from ._lut import apply_lut, emit_lut_shared, lut_table, resolve_function, round_half_away
from ._semantics import check_bits, round_div, signed_range

#: The representations :func:`make_activation` can build.
NONLINEARITY_KINDS = ("lut", "pwl")
PWL_SHIFT_MAX = 24


@dataclass
class LutActivation:
    """A table over every input code: ``table[q − in_lo]`` (int64)."""

    table: np.ndarray
    in_lo: int

    @property
    def out_bounds(self) -> tuple[int, int]:
        return int(np.min(self.table)), int(np.max(self.table))

    def apply(self, codes: np.ndarray) -> np.ndarray:
        """numpy semantics (int64)."""
        return apply_lut(codes, self.table, self.in_lo)

    def emit(self, b: GraphBuilder, x: str, key: str, prefix: str) -> str:
        """ONNX ops on the clipped codes ``x``; the table is one initializer shared by ``key``."""
        t = b.const(f"{key}/table", np.asarray(self.table, np.int64))
        return emit_lut_shared(b, x, t, self.in_lo, prefix)


@dataclass
class PwlActivation:
    """A piecewise-linear function of the input code (see the module docstring)."""

    breakpoints: np.ndarray  # [S] int64: k_0 .. k_{S-1} (segment starts; k_0 = in_lo)
    values: np.ndarray  # [S] int64: c_j
    slopes: np.ndarray  # [S] int64: M_j (signed)
    shift: int
    out_lo: int
    out_hi: int

    @property
    def in_lo(self) -> int:
        return int(self.breakpoints[0])

    @property
    def out_bounds(self) -> tuple[int, int]:
        return self.out_lo, self.out_hi

    def apply(self, codes: np.ndarray) -> np.ndarray:
        """numpy semantics (int64)."""
        q = np.asarray(codes, np.int64)
        seg = np.searchsorted(self.breakpoints, q, side="right") - 1
        if np.any(seg < 0):
            raise IndexError(f"PWL input below its range: codes must be >= {self.in_lo}")
        k, c, m = self.breakpoints[seg], self.values[seg], self.slopes[seg]
        return np.clip(c + round_div((q - k) * m, self.shift), self.out_lo, self.out_hi)

    def emit(self, b: GraphBuilder, x: str, key: str, prefix: str) -> str:
        """ONNX ops on the clipped codes ``x`` (a Where chain over the segments)."""
        q = b.cast(x, np.int64, f"{prefix}/x64")
        r = None
        for j, (k, c, m) in enumerate(zip(self.breakpoints, self.values, self.slopes)):
            d = b.op("Sub", [q, b.scalar(int(k))], f"{prefix}/s{j}/d")
            v = b.round_shift(d, int(m), self.shift, f"{prefix}/s{j}", key=f"{key}/s{j}")
            v = b.op("Add", [v, b.scalar(int(c))], f"{prefix}/s{j}/v")
            if r is None:
                r = v
            else:
                r = b.op("Where", [b.op("Less", [q, b.scalar(int(k))], f"{prefix}/s{j}/lt"), r, v],
                         f"{prefix}/s{j}/pick")  # fmt: skip
        assert r is not None
        return b.op("Clip", [r, b.scalar(self.out_lo), b.scalar(self.out_hi)], f"{prefix}/clip")


Activation = LutActivation | PwlActivation


def pwl_fit(
    fn: str | Callable[[np.ndarray], np.ndarray],
    in_scale: float,
    in_bits: int,
    out_scale: float,
    out_lo: int,
    out_hi: int,
    segments: int = 16,
    in_zero_point: int = 0,
    out_zero_point: int = 0,
) -> PwlActivation:
    """Chords of ``fn`` over ``segments`` equal spans of the signed ``in_bits`` input codes."""
    in_bits = check_bits(in_bits, "PWL input bit-width")
    fn = resolve_function(fn, in_scale, out_scale, "PWL")
    if int(segments) < 1:
        raise ValueError(f"PWL needs at least one segment, got {segments}")
    lo, hi = signed_range(in_bits)
    n = min(int(segments), hi - lo + 1)
    ks = np.unique(np.round(np.linspace(lo, hi + 1, n + 1)).astype(np.int64))

    def code(k: np.ndarray) -> np.ndarray:
        real = fn(in_scale * (np.asarray(k, np.int64) - in_zero_point).astype(np.float64))
        return np.asarray(real, np.float64) / out_scale + out_zero_point

    ends = code(ks)
    starts = ks[:-1]
    slope = (ends[1:] - ends[:-1]) / np.diff(ks)  # output codes per input code
    top = float(np.abs(slope).max(initial=0.0))
    shift = PWL_SHIFT_MAX if top < 1 else max(0, min(PWL_SHIFT_MAX, 30 - int(np.ceil(np.log2(top + 1)))))
    m = round_half_away(slope * 2.0**shift).astype(np.int64)
    c = np.clip(round_half_away(ends[:-1]), out_lo, out_hi).astype(np.int64)
    return PwlActivation(starts, c, m, int(shift), int(out_lo), int(out_hi))


def make_activation(
    fn: str,
    in_scale: float,
    in_bits: int,
    out_scale: float,
    out_lo: int,
    out_hi: int,
    kind: str = "lut",
    segments: int = 16,
) -> Activation:
    """``fn`` (``"sigmoid"``, ``"tanh"``, ``"softplus"``, …) on signed ``in_bits`` codes, as ``kind``.

    >>> act = make_activation("tanh", 4 / 127, 8, 1 / 127, -127, 127, kind="pwl")
    >>> int(act.apply(np.array([127]))[0]), int(act.apply(np.array([0]))[0])
    (127, 0)
    """
    if kind == "lut":
        lo, _ = signed_range(check_bits(in_bits, "activation input bit-width"))
        return LutActivation(lut_table(fn, in_scale, in_bits, out_scale, out_lo, out_hi), lo)
    if kind == "pwl":
        return pwl_fit(fn, in_scale, in_bits, out_scale, out_lo, out_hi, segments)
    raise ValueError(f"nonlinearity must be one of {NONLINEARITY_KINDS}, got {kind!r}")
