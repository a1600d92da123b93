"""Quantization studies from result rows (TACAS'20 style): robustness, float–integer disagreement, bias vs bits.

Torch-free: every study here reads plain dicts, one per verification query, as the
pipeline's result store holds them (``ctnn.verify``'s ``VerificationResult.to_dict()``
plus the campaign's ``bits``/``eps``/``sample``). The row formats:

* **robustness row** — ``{"bits": int, "eps": int, "verdict": "robust" | "vulnerable" |
  "unknown"}`` (``"timeout"`` is read as ``"unknown"``); optional ``"sample"`` and
  ``"float_verdict"`` (the float analysis of the same query: ``"robust"`` when it claims
  robustness, e.g. interval bounds on the float model; ``"vulnerable"`` when it found an
  attack, e.g. PGD on the float model; ``"unknown"`` otherwise). A row with
  ``"status": "error"`` (the pipeline's failed query) is counted as an error, not a verdict.
* **bias row** — ``{"bits": int, "gap": float}``: the largest predicted-score gap the
  verifier found between two inputs differing only in the sensitive attribute (real
  units); optional ``"bound"`` (a proved upper bound on the gap) and ``"verdict"``
  (``"unknown"`` marks a query that timed out).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from ._robustness import _COLORS, VERDICTS
from ._style import tidy

_ALIASES = {"timeout": "unknown"}
_VERDICT_LABEL = {"robust": "verified robust", "vulnerable": "vulnerable", "unknown": "timeout"}


def _verdict(row: Mapping[str, Any], key: str = "verdict") -> str:
    v = _ALIASES.get(row[key], row[key])
    if v not in VERDICTS:
        raise ValueError(
            f"row {dict(row)!r}: unknown {key} {row[key]!r}; expected one of {VERDICTS} or 'timeout'"
        )
    return v


def _bits(row: Mapping[str, Any]) -> int:
    try:
        return int(row["bits"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"row {dict(row)!r}: needs an integer 'bits'") from None


def _bit_axis(ax: Any, bits: list[int]) -> np.ndarray:
    """Bit-widths as evenly spaced categories (2..8 then 16 would squash a numeric axis)."""
    x = np.arange(len(bits))
    ax.set_xticks(x, [str(b) for b in bits])
    ax.set_xlabel("bit-width (weights and activations)")
    return x


# ------------------------------------------------------------------------ robustness vs bits


@dataclass
class RobustnessVsBits:
    """Verdict counts per bit-width, robust fractions per (bits, ε), and where they drop as bits grow.

    A robust fraction is ``robust / (robust + vulnerable)``: timeouts say nothing either way,
    so they are left out (a (bits, ε) cell with only timeouts has no fraction). ``drops`` lists ``(eps, fewer_bits, more_bits, fraction_before, fraction_after)`` for every
    consecutive pair of bit-widths where the robust fraction *falls* although the network
    got more bits (``eps=None``: over all ε together) — the non-monotonicity the TACAS'20
    study reports. ``errors[bits]`` counts rows whose query failed (``status == "error"``):
    they are not verdicts and are kept out of ``counts``.
    """

    counts: dict[int, dict[str, int]]
    fractions: dict[tuple[int, int], float]
    drops: list[tuple[int | None, int, int, float, float]]
    errors: dict[int, int] = field(default_factory=dict)
    title: str = "Robustness vs bits"

    @property
    def bits(self) -> list[int]:
        return sorted(self.counts)

    @property
    def epsilons(self) -> list[int]:
        return sorted({e for _, e in self.fractions})

    @property
    def monotone(self) -> bool:
        """True when no robust fraction drops as the bit-width grows."""
        return not self.drops

    def description(self) -> str:
        flagged = ", ".join(
            f"{'all ε' if e is None else f'ε={e}'}: {a}→{b} bits ({100 * fa:.0f}% → {100 * fb:.0f}%)"
            for e, a, b, fa, fb in self.drops
        )
        return (
            "Verdicts of the bit-precise verifier on the integer network at each bit-width; a timeout "
            "is a query the solver could not decide in time (left out of the robust fractions). More bits do not always mean more "
            "robustness: "
            + (f"the robust fraction drops at {flagged}." if flagged else "here it never drops.")
            + (
                f" {sum(self.errors.values())} queries failed with an error (not counted)."
                if self.errors
                else ""
            )
        )

    def table(self) -> tuple[list[str], list[list[Any]]]:
        eps = self.epsilons
        drop_at = {(e, b) for e, _, b, _, _ in self.drops}
        headers = ["bits", "verified robust", "vulnerable", "timeout", "robust % of decided (all ε)"]
        headers += [f"robust % of decided (ε={e})" for e in eps]
        if self.errors:
            headers.append("errors")
        rows = []
        for b in self.bits:
            c = self.counts[b]
            f_all = _decided_fraction(c)
            mark = " ↓" if (None, b) in drop_at else ""
            row: list[Any] = [
                b,
                c["robust"],
                c["vulnerable"],
                c["unknown"],
                "–" if f_all is None else f"{100 * f_all:.1f}{mark}",
            ]
            for e in eps:
                f = self.fractions.get((b, e))
                row.append("–" if f is None else f"{100 * f:.1f}" + (" ↓" if (e, b) in drop_at else ""))
            if self.errors:
                row.append(self.errors.get(b, 0))
            rows.append(row)
        return headers, rows

    def plot(self) -> Figure:
        return plot_robustness_vs_bits(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {
            "counts": {str(b): c for b, c in self.counts.items()},
            "fractions": [[b, e, f] for (b, e), f in sorted(self.fractions.items())],
            "drops": [list(d) for d in self.drops],
            "errors": {str(b): n for b, n in self.errors.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RobustnessVsBits:
        """Inverse of :meth:`to_dict`."""
        return cls(
            {int(b): c for b, c in d["counts"].items()},
            {(int(b), int(e)): f for b, e, f in d["fractions"]},
            [tuple(x) for x in d["drops"]],
            {int(b): n for b, n in d.get("errors", {}).items()},
        )


def _decided_fraction(c: Mapping[str, int]) -> float | None:
    decided = c["robust"] + c["vulnerable"]
    return c["robust"] / decided if decided else None


def _drops(series: Mapping[int, float], eps: int | None) -> list[tuple[int | None, int, int, float, float]]:
    bits = sorted(series)
    return [
        (eps, a, b, series[a], series[b])
        for a, b in zip(bits[:-1], bits[1:], strict=True)
        if series[b] < series[a] - 1e-12
    ]


def robustness_vs_bits(rows: Iterable[Mapping[str, Any]]) -> RobustnessVsBits:
    """Count verified-robust / vulnerable / timeout per bit-width and flag non-monotonicity.

    Example:
        >>> rows = [{"bits": 4, "eps": 1, "verdict": "robust"}, {"bits": 8, "eps": 1, "verdict": "vulnerable"}]
        >>> s = robustness_vs_bits(rows)
        >>> s.counts[8]["vulnerable"], s.drops
        (1, [(None, 4, 8, 1.0, 0.0), (1, 4, 8, 1.0, 0.0)])
    """
    per_bits: dict[int, Counter] = defaultdict(Counter)
    per_be: dict[tuple[int, int], Counter] = defaultdict(Counter)
    errors: Counter = Counter()
    for r in rows:
        if r.get("status") == "error":  # the pipeline's failed queries: no verdict at all
            errors[_bits(r)] += 1
            continue
        b, v = _bits(r), _verdict(r)
        per_bits[b][v] += 1
        per_be[(b, int(r["eps"]))][v] += 1
    if not per_bits:
        raise ValueError("no robustness rows: nothing to count")
    counts = {b: {v: per_bits[b][v] for v in VERDICTS} for b in sorted(per_bits)}
    fractions = {k: f for k, c in sorted(per_be.items()) if (f := _decided_fraction(c)) is not None}
    overall = {b: f for b, c in counts.items() if (f := _decided_fraction(c)) is not None}
    drops = _drops(overall, None)
    for e in sorted({e for _, e in fractions}):
        drops += _drops({b: f for (b, ee), f in fractions.items() if ee == e}, e)
    return RobustnessVsBits(counts, fractions, drops, dict(sorted(errors.items())))


def plot_robustness_vs_bits(study: RobustnessVsBits) -> Figure:
    """Left: verdict counts per bit-width (stacked). Right: robust fraction per ε, drops circled."""
    bits = study.bits
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9.2, 3.6), gridspec_kw={"width_ratios": [1, 1.15]})
    x = _bit_axis(ax0, bits)
    bottom = np.zeros(len(bits))
    for v in VERDICTS:
        h = np.array([study.counts[b][v] for b in bits], float)
        ax0.bar(
            x, h, 0.7, bottom=bottom, color=_COLORS[v], edgecolor="white", label=_VERDICT_LABEL[v], zorder=2
        )
        bottom += h
    ax0.set_ylabel("queries")
    ax0.yaxis.get_major_locator().set_params(integer=True)
    ax0.set_title("Verdicts (all ε)", fontsize=10)
    ax0.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    tidy(ax0)
    ax0.grid(False, axis="x")

    x1 = _bit_axis(ax1, bits)
    pos = dict(zip(bits, x1, strict=True))
    markers = "osD^vP"
    for k, e in enumerate(study.epsilons):
        pts = [(pos[b], 100 * f) for (b, ee), f in sorted(study.fractions.items()) if ee == e]
        # later ε drawn thinner, dashed and smaller on top, so that equal fractions stay visible
        ax1.plot(*zip(*pts, strict=True), marker=markers[k % len(markers)], label=f"ε = {e}", zorder=3 + k,
                 ls=("-", "--", ":", "-.")[k % 4], lw=max(0.8, 2.4 - 0.7 * k), ms=max(3.5, 9 - 2 * k))  # fmt: skip
    drops = [d for d in study.drops if d[0] is not None]
    if drops:
        ax1.scatter([pos[b] for _, _, b, _, _ in drops], [100 * f for *_, f in drops], s=180,
                    facecolors="none", edgecolors="#c92a2a", linewidths=1.6, zorder=4,
                    label="drop with more bits")  # fmt: skip
    ax1.set_ylim(-4, 104)
    ax1.set_ylabel("verified robust (% of decided)")
    ax1.set_title("Robust fraction per ε (timeouts left out)", fontsize=10)
    ax1.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4)
    tidy(ax1)
    fig.suptitle("Robustness of the integer network vs bit-width", fontsize=11)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------- float vs integer analysis


@dataclass
class FloatIntegerDisagreements:
    """Where a float analysis is wrong about the integer network, per (bits, ε).

    Each entry of ``cells`` is ``{"queries", "int_vulnerable", "missed_attacks",
    "false_robust_claims", "float_only_attacks"}``: ``missed_attacks`` — the integer network
    is vulnerable but the float analysis found no attack; ``false_robust_claims`` — the float
    analysis claimed robustness and the integer network is vulnerable; ``float_only_attacks``
    — the float attack does not carry over (the integer network was proved robust).
    ``examples`` holds the sample ids of the false claims.
    """

    cells: dict[tuple[int, int], dict[str, int]]
    examples: dict[tuple[int, int], list[Any]] = field(default_factory=dict)
    title: str = "Float analysis vs the integer network"

    def totals(self) -> dict[str, int]:
        """Every counter summed over (bits, ε)."""
        out: Counter = Counter()
        for c in self.cells.values():
            out.update(c)
        return dict(out)

    def description(self) -> str:
        t = self.totals()
        return (
            f"The same {t.get('queries', 0)} queries decided on the float model (interval bounds / attack) "
            f"and bit-precisely on the integer network: {t.get('missed_attacks', 0)} attacks on the integer "
            f"network that the float analysis misses, {t.get('false_robust_claims', 0)} float robustness "
            "claims that are false for the integer network."
        )

    def table(self) -> tuple[list[str], list[list[Any]]]:
        headers = ["bits", "ε", "queries", "integer vulnerable", "attacks float misses",
                   "false float robustness claims", "float attacks not on integer", "false-claim samples"]  # fmt: skip
        rows = []
        for (b, e), c in sorted(self.cells.items()):
            ex = self.examples.get((b, e), [])
            rows.append([b, e, c["queries"], c["int_vulnerable"], c["missed_attacks"], c["false_robust_claims"],
                         c["float_only_attacks"], ", ".join(map(str, ex[:8])) + (" …" if len(ex) > 8 else "")])  # fmt: skip
        return headers, rows

    def plot(self) -> Figure:
        return plot_disagreements(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {"cells": [[b, e, c] for (b, e), c in sorted(self.cells.items())],
                "examples": [[b, e, x] for (b, e), x in sorted(self.examples.items())]}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FloatIntegerDisagreements:
        """Inverse of :meth:`to_dict`."""
        return cls(
            {(int(b), int(e)): c for b, e, c in d["cells"]},
            {(int(b), int(e)): x for b, e, x in d["examples"]},
        )


def float_integer_disagreements(rows: Iterable[Mapping[str, Any]]) -> FloatIntegerDisagreements:
    """Compare each row's integer ``verdict`` with its ``float_verdict`` (rows without one are skipped).

    Example:
        >>> d = float_integer_disagreements([{"bits": 4, "eps": 1, "verdict": "vulnerable",
        ...                                   "float_verdict": "robust", "sample": 7}])
        >>> d.cells[(4, 1)]["false_robust_claims"], d.examples[(4, 1)]
        (1, [7])
    """
    keys = ("queries", "int_vulnerable", "missed_attacks", "false_robust_claims", "float_only_attacks")
    cells: dict[tuple[int, int], dict[str, int]] = {}
    examples: dict[tuple[int, int], list[Any]] = defaultdict(list)
    for r in rows:
        if r.get("float_verdict") is None:
            continue
        k = (_bits(r), int(r["eps"]))
        iv, fv = _verdict(r), _verdict(r, "float_verdict")
        c = cells.setdefault(k, dict.fromkeys(keys, 0))
        c["queries"] += 1
        c["int_vulnerable"] += iv == "vulnerable"
        c["missed_attacks"] += iv == "vulnerable" and fv != "vulnerable"
        c["float_only_attacks"] += iv == "robust" and fv == "vulnerable"
        if iv == "vulnerable" and fv == "robust":
            c["false_robust_claims"] += 1
            examples[k].append(r.get("sample", "?"))
    if not cells:
        raise ValueError("no row has a 'float_verdict': nothing to compare")
    return FloatIntegerDisagreements(dict(sorted(cells.items())), dict(examples))


def plot_disagreements(study: FloatIntegerDisagreements) -> Figure:
    """Missed attacks and false robustness claims per bit-width (summed over ε)."""
    bits = sorted({b for b, _ in study.cells})
    agg = {b: Counter() for b in bits}
    for (b, _), c in study.cells.items():
        agg[b].update(c)
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    x = _bit_axis(ax, bits)
    series = [("missed_attacks", "attacks the float analysis misses", "#c92a2a", None),
              ("false_robust_claims", "false float robustness claims", "#f08c00", "//"),
              ("float_only_attacks", "float attacks absent on integer", "#868e96", None)]  # fmt: skip
    for k, (key, label, colour, hatch) in enumerate(series):
        ax.bar(x + (k - 1) * 0.26, [agg[b][key] for b in bits], 0.25, color=colour, hatch=hatch,
               edgecolor="white", label=label, zorder=2)  # fmt: skip
    ax.set_ylabel("queries")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title("Where float reasoning is wrong about the integer network", fontsize=11)
    tidy(ax)
    ax.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- bias vs bits


@dataclass
class BiasVsBits:
    """Largest score gap (sensitive attribute flipped) found by the verifier, per bit-width.

    ``gap[b]`` is the largest witnessed gap, ``bound[b]`` the largest of the rows' proved upper
    bounds — each row bounds its own box, so only the largest bounds them all — (``None`` when
    none was proved), ``queries[b]`` and ``timeouts[b]`` the row counts;
    ``float_gap`` is the float model's gap for reference (optional).
    """

    gap: dict[int, float]
    bound: dict[int, float | None]
    queries: dict[int, int]
    timeouts: dict[int, int]
    float_gap: float | None = None
    unit: str = "score"
    title: str = "Bias vs bits"

    def description(self) -> str:
        worst = max(self.gap, key=lambda b: self.gap[b])
        return (
            "For each bit-width, the largest difference in predicted score between two inputs that differ "
            f"only in the sensitive attribute, found by the verifier on the integer network. The largest "
            f"gap is at {worst} bits ({self.gap[worst]:.4g} {self.unit})"
            + (f"; the float model's is {self.float_gap:.4g}." if self.float_gap is not None else ".")
        )

    def table(self) -> tuple[list[str], list[list[Any]]]:
        headers = ["bits", f"largest gap found ({self.unit})", "proved bound", "queries", "timeouts"]
        rows = [[b, self.gap[b], "–" if self.bound[b] is None else self.bound[b], self.queries[b], self.timeouts[b]]
                for b in sorted(self.gap)]  # fmt: skip
        if self.float_gap is not None:
            rows.append(["float", self.float_gap, "–", "–", "–"])
        return headers, rows

    def plot(self) -> Figure:
        return plot_bias_vs_bits(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {"gap": {str(b): g for b, g in self.gap.items()}, "bound": {str(b): g for b, g in self.bound.items()},
                "queries": {str(b): n for b, n in self.queries.items()},
                "timeouts": {str(b): n for b, n in self.timeouts.items()},
                "float_gap": self.float_gap, "unit": self.unit}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BiasVsBits:
        """Inverse of :meth:`to_dict`."""

        def ints(m: dict[str, Any]) -> dict[int, Any]:
            return {int(k): v for k, v in m.items()}

        return cls(
            ints(d["gap"]),
            ints(d["bound"]),
            ints(d["queries"]),
            ints(d["timeouts"]),
            d["float_gap"],
            d["unit"],
        )


def bias_vs_bits(
    rows: Iterable[Mapping[str, Any]], float_gap: float | None = None, unit: str = "score"
) -> BiasVsBits:
    """The largest gap per bit-width over bias rows (see the module docstring for the row format).

    Example:
        >>> s = bias_vs_bits([{"bits": 4, "gap": 0.3, "bound": 0.4}, {"bits": 4, "gap": 0.5, "bound": 0.6},
        ...                   {"bits": 8, "gap": 0.1}])
        >>> s.gap, s.bound[4]
        ({4: 0.5, 8: 0.1}, 0.6)
    """
    gap: dict[int, float] = {}
    bound: dict[int, float | None] = {}
    queries: Counter = Counter()
    timeouts: Counter = Counter()
    for r in rows:
        b = _bits(r)
        if "gap" not in r or r["gap"] is None:
            raise ValueError(f"bias row {dict(r)!r}: needs a numeric 'gap'")
        queries[b] += 1
        timeouts[b] += "verdict" in r and _verdict(r) == "unknown"
        gap[b] = max(gap.get(b, -np.inf), float(r["gap"]))
        if r.get("bound") is not None:
            prev = bound.get(b)
            bound[b] = float(r["bound"]) if prev is None else max(prev, float(r["bound"]))
        else:
            bound.setdefault(b, None)
    if not gap:
        raise ValueError("no bias rows: nothing to plot")
    order = sorted(gap)
    return BiasVsBits({b: gap[b] for b in order}, {b: bound[b] for b in order},
                      {b: queries[b] for b in order}, {b: timeouts[b] for b in order}, float_gap, unit)  # fmt: skip


def plot_bias_vs_bits(study: BiasVsBits) -> Figure:
    """Largest gap found per bit-width (filled), proved bounds (hollow), the float gap (dashed)."""
    bits = sorted(study.gap)
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    x = _bit_axis(ax, bits)
    ax.bar(x, [study.gap[b] for b in bits], 0.6, color="#5f3dc4", label="largest gap found", zorder=2)
    proved = [(xi, study.bound[b]) for xi, b in zip(x, bits, strict=True) if study.bound[b] is not None]
    if proved:
        ax.scatter(*zip(*proved, strict=True), marker="_", s=400, linewidths=2.2, color="#212529",
                   label="proved upper bound", zorder=3)  # fmt: skip
    if study.float_gap is not None:
        ax.axhline(study.float_gap, ls="--", color="#e8590c", lw=1.4, label="float model", zorder=3)
    for xi, b in zip(x, bits, strict=True):
        if study.timeouts[b]:
            ax.annotate(f"{study.timeouts[b]} t/o", (xi, study.gap[b]), ha="center", va="bottom", fontsize=7,
                        xytext=(0, 2), textcoords="offset points")  # fmt: skip
    ax.set_ylabel(f"largest gap ({study.unit})")
    ax.set_title("Bias vs bit-width (sensitive attribute flipped)", fontsize=11)
    tidy(ax)
    ax.grid(False, axis="x")
    ax.legend(frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    fig.tight_layout()
    return fig
