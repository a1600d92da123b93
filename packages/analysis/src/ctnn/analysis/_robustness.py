"""Robustness verdicts and accuracies across bit-widths: the tables and plots of a run."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

import matplotlib

matplotlib.use("Agg")  # reports are written headless
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

VERDICTS = ("robust", "vulnerable", "unknown")
_COLORS = {"robust": "#2b8a3e", "vulnerable": "#c92a2a", "unknown": "#868e96"}


def verdict_counts(results: Iterable[Mapping[str, Any]]) -> dict[tuple[int, int], dict[str, int]]:
    """Count verdicts per (bits, eps). Each result needs keys ``bits``, ``eps`` and ``verdict``."""
    counts: dict[tuple[int, int], Counter] = defaultdict(Counter)
    for r in results:
        if r["verdict"] not in VERDICTS:
            raise ValueError(f"unknown verdict {r['verdict']!r}; expected one of {VERDICTS}")
        counts[(int(r["bits"]), int(r["eps"]))][r["verdict"]] += 1
    return {k: {v: c[v] for v in VERDICTS} for k, c in sorted(counts.items())}


def plot_robustness(results: Iterable[Mapping[str, Any]]) -> Figure:
    """One panel per bit-width: stacked robust / vulnerable / unknown counts for each ε."""
    counts = verdict_counts(results)
    if not counts:
        raise ValueError("no verification results to plot")
    bits = sorted({b for b, _ in counts})
    epss = sorted({e for _, e in counts})
    fig, axes = plt.subplots(1, len(bits), figsize=(1.2 + 1.9 * len(bits) + 0.25 * len(epss) * len(bits), 3.4),
                             sharey=True, squeeze=False)  # fmt: skip
    for ax, b in zip(axes[0], bits):
        x = np.arange(len(epss))
        bottom = np.zeros(len(epss))
        for v in VERDICTS:
            h = np.array([counts.get((b, e), {}).get(v, 0) for e in epss], float)
            ax.bar(x, h, 0.7, bottom=bottom, color=_COLORS[v], edgecolor="white", label=v)
            bottom += h
        ax.set_xticks(x, [str(e) for e in epss])
        ax.set_xlabel("ε (input codes)")
        ax.set_title(f"{b}-bit", fontsize=10)
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.spines[["top", "right"]].set_visible(False)
    axes[0][0].set_ylabel("queries")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, frameon=False, ncol=3, loc="lower center", bbox_to_anchor=(0.5, -0.02))
    fig.suptitle("Robustness verdicts on the integer network", fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def plot_accuracy(accuracy: Mapping[int, Mapping[str, float]]) -> Figure:
    """Float vs integer test accuracy per bit-width; ``accuracy[bits] = {"float": a, "integer": b}``."""
    if not accuracy:
        raise ValueError("no accuracies to plot")
    bits = sorted(accuracy)
    fl = [100 * accuracy[b]["float"] for b in bits]
    it = [100 * accuracy[b]["integer"] for b in bits]
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    x = np.arange(len(bits))
    ax.bar(x - 0.2, fl, 0.38, label="float", color="#4263eb")
    ax.bar(x + 0.2, it, 0.38, label="integer", color="#f08c00")
    for xi, v in [*zip(x - 0.2, fl), *zip(x + 0.2, it)]:
        ax.text(xi, v + 0.4, f"{v:.1f}", ha="center", fontsize=8)
    ax.set_xticks(x, [f"{b}-bit" for b in bits])
    ax.set_ylim(max(0, min(it + fl) - 15), 101)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Float vs integer model accuracy")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(frameon=False, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    fig.tight_layout()
    return fig
