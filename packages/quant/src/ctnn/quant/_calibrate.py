"""Calibration: real ranges of activations and weights from data (min-max, percentile, MSE-optimal).

Shared by every family's PTQ. ``"mse"`` picks the clipping threshold that minimises
the squared quantization error of the calibration values themselves (activations)
or of the layer's output on the calibration inputs (weights), over candidates
``r · max|·|`` for r from 1 down to 0.1 (weights: down to 0.003). Torch-free.

:class:`FrozenRanges` records every range a quantizer computes (in call order) and
replays them in later quantizations: QAT calibrates once and then only re-rounds the
weights with the recorded scales, so one training step does not re-run the searches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np

from ._semantics import signed_range

#: Range-calibration methods for activations and weights.
CALIBRATIONS = ("minmax", "percentile", "mse")
_RATIOS = np.linspace(1.0, 0.1, 37)
# weights also try thresholds down to 0.003·max: a per-tensor scale over a matrix with a few huge
# entries (a folded input normalization: near-constant input features get 1/std-sized weights)
# otherwise rounds every ordinary weight to zero at 3-4 bits
_WEIGHT_RATIOS = np.concatenate([_RATIOS[::2], np.geomspace(0.1, 0.003, 13)[1:]])
_MAX_SAMPLES = 200_000


class FrozenRanges:
    """Ranges recorded from one quantization, replayed (in the same call order) by later ones.

    Use :meth:`record` around the first ``quantize_model`` call and :meth:`replay` around
    the later ones; the quantizer must make the same sequence of range calls (it does for
    one model and one set of options), else :class:`RuntimeError` names the mismatch.
    """

    def __init__(self) -> None:
        self.values: list[tuple[str, Any]] = []
        self._mode = ""
        self._pos = 0

    @contextmanager
    def record(self) -> Iterator[FrozenRanges]:
        self.values, self._mode = [], "record"
        token = _FROZEN.set(self)
        try:
            yield self
        finally:
            _FROZEN.reset(token)
            self._mode = ""

    @contextmanager
    def replay(self) -> Iterator[FrozenRanges]:
        if not self.values:
            raise RuntimeError("FrozenRanges.replay: nothing recorded")
        self._mode, self._pos = "replay", 0
        token = _FROZEN.set(self)
        try:
            yield self
            if self._pos != len(self.values):
                raise RuntimeError(
                    f"FrozenRanges.replay: {len(self.values) - self._pos} recorded ranges were not used"
                )
        finally:
            _FROZEN.reset(token)
            self._mode = ""

    def _next(self, kind: str) -> Any:
        if self._pos >= len(self.values) or self.values[self._pos][0] != kind:
            got = self.values[self._pos][0] if self._pos < len(self.values) else "nothing"
            raise RuntimeError(f"FrozenRanges.replay: call {self._pos} asks for {kind!r}, recorded {got!r}")
        self._pos += 1
        return self.values[self._pos - 1][1]


_FROZEN: ContextVar[FrozenRanges | None] = ContextVar("ctnn_quant_frozen_ranges", default=None)


def frozen(kind: str, compute: Callable[[], Any]) -> Any:
    """``compute()`` — recorded (or replayed without computing) under an active :class:`FrozenRanges`."""
    fr = _FROZEN.get()
    if fr is None or not fr._mode:
        return compute()
    if fr._mode == "replay":
        return fr._next(kind)
    value = compute()
    fr.values.append((kind, value))
    return value


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
    return frozen("absmax", lambda: _absmax(a, method, bits, percentile))


def _absmax(a: np.ndarray, method: str, bits: int, percentile: float) -> float:
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
    return frozen("real_range", lambda: _real_range(a, method, bits, percentile))


def _real_range(a: np.ndarray, method: str, bits: int, percentile: float) -> tuple[float, float]:
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
    s = frozen("weight_scale", lambda: _weight_scale(w, qmax, per_channel, method, inputs, percentile))
    if np.shape(s) != (w.shape[1],):
        raise RuntimeError(
            f"FrozenRanges.replay: a weight scale of shape {np.shape(s)} for a weight {w.shape}"
        )
    return np.clip(np.round(w / s), -qmax, qmax).astype(np.int64), s


def _weight_scale(
    w: np.ndarray, qmax: int, per_channel: bool, method: str, inputs: np.ndarray | None, percentile: float
) -> np.ndarray:
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
        for r in _WEIGHT_RATIOS:
            s = np.where(top > 0, top * r / qmax, 1.0)
            q = np.clip(np.round(w / s), -qmax, qmax) * s
            err = np.square((q if x is None else x @ q) - ref).sum(axis=0)
            if not per_channel:
                err = np.full(cols, err.sum())
            better = err < best_err
            best_err = np.where(better, err, best_err)
            best_top = np.where(better, top * r, best_top)
        top = best_top
    return np.where(top > 0, top / qmax, 1.0)
