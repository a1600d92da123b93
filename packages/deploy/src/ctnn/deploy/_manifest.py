"""The ``ctnn_build.json`` file that makes a build directory self-describing."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ._errors import DeployError

MANIFEST = "ctnn_build.json"
FORMAT = 1


def write_manifest(out_dir: Path, data: dict[str, Any]) -> Path:
    path = out_dir / MANIFEST
    path.write_text(json.dumps({"format": FORMAT, **data}, indent=2) + "\n")
    return path


def read_manifest(build_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a build directory's manifest."""
    path = Path(build_dir) / MANIFEST
    if not path.is_file():
        raise DeployError(f"{build_dir}: not a ctnn-deploy build directory (no {MANIFEST})")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DeployError(f"{path}: unreadable manifest ({exc})") from None
    if data.get("format") != FORMAT:
        raise DeployError(f"{path}: manifest format {data.get('format')!r}, this ctnn-deploy reads {FORMAT}")
    return data
