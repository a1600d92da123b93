"""The options every post-training quantizer shares, checked once and passed down as one value.

The public entry points (``quantize_mlp``, ``quantize_continuous_net``,
``quantize_sequence_classifier``) keep their keyword signatures; they build a
:class:`QuantOptions` and hand it to the per-family quantizers, whose steps in common
(a calibrated scale, a weight's codes, the input and output code maps, the head) are
its methods. No torch: numpy and the core modules only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._calibrate import absmax, quantize_weight
from ._checks import check_common
from ._graph import IntegerDense
from ._recurrent import Requant
from ._semantics import asymmetric_scale, container_dtype, quantize_multiplier, signed_range
from ._sidecar import TensorQuant


def requant(factors: np.ndarray | float, units: int) -> Requant:
    """Fixed-point multipliers and shifts of real ``factors`` (a scalar is repeated ``units`` times)."""
    f = np.broadcast_to(np.asarray(factors, np.float64), (units,))
    m, s = zip(*(quantize_multiplier(max(float(v), 1e-30)) for v in f))
    return Requant(np.array(m, np.int64), np.array(s, np.int64))


def subsample(n: int) -> slice:
    """Every k-th of ``n`` calibration samples, about 512 of them: plenty for an MSE weight-clip search."""
    return slice(None, None, max(1, n // 512))


@dataclass(frozen=True)
class QuantOptions:
    """Bit-widths and calibration settings of one quantization (see ``quantize_model`` for their meaning)."""

    weight_bits: int
    act_bits: int
    in_bits: int
    calibration: str = "minmax"
    weight_clip: str = "mse"
    percentile: float = 99.99
    per_channel: bool = False
    nonlinearity: str = "lut"
    pre_clip: float = 4.0
    state_bits: int | None = None

    @classmethod
    def checked(
        cls,
        weight_bits: int,
        act_bits: int,
        in_bits: int,
        calibration: str,
        weight_clip: str,
        nonlinearity: str = "lut",
        **rest: Any,
    ) -> QuantOptions:
        """The options after :func:`~ctnn.quant._checks.check_common` (bit-widths 2..16, known methods)."""
        weight_bits, act_bits, in_bits = check_common(
            weight_bits, act_bits, in_bits, calibration, weight_clip, nonlinearity
        )
        return cls(
            weight_bits, act_bits, in_bits, calibration, weight_clip, nonlinearity=nonlinearity, **rest
        )

    @property
    def mse(self) -> bool:
        """Whether weight ranges minimise the layer's output error (they need the layer's float inputs)."""
        return self.weight_clip == "mse"

    @property
    def act_range(self) -> tuple[int, int]:
        """The signed ``act_bits`` code range."""
        return signed_range(self.act_bits)

    @property
    def state_width(self) -> int:
        """The state accumulator's bit-width: ``state_bits``, else ``act_bits``."""
        return self.state_bits or self.act_bits

    def absmax(self, a: np.ndarray, bits: int | None = None) -> float:
        """The calibrated symmetric threshold of ``a`` for ``bits``-bit codes (default ``act_bits``)."""
        return absmax(a, self.calibration, bits or self.act_bits, self.percentile)

    def scale(self, a: np.ndarray, clip: float | None = None) -> float:
        """The symmetric ``act_bits`` scale of values ``a``, their threshold capped at ``clip`` when given."""
        top = self.absmax(a)
        return (top if clip is None else min(top, clip)) / self.act_range[1]

    def weight(self, w: np.ndarray, inputs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``w [in, out]``'s codes and scales; ``inputs``: the float values the layer reads (any leading dims).

        ``inputs`` are flattened to ``[-1, in]`` and used only by the MSE clip search.
        """
        rows = inputs.reshape(-1, w.shape[0]) if self.mse and inputs is not None else None
        return quantize_weight(w, self.weight_bits, self.per_channel, self.weight_clip, rows, self.percentile)

    def input_quant(self, xrange: tuple[float, float], width: int) -> TensorQuant:
        """The asymmetric input ``x [N, width]``: ``xrange``'s minimum at the lowest ``in_bits`` code."""
        lo, hi = signed_range(self.in_bits)
        s, z = asymmetric_scale(*xrange, self.in_bits)
        return TensorQuant("x", [None, width], self.in_bits, lo, hi, s, z, str(container_dtype(lo, hi)))

    def output_quant(self, classes: int, scale: float) -> TensorQuant:
        """The symmetric ``act_bits`` output logits ``y [N, classes]`` at ``scale``."""
        lo, hi = self.act_range
        return TensorQuant(
            "y", [None, classes], self.act_bits, lo, hi, scale, 0, str(container_dtype(lo, hi))
        )

    def hyperparameters(self, nonlinearity: bool = True) -> dict[str, Any]:
        """The sidecar's record of these options (``nonlinearity``: whether the family has the choice)."""
        hp: dict[str, Any] = {"in_bits": self.in_bits, "calibration": self.calibration,
                              "weight_clip": self.weight_clip, "per_channel": self.per_channel}  # fmt: skip
        if nonlinearity:
            hp["nonlinearity"] = self.nonlinearity
        return hp

    def head(
        self, wq: np.ndarray, s_w: np.ndarray, bias: np.ndarray, s_in: float, s_y: float
    ) -> IntegerDense:
        """The classifier head: weight codes ``wq`` (scales ``s_w``) on inputs at ``s_in``, logits at ``s_y``."""
        lo, hi = self.act_range
        bq = np.round(bias / (s_in * s_w)).astype(np.int64)
        rq = requant(s_in * s_w / s_y, wq.shape[1])
        return IntegerDense(weight=wq, bias=bq.astype(np.int32), multiplier=rq.multiplier, shift=rq.shift,
                            lo=lo, hi=hi, name="head")  # fmt: skip
