"""Stability studies: Lipschitz RNN spectra, LTC state bounds and time constants, LEM's multiscale Δt.

Torch-free: the result types and their plots. The measurements that run models are
:func:`ctnn.analysis.lipschitz_spectra`, :func:`ctnn.analysis.ltc_ranges` and
:func:`ctnn.analysis.lem_timescales`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ._style import log_axis, tidy


def _fmt(v: Any) -> Any:
    if isinstance(v, bool):
        return "yes" if v else "no"
    return v


#: What the Lipschitz RNN's stability report keys mean (ctnn.models.StabilityReport), in words and symbols.
_REPORT_LABELS = {
    "lipschitz_constant": "Lipschitz constant L of σ (tanh: 1)",
    "beta": "β (skew-symmetric share of A, W)",
    "gamma_a": "γ_A (diagonal shift of A)",
    "lambda_max_sym_m_a": "λ_max(M_A + M_Aᵀ)",
    "lambda_max_sym_a": "λ_max(A^sym), A^sym = (A + Aᵀ)/2",
    "spectral_norm_w": "‖W‖₂",
    "a_sym_negative_definite": "A^sym negative definite",
    "margin": "margin −λ_max(A^sym) − L‖W‖₂ (> 0: ODE stable)",
    "continuous": "ODE condition holds",
    "gamma_a_required": "γ_A the ODE condition needs",
    "max_real_eig_a": "max Re λ(A)",
    "euler_lipschitz": "Euler map's Lipschitz bound ‖I + εA‖₂ + εL‖W‖₂ (< 1: contraction)",
    "discrete": "Euler map is a contraction",
}


# ------------------------------------------------------------------------------ Lipschitz RNN


@dataclass
class LipschitzSpectra:
    """Eigenvalues of a Lipschitz RNN's ``A`` and ``W`` and its stability report.

    ``report`` is the model's own ``stability().to_dict()`` as it is (its keys are the
    model package's business); ``continuous`` / ``discrete`` say whether the sufficient
    conditions hold for the ODE and for the Euler-discretised map.
    """

    eig_a: np.ndarray
    eig_w: np.ndarray
    report: dict[str, Any]
    eps: float
    label: str = "Lipschitz RNN"
    title: str = "Stability: Lipschitz RNN spectra"

    @property
    def continuous(self) -> bool | None:
        return self.report.get("continuous")

    @property
    def discrete(self) -> bool | None:
        return self.report.get("discrete")

    def description(self) -> str:
        verdict = {True: "holds", False: "does not hold", None: "was not reported"}
        return (
            f"Eigenvalues of the hidden-to-hidden matrices A and W of the {self.label} "
            f"(h' = Ah + tanh(Wh + Ux + b), Euler step ε = {self.eps}). The sufficient condition for global "
            f"exponential stability of the ODE {verdict[self.continuous]}; the one for the discretised map "
            f"(a contraction) {verdict[self.discrete]}."
        )

    def table(self) -> tuple[list[str], list[list[Any]]]:
        rows = [[_REPORT_LABELS.get(k, k), _fmt(v)] for k, v in self.report.items() if k != "max_real_eig_a"]
        rows += [["max Re λ(A)", float(self.eig_a.real.max())],
                 ["max Re λ(W)", float(self.eig_w.real.max())],
                 ["max |λ(W)|", float(np.abs(self.eig_w).max())]]  # fmt: skip
        return ["quantity", "value"], rows

    def plot(self) -> Figure:
        return plot_lipschitz_spectra(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (eigenvalues as [re, im] pairs)."""
        return {"eig_a": np.stack([self.eig_a.real, self.eig_a.imag], 1).tolist(),
                "eig_w": np.stack([self.eig_w.real, self.eig_w.imag], 1).tolist(),
                "report": self.report, "eps": self.eps, "label": self.label}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LipschitzSpectra:
        """Inverse of :meth:`to_dict`."""

        def eig(pairs: list[list[float]]) -> np.ndarray:
            a = np.asarray(pairs, dtype=float).reshape(-1, 2)
            return a[:, 0] + 1j * a[:, 1]

        return cls(eig(d["eig_a"]), eig(d["eig_w"]), d["report"], d["eps"], d.get("label", "Lipschitz RNN"))


