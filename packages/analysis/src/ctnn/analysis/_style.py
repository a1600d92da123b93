"""Shared plot style: one palette per model family, readable in print (markers, not only colour)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # reports are written headless
from matplotlib.axes import Axes  # noqa: E402

# Okabe–Ito: distinguishable for colour-blind readers and in greyscale print (with the markers).
FAMILY_STYLE: dict[str, tuple[str, str]] = {
    "ltc": ("#0072B2", "o"),
    "ctrnn": ("#E69F00", "s"),
    "lstm": ("#009E73", "^"),
    "lipschitz_rnn": ("#CC79A7", "D"),
    "lem": ("#D55E00", "v"),
    "gru": ("#56B4E9", "P"),
    "mlp": ("#000000", "X"),
    "continuous_net": ("#F0E442", "*"),
}
FAMILY_LABEL = {
    "ltc": "LTC", "ctrnn": "CT-RNN", "lstm": "LSTM", "lipschitz_rnn": "Lipschitz RNN",
    "lem": "LEM", "gru": "GRU", "mlp": "MLP", "continuous_net": "ContinuousNet",
}  # fmt: skip
_FALLBACK = ["#444444", "#999999", "#0072B2", "#E69F00"]


def family_style(name: str, k: int = 0) -> tuple[str, str, str]:
    """``(colour, marker, label)`` for a family name (unknown names get a neutral style)."""
    colour, marker = FAMILY_STYLE.get(name, (_FALLBACK[k % len(_FALLBACK)], "o"))
    return colour, marker, FAMILY_LABEL.get(name, name)


def tidy(ax: Axes) -> None:
    """Light axes: no top/right spines, a faint grid behind the data."""
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(True, color="#e3e3e3", linewidth=0.7, zorder=0)
    ax.set_axisbelow(True)


def log_axis(ax: Axes, which: str = "y") -> None:
    """A log scale labelled with plain numbers (1, 2, 5 per decade when the range is short)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    lo, hi = ax.get_ylim() if which == "y" else ax.get_xlim()
    axis.set_major_locator(
        LogLocator(base=10, subs=(1.0, 2.0, 5.0) if hi / max(lo, 1e-300) < 300 else (1.0,))
    )
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())
