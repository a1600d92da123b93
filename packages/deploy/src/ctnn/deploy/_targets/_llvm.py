"""Target "llvm" (alias "host"): TVM's own LLVM build, run through the Relax virtual machine."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from .._errors import ToolchainError
from .._frontend import Lowered, lower
from .._manifest import read_manifest
from .._spec import TensorSpec, join_batch, split_batch
from .._tvmlog import quiet_tvm

LIBRARY = "model.so"


class HostModule:
    """A model compiled by TVM for the host CPU (target "llvm"), run one sample at a time.

    >>> from ctnn.quant import random_integer_mlp
    >>> host = build_host(random_integer_mlp([8, 4]).to_onnx())
    >>> host.run(np.zeros((3, 8), np.int8)).shape
    (3, 4)
    """

    def __init__(self, executable: Any, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]):
        import tvm
        from tvm import relax

        self.executable = executable
        self.inputs, self.outputs = inputs, outputs
        self._dev = tvm.cpu()
        self._vm = relax.VirtualMachine(executable, self._dev)
        self._main = self._vm["main"]
        self._tensor = tvm.runtime.tensor

    def run(self, feeds: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
        """Outputs for integer ``feeds`` (``[N, F]`` for one batched input, or a dict by input name)."""
        n, arrays, stacked = split_batch(self.inputs, feeds)
        outs = [np.empty((n, *s.shape), np.dtype(s.dtype)) for s in self.outputs]
        for i in range(n):
            res = self._main(*[self._tensor(a[i], device=self._dev) for a in arrays])
            res = [res] if len(self.outputs) == 1 else list(res)
            for o, r in zip(outs, res):
                o[i] = r.numpy()
        return join_batch(self.outputs, outs, stacked)

    __call__ = run

    def export_library(self, path: str | os.PathLike[str]) -> None:
        """Write the compiled model as a shared library (needs a C++ compiler for the final link)."""
        try:
            with quiet_tvm():
                self.executable.export_library(str(path))
        except Exception as exc:
            raise ToolchainError(
                f"exporting {path} failed (TVM links with the system C/C++ compiler; install g++): {exc}"
            ) from exc


def _compile(lowered: Lowered) -> Any:
    import tvm

    from .._errors import FrontendError

    try:
        return tvm.compile(lowered.mod, target="llvm")
    except Exception as exc:
        raise FrontendError(
            f"{lowered.source}: TVM's llvm build failed: {type(exc).__name__}: {exc}"
        ) from exc


def build_host(model: onnx.ModelProto | str | os.PathLike[str] | Lowered) -> HostModule:
    """Compile an integer ONNX graph (path, ModelProto or :func:`lower` result) for the host CPU, in memory."""
    lowered = model if isinstance(model, Lowered) else lower(model)
    return HostModule(_compile(lowered), lowered.inputs, lowered.outputs)


class LLVMTarget:
    name = "llvm"
    aliases = ("host",)
    description = "host CPU through TVM's LLVM backend and the Relax VM (writes model.so)"

    def build(self, lowered: Lowered, out_dir: Path, **options: Any) -> dict[str, Any]:
        if options:
            raise TypeError(f"target {self.name!r} takes no options, got {', '.join(sorted(options))}")
        host = HostModule(_compile(lowered), lowered.inputs, lowered.outputs)
        host.export_library(out_dir / LIBRARY)
        return {"library": LIBRARY}

    def load(self, build_dir: Path) -> HostModule:
        import tvm

        manifest = read_manifest(build_dir)
        with quiet_tvm():
            lib = tvm.runtime.load_module(str(Path(build_dir) / manifest.get("library", LIBRARY)))
        inputs = tuple(TensorSpec.from_dict(s) for s in manifest["inputs"])
        outputs = tuple(TensorSpec.from_dict(s) for s in manifest["outputs"])
        return HostModule(lib, inputs, outputs)


from . import register_target  # noqa: E402

register_target(LLVMTarget())
