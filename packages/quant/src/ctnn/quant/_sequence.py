"""What every unrolled integer sequence model shares: code ranges and the input layout.

The graph's input is flat, ``[N, T·F]`` time-major; the numpy forward passes also take
``[N, T, F]``.
"""

from __future__ import annotations

import numpy as np

from ._semantics import signed_range


class IntegerSequenceModel:
    """Mixin for the integer recurrent models (needs ``steps``, ``in_features``, ``in_bits``, ``act_bits``)."""

    @property
    def in_range(self) -> tuple[int, int]:
        return signed_range(self.in_bits)

    @property
    def act_range(self) -> tuple[int, int]:
        return signed_range(self.act_bits)

    def _as_steps(self, codes: np.ndarray) -> np.ndarray:
        """Input codes as int64 ``[N, T, F]``, checked against the layout and the code range."""
        x = np.asarray(codes)
        T, F = self.steps, self.in_features
        if x.ndim == 2 and x.shape[1] == T * F:
            x = x.reshape(len(x), T, F)
        if x.ndim != 3 or x.shape[1:] != (T, F):
            raise ValueError(f"input codes must be [N, {T * F}] or [N, {T}, {F}], got {list(x.shape)}")
        lo, hi = self.in_range
        if x.size and (x.min() < lo or x.max() > hi):
            raise ValueError(f"input codes must lie in [{lo}, {hi}]")
        return x.astype(np.int64)


INT32_MAX = 2**31 - 1
INT64_SAFE = 2**62  # headroom for the rounding offset added to a product
