"""ContinuousNet studies (Queiruga et al.): graph invariance across schemes/steps, and basis compression.

Torch-free result type and plot; the measurement is :func:`ctnn.analysis.continuous_net_study`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from ._style import tidy

_SCHEME_STYLE = {
    "euler": ("#1c7ed6", "o", "-"),
    "midpoint": ("#2b8a3e", "s", "--"),
    "rk4": ("#c92a2a", "^", ":"),
}


@dataclass
class ContinuousNetStudy:
    """Accuracy of one trained ContinuousNet re-evaluated at other schemes/step counts and compressed bases.

    ``grid[(scheme, n_steps)]`` is the test accuracy; ``trained`` the configuration it was
    trained with (``scheme``, ``n_steps``, ``basis``, ``n_basis``, ``accuracy``);
    ``compression``: ``{"basis", "n_basis", "accuracy", "coefficients"}`` rows, each the
    L2 projection of θ(t) onto a smaller basis, evaluated at the trained scheme and steps.
    """

    grid: dict[tuple[str, int], float]
    trained: dict[str, Any]
    compression: list[dict[str, Any]] = field(default_factory=list)
    dataset: str = ""
    title: str = "ContinuousNet: graph invariance and compression"

    def description(self) -> str:
        accs = list(self.grid.values())
        t = self.trained
        return (
            f"A ContinuousNet trained with {t['scheme']} in {t['n_steps']} steps ({t['n_basis']} {t['basis']} "
            f"basis functions; test accuracy {100 * t['accuracy']:.1f}%"
            f"{f' on {self.dataset}' if self.dataset else ''}) evaluated as other discretisations of the same ODE: "
            f"accuracy ranges {100 * min(accs):.1f}–{100 * max(accs):.1f}% over {len(accs)} scheme/step settings. "
            "A model that learned the ODE, not its discretisation, keeps its accuracy as steps are added. "
            "Compression projects θ(t) onto fewer basis functions."
        )

    def table(self) -> tuple[list[str], list[list[Any]]]:
        rows: list[list[Any]] = [
            ["scheme/steps", s, n, "", 100 * a] for (s, n), a in sorted(self.grid.items())
        ]
        rows += [["compression", r["basis"], self.trained["n_steps"], r["n_basis"], 100 * r["accuracy"]]
                 for r in self.compression]  # fmt: skip
        return ["study", "scheme / basis", "steps", "basis functions", "test accuracy (%)"], rows

    def plot(self) -> Figure:
        return plot_continuous_net(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {"grid": [[s, n, a] for (s, n), a in sorted(self.grid.items())], "trained": self.trained,
                "compression": self.compression, "dataset": self.dataset}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ContinuousNetStudy:
        """Inverse of :meth:`to_dict`."""
        return cls(
            {(s, int(n)): a for s, n, a in d["grid"]}, d["trained"], d["compression"], d.get("dataset", "")
        )


def plot_continuous_net(study: ContinuousNetStudy) -> Figure:
    """Left: accuracy vs step count per scheme (the trained setting starred). Right: accuracy vs basis size."""
    ncols = 2 if study.compression else 1
    fig, axes = plt.subplots(1, ncols, figsize=(4.6 * ncols + 0.4, 3.6), squeeze=False)
    ax = axes[0][0]
    t = study.trained
    for scheme in sorted({s for s, _ in study.grid}):
        colour, marker, ls = _SCHEME_STYLE.get(scheme, ("#495057", "D", "-."))
        pts = sorted((n, 100 * a) for (s, n), a in study.grid.items() if s == scheme)
        ax.plot(*zip(*pts, strict=True), marker=marker, ls=ls, color=colour, label=scheme, zorder=3)
    ax.scatter([t["n_steps"]], [100 * t["accuracy"]], marker="*", s=220, color="#fab005", edgecolor="black",
               zorder=4, label="as trained")  # fmt: skip
    ax.set_xscale("log", base=2)
    steps = sorted({n for _, n in study.grid})
    ax.set_xticks(steps, [str(n) for n in steps])
    ax.set_xlabel("integration steps per stage")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Same weights, other discretisations", fontsize=10)
    ax.legend(frameon=False, fontsize=8)
    tidy(ax)
    if study.compression:
        ax = axes[0][1]
        for k, basis in enumerate(dict.fromkeys(r["basis"] for r in study.compression)):
            pts = sorted(
                (r["n_basis"], 100 * r["accuracy"]) for r in study.compression if r["basis"] == basis
            )
            ax.plot(*zip(*pts, strict=True), marker="os^D"[k % 4], label=basis.replace("_", " "), zorder=3)
        ax.axhline(
            100 * t["accuracy"], ls="--", color="#495057", lw=1.1, label=f"uncompressed ({t['n_basis']})"
        )
        ns = sorted({r["n_basis"] for r in study.compression})
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.set_xlabel("basis functions in depth")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title("Compressed θ(t) (L2 projection)", fontsize=10)
        ax.legend(frameon=False, fontsize=8)
        tidy(ax)
    lo = min([*study.grid.values(), *(r["accuracy"] for r in study.compression)])
    for a in axes[0]:
        a.set_ylim(max(0.0, 100 * lo - 8), 100.5)
    fig.suptitle(f"ContinuousNet{f' on {study.dataset}' if study.dataset else ''}", fontsize=11)
    fig.tight_layout()
    return fig
