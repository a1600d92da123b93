"""A durable result store: one SQLite row per query, committed as soon as it arrives.

WAL mode with synchronous=FULL means a result that was committed survives a
killed driver; a restarted campaign asks :meth:`ResultStore.done_keys` and skips
what is there.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def query_key(**parts: Any) -> str:
    """A stable hash of everything that determines a query's answer."""
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class ResultStore:
    """Results keyed by :func:`query_key`, stored as JSON in SQLite (WAL)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, campaign TEXT, "
            "created REAL DEFAULT (unixepoch('subsec')), body TEXT NOT NULL)"
        )

    def put(self, key: str, result: dict[str, Any], campaign: str = "") -> bool:
        """Store one result; return False if the key was already there (never duplicated)."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO results (key, campaign, body) VALUES (?, ?, ?)",
            (key, campaign, json.dumps(result, default=str)),
        )
        return cur.rowcount == 1

    def done_keys(self) -> set[str]:
        return {k for (k,) in self._db.execute("SELECT key FROM results")}

    def results(self, campaign: str | None = None) -> Iterator[dict[str, Any]]:
        q, args = "SELECT body FROM results", ()
        if campaign is not None:
            q, args = q + " WHERE campaign = ?", (campaign,)
        for (body,) in self._db.execute(q + " ORDER BY created", args):
            yield json.loads(body)

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def close(self) -> None:
        self._db.close()
