"""Small torch helpers shared by the model-side analyses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor, nn


def as_sequences(model: nn.Module, X: np.ndarray | Tensor, in_features: int) -> tuple[Tensor, Tensor]:
    """Data ``[n, T·F]`` or ``[n, T, F]`` as the sequences a classifier's family sees, and their valid steps.

    For a ``SequenceClassifier`` this is what its forward feeds the family: NaN padding as
    zeros, then its input normalisation (``(x − shift) / scale``) when it has one. Returns
    ``(x [n, T, F] float32, valid [n, T] bool)``; padded steps are not valid.
    """
    x = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    if x.dim() == 2:
        if x.shape[1] % in_features:
            raise ValueError(
                f"data width {x.shape[1]} is not a multiple of the model's in_features={in_features}"
            )
        x = x.reshape(x.shape[0], -1, in_features)
    if x.dim() != 3 or x.shape[-1] != in_features:
        raise ValueError(
            f"expected data [n, T, {in_features}] or flat [n, T·{in_features}], got {list(x.shape)}"
        )
    valid = ~torch.isnan(x).all(dim=-1)
    x = torch.nan_to_num(x, nan=0.0)
    if getattr(model, "input_norm", False):
        x = (x - model.input_shift) / model.input_scale
    return x, valid


def family_module(model: nn.Module, cls: type[nn.Module]) -> nn.Module:
    """``model`` itself or its ``rnn`` (a ``SequenceClassifier``) when it is a ``cls``; else a clear error."""
    for m in (model, getattr(model, "rnn", None), getattr(model, "ltc", None)):
        if isinstance(m, cls):
            return m
    raise TypeError(f"expected a {cls.__name__} or a classifier holding one, got {type(model).__name__}")


@contextmanager
def unfused(model: nn.Module) -> Iterator[None]:
    """Run ``model`` with plain PyTorch ops: fused sequence kernels have hand-written backward passes
    that cannot be differentiated again (Hessian-vector products need double backward).

    Switches every LTC to ``implementation = "eager"`` and every module with a boolean
    ``fused`` flag (the LEM) to ``fused = False``; restores both on exit.
    """
    from ctnn.models import LTC

    ltcs = [(m, m.implementation) for m in model.modules() if isinstance(m, LTC)]
    flags = [(m, m.fused) for m in model.modules() if isinstance(getattr(m, "fused", None), bool)]
    try:
        for m, _ in ltcs:
            m.implementation = "eager"
        for m, _ in flags:
            m.fused = False
        yield
    finally:
        for m, impl in ltcs:
            m.implementation = impl
        for m, flag in flags:
            m.fused = flag
