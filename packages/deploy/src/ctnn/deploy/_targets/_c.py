"""Target "c": standalone C (TVM's kernels + ctnn's model.c), built with any C compiler."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._cemit import DEFAULT_NAME, check_name, emit_c
from .._ckernels import DOT_HEADER, build_kernels, copy_headers, dot_header
from .._frontend import Lowered
from .._program import extract_program, plan_memory


def write_c_sources(lowered: Lowered, out_dir: Path, name: str = DEFAULT_NAME) -> dict[str, Any]:
    """Write the C build of ``lowered`` (model.c/.h, kernels.c, main.c, fragments, headers) into ``out_dir``.

    ``name`` prefixes the external symbols (``ctnn_<name>_run``, ``ctnn_<name>_k<i>_*``) so
    that builds with different names link into one program."""
    import tvm

    from .. import __version__

    check_name(name)
    prog = extract_program(lowered.mod)
    offsets, arena = plan_memory(prog)
    kernels = build_kernels(lowered.mod, prog, "ctnn_" if name == DEFAULT_NAME else f"ctnn_{name}_")
    src = emit_c(
        prog, offsets, arena, kernels, lowered.inputs, lowered.outputs,
        source=Path(lowered.source).name, sha256=lowered.sha256,
        tvm_version=tvm.__version__, version=__version__, name=name,
    )  # fmt: skip
    for fname, text in src.files.items():
        (out_dir / fname).write_text(text)
    if kernels.micro_kernels:
        (out_dir / DOT_HEADER).write_text(dot_header())
    headers = copy_headers([src.files["model.c"], src.files["kernels.c"]], out_dir / "include")
    return {
        "api": src.api,
        "name": name,
        "kernels": list(dict.fromkeys(kernels.symbols[k] for k in prog.kernels)),
        "micro_kernels": list(kernels.micro_kernels),
        "calls": len(prog.calls),
        "arena_bytes": src.arena_bytes,
        "workspace_bytes": src.workspace_bytes,
        "const_bytes": src.const_bytes,
        "headers": [str(Path("include") / h) for h in headers],
    }


class CTarget:
    name = "c"
    aliases: tuple[str, ...] = ()
    lowering = {"extern_dot": True}  # dense layers through ctnn_dot.h
    description = "standalone C sources (model.c/model.h + TVM kernels), no TVM runtime; host program via gcc"

    def build(self, lowered: Lowered, out_dir: Path, *, name: str = DEFAULT_NAME) -> dict[str, Any]:
        """Write the sources; ``name`` prefixes the symbols (``ctnn_<name>_run``)."""
        return write_c_sources(lowered, out_dir, name)

    def load(self, build_dir: Path):
        from .._toolchain import CModule

        return CModule(build_dir)


from . import register_target  # noqa: E402

register_target(CTarget())
