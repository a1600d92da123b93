"""Deployment targets, a registry keyed by name.

A target is one module with one object that has the same small interface:
``name``, ``aliases``, ``description``, ``lowering`` (options for :func:`lower`),
``build(lowered, out_dir, **options) -> dict`` (write the artefacts into an empty
directory, return what goes into the build manifest) and
``load(build_dir)`` (a runner with ``.run(codes)``). Adding a target (Cortex-M under
qemu, Verilog) is one module and one :func:`register_target` call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .._errors import DeployError
from .._frontend import Lowered


@runtime_checkable
class Runner(Protocol):
    def run(self, feeds: Any) -> np.ndarray | dict[str, np.ndarray]: ...


@runtime_checkable
class Target(Protocol):
    name: str
    aliases: tuple[str, ...]
    description: str

    def build(self, lowered: Lowered, out_dir: Path, **options: Any) -> dict[str, Any]: ...

    def load(self, build_dir: Path) -> Runner: ...


#: name -> target; aliases point at the same object.
TARGETS: dict[str, Target] = {}


def register_target(target: Target) -> Target:
    """Add a target under its name and aliases (a later registration replaces an earlier one)."""
    for key in (target.name, *target.aliases):
        TARGETS[key] = target
    return target


def get_target(name: str) -> Target:
    """The target registered as ``name`` (or an alias of it)."""
    try:
        return TARGETS[name]
    except KeyError:
        raise DeployError(f"unknown target {name!r}; available: {', '.join(sorted(TARGETS))}") from None


from . import _c, _fpga, _llvm, _mcu  # noqa: E402,F401  (register the built-in targets)
