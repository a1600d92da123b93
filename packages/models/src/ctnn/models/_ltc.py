"""LTC over whole sequences, and a classifier head on top of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ._ltc_cell import LTCCell
from ._wiring import Wiring


class LTC(nn.Module):
    """An LTC network run over a sequence ``[N, T, F]``, batch first.

    Args:
        in_features: features per time step.
        units: neuron count, a :class:`~ctnn.models.Wiring` or a wiring config dict.
        ode_unfolds, solver: as in :class:`~ctnn.models.LTCCell`.
        **cell_options: the other :class:`~ctnn.models.LTCCell` options
            (``input_mapping``, ``output_mapping``, ``positivity``, ``epsilon``).

    Example:
        >>> import torch
        >>> rnn = LTC(8, 12)
        >>> out, h = rnn(torch.rand(4, 8, 8))
        >>> tuple(out.shape), tuple(h.shape)
        ((4, 8, 12), (4, 12))
    """

    def __init__(
        self,
        in_features: int,
        units: int | Wiring | Mapping[str, Any],
        ode_unfolds: int = 6,
        solver: str = "semi_implicit",
        **cell_options: Any,
    ) -> None:
        super().__init__()
        self.cell = LTCCell(in_features, units, ode_unfolds=ode_unfolds, solver=solver, **cell_options)

    @property
    def state_size(self) -> int:
        """Number of neurons."""
        return self.cell.state_size

    @property
    def motor_size(self) -> int:
        """Outputs per time step."""
        return self.cell.motor_size

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-serialisable values."""
        return self.cell.get_config()

    def forward(
        self, x: Tensor, hx: Tensor | None = None, timespans: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Run over ``x [N, T, F]`` from state ``hx [N, units]`` (zeros if omitted).

        ``timespans [N, T]`` gives the (positive) time elapsed before each step, for
        irregularly sampled sequences; by default every step lasts 1.

        Returns ``(outputs [N, T, motor_size], final_state [N, units])``.
        """
        if x.dim() != 3:
            raise ValueError(f"expected a batch of sequences [N, T, F], got shape {list(x.shape)}")
        if timespans is not None and tuple(timespans.shape) != tuple(x.shape[:2]):
            raise ValueError(f"timespans must be [N, T] = {list(x.shape[:2])}, got {list(timespans.shape)}")
        h = hx
        outputs = []
        for t in range(x.shape[1]):
            elapsed = 1.0 if timespans is None else timespans[:, t]
            out, h = self.cell(x[:, t], h, elapsed)
            outputs.append(out)
        assert h is not None  # T >= 1 ran at least one step
        return torch.stack(outputs, dim=1), h


class LTCClassifier(nn.Module):
    """Classify sequences: an :class:`LTC`, then a Linear layer on its last output.

    Flat inputs ``[N, T·F]`` are read as ``T`` steps of ``in_features`` values (so the
    8×8 digits become 8 rows of 8 pixels), which lets the classifier train on the same
    data arrays as an MLP.

    Example:
        >>> import torch
        >>> clf = LTCClassifier(8, 16, n_classes=10)
        >>> tuple(clf(torch.rand(5, 64)).shape)
        (5, 10)
    """

    def __init__(
        self,
        in_features: int,
        units: int | Wiring | Mapping[str, Any],
        n_classes: int,
        ode_unfolds: int = 6,
        solver: str = "semi_implicit",
        **cell_options: Any,
    ) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.ltc = LTC(in_features, units, ode_unfolds=ode_unfolds, solver=solver, **cell_options)
        self.head = nn.Linear(self.ltc.motor_size, n_classes)

    @property
    def cell(self) -> LTCCell:
        """The underlying :class:`~ctnn.models.LTCCell`."""
        return self.ltc.cell

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-serialisable values."""
        return {**self.ltc.get_config(), "n_classes": self.n_classes}

    def forward(self, x: Tensor, timespans: Tensor | None = None) -> Tensor:
        """Logits ``[N, n_classes]`` for ``x [N, T, F]`` or flat ``x [N, T·F]``."""
        f = self.cell.in_features
        if x.dim() == 2:
            if x.shape[1] % f:
                raise ValueError(f"flat input width {x.shape[1]} is not a multiple of in_features={f}")
            x = x.reshape(x.shape[0], -1, f)
        out, _ = self.ltc(x, timespans=timespans)
        return self.head(out[:, -1])
