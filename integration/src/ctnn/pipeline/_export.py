"""Exporting a store to Parquet or CSV (pyarrow), streamed in batches.

Columns: the key, campaign, outcome and provenance columns, then every field of the
result bodies. A field whose values are all integers (or all floats, booleans, strings)
keeps that type; lists and dicts (counterexamples, solver statistics) become JSON text.
Two passes over the store (types, then rows), so memory does not grow with the store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ._store import ResultStore

FORMATS = ("parquet", "csv")


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    return "json"


def _arrow_type(kinds: set[str]) -> Any:
    import pyarrow as pa

    kinds = kinds - {"null"}
    if kinds == {"bool"}:
        return pa.bool_()
    if kinds == {"int"}:
        return pa.int64()
    if kinds and kinds <= {"int", "float"}:
        return pa.float64()
    return pa.string()


def _cell(v: Any, typ: Any) -> Any:
    import pyarrow as pa

    if v is None:
        return None
    if typ == pa.string():
        return v if isinstance(v, str) else json.dumps(v, default=str)
    if typ == pa.float64():
        return float(v)
    return v


def export_results(
    store_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    fmt: str = "parquet",
    campaign: str | None = None,
    batch: int = 10_000,
) -> int:
    """Write the store's rows (of one campaign, or all) to ``out``; return how many rows were written.

    >>> export_results("campaign.sqlite", "campaign.parquet")           # doctest: +SKIP
    120
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt not in FORMATS:
        raise ValueError(f"export format {fmt!r}: expected one of {list(FORMATS)}")
    path = Path(store_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such result store")
    store = ResultStore(path)
    try:
        kinds: dict[str, set[str]] = {}
        for row in store.rows(campaign):
            for k, v in row.items():
                kinds.setdefault(k, set()).add(_kind(v))
        schema = pa.schema([(k, _arrow_type(ks)) for k, ks in kinds.items()])
        n = 0
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        writer = pq.ParquetWriter(out, schema) if fmt == "parquet" else pacsv.CSVWriter(out, schema)
        try:
            buf: list[dict[str, Any]] = []

            def flush() -> None:
                cols = {f.name: [_cell(r.get(f.name), f.type) for r in buf] for f in schema}
                writer.write_table(pa.table(cols, schema=schema))
                buf.clear()

            for row in store.rows(campaign):
                buf.append(row)
                n += 1
                if len(buf) >= batch:
                    flush()
            if buf or n == 0:
                flush()
        finally:
            writer.close()
        return n
    finally:
        store.close()