def plot_lipschitz_spectra(study: LipschitzSpectra) -> Figure:
    """Eigenvalues of A and W in the complex plane; the imaginary axis (Re = 0) marked."""
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.7))
    for ax, eig, name, colour in (
        (axes[0], study.eig_a, "A", "#1c7ed6"),
        (axes[1], study.eig_w, "W", "#e8590c"),
    ):
        ax.axvline(0.0, color="#495057", lw=1.0, ls="--", zorder=1)
        ax.axhline(0.0, color="#adb5bd", lw=0.6, zorder=1)
        ax.scatter(eig.real, eig.imag, s=22, color=colour, edgecolor="white", linewidth=0.4, zorder=3)
        ax.set_xlabel("Re λ")
        ax.set_ylabel("Im λ")
        ax.set_title(f"eigenvalues of {name} (max Re λ = {eig.real.max():.3g})", fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))  # narrow spectra: default ticks overlap
        tidy(ax)
    ok = {True: "holds", False: "fails", None: "n/a"}
    fig.suptitle(f"{study.label}: stability condition {ok[study.continuous]} (ODE), "
                 f"{ok[study.discrete]} (Euler map)", fontsize=11)  # fmt: skip
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------- LTC


@dataclass
class LTCRanges:
    """LTC neurons over a data set: proved state bounds, observed states, and system time constants.

    Per neuron (arrays ``[units]``): ``bound_lo/hi`` from ``LTCCell.state_bounds`` (from a
    zero start), ``state_lo/hi`` the states observed over the data, ``tau_min/median/max``
    the system time constant ``τ_sys = cm / (gleak + Σ synaptic conductances)`` (LTC paper,
    eq. 2) observed over the data. ``within_bounds``: every observed state lies in its bounds.
    """

    bound_lo: np.ndarray
    bound_hi: np.ndarray
    state_lo: np.ndarray
    state_hi: np.ndarray
    tau_min: np.ndarray
    tau_median: np.ndarray
    tau_max: np.ndarray
    n_sequences: int
    dataset: str = ""
    title: str = "Stability: LTC state bounds and time constants"

    @property
    def within_bounds(self) -> bool:
        tol = 1e-6 * (1 + np.abs(np.concatenate([self.bound_lo, self.bound_hi])).max())
        return bool(
            np.all(self.state_lo >= self.bound_lo - tol) and np.all(self.state_hi <= self.bound_hi + tol)
        )

    def description(self) -> str:
        return (
            f"Over {self.n_sequences} sequences{f' of {self.dataset}' if self.dataset else ''}, every LTC state "
            f"{'stays' if self.within_bounds else 'does NOT stay'} within the bounds proved from the parameters "
            f"(the fused solver's convex-combination argument). The system time constant ranges from "
            f"{self.tau_min.min():.3g} to {self.tau_max.max():.3g} (in input steps): the 'liquid' time constant "
            "varies with the input and the state."
        )

    def table(self) -> tuple[list[str], list[list[Any]]]:
        headers = [
            "neuron",
            "bound lo",
            "bound hi",
            "observed lo",
            "observed hi",
            "τ min",
            "τ median",
            "τ max",
        ]
        rows = [[i, *(float(a[i]) for a in (self.bound_lo, self.bound_hi, self.state_lo, self.state_hi,
                                            self.tau_min, self.tau_median, self.tau_max))]
                for i in range(len(self.bound_lo))]  # fmt: skip
        return headers, rows

    def plot(self) -> Figure:
        return plot_ltc_ranges(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        keys = ("bound_lo", "bound_hi", "state_lo", "state_hi", "tau_min", "tau_median", "tau_max")
        return {k: getattr(self, k).tolist() for k in keys} | {"n_sequences": self.n_sequences,
                                                               "dataset": self.dataset}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LTCRanges:
        """Inverse of :meth:`to_dict`."""
        keys = ("bound_lo", "bound_hi", "state_lo", "state_hi", "tau_min", "tau_median", "tau_max")
        return cls(*(np.asarray(d[k], dtype=float) for k in keys), d["n_sequences"], d.get("dataset", ""))


def plot_ltc_ranges(study: LTCRanges) -> Figure:
    """Left: per-neuron proved bounds (light) around observed states (dark). Right: τ_sys ranges (log)."""
    n = len(study.bound_lo)
    x = np.arange(n)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(max(7.5, 0.28 * n + 4.5), 3.7))
    ax0.bar(x, study.bound_hi - study.bound_lo, 0.8, bottom=study.bound_lo, color="#d0ebff",
            edgecolor="#74c0fc", label="proved bounds", zorder=2)  # fmt: skip
    ax0.bar(x, study.state_hi - study.state_lo, 0.45, bottom=study.state_lo, color="#1864ab",
            label="observed on data", zorder=3)  # fmt: skip
    ax0.set_xlabel("neuron")
    ax0.set_ylabel("state v")
    ax0.set_title("States stay within the proved bounds" if study.within_bounds else "States LEAVE the bounds",
                  fontsize=10)  # fmt: skip
    ax0.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    tidy(ax0)
    ax0.grid(False, axis="x")
    ax1.vlines(x, study.tau_min, study.tau_max, color="#5f3dc4", lw=3, zorder=2, label="min–max")
    ax1.scatter(x, study.tau_median, color="white", edgecolor="#5f3dc4", s=22, zorder=3, label="median")
    log_axis(ax1)
    ax1.set_xlabel("neuron")
    ax1.set_ylabel("τ_sys (input steps)")
    ax1.set_title("System time constants over the data", fontsize=10)
    ax1.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    tidy(ax1)
    for ax in (ax0, ax1):
        ax.set_xticks(x[:: max(1, n // 16)])
    fig.suptitle(f"LTC over {study.dataset or 'the data'}", fontsize=11)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------- LEM


@dataclass
class LEMTimescales:
    """LEM's learned multiscale step sizes over a data set.

    ``dt`` (gating z, ``ms_dt``) and ``dt_bar`` (gating y, ``ms_dt_bar``) hold the observed
    values ``Δt·σ(·)`` (a subsample when large); ``unit_median_dt`` / ``unit_median_dt_bar``
    each unit's median over the data ([units]); ``base_dt`` is the LEM's Δt.
    """

    dt: np.ndarray
    dt_bar: np.ndarray
    unit_median_dt: np.ndarray
    unit_median_dt_bar: np.ndarray
    base_dt: float
    n_sequences: int
    dataset: str = ""
    quantiles: tuple[float, ...] = field(default=(0.0, 0.05, 0.5, 0.95, 1.0))
    title: str = "Stability: LEM multiscale time steps"

    def description(self) -> str:
        spread = np.log10(self.unit_median_dt.max() / max(self.unit_median_dt.min(), 1e-300))
        return (
            f"The gated step sizes Δt_n = Δt·σ(W₁y + V₁u + b₁) (gating z) and Δt̄_n (gating y) of the LEM, over "
            f"{self.n_sequences} sequences{f' of {self.dataset}' if self.dataset else ''} (Δt = {self.base_dt}). "
            f"Units' median step sizes for z span {spread:.1f} decades: each unit runs on its own time scale."
        )

    def table(self) -> tuple[list[str], list[list[Any]]]:
        headers = ["gate", *[f"q{100 * q:g}" for q in self.quantiles], "mean"]
        rows = [["Δt (z)", *np.quantile(self.dt, self.quantiles), float(self.dt.mean())],
                ["Δt̄ (y)", *np.quantile(self.dt_bar, self.quantiles), float(self.dt_bar.mean())]]  # fmt: skip
        return headers, [[r[0], *(float(v) for v in r[1:])] for r in rows]

    def plot(self) -> Figure:
        return plot_lem_timescales(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {"dt": self.dt.tolist(), "dt_bar": self.dt_bar.tolist(),
                "unit_median_dt": self.unit_median_dt.tolist(), "unit_median_dt_bar": self.unit_median_dt_bar.tolist(),
                "base_dt": self.base_dt, "n_sequences": self.n_sequences, "dataset": self.dataset}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LEMTimescales:
        """Inverse of :meth:`to_dict`."""
        keys = ("dt", "dt_bar", "unit_median_dt", "unit_median_dt_bar")
        arrays = (np.asarray(d[k], dtype=float) for k in keys)
        return cls(*arrays, d["base_dt"], d["n_sequences"], d.get("dataset", ""))


def plot_lem_timescales(study: LEMTimescales) -> Figure:
    """Left: histograms of Δt and Δt̄ (log scale). Right: each unit's median step, sorted."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(8.6, 3.6))
    lo = max(min(study.dt.min(), study.dt_bar.min()), 1e-6 * study.base_dt)
    bins = np.geomspace(lo, study.base_dt, 40)
    ax0.hist(
        np.clip(study.dt, lo, None), bins=bins, color="#1c7ed6", alpha=0.75, label="Δt (gates z)", zorder=2
    )
    ax0.hist(np.clip(study.dt_bar, lo, None), bins=bins, histtype="step", color="#c92a2a", lw=1.8,
             label="Δt̄ (gates y)", zorder=3)  # fmt: skip
    log_axis(ax0, "x")
    ax0.set_xlabel("step size")
    ax0.set_ylabel("count (units × steps)")
    ax0.set_title("Distribution over the data", fontsize=10)
    ax0.legend(frameon=False, fontsize=8)
    tidy(ax0)
    r = np.arange(len(study.unit_median_dt))
    ax1.plot(r, np.sort(study.unit_median_dt), "o-", color="#1c7ed6", ms=3.5, label="Δt (z)")
    ax1.plot(r, np.sort(study.unit_median_dt_bar), "s--", color="#c92a2a", ms=3.5, label="Δt̄ (y)")
    log_axis(ax1)
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set_xlabel("unit (sorted by median step)")
    ax1.set_ylabel("median step size")
    ax1.set_title("Each unit's own time scale", fontsize=10)
    ax1.legend(frameon=False, fontsize=8)
    tidy(ax1)
    fig.suptitle(f"LEM multiscale steps over {study.dataset or 'the data'}", fontsize=11)
    fig.tight_layout()
    return fig
