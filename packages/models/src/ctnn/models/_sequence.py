"""One classifier for every sequence family: flat or ``[N, T, F]`` inputs, NaN padding, input scaling."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ._ltc import LTC
from ._recurrent import CTRNN, GRU, LEM, LSTM, LipschitzRNN

#: Sequence families by name: ``cls(in_features, units, **options)``, forward ``(x, hx, timespans)``.
SEQUENCE_FAMILIES: dict[str, type[nn.Module]] = {
    "ltc": LTC,
    "lipschitz_rnn": LipschitzRNN,
    "lem": LEM,
    "ctrnn": CTRNN,
    "lstm": LSTM,
    "gru": GRU,
}


def sequence_lengths(x: Tensor) -> Tensor:
    """Valid length of each right-padded sequence ``[N, T, F]``: steps before the first all-NaN row."""
    valid = ~torch.isnan(x).all(dim=-1)  # [N, T]
    # the first padded step, or T when there is none
    first_pad = torch.where(~valid, torch.arange(x.shape[1], device=x.device), x.shape[1]).amin(dim=1)
    return first_pad


class SequenceClassifier(nn.Module):
    """A sequence family, then a Linear layer on its output at each sequence's last step.

    Args:
        family: a name in :data:`~ctnn.models.SEQUENCE_FAMILIES` (``"ltc"``,
            ``"lipschitz_rnn"``, ``"lem"``, ``"ctrnn"``, ``"lstm"``, ``"gru"``).
        in_features: features per step. Flat inputs ``[N, T·F]`` are read as T steps of F.
        units: hidden units (for ``"ltc"`` also a wiring or wiring config).
        n_classes: number of classes.
        input_norm: hold ``input_shift``/``input_scale`` buffers and feed the family
            ``(x − shift) / scale``; :meth:`set_input_normalization` fills them (e.g. with
            the training set's per-feature mean and standard deviation).
        **options: the family's own constructor options.

    Variable-length sequences are right-padded with NaN (how :func:`~ctnn.models.load_dataset`
    stores them): padded steps are fed as zeros and the logits come from each
    sequence's last valid step, so padding never changes a prediction.

    Example:
        >>> import torch
        >>> clf = SequenceClassifier("lem", 3, 8, n_classes=4)
        >>> x = torch.rand(2, 6, 3)
        >>> x[1, 4:] = float("nan")  # the second sequence has 4 steps
        >>> tuple(clf(x).shape)
        (2, 4)
    """

    def __init__(
        self,
        family: str,
        in_features: int,
        units: int | Mapping[str, Any],
        n_classes: int,
        input_norm: bool = False,
        **options: Any,
    ) -> None:
        super().__init__()
        if family not in SEQUENCE_FAMILIES:
            raise ValueError(f"unknown sequence family {family!r}; known: {sorted(SEQUENCE_FAMILIES)}")
        self.family, self.in_features, self.n_classes = family, int(in_features), int(n_classes)
        self.units, self.input_norm, self.options = units, bool(input_norm), dict(options)
        self.rnn = SEQUENCE_FAMILIES[family](in_features, units, **options)
        out = self.rnn.motor_size if family == "ltc" else self.rnn.output_size
        self.head = nn.Linear(out, n_classes)
        if self.input_norm:
            self.register_buffer("input_shift", torch.zeros(in_features))
            self.register_buffer("input_scale", torch.ones(in_features))

    @property
    def cell(self) -> nn.Module:
        """The LTC family's :class:`~ctnn.models.LTCCell` (as :attr:`LTCClassifier.cell`)."""
        if self.family != "ltc":
            raise AttributeError(f"a {self.family!r} classifier has no LTC cell")
        return self.rnn.cell

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-serialisable values."""
        units = self.rnn.cell.wiring.get_config() if self.family == "ltc" else self.units
        return {
            "family": self.family, "in_features": self.in_features, "units": units,
            "n_classes": self.n_classes, "input_norm": self.input_norm, **self.options,
        }  # fmt: skip

    @torch.no_grad()
    def set_input_normalization(self, X: np.ndarray | Tensor) -> None:
        """Set the input scaling from data ``[n, T·F]`` or ``[n, T, F]`` (NaN padding ignored)."""
        if not self.input_norm:
            raise ValueError("this classifier was built with input_norm=False")
        x = torch.as_tensor(np.asarray(X), dtype=torch.float64).reshape(-1, self.in_features)
        x = x[~torch.isnan(x).any(dim=1)]
        std = x.std(dim=0) if len(x) > 1 else torch.ones(self.in_features, dtype=torch.float64)
        self.input_shift.copy_(x.mean(dim=0))
        self.input_scale.copy_(torch.where(std > 1e-8, std, torch.ones_like(std)))

    def forward(self, x: Tensor, timespans: Tensor | None = None) -> Tensor:
        """Logits ``[N, n_classes]`` for ``x [N, T, F]`` or flat ``x [N, T·F]``."""
        f = self.in_features
        if x.dim() == 2:
            if x.shape[1] % f:
                raise ValueError(f"flat input width {x.shape[1]} is not a multiple of in_features={f}")
            x = x.reshape(x.shape[0], -1, f)
        lengths = sequence_lengths(x)
        if bool((lengths == 0).any()):
            raise ValueError("a sequence has no valid step (its first row is all NaN)")
        x = torch.nan_to_num(x, nan=0.0)
        if self.input_norm:
            x = (x - self.input_shift) / self.input_scale
        if timespans is not None:
            timespans = torch.where(torch.isnan(timespans), torch.ones_like(timespans), timespans)
        out, _ = self.rnn(x, timespans=timespans)
        last = out[torch.arange(out.shape[0], device=out.device), lengths - 1]
        return self.head(last)
