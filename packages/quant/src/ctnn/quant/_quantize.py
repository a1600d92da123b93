"""One PTQ entry point for every family of ``ctnn.models.build_classifier`` (needs torch).

:data:`QUANTIZERS` maps a family name to its quantizer; :func:`quantize_model` finds the
family of a model and calls it with the shared options (QAT builds on it).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ._continuous_ptq import quantize_continuous_net
from ._ptq import QuantizedModel, quantize_mlp
from ._recurrent_ptq import SUPPORTED_FAMILIES, quantize_sequence_classifier

#: Family name -> quantizer ``(model, calib_x, weight_bits, act_bits, in_bits, **options)``.
QUANTIZERS: dict[str, Callable[..., QuantizedModel]] = {
    "mlp": quantize_mlp,
    "continuous_net": quantize_continuous_net,
    **{f: quantize_sequence_classifier for f in SUPPORTED_FAMILIES},
}


class UnsupportedFamilyError(TypeError):
    """A model that is not a ctnn-models classifier, or of a family without an integer form."""


def supported_families() -> tuple[str, ...]:
    """The families :func:`quantize_model` handles."""
    return tuple(sorted(QUANTIZERS))


def model_family(model: torch.nn.Module) -> str:
    """The family name of a ctnn-models classifier; :class:`UnsupportedFamilyError` naming anything else."""
    from ctnn.models import MLP, ContinuousNet, SequenceClassifier

    if isinstance(model, SequenceClassifier):
        family = model.family
    elif isinstance(model, ContinuousNet):
        family = "continuous_net"
    elif isinstance(model, MLP):
        family = "mlp"
    else:
        raise UnsupportedFamilyError(
            f"{type(model).__name__} is not a ctnn-models classifier; quantizable families: "
            f"{', '.join(supported_families())}"
        )
    if family not in QUANTIZERS:
        raise UnsupportedFamilyError(
            f"family {family!r} has no integer form; supported: {', '.join(supported_families())}"
        )
    return family


def quantize_model(
    model: torch.nn.Module,
    calib_x: np.ndarray,
    weight_bits: int = 8,
    act_bits: int = 8,
    in_bits: int = 8,
    *,
    per_channel: bool = False,
    calibration: str = "minmax",
    weight_clip: str | None = None,
    percentile: float = 99.99,
    input_range: tuple[float, float] | None = None,
    nonlinearity: str = "lut",
    **options: Any,
) -> QuantizedModel:
    """Post-training quantization of any ctnn-models classifier to an integer-only model.

    ``calib_x``: real calibration inputs in the data's own units (``[N, F]``, or
    ``[N, T·F]`` / ``[N, T, F]`` for sequence families). Bit-widths 2..16, chosen
    independently; ``per_channel`` weight scales; ``calibration`` (activation ranges)
    and ``weight_clip`` (weight ranges; default ``"mse"``, ``"minmax"`` for the MLP):
    ``"minmax"``, ``"percentile"`` or ``"mse"``; ``nonlinearity``: ``"lut"`` or
    ``"pwl"``. Family options pass through (``steps``, ``pre_clip``; ``scheme``,
    ``n_steps`` for a ContinuousNet).

    >>> q = quantize_model(model, data.X_train, 6, 8, input_range=data.value_range)   # doctest: +SKIP
    >>> export_onnx(q, "model.onnx", dataset="digits")                           # doctest: +SKIP
    """
    family = model_family(model)
    takes = inspect.signature(QUANTIZERS[family]).parameters
    extra = sorted(set(options) - set(takes))
    if extra:  # named here: the quantizer itself would raise a TypeError about its own signature
        own = sorted(set(takes) - {"model", "calib_x", "weight_bits", "act_bits", "in_bits"})
        raise ValueError(f"{family!r} models take no quantization option {extra}; their options: {own}")
    kw: dict[str, Any] = dict(per_channel=per_channel, calibration=calibration, percentile=percentile,
                              input_range=input_range, **options)  # fmt: skip
    if weight_clip is not None:
        kw["weight_clip"] = weight_clip
    if family != "mlp":
        kw["nonlinearity"] = nonlinearity
    elif nonlinearity not in ("lut", "pwl"):
        raise ValueError(f"nonlinearity must be one of ('lut', 'pwl'), got {nonlinearity!r}")
    return QUANTIZERS[family](model, calib_x, weight_bits, act_bits, in_bits, **kw)


#: Short alias of :func:`quantize_model`.
quantize = quantize_model
