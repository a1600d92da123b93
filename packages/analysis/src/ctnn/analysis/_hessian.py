"""Hessian-based robustness (Erichson et al., Lipschitz RNN): the result type and its plot (torch-free).

The measurement is :func:`ctnn.analysis.hessian_robustness` (power iteration with
Hessian-vector products).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from ._style import family_style, log_axis, tidy


@dataclass
class HessianStudy:
    """Top Hessian eigenvalues of the loss per model, with respect to the inputs and to the parameters.

    ``rows``: ``{"model", "family", "input_eig", "param_eig", "input_iters", "param_iters",
    "converged", "loss", "n"}``. Small eigenvalues mean a flat loss: small input
    perturbations (input) or weight perturbations such as quantization (parameters)
    change it little.
    """

    rows: list[dict[str, Any]]
    dataset: str = ""
    title: str = "Hessian-based robustness"

    def description(self) -> str:
        n = self.rows[0]["n"] if self.rows else 0
        return (
            f"Dominant eigenvalue of the cross-entropy loss Hessian on {n} samples"
            f"{f' of {self.dataset}' if self.dataset else ''}, by power iteration with Hessian-vector products. "
            "Inputs: the Hessian of the summed per-sample loss with respect to the input sequences (block-diagonal, "
            "so this is the largest per-sample eigenvalue). Parameters: the Hessian of the mean loss with respect "
            "to all weights. Smaller is flatter."
        )

    def table(self) -> tuple[list[str], list[list[Any]]]:
        headers = [
            "model",
            "loss",
            "λ_max (inputs)",
            "λ_max (parameters)",
            "iterations (in/param)",
            "converged",
        ]
        rows = [[r["model"], r["loss"], r["input_eig"], r["param_eig"], f"{r['input_iters']}/{r['param_iters']}",
                 "yes" if r["converged"] else "no"] for r in self.rows]  # fmt: skip
        return headers, rows

    def plot(self) -> Figure:
        return plot_hessian(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {"rows": self.rows, "dataset": self.dataset}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HessianStudy:
        """Inverse of :meth:`to_dict`."""
        return cls(d["rows"], d.get("dataset", ""))


def plot_hessian(study: HessianStudy) -> Figure:
    """Two panels (inputs, parameters): |λ_max| per model on a log scale; hatched bars are negative."""
    if not study.rows:
        raise ValueError("no Hessian results to plot")
    fig, axes = plt.subplots(1, 2, figsize=(max(7.0, 1.3 * len(study.rows) + 3.0), 3.6))
    labels = [family_style(r.get("family", r["model"]))[2] if r["model"] == r.get("family") else r["model"]
              for r in study.rows]  # fmt: skip
    x = np.arange(len(study.rows))
    for ax, key, name in (
        (axes[0], "input_eig", "w.r.t. inputs"),
        (axes[1], "param_eig", "w.r.t. parameters"),
    ):
        for k, r in enumerate(study.rows):
            colour = family_style(r.get("family", r["model"]), k)[0]
            v = r[key]
            ax.bar(k, abs(v), 0.65, color=colour, hatch="//" if v < 0 else None, edgecolor="black",
                   linewidth=0.5, zorder=2)  # fmt: skip
            ax.annotate(f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}", (k, abs(v)), ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                        textcoords="offset points")  # fmt: skip
        log_axis(ax)
        ax.set_xticks(x, labels, rotation=20, ha="right")
        ax.set_ylabel("|λ_max|")
        ax.set_title(f"Loss Hessian {name}", fontsize=10)
        tidy(ax)
        ax.grid(False, axis="x")
        ax.margins(y=0.15)
    if any(r[k] < 0 for r in study.rows for k in ("input_eig", "param_eig")):
        fig.text(
            0.99, 0.01, "hatched: negative eigenvalue", ha="right", va="bottom", fontsize=8, color="#495057"
        )
    fig.suptitle(
        f"Top Hessian eigenvalue per model{f' ({study.dataset})' if study.dataset else ''}", fontsize=11
    )
    fig.tight_layout()
    return fig
