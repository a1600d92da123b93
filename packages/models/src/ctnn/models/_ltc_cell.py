"""The liquid time-constant (LTC) cell of Hasani et al.: one recurrent step of the LTC ODE.

Each neuron i obeys

    cm_i · dv_i/dt = gleak_i · (vleak_i − v_i) + Σ_j w_ji · σ(sigma_ji · (v_j − mu_ji)) · (erev_ji − v_i)
                                              + Σ_k sw_ki · σ(ssigma_ki · (x_k − smu_ki)) · (serev_ki − v_i)

with recurrent synapses j → i and sensory synapses from input k. The parameter
names, shapes and initial ranges follow the maintained public implementation (the
``ncps`` package's torch ``LTCCell``), so the two are interchangeable parameter for
parameter. The structure (which synapses exist, their initial polarity) comes from a
:class:`~ctnn.models.Wiring`; the ODE is advanced by a solver from
:data:`~ctnn.models.SOLVERS` unrolled ``ode_unfolds`` times per input step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ._solvers import get_solver
from ._wiring import FullyConnected, Wiring, wiring_from_config

# Uniform initial ranges, as in ncps (raw values: softplus is applied on top when chosen).
_INIT_RANGES: dict[str, tuple[float, float]] = {
    "gleak": (0.001, 1.0),
    "vleak": (-0.2, 0.2),
    "cm": (0.4, 0.6),
    "w": (0.001, 1.0),
    "sigma": (3.0, 8.0),
    "mu": (0.3, 0.8),
    "sensory_w": (0.001, 1.0),
    "sensory_sigma": (3.0, 8.0),
    "sensory_mu": (0.3, 0.8),
}
#: Parameters that must be non-negative for the ODE to be a conductance model.
POSITIVE_PARAMETERS = ("w", "sensory_w", "cm", "gleak")
POSITIVITY = ("softplus", "clamp")
MAPPINGS = ("affine", "linear", "none")


def as_wiring(units: int | Wiring | Mapping[str, Any]) -> Wiring:
    """An int means a fully connected wiring; a mapping is a wiring config."""
    if isinstance(units, Wiring):
        return units
    if isinstance(units, Mapping):
        return wiring_from_config(units)
    return FullyConnected(int(units))


def _uniform(shape: tuple[int, ...], name: str) -> Tensor:
    lo, hi = _INIT_RANGES[name]
    return torch.rand(*shape) * (hi - lo) + lo


class LTCCell(nn.Module):
    """One LTC step: ``(inputs [N, F], state [N, units]) -> (outputs [N, motor], state)``.

    Args:
        in_features: number of inputs per step (sensory neurons).
        units: number of neurons (fully connected wiring), a :class:`Wiring`, or a
            wiring config dict.
        ode_unfolds: solver steps per input step; each covers ``elapsed_time / ode_unfolds``.
        solver: a name in :data:`~ctnn.models.SOLVERS` (``"semi_implicit"`` is the fused
            solver of the paper; ``"explicit_euler"``, ``"rk4"``). May be changed after
            construction, e.g. to compare schemes at inference.
        input_mapping: ``"affine"`` (``x·input_w + input_b``), ``"linear"`` or ``"none"``.
        output_mapping: the same for the motor neurons (``output_w``, ``output_b``).
        positivity: how ``w``, ``sensory_w``, ``cm`` and ``gleak`` are kept non-negative:
            ``"softplus"`` applies softplus to the raw parameters at run time;
            ``"clamp"`` uses them as they are and :meth:`apply_weight_constraints` clips
            them at 0 after each optimiser step (``train_classifier`` calls it).
        epsilon: added to the semi-implicit denominator to avoid dividing by 0.

    Example:
        >>> import torch
        >>> cell = LTCCell(3, 5)
        >>> out, h = cell(torch.zeros(2, 3), torch.zeros(2, 5))
        >>> tuple(out.shape), tuple(h.shape)
        ((2, 5), (2, 5))
    """

    def __init__(
        self,
        in_features: int,
        units: int | Wiring | Mapping[str, Any],
        ode_unfolds: int = 6,
        solver: str = "semi_implicit",
        input_mapping: str = "affine",
        output_mapping: str = "affine",
        positivity: str = "softplus",
        epsilon: float = 1e-8,
    ) -> None:
        super().__init__()
        if input_mapping not in MAPPINGS or output_mapping not in MAPPINGS:
            raise ValueError(f"input/output mapping must be one of {MAPPINGS}")
        if positivity not in POSITIVITY:
            raise ValueError(f"positivity must be one of {POSITIVITY}, got {positivity!r}")
        self.wiring = as_wiring(units)
        self.wiring.build(in_features)
        self.in_features = in_features
        self.ode_unfolds = ode_unfolds
        self.solver = solver
        self.input_mapping = input_mapping
        self.output_mapping = output_mapping
        self.positivity = positivity
        self.epsilon = float(epsilon)

        n, m = self.wiring.units, in_features
        self.gleak = nn.Parameter(_uniform((n,), "gleak"))
        self.vleak = nn.Parameter(_uniform((n,), "vleak"))
        self.cm = nn.Parameter(_uniform((n,), "cm"))
        self.sigma = nn.Parameter(_uniform((n, n), "sigma"))
        self.mu = nn.Parameter(_uniform((n, n), "mu"))
        self.w = nn.Parameter(_uniform((n, n), "w"))
        self.erev = nn.Parameter(torch.as_tensor(self.wiring.adjacency_matrix, dtype=torch.float32))
        self.sensory_sigma = nn.Parameter(_uniform((m, n), "sensory_sigma"))
        self.sensory_mu = nn.Parameter(_uniform((m, n), "sensory_mu"))
        self.sensory_w = nn.Parameter(_uniform((m, n), "sensory_w"))
        sensory_adj = self.wiring.sensory_adjacency_matrix
        assert sensory_adj is not None  # build() above made it
        self.sensory_erev = nn.Parameter(torch.as_tensor(sensory_adj, dtype=torch.float32))
        # Masks are buffers, not parameters: saved in checkpoints, never trained.
        self.register_buffer(
            "sparsity_mask", torch.as_tensor(np.abs(self.wiring.adjacency_matrix), dtype=torch.float32)
        )
        self.register_buffer(
            "sensory_sparsity_mask", torch.as_tensor(np.abs(sensory_adj), dtype=torch.float32)
        )
        if input_mapping in ("affine", "linear"):
            self.input_w = nn.Parameter(torch.ones(m))
        if input_mapping == "affine":
            self.input_b = nn.Parameter(torch.zeros(m))
        if output_mapping in ("affine", "linear"):
            self.output_w = nn.Parameter(torch.ones(self.motor_size))
        if output_mapping == "affine":
            self.output_b = nn.Parameter(torch.zeros(self.motor_size))

    # --- sizes and options ---------------------------------------------------------
    @property
    def state_size(self) -> int:
        """Number of neurons (the hidden state's width)."""
        return self.wiring.units

    @property
    def motor_size(self) -> int:
        """Number of outputs: the first ``wiring.output_dim`` neurons."""
        return self.wiring.output_dim

    @property
    def solver(self) -> str:
        """Name of the ODE solver in :data:`~ctnn.models.SOLVERS`."""
        return self._solver_name

    @solver.setter
    def solver(self, name: str) -> None:
        self._solve = get_solver(name)
        self._solver_name = name

    @property
    def ode_unfolds(self) -> int:
        """Solver steps per input step."""
        return self._ode_unfolds

    @ode_unfolds.setter
    def ode_unfolds(self, n: int) -> None:
        if int(n) != n or n < 1:
            raise ValueError(f"ode_unfolds must be a positive integer, got {n}")
        self._ode_unfolds = int(n)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-serialisable values (``LTCCell(**config)`` rebuilds it)."""
        return {
            "in_features": self.in_features,
            "units": self.wiring.get_config(),
            "ode_unfolds": self.ode_unfolds,
            "solver": self.solver,
            "input_mapping": self.input_mapping,
            "output_mapping": self.output_mapping,
            "positivity": self.positivity,
            "epsilon": self.epsilon,
        }

    # --- parameters as the ODE sees them -------------------------------------------
    def _positive(self, p: Tensor) -> Tensor:
        return nn.functional.softplus(p) if self.positivity == "softplus" else p

    def effective_parameters(self) -> dict[str, Tensor]:
        """Every parameter as the ODE uses it: positivity applied, synapse weights masked.

        This is what a quantizer or an analysis should read, rather than the raw
        ``nn.Parameter`` values (which, under softplus, are pre-activation values).
        """
        return {
            "gleak": self._positive(self.gleak),
            "vleak": self.vleak,
            "cm": self._positive(self.cm),
            "w": self._positive(self.w) * self.sparsity_mask,
            "sigma": self.sigma,
            "mu": self.mu,
            "erev": self.erev,
            "sensory_w": self._positive(self.sensory_w) * self.sensory_sparsity_mask,
            "sensory_sigma": self.sensory_sigma,
            "sensory_mu": self.sensory_mu,
            "sensory_erev": self.sensory_erev,
        }

    @torch.no_grad()
    def apply_weight_constraints(self) -> None:
        """Clip the positive parameters at 0 (``positivity="clamp"`` only; a no-op otherwise)."""
        if self.positivity == "clamp":
            for name in POSITIVE_PARAMETERS:
                getattr(self, name).clamp_(min=0.0)

    # --- the step ------------------------------------------------------------------
    def _map_inputs(self, x: Tensor) -> Tensor:
        if self.input_mapping in ("affine", "linear"):
            x = x * self.input_w
        if self.input_mapping == "affine":
            x = x + self.input_b
        return x

    def _map_outputs(self, v: Tensor) -> Tensor:
        out = v[:, : self.motor_size]
        if self.output_mapping in ("affine", "linear"):
            out = out * self.output_w
        if self.output_mapping == "affine":
            out = out + self.output_b
        return out

    def forward(
        self, inputs: Tensor, state: Tensor | None = None, elapsed_time: float | Tensor = 1.0
    ) -> tuple[Tensor, Tensor]:
        """Advance the state by ``elapsed_time`` (a positive float, or a tensor [N]).

        Returns ``(outputs [N, motor_size], next_state [N, units])``; a missing state is zeros.
        """
        if inputs.dim() != 2 or inputs.shape[1] != self.in_features:
            raise ValueError(f"expected inputs [N, {self.in_features}], got {list(inputs.shape)}")
        if state is None:
            state = inputs.new_zeros(inputs.shape[0], self.state_size)
        if isinstance(elapsed_time, Tensor):
            dt: float | Tensor = elapsed_time.to(inputs.dtype).reshape(-1, 1) / self.ode_unfolds
        else:
            if not elapsed_time > 0:
                raise ValueError(f"elapsed_time must be positive, got {elapsed_time}")
            dt = float(elapsed_time) / self.ode_unfolds

        p = self.effective_parameters()
        x = self._map_inputs(inputs)
        # Sensory synapses see the input, which is constant during the step: compute once.
        s_act = p["sensory_w"] * torch.sigmoid(p["sensory_sigma"] * (x.unsqueeze(-1) - p["sensory_mu"]))
        const_num = (s_act * p["sensory_erev"]).sum(dim=1) + p["gleak"] * p["vleak"]
        const_den = s_act.sum(dim=1) + p["gleak"]

        def terms(v: Tensor) -> tuple[Tensor, Tensor]:
            act = p["w"] * torch.sigmoid(p["sigma"] * (v.unsqueeze(-1) - p["mu"]))  # [N, src, dst]
            return const_num + (act * p["erev"]).sum(dim=1), const_den + act.sum(dim=1)

        v = state
        for _ in range(self.ode_unfolds):
            v = self._solve(terms, v, p["cm"], dt, self.epsilon)
        return self._map_outputs(v), v

    @torch.no_grad()
    def state_bounds(self, v0: Tensor) -> tuple[Tensor, Tensor]:
        """Per-neuron bounds that the state never leaves, for any inputs and time steps.

        Valid for the ``"semi_implicit"`` solver with non-negative ``w``, ``sensory_w``,
        ``gleak`` and positive ``cm`` (always so under softplus; under clamp after
        :meth:`apply_weight_constraints`). Each fused step writes neuron i's new value as
        a convex combination of its old value, ``vleak_i``, the reversal potentials of
        the synapses into i (recurrent ``erev[:, i]`` and sensory ``sensory_erev[:, i]``
        where the wiring has a synapse) and, because of ``epsilon``, 0. By induction over
        steps the state stays in the hull of those values and ``v0_i``.

        Returns ``(lo, hi)`` shaped like ``v0`` ([units] or [N, units]).
        """
        p = self.effective_parameters()
        rec = self.sparsity_mask.bool()
        sen = self.sensory_sparsity_mask.bool()
        inf = torch.tensor(float("inf"), dtype=self.erev.dtype, device=self.erev.device)
        lo = torch.minimum(
            torch.where(rec, p["erev"], inf).amin(dim=0), torch.where(sen, p["sensory_erev"], inf).amin(dim=0)
        )
        hi = torch.maximum(
            torch.where(rec, p["erev"], -inf).amax(dim=0),
            torch.where(sen, p["sensory_erev"], -inf).amax(dim=0),
        )
        lo, hi = torch.minimum(lo, p["vleak"]), torch.maximum(hi, p["vleak"])
        if self.epsilon > 0:
            lo, hi = lo.clamp(max=0.0), hi.clamp(min=0.0)
        return torch.minimum(v0, lo), torch.maximum(v0, hi)
