"""``build()``: the one entry point, writing a complete build directory or nothing at all."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from ._cemit import check_name
from ._errors import DeployError
from ._frontend import Lowered, lower
from ._manifest import MANIFEST, read_manifest, write_manifest
from ._spec import TensorSpec
from ._targets import Runner, get_target

MODEL_COPY = "model.onnx"


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build` wrote: the directory, its files, the model's signature and target facts."""

    target: str
    out_dir: Path
    files: tuple[str, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    info: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def load(self) -> Runner:
        """A runner for this build (``HostModule`` for "llvm", ``CModule`` for "c")."""
        return get_target(self.target).load(self.out_dir)

    @classmethod
    def from_dir(cls, build_dir: str | os.PathLike[str]) -> BuildResult:
        """Read a build directory written earlier."""
        m = read_manifest(build_dir)
        return cls(
            target=m["target"],
            out_dir=Path(build_dir),
            files=tuple(m["files"]),
            inputs=tuple(TensorSpec.from_dict(s) for s in m["inputs"]),
            outputs=tuple(TensorSpec.from_dict(s) for s in m["outputs"]),
            info=m.get("info", {}),
        )


def lower_for(tgt: Any, model: onnx.ModelProto | str | os.PathLike[str] | Lowered) -> Lowered:
    """``model`` lowered with the options target ``tgt`` asks for (``tgt.lowering``)."""
    opts = dict(getattr(tgt, "lowering", {}))
    if isinstance(model, Lowered):
        if model.extern_dot == opts.get("extern_dot", False):
            return model
        return dataclasses.replace(lower(model.model, **opts), source=model.source)
    return lower(model, **opts)


def _publish(tmp: Path, out_dir: Path) -> None:
    """Move a finished build into place, replacing an earlier ctnn build (never other files)."""
    if out_dir.exists() or out_dir.is_symlink():
        if not out_dir.is_dir():
            raise DeployError(f"{out_dir} exists and is not a directory")
        if any(out_dir.iterdir()) and not (out_dir / MANIFEST).is_file():
            raise DeployError(
                f"{out_dir} exists, is not empty and is not a ctnn-deploy build; not replacing it"
            )
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, old / "build")
        try:
            os.replace(tmp, out_dir)
        except BaseException:
            os.replace(old / "build", out_dir)
            raise
        finally:
            shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


def build(
    model: onnx.ModelProto | str | os.PathLike[str] | Lowered,
    target: str = "c",
    out_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> BuildResult:
    """Compile an integer ONNX graph for ``target`` ("c", or "llvm"/"host") into ``out_dir``.

    The build happens in a temporary directory next to ``out_dir`` and is moved into
    place only when complete, so a failed build never leaves a half-written directory;
    an earlier ctnn build in ``out_dir`` is replaced. Without ``out_dir`` a fresh
    temporary directory is used. The directory holds a copy of the graph
    (``model.onnx``) and a manifest (``ctnn_build.json``).

    >>> import tempfile
    >>> from ctnn.quant import random_integer_mlp
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     res = build(random_integer_mlp([16, 8, 4]).to_onnx(), target="c", out_dir=f"{tmp}/mlp")
    ...     sorted(f for f in res.files if "/" not in f and f.endswith((".c", ".h")))
    ['ctnn_dot.h', 'kernels.c', 'main.c', 'model.c', 'model.h']
    """
    t0 = time.perf_counter()
    tgt = get_target(target)
    if "name" in options:  # refuse a bad symbol prefix before the (slow) lowering
        check_name(options["name"])
    lowered = lower_for(tgt, model)
    if out_dir is None:
        out = Path(tempfile.mkdtemp(prefix="ctnn-deploy-")) / "model"
    else:
        out = Path(out_dir).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        info = tgt.build(lowered, tmp, **options)
        onnx.save(lowered.model, str(tmp / MODEL_COPY))
        files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file()) + [MANIFEST]
        import tvm

        from . import __version__

        write_manifest(
            tmp,
            {
                "target": tgt.name,
                "source": lowered.source,
                "model": MODEL_COPY,
                "sha256": lowered.sha256,
                "ctnn_deploy": __version__,
                "tvm": tvm.__version__,
                "inputs": [s.to_dict() for s in lowered.inputs],
                "outputs": [s.to_dict() for s in lowered.outputs],
                "files": files,
                "info": info,
                **({"library": info["library"]} if "library" in info else {}),
            },
        )
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildResult(
        target=tgt.name,
        out_dir=out,
        files=tuple(sorted(files)),
        inputs=lowered.inputs,
        outputs=lowered.outputs,
        info=info,
        seconds=time.perf_counter() - t0,
    )
