"""The shape every study result shares, so a :class:`~ctnn.analysis.Report` can render any of them."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from matplotlib.figure import Figure


@runtime_checkable
class Study(Protocol):
    """A study result: a title, a sentence of context, one table and one figure.

    Every result type in ctnn-analysis implements it; :meth:`Report.study` renders one.
    """

    title: str

    def description(self) -> str:
        """One paragraph: what was measured and what to read from it."""
        ...

    def table(self) -> tuple[list[str], list[list[Any]]]:
        """``(headers, rows)`` of the result."""
        ...

    def plot(self) -> Figure:
        """The result's figure."""
        ...
