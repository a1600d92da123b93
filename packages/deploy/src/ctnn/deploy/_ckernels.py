"""What ctnn takes from TVM for the C target: the fused kernels' C source and TVM's C headers.

The fused PrimFuncs of the lowered module are built with ``tvm.tirx.build(...,
target="c")`` under ``tirx.disable_assert`` (no argument checks, so no calls into the
TVM runtime's error API) and their source is read with ``inspect_source()``. Each
kernel is a TVM-FFI packed function
``int32_t __tvm_ffi_<symbol>(void *self, void *args, int32_t num_args, void *result)``
whose ``args`` is an array of ``TVMFFIAny`` holding ``DLTensor *`` (type index
``kTVMFFIDLTensorPtr``), inputs first and outputs last. Constant-size scratch buffers
below TVM's stack limit become C arrays; larger ones go through
``TVMBackendAllocWorkspace`` / ``TVMBackendFreeWorkspace``, which ctnn implements
over a static arena sized from the literal sizes in the source.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import DeployError
from ._program import ALIGN, Program, _align

#: what TVM's C backend puts before a PrimFunc's global symbol (the packed-call wrapper)
KERNEL_PREFIX = "__tvm_ffi_"


@dataclass(frozen=True)
class Kernels:
    """The C source of the fused kernels and what ctnn needs to know to call them."""

    source: str
    symbols: dict[str, str]  # PrimFunc name -> C global symbol (without KERNEL_PREFIX)
    micro_kernels: tuple[str, ...]  # ctnn_dot_* functions the kernels call (defined in ctnn_dot.h)
    workspace_bytes: int  # largest sum of workspace allocations made by one kernel call
    uses_workspace: bool


def _symbol(i: int, name: str, limit: int = 32, prefix: str = "ctnn_") -> str:
    """``<prefix>k<i>_<the first ops of the PrimFunc's name>`` (TVM names fused kernels after every op)."""
    words = re.sub(r"[^0-9A-Za-z_]", "_", name.removeprefix("fused_")).split("_")
    short = words[0]
    for w in words[1:]:
        if len(short) + 1 + len(w) > limit:
            break
        short += f"_{w}"
    return f"{prefix}k{i}_{short[:limit]}"


_FUNC_RE = re.compile(r"^TVM_DLL int32_t " + KERNEL_PREFIX + r"(\w+)\([^)]*\) \{$", re.M)
_ALLOC_RE = re.compile(r"TVMBackendAllocWorkspace\(")
_ALLOC_SIZE_RE = re.compile(
    r"TVMBackendAllocWorkspace\(\s*[^,]+,\s*[^,]+,\s*\(uint64_t\)\s*(\d+)(?:ULL|UL|LL|U|L)?\s*,"
)


def workspace_per_kernel(source: str) -> dict[str, int]:
    """Bytes of workspace each kernel allocates (sum of its allocations, each aligned)."""
    starts = [(m.start(), m.group(1)) for m in _FUNC_RE.finditer(source)]
    sizes: dict[str, int] = {}
    for (pos, name), nxt in zip(starts, [s for s, _ in starts[1:]] + [len(source)]):
        body = source[pos:nxt]
        literal = [int(n) for n in _ALLOC_SIZE_RE.findall(body)]
        if len(literal) != len(_ALLOC_RE.findall(body)):
            raise DeployError(
                f"kernel {name}: a workspace allocation has no constant size; cannot size the arena"
            )
        sizes[name] = sum(_align(n, ALIGN) for n in literal)
    return sizes


def unique_kernels(mod: Any, names: list[str], prefix: str = "ctnn_") -> dict[str, str]:
    """``{PrimFunc name: C symbol}`` where structurally equal PrimFuncs share one symbol.

    An unrolled recurrent graph fuses the same step into a new PrimFunc at every time
    step (FuseTIR names them apart); the weights are arguments, so the step kernels are
    equal and one C function serves them all: code size does not grow with the number of steps."""
    import tvm_ffi  # TVM 0.27: structural_hash/structural_equal live in tvm_ffi

    reps: list[tuple[int, str, Any]] = []  # (structural hash, symbol, function)
    symbols: dict[str, str] = {}
    for name in names:
        f = mod[name]
        h = tvm_ffi.structural_hash(f)
        same = next((sym for hh, sym, g in reps if hh == h and tvm_ffi.structural_equal(f, g)), None)
        if same is None:
            same = _symbol(len(reps), name, prefix=prefix)
            reps.append((h, same, f))
        symbols[name] = same
    return symbols


