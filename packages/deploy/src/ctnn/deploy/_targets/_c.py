"""Target "c": standalone C (TVM's kernels + ctnn's model.c), built with any C compiler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._cemit import emit_c
from .._ckernels import build_kernels, copy_headers
from .._frontend import Lowered
from .._program import extract_program, plan_memory


class CTarget:
    name = "c"
    aliases: tuple[str, ...] = ()
    description = "standalone C sources (model.c/model.h + TVM kernels), no TVM runtime; host program via gcc"

    def build(self, lowered: Lowered, out_dir: Path) -> dict[str, Any]:
        import tvm

        from .. import __version__

        prog = extract_program(lowered.mod)
        offsets, arena = plan_memory(prog)
        kernels = build_kernels(lowered.mod, prog)
        src = emit_c(
            prog, offsets, arena, kernels, lowered.inputs, lowered.outputs,
            source=Path(lowered.source).name, sha256=lowered.sha256,
            tvm_version=tvm.__version__, version=__version__,
        )  # fmt: skip
        for name, text in src.files.items():
            (out_dir / name).write_text(text)
        headers = copy_headers([src.files["model.c"], src.files["kernels.c"]], out_dir / "include")
        return {
            "api": src.api,
            "kernels": [kernels.symbols[k] for k in prog.kernels],
            "calls": len(prog.calls),
            "arena_bytes": src.arena_bytes,
            "workspace_bytes": src.workspace_bytes,
            "const_bytes": src.const_bytes,
            "headers": [str(Path("include") / h) for h in headers],
        }

    def load(self, build_dir: Path):
        from .._toolchain import CModule

        return CModule(build_dir)


from . import register_target  # noqa: E402

register_target(CTarget())
