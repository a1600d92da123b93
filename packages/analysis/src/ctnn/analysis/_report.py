"""Self-contained reports: one HTML file (figures embedded as PNG) plus a Markdown summary."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from ._study import Study
from ._versions import DEFAULT_DISTRIBUTIONS, package_versions, tool_versions


@dataclass
class _Block:
    kind: str  # "h", "p", "table", "figure", "pre"
    data: Any


#: A cell that is one number (maybe with a unit sign, an arrow or "± spread") is right-aligned, text left.
_NUMBER = re.compile(r"^[-+−]?\d[\d,]*(\.\d+)?(e[-+]?\d+)?( ?(%|↓|↑|± ?[\d.e+-]+))?$")


def _td(c: str, align_numbers: bool = True) -> str:
    if align_numbers and _NUMBER.match(c):
        return f"<td class='n'>{html.escape(c)}</td>"
    return f"<td>{html.escape(c)}</td>"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


@dataclass
class Report:
    """A report built section by section, written as HTML (self-contained) and Markdown.

    >>> r = Report("Run 2026-11-22")
    >>> r.heading("Accuracy"); r.table(["bits", "acc"], [[8, 0.97]])
    >>> "<table>" in r.to_html()
    True
    """

    title: str
    blocks: list[_Block] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(_Block("h", (level, text)))

    def paragraph(self, text: str) -> None:
        self.blocks.append(_Block("p", text))

    def preformatted(self, text: str) -> None:
        self.blocks.append(_Block("pre", text))

    def table(self, headers: list[str], rows: list[list[Any]], align_numbers: bool = True) -> None:
        """A table; numeric cells are right-aligned in HTML unless ``align_numbers`` is False."""
        self.blocks.append(_Block("table", (headers, [[_cell(v) for v in r] for r in rows], align_numbers)))

    def figure(self, fig: Figure, caption: str, png_path: str | os.PathLike[str] | None = None) -> None:
        """Embed ``fig``; also save it to ``png_path`` when given (the Markdown links it)."""
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        data = buf.getvalue()
        if png_path is not None:
            Path(png_path).write_bytes(data)
        self.blocks.append(_Block("figure", (data, caption, png_path)))

    def study(self, result: Study, png_path: str | os.PathLike[str] | None = None, level: int = 2) -> None:
        """Render a study result: its title, description, table and figure (the figure is then closed).

        Every result type of ctnn-analysis is a :class:`~ctnn.analysis.Study`.
        """
        if not isinstance(result, Study):
            raise TypeError(f"{type(result).__name__} is not a Study (needs title, description, table, plot)")
        self.heading(result.title, level)
        self.paragraph(result.description())
        self.table(*result.table())
        fig = result.plot()
        self.figure(fig, result.title, png_path=png_path)
        plt.close(fig)

    def versions(
        self,
        distributions: Iterable[str] = DEFAULT_DISTRIBUTIONS,
        tools: dict[str, str] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        """A "Versions" section: every Python distribution and command-line tool (see :func:`tool_versions`).

        ``extra`` adds recorded versions this process cannot look up (e.g. those of remote Ray workers).
        """
        self.heading("Versions")
        self.table(
            ["package", "version"],
            package_versions(distributions) + [[k, v] for k, v in (extra or {}).items()],
        )
        self.table(["tool", "version"], tool_versions(tools))

    def configuration(self, config: Mapping[str, Any]) -> None:
        """A "Configuration" section: one row per key, its value as compact JSON."""
        self.heading("Configuration")
        self.table(["key", "value"], [[k, json.dumps(config[k], default=str)] for k in sorted(config)],
                   align_numbers=False)  # fmt: skip

    def stage_times(self, wall_s: Mapping[str, float | None]) -> None:
        """A "Wall time per stage" table; ``None`` marks a stage that did not run. Adds a total row."""
        self.heading("Wall time per stage")
        rows: list[list[Any]] = []
        for name, t in wall_s.items():
            if t is not None and (not isinstance(t, int | float) or t < 0):
                raise ValueError(f"stage {name!r}: wall time must be a non-negative number, got {t!r}")
            rows.append([name, "not run" if t is None else f"{t:.1f}"])
        rows.append(["total", f"{sum(t for t in wall_s.values() if t is not None):.1f}"])
        self.table(["stage", "wall time (s)"], rows)

    def to_html(self) -> str:
        out = [
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
        ]
        for b in self.blocks:
            if b.kind == "h":
                lvl, text = b.data
                out.append(f"<h{lvl}>{html.escape(text)}</h{lvl}>")
            elif b.kind == "p":
                out.append(f"<p>{html.escape(b.data)}</p>")
            elif b.kind == "pre":
                out.append(f"<pre>{html.escape(b.data)}</pre>")
            elif b.kind == "table":
                headers, rows, align = b.data
                out.append("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers))
                out.append("</tr></thead><tbody>")
                for r in rows:
                    out.append("<tr>" + "".join(_td(c, align) for c in r) + "</tr>")
                out.append("</tbody></table>")
            else:
                data, caption, _ = b.data
                src = "data:image/png;base64," + base64.b64encode(data).decode()
                out.append(
                    f"<figure><img src='{src}' alt='{html.escape(caption)}'>"
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                )
        out.append("</body></html>")
        return "\n".join(out)

    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if b.kind == "h":
                lvl, text = b.data
                out += ["#" * lvl + " " + text, ""]
            elif b.kind == "p":
                out += [b.data, ""]
            elif b.kind == "pre":
                out += ["```", b.data, "```", ""]
            elif b.kind == "table":
                headers, rows, _ = b.data
                out.append("| " + " | ".join(headers) + " |")
                out.append("|" + "---|" * len(headers))
                out += ["| " + " | ".join(r) + " |" for r in rows]
                out.append("")
            else:
                _, caption, png = b.data
                out += [
                    f"![{caption}]({Path(png).name})" if png else f"*{caption}* (figure in the HTML report)",
                    "",
                ]
        return "\n".join(out)

    def write(self, directory: str | os.PathLike[str], stem: str = "report") -> tuple[Path, Path]:
        """Write ``stem.html`` and ``stem.md`` into ``directory``; return both paths."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        h, m = d / f"{stem}.html", d / f"{stem}.md"
        h.write_text(self.to_html(), encoding="utf-8")
        m.write_text(self.to_markdown(), encoding="utf-8")
        return h, m


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:980px;margin:2em auto;
padding:0 1em;color:#1b1b1b;line-height:1.45}
h1{border-bottom:2px solid #333;padding-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0;font-size:.92em;display:block;max-width:100%;overflow-x:auto}
th,td{border:1px solid #bbb;padding:.3em .6em;text-align:left}th{background:#f0f0f0}
td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1em 0}img{max-width:100%}figcaption{font-size:.9em;color:#444}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.85em}
@media print{body{max-width:none}}
"""
