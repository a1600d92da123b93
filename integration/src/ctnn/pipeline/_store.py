"""The durable store: one SQLite row per query, and one per content-addressed stage output.

WAL mode with synchronous=FULL: a committed row survives a killed driver or an OS
crash. Rows are inserted with ``INSERT OR IGNORE`` on the query key, so a query is
stored exactly once however often it is run; a restarted campaign asks
:meth:`ResultStore.missing` and skips what is there. Results that arrive together are
committed in one transaction (one fsync), which is what keeps a store of 100,000 rows fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

_RESULT_COLUMNS = {
    "key": "TEXT PRIMARY KEY",
    "campaign": "TEXT",
    "created": "REAL DEFAULT (unixepoch('subsec'))",
    "body": "TEXT NOT NULL",
    # added in 0.2.0: what the query was, how it ended, where and when it ran
    "verdict": "TEXT",
    "status": "TEXT",  # ok | timeout | error
    "host": "TEXT",
    "started": "REAL",
    "finished": "REAL",
    "wall_s": "REAL",
    "provenance": "TEXT",
}
# columns of an export, in order: the body's fields come after these
EXPORT_COLUMNS = ["key", "campaign", "verdict", "status", "host", "started", "finished", "wall_s"]


def query_key(**parts: Any) -> str:
    """A stable hash of everything that determines a query's answer.

    >>> query_key(model="ab12", prop="robustness", eps=1) == query_key(eps=1, prop="robustness", model="ab12")
    True
    """
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class ResultStore:
    """Results keyed by :func:`query_key`, stored as JSON in SQLite (WAL), plus stage outputs.

    >>> store = ResultStore(tmp / "results.sqlite")                       # doctest: +SKIP
    >>> store.put("k1", {"verdict": "robust"}, campaign="c")              # doctest: +SKIP
    True
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{self.path}: not a ctnn result store ({exc})") from None
        self._db.execute("PRAGMA synchronous=FULL")
        cols = ", ".join(f"{k} {v}" for k, v in list(_RESULT_COLUMNS.items())[:4])
        self._db.execute(f"CREATE TABLE IF NOT EXISTS results ({cols})")
        have = {row[1] for row in self._db.execute("PRAGMA table_info(results)")}
        for name, decl in _RESULT_COLUMNS.items():
            if name not in have:  # a store written by 0.1.0 gains the new columns
                self._db.execute(f"ALTER TABLE results ADD COLUMN {name} {decl}")
        self._db.execute("CREATE INDEX IF NOT EXISTS results_campaign ON results (campaign)")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS stages (key TEXT PRIMARY KEY, stage TEXT NOT NULL, "
            "created REAL DEFAULT (unixepoch('subsec')), body TEXT NOT NULL)"
        )

    # ------------------------------------------------------------ query results

    def put(
        self, key: str, result: dict[str, Any], campaign: str = "", provenance: dict[str, Any] | None = None
    ) -> bool:
        """Store one result; return False if the key was already there (never duplicated)."""
        return self.put_many([(key, result, campaign, provenance)]) == 1

    def put_many(self, rows: Iterable[tuple[str, dict[str, Any], str, dict[str, Any] | None]]) -> int:
        """Store several results in one transaction; return how many were new."""
        new = 0
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for key, result, campaign, prov in rows:
                prov = prov or {}
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO results (key, campaign, body, verdict, status, host, started, "
                    "finished, wall_s, provenance) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key,
                        campaign,
                        json.dumps(result, default=str),
                        result.get("verdict"),
                        result.get("status", "ok"),
                        prov.get("host"),
                        prov.get("started"),
                        prov.get("finished"),
                        prov.get("wall_s"),
                        json.dumps(prov, default=str),
                    ),
                )
                new += cur.rowcount
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return new

    def missing(self, keys: Sequence[str]) -> list[str]:
        """The keys (in order) that are not stored yet."""
        have: set[str] = set()
        for i in range(0, len(keys), 500):  # SQLite's bound-parameter limit
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            have.update(
                k for (k,) in self._db.execute(f"SELECT key FROM results WHERE key IN ({marks})", chunk)
            )
        return [k for k in keys if k not in have]

    def done_keys(self) -> set[str]:
        return {k for (k,) in self._db.execute("SELECT key FROM results")}

    def results(self, campaign: str | None = None) -> Iterator[dict[str, Any]]:
        """Every stored result body (in the order they were stored), optionally of one campaign."""
        q, args = "SELECT body FROM results", ()
        if campaign is not None:
            q, args = q + " WHERE campaign = ?", (campaign,)
        for (body,) in self._db.execute(q + " ORDER BY created, rowid", args):
            yield json.loads(body)

    def rows(self, campaign: str | None = None) -> Iterator[dict[str, Any]]:
        """Every stored row as a flat dict: the key, status and provenance columns, then the body."""
        q, args = f"SELECT {', '.join(EXPORT_COLUMNS)}, body, provenance FROM results", ()
        if campaign is not None:
            q, args = q + " WHERE campaign = ?", (campaign,)
        for row in self._db.execute(q + " ORDER BY created, rowid", args):
            flat = dict(zip(EXPORT_COLUMNS, row[: len(EXPORT_COLUMNS)]))
            prov = json.loads(row[-1] or "{}")
            flat["versions"] = json.dumps(prov.get("versions", {}), sort_keys=True)
            for k, v in json.loads(row[-2]).items():
                flat.setdefault(k, v)
            yield flat

    def counts(self, campaign: str | None = None) -> dict[str, int]:
        """How many rows per outcome: the verdict of finished queries, else the status (timeout, error)."""
        q = "SELECT CASE WHEN coalesce(status, 'ok') = 'ok' THEN verdict ELSE status END, COUNT(*) FROM results"
        args: tuple = ()
        if campaign is not None:
            q, args = q + " WHERE campaign = ?", (campaign,)
        return {str(k): n for k, n in self._db.execute(q + " GROUP BY 1", args)}

    def count(self, campaign: str | None = None) -> int:
        if campaign is None:
            return len(self)
        return self._db.execute("SELECT COUNT(*) FROM results WHERE campaign = ?", (campaign,)).fetchone()[0]

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    # ------------------------------------------------------------ stage outputs

    def put_stage(self, key: str, stage: str, outputs: dict[str, Any]) -> bool:
        """Record a content-addressed stage output (train, quantize, deploy); False if it was there."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO stages (key, stage, body) VALUES (?, ?, ?)",
            (key, stage, json.dumps(outputs, default=str)),
        )
        return cur.rowcount == 1

    def get_stage(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT body FROM stages WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
