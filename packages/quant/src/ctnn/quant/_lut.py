"""Lookup tables: pointwise nonlinearities (sigmoid, tanh, softplus, …) as ONNX ``Gather``.

A b-bit input code ``q`` in ``[lo, hi]`` (real value ``in_scale * (q - in_zero_point)``)
maps to the output code ``table[q - lo]``. The table holds one entry per input code
(``2**b`` entries) and is computed once, in numpy float64, from the float function
and the two scales::

    table[k] = clip(round_half_away(f(in_scale * (lo + k - in_zp)) / out_scale) + out_zp, out_lo, out_hi)

After that, the nonlinearity is exact integer arithmetic: every consumer indexes the
same stored table. In ONNX::

    idx = Sub(Cast<int64>(q), lo)          # 0 .. 2**b - 1
    y   = Gather(table, idx, axis=0)       # table: int64 initializer

Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._graph import GraphBuilder
from ._semantics import check_bits, signed_range


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # stable for large |x|


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


#: Named pointwise functions a table can be built from.
LUT_FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "softplus": _softplus,
    "relu": lambda x: np.maximum(x, 0.0),
    "identity": lambda x: x,
}


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round half away from zero (the dialect's one rounding rule) on float64 values."""
    x = np.asarray(x, np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def resolve_function(
    fn: str | Callable[[np.ndarray], np.ndarray], in_scale: float, out_scale: float, what: str
) -> Callable[[np.ndarray], np.ndarray]:
    """``fn`` by name from :data:`LUT_FUNCTIONS` (or as given), after checking both scales (``what`` names the form)."""
    if isinstance(fn, str):
        if fn not in LUT_FUNCTIONS:
            raise ValueError(f"unknown {what} function {fn!r}; known: {sorted(LUT_FUNCTIONS)}")
        fn = LUT_FUNCTIONS[fn]
    if not (np.isfinite(in_scale) and in_scale > 0 and np.isfinite(out_scale) and out_scale > 0):
        raise ValueError(f"{what} scales must be positive and finite, got {in_scale} and {out_scale}")
    return fn


def lut_table(
    fn: str | Callable[[np.ndarray], np.ndarray],
    in_scale: float,
    in_bits: int,
    out_scale: float,
    out_lo: int,
    out_hi: int,
    in_zero_point: int = 0,
    out_zero_point: int = 0,
) -> np.ndarray:
    """The int64 table of ``fn`` over every signed ``in_bits``-bit input code (index ``q - lo``)."""
    in_bits = check_bits(in_bits, "LUT input bit-width")
    fn = resolve_function(fn, in_scale, out_scale, "LUT")
    if out_lo > out_hi:
        raise ValueError(f"empty LUT output range [{out_lo}, {out_hi}]")
    lo, hi = signed_range(in_bits)
    codes = np.arange(lo, hi + 1, dtype=np.int64)
    real = fn(in_scale * (codes - in_zero_point).astype(np.float64))
    q = round_half_away(np.asarray(real, np.float64) / out_scale) + out_zero_point
    return np.clip(q, out_lo, out_hi).astype(np.int64)


def apply_lut(codes: np.ndarray, table: np.ndarray, in_lo: int) -> np.ndarray:
    """numpy semantics of :func:`emit_lut`: ``table[codes - in_lo]`` (int64)."""
    idx = np.asarray(codes, np.int64) - int(in_lo)
    if np.any((idx < 0) | (idx >= len(table))):
        raise IndexError(f"LUT index out of range: codes must lie in [{in_lo}, {in_lo + len(table) - 1}]")
    return np.asarray(table, np.int64)[idx]


def emit_lut(b: GraphBuilder, x: str, table: np.ndarray, in_lo: int, prefix: str) -> str:
    """Emit ``Gather(table, Cast<int64>(x) - in_lo)``; returns an int64 tensor.

    ``x`` must already be clipped to the table's input range (a requantized code). The
    table is stored as the initializer ``{prefix}/table``; to share one table across the
    steps of an unrolled loop, add it once with :meth:`GraphBuilder.const` and use
    :func:`emit_lut_shared`.
    """
    t = b.const(f"{prefix}/table", np.asarray(table, np.int64))
    x64 = b.cast(x, np.int64, f"{prefix}/x64")
    idx = b.op("Sub", [x64, b.scalar(int(in_lo))], f"{prefix}/idx")
    return b.op("Gather", [t, idx], f"{prefix}/gather", axis=0)


def emit_lut_shared(b: GraphBuilder, x: str, table_name: str, in_lo: int, prefix: str) -> str:
    """Like :func:`emit_lut` for a table already added with ``b.const(table_name, ...)``."""
    x64 = b.cast(x, np.int64, f"{prefix}/x64")
    idx = b.op("Sub", [x64, b.scalar(int(in_lo))], f"{prefix}/idx")
    return b.op("Gather", [table_name, idx], f"{prefix}/gather", axis=0)