#: the one global variable TVM's C backend defines in every module
_LIBRARY_CTX = "__tvm_ffi__library_ctx"


def build_kernels(mod: Any, prog: Program, symbol_prefix: str = "ctnn_") -> Kernels:
    """Build the PrimFuncs ``prog`` calls with TVM's C backend; rename them ``<symbol_prefix>k<i>_<name>``.

    With a prefix other than ``ctnn_`` (a named build) TVM's global ``__tvm_ffi__library_ctx``
    is renamed too, so that two builds link into one program."""
    import tvm

    symbols = unique_kernels(mod, prog.kernels, prefix=symbol_prefix)
    funcs = {
        tvm.ir.GlobalVar(sym): mod[name].with_attr("global_symbol", sym)
        for name, sym in symbols.items()
        if name == next(n for n, s in symbols.items() if s == sym)  # one definition per symbol
    }
    try:
        with tvm.transform.PassContext(opt_level=3, config={"tirx.disable_assert": True}):
            lib = tvm.tirx.build(tvm.IRModule(funcs), target="c")
    except Exception as exc:
        raise DeployError(f"TVM's C backend failed: {type(exc).__name__}: {str(exc).strip()[-500:]}") from exc
    source = lib.inspect_source()
    if symbol_prefix != "ctnn_":
        source = re.sub(rf"\b{_LIBRARY_CTX}\b", f"{symbol_prefix}library_ctx", source)
    micro = tuple(sorted(set(_MICRO_RE.findall(source))))
    if micro:  # the micro-kernels are static inline: their definitions must come first
        source = f'#include "{DOT_HEADER}"  /* ctnn micro-kernels (added by ctnn-deploy) */\n' + source
    for sym in set(symbols.values()):
        if f"{KERNEL_PREFIX}{sym}(" not in source:
            raise DeployError(f"TVM's C source has no function {KERNEL_PREFIX}{sym}")
    ws = workspace_per_kernel(source)
    return Kernels(
        source=source,
        symbols=symbols,
        micro_kernels=micro,
        workspace_bytes=max(ws.values(), default=0),
        uses_workspace="TVMBackendAllocWorkspace" in source,
    )


#: ctnn's micro-kernel header (package data, copied into every C build that needs it)
DOT_HEADER = "ctnn_dot.h"
_MICRO_RE = re.compile(r"\b(ctnn_dot_\w+)\(")


def dot_header() -> str:
    """The text of ``ctnn_dot.h``."""
    from importlib.resources import files

    return (files("ctnn.deploy") / "_c" / DOT_HEADER).read_text()


_INCLUDE_RE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)


def include_roots() -> list[Path]:
    """Where TVM's and TVM-FFI's C headers (and dlpack) live in the installed packages."""
    import tvm.libinfo
    import tvm_ffi.libinfo

    roots = [tvm.libinfo.find_include_path(), tvm_ffi.libinfo.find_include_path()]
    roots.append(tvm_ffi.libinfo.find_dlpack_include_path())
    return list(dict.fromkeys(Path(r) for r in roots))


def copy_headers(sources: list[str], dest: Path) -> list[Path]:
    """Copy the TVM headers ``sources`` include (transitively) to ``dest``; return their relative paths."""
    roots = include_roots()
    todo = [inc for s in sources for inc in _INCLUDE_RE.findall(s)]
    done: list[Path] = []
    seen: set[str] = set()
    while todo:
        inc = todo.pop()
        if inc in seen:
            continue
        seen.add(inc)
        found = next((r / inc for r in roots if (r / inc).is_file()), None)
        if found is None:
            continue  # a system header (stdint.h, ...) or one behind a platform #ifdef
        (dest / inc).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(found, dest / inc)
        done.append(Path(inc))
        todo.extend(_INCLUDE_RE.findall(found.read_text()))
    return sorted(done)
