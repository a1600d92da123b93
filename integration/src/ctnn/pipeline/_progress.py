"""Campaign progress: a live bar (done/total, verdict counts, ETA) and the summary table at the end.

On a terminal the bar is rich's; elsewhere (a Ray Job's log, CI) one line every
``every_s`` seconds says the same, so logs stay readable.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections import Counter, defaultdict
from typing import Any

from ._store import ResultStore


def _counts_text(counts: Counter | dict[str, int]) -> str:
    return " ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v)


class CampaignProgress:
    """A context manager whose :meth:`update` is :func:`~ctnn.pipeline._ray.execute`'s progress callback."""

    def __init__(self, name: str, quiet: bool = False, every_s: float = 10.0, live: bool | None = None):
        self.name, self.quiet, self.every_s = name, quiet, every_s
        self.live = sys.stdout.isatty() if live is None else live
        self._bar: Any = None
        self._last = 0.0
        self._t0 = time.monotonic()
        self._state: tuple[int, int | None, Counter] = (0, None, Counter())

    def __enter__(self) -> CampaignProgress:
        self._t0 = time.monotonic()
        if not self.quiet and self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,  # fmt: skip
            )

            self._bar = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            )  # fmt: skip
            self._bar.start()
            self._task = self._bar.add_task(self.name, total=None, counts="")
        return self

    def update(self, done: int, total: int | None, counts: Counter) -> None:
        self._state = (done, total, counts)
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total, counts=_counts_text(counts))
            return
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self._line()

    def _line(self) -> None:
        done, total, counts = self._state
        el = time.monotonic() - self._t0
        rate = done / el if el > 0 else 0.0
        eta = f"{(total - done) / rate:.0f} s" if total and rate > 0 else "?"
        print(f"{self.name}: {done}/{total if total is not None else '?'} [{_counts_text(counts)}] "
              f"{el:.0f} s elapsed, ETA {eta}", flush=True)  # fmt: skip

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif not self.quiet:
            self._line()


def summary_rows(store: ResultStore, campaign: str) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows): per model, property and parameters, the outcome counts and the median wall time."""
    groups: dict[tuple, Counter] = defaultdict(Counter)
    times: dict[tuple, list[float]] = defaultdict(list)
    outcomes: set[str] = set()
    for r in store.rows(campaign):
        params = ", ".join(f"{k}={v}" for k, v in json.loads(r.get("params") or "{}").items())
        g = (r.get("model"), r.get("property"), params)
        out = r["verdict"] if (r.get("status") or "ok") == "ok" else r["status"]
        groups[g][out] += 1
        outcomes.add(out)
        if r.get("wall_s") is not None:
            times[g].append(r["wall_s"])
    cols = ["model", "property", "parameters", *sorted(outcomes), "median wall (s)"]
    rows = [[*g, *(groups[g][o] for o in sorted(outcomes)),
             round(statistics.median(times[g]), 3) if times[g] else None] for g in sorted(groups, key=str)]  # fmt: skip
    return cols, rows


def print_summary(store: ResultStore, campaign: str) -> None:
    """The summary table of a campaign's stored results (rich)."""
    from rich.console import Console
    from rich.table import Table

    cols, rows = summary_rows(store, campaign)
    t = Table(title=f"campaign {campaign}: {store.count(campaign)} results in {store.path}")
    for c in cols:
        t.add_column(c)
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    Console(highlight=False).print(t)
