"""Expressivity by trajectory length (Raghu et al. 2017; Hasani et al., LTC, 2021): the result and its figure.

The measurement itself (which runs models) is :func:`ctnn.analysis.trajectory_lengths`;
this module is torch-free: the geometry helpers, the result type and the plots.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from ._style import family_style, log_axis, tidy

SWEEPS = ("sigma_w", "width", "depth")
_SWEEP_LABEL = {"sigma_w": "weight scale σ_w", "width": "width (units per layer)", "depth": "depth (layers)"}


def curve_length(points: np.ndarray) -> float:
    """Length of the polyline through ``points [T, d]``: ``Σ ‖p[t+1] − p[t]‖``.

    Example:
        >>> curve_length(np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 5.0]]))
        6.0
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or len(p) < 2:
        raise ValueError(f"a trajectory needs shape [T >= 2, d], got {list(p.shape)}")
    return float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum())


def pca_2d(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Project ``points [T, d]`` on their two principal axes; return ``(projection [T, 2], explained variance)``.

    The explained variance is the fraction of the trajectory's variance the two axes keep.
    """
    p = np.asarray(points, dtype=np.float64)
    centred = p - p.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(2, vt.shape[0])
    proj = centred @ vt[:k].T
    if k < 2:
        proj = np.hstack([proj, np.zeros((len(p), 2 - k))])
    total = float((s**2).sum())
    return proj, (float((s[:k] ** 2).sum()) / total if total > 0 else 1.0)


@dataclass
class TrajectoryLengths:
    """Latent trajectory lengths of each family for a circular input, swept over σ_w, width and depth.

    ``rows``: ``{"family", "sweep", "sigma_w", "width", "depth", "length", "seed"}``, one per
    (family, sweep point, seed); ``sweep`` names the swept variable (the other two are at
    ``base``). ``projections[family]`` is the 2-D PCA projection ``[T, 2]`` of the latent
    trajectory at the base configuration; ``input_length`` the input circle's length.
    """

    rows: list[dict[str, Any]]
    base: dict[str, Any]
    input_length: float
    projections: dict[str, np.ndarray] = field(default_factory=dict)
    explained: dict[str, float] = field(default_factory=dict)
    title: str = "Expressivity: latent trajectory length"

    @property
    def families(self) -> list[str]:
        return list(dict.fromkeys(r["family"] for r in self.rows))

    def series(self, family: str, sweep: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(x, mean length, std over seeds)`` of one family along one sweep."""
        xs = sorted({r[sweep] for r in self.rows if r["family"] == family and r["sweep"] == sweep})
        vals = [[r["length"] for r in self.rows if r["family"] == family and r["sweep"] == sweep and r[sweep] == x]
                for x in xs]  # fmt: skip
        return np.array(xs, float), np.array([np.mean(v) for v in vals]), np.array([np.std(v) for v in vals])

    def description(self) -> str:
        b = self.base
        return (
            f"A circle (length {self.input_length:.2f}) is fed as a 2-D input sequence to randomly initialised "
            "networks; the length of the hidden-state trajectory over one lap (after a warm-up lap) measures how "
            "much the network stretches and folds its input. Weights are drawn N(0, σ_w²/fan-in); sweeps vary one "
            f"of σ_w, width and depth around σ_w={b['sigma_w']}, width={b['width']}, depth={b['depth']}."
        )

    def table(self) -> tuple[list[str], list[list[Any]]]:
        """One row per sweep point, one column per family: mean length ± std over seeds."""
        fams = self.families
        headers = ["swept", "value", *(family_style(f)[2] for f in fams)]
        out: list[list[Any]] = []
        for sweep in SWEEPS:
            cols = {f: self.series(f, sweep) for f in fams}
            xs = sorted({float(x) for f in fams for x in cols[f][0]})
            for x in xs:
                row: list[Any] = [_SWEEP_LABEL[sweep].split(" (")[0], f"{x:g}"]
                for f in fams:
                    fx, m, sd = cols[f]
                    k = np.flatnonzero(fx == x)
                    row.append("–" if not len(k) else f"{m[k[0]]:.3g} ± {sd[k[0]]:.2g}")
                out.append(row)
        return headers, out

    def plot(self) -> Figure:
        return plot_trajectory_lengths(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {"rows": self.rows, "base": self.base, "input_length": self.input_length,
                "projections": {k: v.tolist() for k, v in self.projections.items()},
                "explained": self.explained}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrajectoryLengths:
        """Inverse of :meth:`to_dict`."""
        return cls(d["rows"], d["base"], d["input_length"],
                   {k: np.asarray(v) for k, v in d.get("projections", {}).items()}, d.get("explained", {}))  # fmt: skip


def plot_trajectory_lengths(study: TrajectoryLengths) -> Figure:
    """Top: each family's latent trajectory (2-D PCA). Bottom: length vs σ_w, width and depth (log scale)."""
    fams = study.families
    sweeps = [s for s in SWEEPS if any(r["sweep"] == s for r in study.rows)]
    ncols = max(len(fams), len(sweeps))
    fig = plt.figure(figsize=(2.1 * max(ncols, 4) + 0.6, 6.4))
    grid = fig.add_gridspec(2, 1, height_ratios=[1, 1.25], hspace=0.45)
    top, bottom = (
        grid[0].subgridspec(1, len(fams), wspace=0.15),
        grid[1].subgridspec(1, len(sweeps), wspace=0.3),
    )
    for k, fam in enumerate(fams):
        colour, _, label = family_style(fam, k)
        ax = fig.add_subplot(top[0, k])
        proj = study.projections.get(fam)
        if proj is not None:
            ax.plot(proj[:, 0], proj[:, 1], color=colour, lw=1.3)
            ax.plot(proj[0, 0], proj[0, 1], "o", color="black", ms=3.5)
            ax.set_aspect("equal", adjustable="datalim")
        ex = study.explained.get(fam)
        ax.set_title(label + (f"\n(PCA keeps {100 * ex:.0f}%)" if ex is not None else ""), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = []
    for j, sweep in enumerate(sweeps):
        ax = fig.add_subplot(bottom[0, j])
        for k, fam in enumerate(fams):
            colour, marker, label = family_style(fam, k)
            xs, m, s = study.series(fam, sweep)
            if len(xs) == 0:
                continue
            (h,) = ax.plot(xs, m, marker=marker, color=colour, label=label, lw=1.4, ms=5, zorder=3)
            if np.any(s > 0):
                ax.fill_between(xs, np.maximum(m - s, 1e-12), m + s, color=colour, alpha=0.15, lw=0)
            if j == 0:
                handles.append(h)
        log_axis(ax)
        xs_all = sorted({r[sweep] for r in study.rows if r["sweep"] == sweep})
        if sweep != "depth":
            ax.set_xscale("log", base=2)
        ax.set_xticks(xs_all, [f"{v:g}" for v in xs_all])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(_SWEEP_LABEL[sweep])
        if j == 0:
            ax.set_ylabel("trajectory length")
        tidy(ax)
    fig.legend(handles=handles, frameon=False, ncol=len(handles), loc="lower center", fontsize=9,
               bbox_to_anchor=(0.5, -0.01))  # fmt: skip
    fig.suptitle("Latent trajectory length for a circular input (top: 2-D projection at the base setting)",
                 fontsize=11)  # fmt: skip
    fig.subplots_adjust(left=0.07, right=0.98, top=0.86, bottom=0.17)
    return fig
