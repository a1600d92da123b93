"""Calibration: real ranges of activations and weights from data (min-max, percentile, MSE-optimal).

Shared by every family's PTQ. ``"mse"`` picks the clipping threshold that minimises
the squared quantization error of the calibration values themselves (activations)
or of the layer's output on the calibration inputs (weights), over candidates
``r · max|·|`` for r from 1 down to 0.1. Torch-free.
"""

from __future__ import annotations

import numpy as np

from ._semantics import signed_range

#: Range-calibration methods for activations and weights.
CALIBRATIONS = ("minmax", "percentile", "mse")
_RATIOS = np.linspace(1.0, 0.1, 37)
_MAX_SAMPLES = 200_000


def check_calibration(method: str, what: str = "calibration") -> str:
    """Return ``method`` if known, else raise a :class:`ValueError` listing the known ones."""
    if method not in CALIBRATIONS:
        raise ValueError(f"{what} must be one of {CALIBRATIONS}, got {method!r}")
    return method


def _sample(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64).ravel()
    if a.size > _MAX_SAMPLES:  # a strided subsample is plenty for a range
        a = a[:: -(-a.size // _MAX_SAMPLES)]
    return a


def _sym_err(a: np.ndarray, thr: float, qmax: int) -> float:
    s = thr / qmax
    return float(np.square(np.clip(np.round(a / s), -qmax, qmax) * s - a).sum())


def absmax(a: np.ndarray, method: str = "minmax", bits: int = 8, percentile: float = 99.99) -> float:
    """The symmetric clipping threshold of values ``a`` for signed ``bits``-bit codes (always > 0)."""
    check_calibration(method)
    a = _sample(a)
    top = float(np.abs(a).max(initial=0.0))
    if method == "minmax" or top == 0:
        v = top
    elif method == "percentile":
        v = float(np.percentile(np.abs(a), percentile))
    else:
        qmax = signed_range(bits)[1]
        v = min((_sym_err(a, r * top, qmax), r * top) for r in _RATIOS)[1]
    return max(v, 1e-8)


def real_range(
    a: np.ndarray, method: str = "minmax", bits: int = 8, percentile: float = 99.99
) -> tuple[float, float]:
    """The (asymmetric) real range ``[lo, hi]`` of values ``a`` for ``bits``-bit codes."""
    check_calibration(method)
    a = _sample(a)
    lo, hi = float(a.min(initial=0.0)), float(a.max(initial=0.0))
    if method == "percentile":
        return float(np.percentile(a, 100 - percentile)), float(np.percentile(a, percentile))
    if method == "minmax" or hi <= lo:
        return lo, hi
    levels = (1 << bits) - 1
    best = None
    for rl in _RATIOS[::3]:
        for rh in _RATIOS[::3]:
            left, right = min(lo * rl, 0.0), max(hi * rh, 0.0)
            s = max(right - left, 1e-12) / levels
            err = float(np.square(np.clip(np.round((a - left) / s), 0, levels) * s + left - a).sum())
            if best is None or err < best[0]:
                best = (err, left, right)
    assert best is not None
    return best[1], best[2]


def quantize_weight(
    w: np.ndarray,
    bits: int,
    per_channel: bool = False,
    method: str = "minmax",
    inputs: np.ndarray | None = None,
    percentile: float = 99.99,
) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric codes of ``w [in, out]`` and their scales ``[out]`` (one value repeated per tensor).

    ``method="mse"`` minimises ``‖x @ (q·s) − x @ w‖²`` over ``inputs`` (the float rows the
    layer sees) when given, else ``‖q·s − w‖²``; per column with ``per_channel``.
    """
    check_calibration(method, "weight calibration")
    w = np.asarray(w, np.float64)
    qmax = signed_range(bits)[1]
    cols = w.shape[1]
    if per_channel:
        top = np.abs(w).max(axis=0)
    else:
        top = np.full(cols, np.abs(w).max(initial=0.0))
    if method == "percentile":
        ab = np.abs(w)
        top = (
            np.percentile(ab, percentile, axis=0)
            if per_channel
            else np.full(cols, np.percentile(ab, percentile))
        )
    elif method == "mse":
        x = None if inputs is None or not len(inputs) else np.asarray(inputs, np.float64)
        if x is not None and len(x) > 4096:
            x = x[:: -(-len(x) // 4096)]
        ref = w if x is None else x @ w
        best_err = np.full(cols, np.inf)
        best_top = top.copy()
        for r in _RATIOS[::2]:
            s = np.where(top > 0, top * r / qmax, 1.0)
            q = np.clip(np.round(w / s), -qmax, qmax) * s
            err = np.square((q if x is None else x @ q) - ref).sum(axis=0)
            if not per_channel:
                err = np.full(cols, err.sum())
            better = err < best_err
            best_err = np.where(better, err, best_err)
            best_top = np.where(better, top * r, best_top)
        top = best_top
    s = np.where(top > 0, top / qmax, 1.0)
    return np.clip(np.round(w / s), -qmax, qmax).astype(np.int64), s
