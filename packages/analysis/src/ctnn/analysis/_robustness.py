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


def plot_family_accuracy(rows: Iterable[Mapping[str, Any]]) -> Figure:
    """Integer test accuracy per family across bit-widths, with each family's float accuracy at the right.

    Each row: ``family``, ``weight_bits``, ``float_accuracy`` and ``int_accuracy`` (fractions), optionally
    ``dataset``: one panel per data set (accuracies on different data are not comparable), each with its
    own y-range. One line per family in its report-wide style (colour and marker).

    >>> fig = plot_family_accuracy([{"family": "lstm", "weight_bits": 4, "float_accuracy": 0.95,
    ...                              "int_accuracy": 0.9}])
    """
    from ._style import family_style, tidy

    rows = list(rows)
    if not rows:
        raise ValueError("no accuracies to plot")
    sets = list(dict.fromkeys(r.get("dataset", "") for r in rows))
    fams_all = list(dict.fromkeys(r["family"] for r in rows))
    fig, axes = plt.subplots(1, len(sets), figsize=(4.4 * len(sets) + 1.0, 4.2), squeeze=False)
    for ax, ds in zip(axes[0], sets, strict=True):
        part = [r for r in rows if r.get("dataset", "") == ds]
        bits = sorted({int(r["weight_bits"]) for r in part})
        pos = {b: i for i, b in enumerate(bits)}
        lows = []
        for fam in dict.fromkeys(r["family"] for r in part):
            sel = sorted((r for r in part if r["family"] == fam), key=lambda r: r["weight_bits"])
            colour, marker, label = family_style(fam, fams_all.index(fam))
            ys = [100 * r["int_accuracy"] for r in sel]
            ax.plot([pos[int(r["weight_bits"])] for r in sel], ys, color=colour, marker=marker, ms=6, lw=1.6,
                    mec="black", mew=0.4, zorder=3, label=label)  # fmt: skip
            fl = 100 * sel[0]["float_accuracy"]
            ax.plot(
                [len(bits)], [fl], color=colour, marker=marker, ms=7, mfc="white", mew=1.4, ls="", zorder=3
            )
            lows += [*ys, fl]
        ax.axvline(len(bits) - 0.5, color="#adb5bd", lw=0.8, ls=":")
        ax.set_xticks(range(len(bits) + 1), [str(b) for b in bits] + ["float"])
        ax.set_xlabel("weight bits (hollow: the float model)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_ylim(max(0.0, min(lows) - 4), min(101.0, max(lows) + 3))
        ax.set_title(ds or "test accuracy", fontsize=10)
        tidy(ax)
        ax.legend(frameon=False, fontsize=8, loc="lower right")
    fig.suptitle("Integer graphs vs float model, per family", fontsize=11)
    fig.tight_layout()
    return fig
