"""Compiling a generated C build with gcc into a host program, and running it from Python."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ._cemit import CFLAGS
from ._errors import DeployError, ToolchainError
from ._manifest import read_manifest
from ._spec import join_batch, split_batch

#: name of the host test program inside a C build directory
HOST_PROGRAM = "ctnn_model_host"
_SOURCES = ("main.c", "model.c", "kernels.c")


def find_cc(cc: str | None = None) -> str:
    """The C compiler to use: ``cc``, else ``$CC``, else ``gcc``; raise if it is not installed."""
    name = cc or os.environ.get("CC") or "gcc"
    path = shutil.which(name)
    if path is None:
        raise ToolchainError(
            f"C compiler {name!r} not found on PATH. Install gcc (Debian/Ubuntu: apt-get install gcc; "
            "Fedora: dnf install gcc; macOS: xcode-select --install) or pass cc=/path/to/compiler."
        )
    return path


def compile_c(
    build_dir: str | os.PathLike[str],
    *,
    cc: str | None = None,
    cflags: Sequence[str] = CFLAGS,
    extra_cflags: Sequence[str] = (),
) -> CModule:
    """Compile a C build directory (from ``build(..., target="c")``) into its host test program.

    The program links only the C library: the kernels need TVM's headers (copied into
    ``include/``) and nothing from TVM at link time. Returns a :class:`CModule`.

    >>> import tempfile
    >>> from ctnn.quant import random_integer_mlp
    >>> from ctnn.deploy import build
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     res = build(random_integer_mlp([8, 4]).to_onnx(), target="c", out_dir=f"{tmp}/mlp")
    ...     compile_c(res.out_dir).run(np.zeros((3, 8), np.int8)).shape
    (3, 4)
    """
    d = Path(build_dir)
    manifest = read_manifest(d)
    if manifest["target"] != "c":
        raise DeployError(f"{d}: a {manifest['target']!r} build, not a C build")
    missing = [s for s in _SOURCES if not (d / s).is_file()]
    if missing:
        raise DeployError(f"{d}: incomplete C build, missing {', '.join(missing)}")
    exe = d / HOST_PROGRAM
    tmp = d / f".{HOST_PROGRAM}.tmp{os.getpid()}"
    cmd = [find_cc(cc), *cflags, *extra_cflags, "-I.", "-Iinclude", "-o", tmp.name, *_SOURCES]
    try:
        proc = subprocess.run(cmd, cwd=d, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ToolchainError(f"compiling {d} failed ({shlex.join(cmd)}):\n{proc.stderr.strip()[-4000:]}")
        os.replace(tmp, exe)
    finally:
        tmp.unlink(missing_ok=True)
    cmd[cmd.index(tmp.name)] = HOST_PROGRAM
    (d / f"{HOST_PROGRAM}.cmd").write_text(shlex.join(cmd) + "\n")
    return CModule(d, cc=cc)


class CModule:
    """The compiled host program of a C build, run from Python on a batch of integer codes.

    All samples go through one process (stdin -> stdout), so thousands of inputs take
    milliseconds. Compiles the program first if it is missing.

    >>> CModule("build/mlp").run(codes)  # a build directory from build(..., target="c")  # doctest: +SKIP
    """

    def __init__(self, build_dir: str | os.PathLike[str], *, cc: str | None = None):
        from ._spec import TensorSpec

        self.build_dir = Path(build_dir)
        manifest = read_manifest(self.build_dir)
        self.inputs = tuple(TensorSpec.from_dict(s) for s in manifest["inputs"])
        self.outputs = tuple(TensorSpec.from_dict(s) for s in manifest["outputs"])
        self.executable = self.build_dir / HOST_PROGRAM
        if not self.executable.is_file():
            compile_c(self.build_dir, cc=cc)
        cmd = self.build_dir / f"{HOST_PROGRAM}.cmd"
        self.command: list[str] = shlex.split(cmd.read_text()) if cmd.is_file() else []

    def run(self, feeds: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
        """Outputs for integer ``feeds`` (``[N, F]`` for one batched input, or a dict by input name)."""
        n, arrays, stacked = split_batch(self.inputs, feeds)
        # one sample = the bytes of each input in order
        sample = np.concatenate([a.reshape(n, -1).view(np.uint8) for a in arrays], axis=1) if n else None
        data = sample.tobytes() if sample is not None else b""
        proc = subprocess.run([str(self.executable)], input=data, capture_output=True)
        if proc.returncode != 0:
            msg = proc.stderr.decode(errors="replace").strip()
            raise ToolchainError(f"{self.executable} exited with {proc.returncode}: {msg}")
        raw = np.frombuffer(proc.stdout, dtype=np.uint8)
        per = sum(s.nbytes for s in self.outputs)
        if raw.size != n * per:
            raise ToolchainError(
                f"{self.executable} wrote {raw.size} bytes for {n} samples, expected {n * per}"
            )
        raw = raw.reshape(n, per)
        outs, at = [], 0
        for s in self.outputs:
            chunk = np.ascontiguousarray(raw[:, at : at + s.nbytes]).view(np.dtype(s.dtype))
            outs.append(chunk.reshape((n, *s.shape)))
            at += s.nbytes
        return join_batch(self.outputs, outs, stacked)

    __call__ = run

    def __repr__(self) -> str:
        return f"CModule({str(self.build_dir)!r})"
