"""LTC over whole sequences, and a classifier head on top of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from . import _native
from ._ltc_cell import LTCCell
from ._wiring import Wiring

#: How :class:`LTC` runs the semi-implicit solver over a sequence.
IMPLEMENTATIONS = ("auto", "native", "eager", "cell")


def semi_implicit_sequence(
    cnum: Tensor, cden: Tensor, cmt: Tensor, v0: Tensor, sigma: Tensor, mu: Tensor,
    we: Tensor, wd: Tensor, eps: float, unfolds: int,
) -> Tensor:  # fmt: skip
    """The eager PyTorch form of :class:`~ctnn.models._native.FusedSemiImplicit` (same inputs, same output).

    ``cnum, cden, cmt [B, T, N]``, ``v0 [B, N]``, ``sigma, mu, we, wd [N, N]``; returns the
    state after every step ``[B, T, N]``.
    """
    v, states = v0, []
    for t in range(cnum.shape[1]):
        cn, cd, cm = cnum[:, t], cden[:, t], cmt[:, t]
        for _ in range(unfolds):
            s = torch.sigmoid(sigma * (v.unsqueeze(-1) - mu))  # [B, src, dst]
            v = (cm * v + cn + (s * we).sum(dim=1)) / (cm + cd + (s * wd).sum(dim=1) + eps)
        states.append(v)
    return torch.stack(states, dim=1)


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
        self.implementation = "auto"

    @property
    def implementation(self) -> str:
        """How the semi-implicit solver runs over a sequence (not saved in checkpoints).

        ``"auto"``: the fused C kernel of :mod:`ctnn.models._native` when it is available
        (CPU, float32/float64), else ``"eager"``; ``"native"``: that kernel or an error;
        ``"eager"``: PyTorch ops, with the sensory synapses computed for all steps at once;
        ``"cell"``: :class:`LTCCell` step by step (what the explicit solvers always use).
        All four compute the same function.
        """
        return self._implementation

    @implementation.setter
    def implementation(self, name: str) -> None:
        if name not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {name!r}")
        self._implementation = name

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
        impl = self._resolve_implementation(x)
        if impl == "cell":
            h = hx
            outputs = []
            for t in range(x.shape[1]):
                elapsed = 1.0 if timespans is None else timespans[:, t]
                out, h = self.cell(x[:, t], h, elapsed)
                outputs.append(out)
            assert h is not None  # T >= 1 ran at least one step
            return torch.stack(outputs, dim=1), h
        states = self._sequence(x, hx, timespans, impl)
        return self._map_outputs(states), states[:, -1]

    def _resolve_implementation(self, x: Tensor) -> str:
        impl = self._implementation
        fusable = (
            self.cell.solver == "semi_implicit"
            and x.device.type == "cpu"
            and x.dtype in (torch.float32, torch.float64)
        )
        if impl == "native":
            if not fusable:
                raise ValueError("the native LTC kernel needs solver='semi_implicit' and float CPU tensors")
            if not _native.available():
                raise RuntimeError(f"the native LTC kernel is unavailable: {_native.unavailable_reason()}")
            return "native"
        if impl == "auto":
            if not fusable:
                return "cell"
            return "native" if _native.available() else "eager"
        if impl == "eager" and self.cell.solver != "semi_implicit":
            return "cell"
        return impl

    def _sequence(self, x: Tensor, hx: Tensor | None, timespans: Tensor | None, impl: str) -> Tensor:
        cell = self.cell
        p = cell.effective_parameters()
        xm = cell._map_inputs(x)  # [B, T, F]
        # The sensory synapses see the input, constant within a step: all steps at once.
        s_act = p["sensory_w"] * torch.sigmoid(p["sensory_sigma"] * (xm.unsqueeze(-1) - p["sensory_mu"]))
        cnum = (s_act * p["sensory_erev"]).sum(dim=2) + p["gleak"] * p["vleak"]
        cden = s_act.sum(dim=2) + p["gleak"]
        if timespans is None:
            cmt = (p["cm"] * cell.ode_unfolds).expand_as(cnum)
        else:
            if not bool((timespans > 0).all()):
                raise ValueError("timespans must be positive")
            cmt = p["cm"] / (timespans.to(x.dtype).unsqueeze(-1) / cell.ode_unfolds)
        v0 = x.new_zeros(x.shape[0], cell.state_size) if hx is None else hx
        we, wd = p["w"] * p["erev"], p["w"]
        args = (cnum, cden, cmt, v0, p["sigma"], p["mu"], we, wd, cell.epsilon, cell.ode_unfolds)
        if impl == "native":
            return _native.FusedSemiImplicit.apply(*args)
        return semi_implicit_sequence(*args)

    def _map_outputs(self, states: Tensor) -> Tensor:
        cell = self.cell
        out = states[..., : cell.motor_size]
        if cell.output_mapping in ("affine", "linear"):
            out = out * cell.output_w
        if cell.output_mapping == "affine":
            out = out + cell.output_b
        return out


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
