"""Recurrent families other than the LTC: Lipschitz RNN, LEM, CT-RNN, and LSTM/GRU baselines.

Every family here is a sequence module with one interface, the same as
:class:`~ctnn.models.LTC`::

    outputs [N, T, units], final_state = model(x [N, T, F], hx=None, timespans=None)

``timespans [N, T]`` (positive) is the time elapsed before each step, for irregularly
sampled sequences: the continuous-time families scale their step size by it; LSTM and
GRU, which have no notion of time, reject it. All arithmetic is written out (matmuls,
elementwise ops and pointwise nonlinearities): no fused library RNN, so that a
quantizer can replace every operation.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ._lem_fused import lem_sequence


def _check_sequence(x: Tensor, timespans: Tensor | None) -> None:
    if x.dim() != 3:
        raise ValueError(f"expected a batch of sequences [N, T, F], got shape {list(x.shape)}")
    if timespans is not None:
        if tuple(timespans.shape) != tuple(x.shape[:2]):
            raise ValueError(f"timespans must be [N, T] = {list(x.shape[:2])}, got {list(timespans.shape)}")
        if not bool((timespans > 0).all()):
            raise ValueError("timespans must be positive")


def _step_sizes(x: Tensor, timespans: Tensor | None, base: float) -> list[Tensor | float]:
    """Per-step sizes: ``base`` for regular sequences, ``base · timespans[:, t]`` ([N, 1]) otherwise."""
    if timespans is None:
        return [base] * x.shape[1]
    ts = timespans.to(x.dtype).unsqueeze(-1) * base
    return list(ts.unbind(1))


def _init_uniform(module: nn.Module, units: int) -> None:
    """Every parameter U(−1/√units, 1/√units): torch's RNN-cell initialisation, used by LEM's code too."""
    std = 1.0 / math.sqrt(units)
    for p in module.parameters():
        nn.init.uniform_(p, -std, std)


# --------------------------------------------------------------------------- Lipschitz RNN


def lipschitz_matrix(m: Tensor, beta: float, gamma: float) -> Tensor:
    """``(1 − β)(M + Mᵀ) + β(M − Mᵀ) − γI`` (Erichson et al., eq. for A_β,γ and W_β,γ)."""
    eye = torch.eye(m.shape[0], dtype=m.dtype, device=m.device)
    return (1.0 - beta) * (m + m.T) + beta * (m - m.T) - gamma * eye


@dataclass(frozen=True)
class StabilityReport:
    """The quantities of the Lipschitz RNN's sufficient stability condition, for its current parameters.

    **Condition checked** (``continuous``): for ``h' = A h + σ(W h + U x + b)`` with σ
    L-Lipschitz (tanh: L = 1), if ``A^sym = (A + Aᵀ)/2`` is negative definite and
    ``L·‖W‖₂ < λ_min(−A^sym)`` (equivalently ``λ_max(A^sym) + L·‖W‖₂ < 0``), the unit is
    globally exponentially stable: any two trajectories driven by the same input obey
    ``‖h₁(t) − h₂(t)‖ ≤ e^{−margin·t} ‖h₁(0) − h₂(0)‖`` with
    ``margin = −λ_max(A^sym) − L‖W‖₂``. This is the Lipschitz-constant form of the
    sufficient condition for global exponential stability in Erichson et al.,
    "Lipschitz Recurrent Neural Networks" (ICLR 2021, arXiv:2006.12070, §3, Theorem 1).
    It was written from the paper's equations and its public code (erichson/LipschitzRNN)
    without the theorem's text at hand to compare wording, so the check rests on this
    proof alone: with ``e = h₁ − h₂``, ``d/dt ½‖e‖² = eᵀA^sym e + eᵀ(σ(Wh₁+z) − σ(Wh₂+z))
    ≤ (λ_max(A^sym) + L‖W‖₂)‖e‖²``, then Grönwall.

    **Role of β and γ**: the skew part of ``A_β,γ`` drops out of ``A^sym``, so exactly
    ``A^sym = (1 − β)(M_A + M_Aᵀ) − γ_A I`` and ``λ_max(A^sym) = (1 − β)·λ_max(M_A + M_Aᵀ) − γ_A``
    (``lambda_max_sym_m_a`` is ``λ_max(M_A + M_Aᵀ)``): β → 1 removes the symmetric part
    (``A^sym = −γ_A I``), γ_A shifts it left. ``gamma_a_required`` is the γ_A above which the
    condition holds for the current ``M_A`` and ``W``.

    **Discretised map** (``discrete``, explicit Euler with step ε, the scheme the paper
    trains): ``h ↦ h + ε(A h + σ(W h + z))`` is Lipschitz with constant at most
    ``euler_lipschitz = ‖I + εA‖₂ + ε·L·‖W‖₂``; below 1 it is a contraction, so the
    trajectories the model actually computes converge (at every step size in ``(0, ε]``,
    by convexity in the step). Continuous stability does not imply this for large ε.
    ``max_real_eig_a`` (the spectral abscissa of A alone) is reported for reference.
    """

    lipschitz_constant: float
    beta: float
    gamma_a: float
    lambda_max_sym_m_a: float
    lambda_max_sym_a: float
    spectral_norm_w: float
    a_sym_negative_definite: bool
    margin: float
    continuous: bool
    gamma_a_required: float
    max_real_eig_a: float
    euler_lipschitz: float
    discrete: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return asdict(self)


class LipschitzRNN(nn.Module):
    """The Lipschitz recurrent unit of Erichson et al. (ICLR 2021).

    The hidden state obeys ``h' = A h + tanh(W h + U x + b)`` with
    ``A = A_β,γA(M_A)`` and ``W = W_β,γW(M_W)`` built by :func:`lipschitz_matrix`: β
    blends the symmetric and skew-symmetric parts, γ shifts the spectrum left. Each
    input step advances time by ``eps`` (times the step's timespan) with explicit
    Euler (``solver="euler"``, the paper's main scheme) or the explicit midpoint rule
    (``"rk2"``). The output at each step is ``h``.

    Parameters: ``M_A``, ``M_W [units, units]``, ``U`` (an ``nn.Linear`` holding ``U`` and
    ``b``). Initial ``M`` entries are N(0, (init_std/units)²) as in the public code.
    :meth:`stability` reports whether the paper's sufficient condition holds.

    Example:
        >>> import torch
        >>> rnn = LipschitzRNN(3, 8, gamma_a=2.0)  # a large γ_A: stable by the paper's condition
        >>> out, h = rnn(torch.rand(2, 5, 3))
        >>> tuple(out.shape), rnn.stability().continuous
        ((2, 5, 8), True)
    """

    SOLVERS = ("euler", "rk2")

    def __init__(
        self,
        in_features: int,
        units: int,
        beta: float = 0.75,
        gamma_a: float = 0.001,
        gamma_w: float = 0.001,
        eps: float = 0.03,
        solver: str = "euler",
        init_std: float = 1.0,
    ) -> None:
        super().__init__()
        if solver not in self.SOLVERS:
            raise ValueError(f"unknown Lipschitz RNN solver {solver!r}; known: {list(self.SOLVERS)}")
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        if eps <= 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.in_features, self.units = int(in_features), int(units)
        self.beta, self.gamma_a, self.gamma_w = float(beta), float(gamma_a), float(gamma_w)
        self.eps, self.solver, self.init_std = float(eps), solver, float(init_std)
        self.M_A = nn.Parameter(torch.randn(units, units) * (init_std / units))
        self.M_W = nn.Parameter(torch.randn(units, units) * (init_std / units))
        self.U = nn.Linear(in_features, units)
        nn.init.xavier_normal_(self.U.weight)
        nn.init.zeros_(self.U.bias)

    @property
    def output_size(self) -> int:
        """Outputs per step (the hidden state)."""
        return self.units

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-serialisable values."""
        return {
            "in_features": self.in_features, "units": self.units, "beta": self.beta,
            "gamma_a": self.gamma_a, "gamma_w": self.gamma_w, "eps": self.eps,
            "solver": self.solver, "init_std": self.init_std,
        }  # fmt: skip

    def matrices(self) -> tuple[Tensor, Tensor]:
        """``(A, W)`` as the ODE uses them."""
        return (
            lipschitz_matrix(self.M_A, self.beta, self.gamma_a),
            lipschitz_matrix(self.M_W, self.beta, self.gamma_w),
        )

    @torch.no_grad()
    def stability(self, lipschitz_constant: float = 1.0) -> StabilityReport:
        """Evaluate the sufficient stability condition for the current parameters (float64).

        ``lipschitz_constant`` is L for σ (1 for tanh). See :class:`StabilityReport` for the
        exact statement, its source and what each field means.
        """
        if lipschitz_constant < 0:
            raise ValueError(f"lipschitz_constant must be non-negative, got {lipschitz_constant}")
        lip = float(lipschitz_constant)
        a, w = (m.detach().double().cpu() for m in self.matrices())
        m_a = self.M_A.detach().double().cpu()
        lam = float(torch.linalg.eigvalsh((a + a.T) / 2).max())
        lam_m = float(torch.linalg.eigvalsh(m_a + m_a.T).max())
        norm_w = float(torch.linalg.matrix_norm(w, ord=2))
        eye = torch.eye(self.units, dtype=torch.float64)
        euler = float(torch.linalg.matrix_norm(eye + self.eps * a, ord=2)) + self.eps * lip * norm_w
        margin = -(lam + lip * norm_w)
        return StabilityReport(
            lipschitz_constant=lip,
            beta=self.beta,
            gamma_a=self.gamma_a,
            lambda_max_sym_m_a=lam_m,
            lambda_max_sym_a=lam,
            spectral_norm_w=norm_w,
            a_sym_negative_definite=lam < 0,
            margin=margin,
            continuous=margin > 0,
            gamma_a_required=(1.0 - self.beta) * lam_m + lip * norm_w,
            max_real_eig_a=float(torch.linalg.eigvals(a).real.max()),
            euler_lipschitz=euler,
            discrete=euler < 1.0,
        )

    def rate(self, h: Tensor, z: Tensor, a: Tensor, w: Tensor) -> Tensor:
        """``dh/dt = A h + tanh(W h + z)`` with ``z = U x + b`` (row vectors: ``h Aᵀ``)."""
        return h @ a.T + torch.tanh(h @ w.T + z)

    def forward(
        self, x: Tensor, hx: Tensor | None = None, timespans: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Run over ``x [N, T, F]``; returns ``(outputs [N, T, units], final_state [N, units])``."""
        _check_sequence(x, timespans)
        a, w = self.matrices()
        z = self.U(x)  # all steps' input terms in one matmul
        h = x.new_zeros(x.shape[0], self.units) if hx is None else hx
        at, wt = a.T, w.T
        outputs = []
        # unbind, not z[:, t]: its backward stacks the step gradients once instead of
        # materialising a full-size zero tensor per step
        for zt, dt in zip(z.unbind(1), _step_sizes(x, timespans, self.eps), strict=True):
            if self.solver == "euler":
                # h + dt·(hAᵀ + tanh(hWᵀ + z)), with the two matmuls fused into addmm
                h = h + dt * (h @ at + torch.tanh(torch.addmm(zt, h, wt)))
            else:  # explicit midpoint
                k1 = h @ at + torch.tanh(torch.addmm(zt, h, wt))
                hm = h + (0.5 * dt) * k1
                h = h + dt * (hm @ at + torch.tanh(torch.addmm(zt, hm, wt)))
            outputs.append(h)
        return torch.stack(outputs, dim=1), h


# --------------------------------------------------------------------------- LEM


class LEM(nn.Module):
    """Long Expressive Memory (Rusch et al., ICLR 2022): a multiscale two-gate ODE discretisation.

    For each step n with input u (and base step ``dt``, times the step's timespan)::

        Δt_n  = dt · σ(W₁ y + V₁ u + b₁)        Δt̄_n = dt · σ(W₂ y + V₂ u + b₂)
        z_n   = (1 − Δt_n) ⊙ z + Δt_n ⊙ tanh(W_z y + V_z u + b_z)
        y_n   = (1 − Δt̄_n) ⊙ y + Δt̄_n ⊙ tanh(W_y z_n + V_y u + b_y)

    (the public code's naming: ``ms_dt`` gates z, ``ms_dt_bar`` gates y; z is updated
    first, and y uses the new z). Parameters: ``inp2hid`` (V₁, V₂, V_z, V_y and their
    biases stacked), ``hid2hid`` (W₁, W₂, W_z... stacked), ``transform_z`` (W_y), all
    initialised U(−1/√units, 1/√units) as in the public code. The state is ``(y, z)``;
    the output at each step is ``y``.

    Example:
        >>> import torch
        >>> out, (y, z) = LEM(3, 8)(torch.rand(2, 5, 3))
        >>> tuple(out.shape), tuple(z.shape)
        ((2, 5, 8), (2, 8))
    """

    def __init__(self, in_features: int, units: int, dt: float = 1.0) -> None:
        super().__init__()
        if dt <= 0:
            raise ValueError(f"dt must be positive, got {dt}")
        self.in_features, self.units, self.dt = int(in_features), int(units), float(dt)
        self.inp2hid = nn.Linear(in_features, 4 * units)
        self.hid2hid = nn.Linear(units, 3 * units)
        self.transform_z = nn.Linear(units, units)
        self.fused = True  # see forward(); not a constructor option, results are the same
        _init_uniform(self, units)

    @property
    def output_size(self) -> int:
        """Outputs per step (y)."""
        return self.units

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-serialisable values."""
        return {"in_features": self.in_features, "units": self.units, "dt": self.dt}

    def step(self, ti: Tensor, y: Tensor, z: Tensor, dt: Tensor | float) -> tuple[Tensor, Tensor]:
        """One LEM step from the transformed input ``ti = inp2hid(u)``; returns ``(y, z)``."""
        i_dt1, i_dt2, i_z, i_y = ti.chunk(4, dim=-1)
        h_dt1, h_dt2, h_y = self.hid2hid(y).chunk(3, dim=-1)
        ms_dt_bar = dt * torch.sigmoid(i_dt1 + h_dt1)
        ms_dt = dt * torch.sigmoid(i_dt2 + h_dt2)
        z = (1.0 - ms_dt) * z + ms_dt * torch.tanh(i_y + h_y)
        y = (1.0 - ms_dt_bar) * y + ms_dt_bar * torch.tanh(self.transform_z(z) + i_z)
        return y, z

    def forward(
        self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None, timespans: Tensor | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Run over ``x [N, T, F]``; returns ``(y for every step [N, T, units], (y, z))``.

        The whole sequence is one autograd node (:mod:`ctnn.models._lem_fused`, the
        arithmetic of :meth:`step` with a hand-written backward pass); ``fused = False``
        runs :meth:`step` in a plain loop instead.
        """
        _check_sequence(x, timespans)
        if hx is None:
            y = z = x.new_zeros(x.shape[0], self.units)
        else:
            y, z = hx
        if not self.fused:
            return self._forward_steps(x, y, z, timespans)
        n = self.units
        wi, bi = self.inp2hid.weight, self.inp2hid.bias
        keep = torch.cat([torch.arange(2 * n), torch.arange(3 * n, 4 * n)]).to(x.device)
        xt = x.transpose(0, 1)  # time-major: each step's slice is contiguous
        # (Δt̄, Δt, z candidate) and the y candidate pre-activations for all steps, biases folded in
        p = nn.functional.linear(xt, wi[keep], bi[keep] + self.hid2hid.bias)
        q = nn.functional.linear(xt, wi[2 * n : 3 * n], bi[2 * n : 3 * n] + self.transform_z.bias)
        if timespans is None:
            dt = x.new_full((x.shape[1], 1, 1), self.dt)
        else:
            dt = timespans.to(x.dtype).transpose(0, 1).unsqueeze(-1) * self.dt
        ys, z = lem_sequence(p, q, dt, y, z, self.hid2hid.weight, self.transform_z.weight)
        out = ys.transpose(0, 1)
        return out, (out[:, -1], z)

    def _forward_steps(
        self, x: Tensor, y: Tensor, z: Tensor, timespans: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        ti = self.inp2hid(x)  # all steps' input terms in one matmul
        outputs = []
        for tit, dt in zip(ti.unbind(1), _step_sizes(x, timespans, self.dt), strict=True):
            y, z = self.step(tit, y, z, dt)
            outputs.append(y)
        return torch.stack(outputs, dim=1), (y, z)


# --------------------------------------------------------------------------- CT-RNN


class CTRNN(nn.Module):
    """Continuous-time RNN (Funahashi & Nakamura): ``τ ⊙ dh/dt = −h + tanh(W h + U x + b)``.

    ``τ = softplus(tau_raw) + tau_min`` per neuron keeps time constants positive. Each
    input step (length 1, or the step's timespan) is integrated with ``ode_unfolds``
    explicit Euler or RK4 substeps (``solver="euler"`` / ``"rk4"``), the input held
    constant. The output at each step is ``h``.

    Example:
        >>> import torch
        >>> out, h = CTRNN(3, 8)(torch.rand(2, 5, 3))
        >>> tuple(out.shape)
        (2, 5, 8)
    """

    SOLVERS = ("euler", "rk4")

    def __init__(
        self, in_features: int, units: int, ode_unfolds: int = 4, solver: str = "euler", tau_min: float = 0.1
    ) -> None:
        super().__init__()
        if solver not in self.SOLVERS:
            raise ValueError(f"unknown CT-RNN solver {solver!r}; known: {list(self.SOLVERS)}")
        if ode_unfolds < 1:
            raise ValueError(f"ode_unfolds must be a positive integer, got {ode_unfolds}")
        self.in_features, self.units = int(in_features), int(units)
        self.ode_unfolds, self.solver, self.tau_min = int(ode_unfolds), solver, float(tau_min)
        self.U = nn.Linear(in_features, units)
        self.W = nn.Linear(units, units, bias=False)
        self.tau_raw = nn.Parameter(torch.zeros(units))  # τ = softplus(0) + 0.1 ≈ 0.79

    @property
    def output_size(self) -> int:
        """Outputs per step (the hidden state)."""
        return self.units

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-serialisable values."""
        return {
            "in_features": self.in_features, "units": self.units, "ode_unfolds": self.ode_unfolds,
            "solver": self.solver, "tau_min": self.tau_min,
        }  # fmt: skip

    def tau(self) -> Tensor:
        """Positive time constants ``[units]``."""
        return nn.functional.softplus(self.tau_raw) + self.tau_min

    def forward(
        self, x: Tensor, hx: Tensor | None = None, timespans: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Run over ``x [N, T, F]``; returns ``(outputs [N, T, units], final_state)``."""
        _check_sequence(x, timespans)
        z = self.U(x)
        inv_tau = 1.0 / self.tau()
        h = x.new_zeros(x.shape[0], self.units) if hx is None else hx

        def rate(v: Tensor, zt: Tensor) -> Tensor:
            return (torch.tanh(self.W(v) + zt) - v) * inv_tau

        outputs = []
        for zt, dt in zip(z.unbind(1), _step_sizes(x, timespans, 1.0 / self.ode_unfolds), strict=True):
            for _ in range(self.ode_unfolds):
                if self.solver == "euler":
                    h = h + dt * rate(h, zt)
                else:
                    k1 = rate(h, zt)
                    k2 = rate(h + 0.5 * dt * k1, zt)
                    k3 = rate(h + 0.5 * dt * k2, zt)
                    k4 = rate(h + dt * k3, zt)
                    h = h + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
            outputs.append(h)
        return torch.stack(outputs, dim=1), h


# --------------------------------------------------------------------------- LSTM / GRU


class _GatedBaseline(nn.Module):
    """What LSTM and GRU share: ``GATES`` stacked gate blocks in ``torch.nn.*Cell`` layout.

    ``weight_ih [GATES·units, F]``, ``weight_hh [GATES·units, units]``, ``bias_ih``,
    ``bias_hh``, all initialised U(−1/√units, 1/√units) like torch's cells.
    """

    GATES = 0

    def __init__(self, in_features: int, units: int) -> None:
        super().__init__()
        self.in_features, self.units = int(in_features), int(units)
        g = self.GATES
        self.weight_ih = nn.Parameter(torch.empty(g * units, in_features))
        self.weight_hh = nn.Parameter(torch.empty(g * units, units))
        self.bias_ih = nn.Parameter(torch.empty(g * units))
        self.bias_hh = nn.Parameter(torch.empty(g * units))
        _init_uniform(self, units)

    @property
    def output_size(self) -> int:
        """Outputs per step (h)."""
        return self.units

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-serialisable values."""
        return {"in_features": self.in_features, "units": self.units}

    def _check(self, x: Tensor, timespans: Tensor | None) -> None:
        _check_sequence(x, timespans)
        if timespans is not None:
            name = type(self).__name__
            raise ValueError(f"{name} has no notion of elapsed time; use a continuous-time family")


class LSTM(_GatedBaseline):
    """LSTM baseline with explicit gate arithmetic, parameter-compatible with ``torch.nn.LSTMCell``.

    ``weight_ih [4·units, F]``, ``weight_hh [4·units, units]``, ``bias_ih``, ``bias_hh``,
    gates in the order input, forget, cell, output. The state is ``(h, c)``; the output
    at each step is ``h``. No notion of time: ``timespans`` is rejected.

    Example:
        >>> import torch
        >>> out, (h, c) = LSTM(3, 8)(torch.rand(2, 5, 3))
        >>> tuple(out.shape)
        (2, 5, 8)
    """

    GATES = 4

    def forward(
        self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None, timespans: Tensor | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Run over ``x [N, T, F]``; returns ``(h for every step, (h, c))``."""
        self._check(x, timespans)
        gi = nn.functional.linear(x, self.weight_ih, self.bias_ih + self.bias_hh)
        if hx is None:
            h = c = x.new_zeros(x.shape[0], self.units)
        else:
            h, c = hx
        w_hh_t = self.weight_hh.T
        outputs = []
        for git in gi.unbind(1):
            i, f, g, o = torch.addmm(git, h, w_hh_t).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs, dim=1), (h, c)


class GRU(_GatedBaseline):
    """GRU baseline with explicit gate arithmetic, parameter-compatible with ``torch.nn.GRUCell``.

    Gates in the order reset, update, new: ``n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))``,
    ``h' = (1 − z) ⊙ n + z ⊙ h``. No notion of time: ``timespans`` is rejected.

    Example:
        >>> import torch
        >>> out, h = GRU(3, 8)(torch.rand(2, 5, 3))
        >>> tuple(h.shape)
        (2, 8)
    """

    GATES = 3

    def forward(
        self, x: Tensor, hx: Tensor | None = None, timespans: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Run over ``x [N, T, F]``; returns ``(h for every step, final h)``."""
        self._check(x, timespans)
        gi = nn.functional.linear(x, self.weight_ih, self.bias_ih)
        h = x.new_zeros(x.shape[0], self.units) if hx is None else hx
        outputs = []
        for git in gi.unbind(1):
            i_r, i_z, i_n = git.chunk(3, dim=-1)
            h_r, h_z, h_n = torch.addmm(self.bias_hh, h, self.weight_hh.T).chunk(3, dim=-1)
            r = torch.sigmoid(i_r + h_r)
            z = torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            h = (1.0 - z) * n + z * h
            outputs.append(h)
        return torch.stack(outputs, dim=1), h
