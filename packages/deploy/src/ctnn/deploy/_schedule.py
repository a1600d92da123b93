"""A schedule for the fused integer kernels: no intermediate arrays, one pass per output.

After FuseTIR a dense layer is one PrimFunc with a block per op (matmul, bias add,
cast, multiply, less, subtract, add, where, divide, maximum, minimum, cast), each
writing a whole intermediate array. Unscheduled, TVM's C backend keeps those arrays
(on the stack, or in the workspace above 1 KiB): several KiB of RAM per layer on a
microcontroller. This schedule, applied to every fused PrimFunc:

1. inlines every elementwise/injective block into its consumers (``compute_inline``, or
   ``reverse_compute_inline`` into an elementwise producer), so a layer is a reduction
   (or a ctnn micro-kernel call) followed by one epilogue expression;
2. moves that epilogue under the reduction's spatial loops (``decompose_reduction`` +
   ``reverse_compute_at``), so the accumulator is one element, which C keeps in a register.

Every step is tried on a copy and kept only if TVM accepts it; a kernel that no step
applies to is left as it was. Scheduling never changes the arithmetic.
"""

from __future__ import annotations

from typing import Any

#: inlining duplicates an expression at each use; stop when a kernel's TVMScript grows past this factor
GROWTH_LIMIT = 8


def _is_reduction(sch: Any, blk: Any) -> bool:
    from tvm import tirx

    return any(iv.iter_type == tirx.IterVar.CommReduce for iv in sch.get(blk).iter_vars)


def _name(sch: Any, blk: Any) -> str:
    return str(sch.get(blk).name_hint)


def _is_ctnn(sch: Any, blk: Any) -> bool:
    return _name(sch, blk).startswith("ctnn_")


def _inline_all(sch: Any, single_use: bool) -> None:
    changed = True
    while changed:
        changed = False
        for blk in sch.get_child_blocks(sch.get_sblock("root")):
            if _is_reduction(sch, blk) or _is_ctnn(sch, blk):
                continue
            consumers = sch.get_consumers(blk)
            if single_use and len(consumers) > 1:
                continue
            try:
                sch.compute_inline(blk)
                changed = True
                break
            except Exception:  # noqa: S110 - not inlinable here: try the other direction
                pass
            producers = sch.get_producers(blk)
            if any(_is_reduction(sch, p) or _is_ctnn(sch, p) for p in producers):
                continue  # an epilogue stays a block of its own; step 2 places it
            try:
                sch.reverse_compute_inline(blk)
                changed = True
                break
            except Exception:  # noqa: S110
                pass


def _place_epilogues(sch: Any) -> None:
    from tvm import tirx

    for blk in sch.get_child_blocks(sch.get_sblock("root")):
        # ctnn's micro-kernel blocks write through pointers (tvm_access_ptr) whose offsets
        # CompactBufferAllocation would not shift: their outputs keep their full size
        if not _is_reduction(sch, blk):
            continue
        consumers = sch.get_consumers(blk)
        loops = sch.get_loops(blk)
        kinds = [iv.iter_type for iv in sch.get(blk).iter_vars]
        n_spatial = sum(1 for k in kinds if k == tirx.IterVar.DataPar)
        if (
            n_spatial == 0
            or len(loops) != len(kinds)
            or any(k != tirx.IterVar.CommReduce for k in kinds[n_spatial:])
        ):
            continue  # reduce loops are not the innermost ones: leave it
        try:
            sch.decompose_reduction(blk, loops[n_spatial])
        except Exception:  # noqa: S112
            continue
        at = loops[n_spatial - 1]
        if len(consumers) != 1:
            continue
        try:
            sch.reverse_compute_at(consumers[0], at)
        except Exception:  # noqa: S112
            continue


def schedule_primfunc(func: Any) -> Any:
    """Inline the elementwise blocks and fuse the epilogue into the reduction loop (see module doc)."""
    from tvm import s_tir

    size = len(func.script())
    for single_use in (False, True):
        try:
            sch = s_tir.Schedule(func)
            _inline_all(sch, single_use)
            _place_epilogues(sch)
            out = sch.mod["main"]
        except Exception:
            continue
        if len(out.script()) <= GROWTH_LIMIT * size:
            return out
    return func


def schedule_module(mod: Any) -> Any:
    """Apply :func:`schedule_primfunc` to every PrimFunc of ``mod``."""
    from tvm import tirx

    for gv, f in list(mod.functions.items()):
        if isinstance(f, tirx.PrimFunc):
            mod[gv] = schedule_primfunc(f)
    return mod
