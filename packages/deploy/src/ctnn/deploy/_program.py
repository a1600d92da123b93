"""The structure of a lowered model, apart from any target: which kernel runs when, on which buffers.

:func:`extract_program` walks the Relax ``main`` of a :class:`~ctnn.deploy._frontend.Lowered`
model (after FuseTIR every step is a ``call_tir`` of one fused PrimFunc) into plain
Python objects, and :func:`plan_memory` places the intermediate buffers in one static
arena by liveness. The C emitter reads these; later targets (Verilog) can too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._errors import DeployError
from ._spec import Sized

#: Alignment (bytes) of every buffer placed in the static arena or the workspace.
ALIGN = 16


@dataclass
class Buffer(Sized):
    """One tensor of the program: a graph input/output, a constant, or an intermediate."""

    index: int
    dtype: str
    shape: tuple[int, ...]
    kind: str  # "input" | "output" | "const" | "temp"
    io: int | None = None  # position among the graph's inputs or outputs
    data: np.ndarray | None = None  # for constants
    origin: str = ""  # the Relax variable or constant it comes from (for comments)


@dataclass
class KernelCall:
    """One ``call_tir``: PrimFunc ``kernel`` applied to ``args`` (buffer indices, outputs last)."""

    kernel: str
    args: list[int]
    n_out: int
    binding: str


@dataclass
class Program:
    """Straight-line program of kernel calls over buffers, plus the copies of aliased outputs."""

    buffers: list[Buffer]
    calls: list[KernelCall]
    inputs: list[int]
    outputs: list[int]
    copies: list[tuple[int, int]] = field(default_factory=list)  # (src, dst) after the last call

    def of_kind(self, kind: str) -> list[Buffer]:
        return [b for b in self.buffers if b.kind == kind]

    @property
    def kernels(self) -> list[str]:
        """The PrimFuncs called, in order of first call."""
        return list(dict.fromkeys(c.kernel for c in self.calls))


def _static_shape(ty: Any, what: str) -> tuple[str, tuple[int, ...]]:
    from tvm import relax, tirx

    # TVM 0.27: Relax's StructInfo is now ``Type`` (relax.TensorType / relax.TupleType, ``expr.ty``)
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        raise DeployError(f"{what}: expected a tensor with a static shape, got {ty}")
    values = ty.shape.values
    if not all(isinstance(v, tirx.IntImm) for v in values):
        raise DeployError(f"{what}: shape {list(values)} is not static")
    return str(ty.dtype), tuple(int(v) for v in values)


def extract_program(mod: Any) -> Program:
    """Walk Relax ``main`` (dataflow bindings of call_tir / aliases / tuples) into a :class:`Program`."""
    import tvm
    from tvm import relax
    from tvm.ir.expr import Constant  # TVM 0.27: Relax's Var/Call/Tuple/Constant live in tvm.ir.expr

    call_tir = tvm.ir.Op.get("relax.call_tir")
    main = mod["main"]
    buffers: list[Buffer] = []
    consts: dict[tuple, int] = {}
    env: dict[Any, int | list[int]] = {}

    def new(dtype, shape, kind, **kw) -> int:
        buffers.append(Buffer(len(buffers), dtype, shape, kind, **kw))
        return len(buffers) - 1

    def constant(c: Any, origin: str) -> int:
        data = np.array(c.value.numpy(), order="C")  # (ascontiguousarray would make a scalar 1-d)
        key = (data.dtype.str, data.shape, data.tobytes())
        if key not in consts:
            consts[key] = new(data.dtype.name, tuple(data.shape), "const", data=data, origin=origin)
        return consts[key]

    def resolve(e: Any, where: str) -> int | list[int]:
        if isinstance(e, relax.Var):
            if e not in env:
                raise DeployError(f"{where}: variable {e.name} is used before it is defined")
            return env[e]
        if isinstance(e, Constant):
            return constant(e, where)
        if isinstance(e, relax.Tuple):
            return [resolve(f, where) for f in e.fields]  # type: ignore[misc]
        raise DeployError(f"{where}: unsupported Relax expression {type(e).__name__}: {e}")

    inputs = []
    for k, p in enumerate(main.params):
        dtype, shape = _static_shape(p.ty, f"input {p.name}")
        env[p] = new(dtype, shape, "input", io=k, origin=p.name)
        inputs.append(env[p])

    calls: list[KernelCall] = []
    for block in main.body.blocks:
        for b in block.bindings:
            name = b.var.name
            where = f"Relax binding {name!r}"
            if not isinstance(b, relax.VarBinding):
                raise DeployError(f"{where}: {type(b).__name__} is not supported by the C target")
            v = b.value
            if isinstance(v, relax.Call) and v.op.same_as(call_tir):
                if len(v.args) > 2:
                    raise DeployError(f"{where}: call_tir with symbolic shape arguments is not supported")
                kernel = v.args[0].name_hint
                args = []
                for a in v.args[1].fields:
                    r = resolve(a, where)
                    if isinstance(r, list):
                        raise DeployError(f"{where}: tuple argument to {kernel} is not supported")
                    args.append(r)
                out = v.ty_args[0]
                outs_info = list(out.fields) if isinstance(out, relax.TupleType) else [out]
                outs = []
                for j, info in enumerate(outs_info):
                    dtype, shape = _static_shape(info, f"{where} output {j}")
                    outs.append(new(dtype, shape, "temp", origin=name))
                env[b.var] = outs if isinstance(out, relax.TupleType) else outs[0]
                calls.append(KernelCall(kernel, args + outs, len(outs), name))
            elif isinstance(v, relax.TupleGetItem):
                t = resolve(v.tuple_value, where)
                if not isinstance(t, list):
                    raise DeployError(f"{where}: TupleGetItem on a tensor")
                env[b.var] = t[v.index]
            elif isinstance(v, (relax.Var, Constant, relax.Tuple)):
                env[b.var] = resolve(v, where)
            else:
                op = getattr(getattr(v, "op", None), "name", type(v).__name__)
                raise DeployError(
                    f"{where}: {op} was not lowered to a TIR kernel; the C target supports only "
                    "call_tir (after LegalizeOps), tuples and aliases in main"
                )
        # blocks are flat: nested control flow never appears in the dialect's straight-line graphs

    ret = resolve(main.body.body, "the return value of main")
    rets = ret if isinstance(ret, list) else [ret]
    if any(isinstance(r, list) for r in rets):
        raise DeployError("nested tuples in the return value of main are not supported")

    outputs, copies = [], []
    for k, r in enumerate(rets):
        src = buffers[r]  # type: ignore[index]
        if src.kind == "temp":
            src.kind, src.io = "output", k
            outputs.append(src.index)
        else:  # an input, a constant or an output already bound to another pointer: copy it
            dst = new(src.dtype, src.shape, "output", io=k, origin=f"output {k}")
            copies.append((src.index, dst))
            outputs.append(dst)
    prog = Program(buffers, calls, inputs, outputs, copies)
    _check_params(mod, prog)
    return prog


def _check_params(mod: Any, prog: Program) -> None:
    for c in prog.calls:
        f = mod[c.kernel]
        if len(f.params) != len(c.args):
            raise DeployError(f"kernel {c.kernel}: takes {len(f.params)} buffers, main passes {len(c.args)}")
        for p, a in zip(f.params, c.args):
            buf, want = p.ty, prog.buffers[a]  # TVM 0.27: a PrimFunc parameter's type is its buffer
            shape = tuple(int(s) for s in buf.shape)
            if str(buf.dtype) != want.dtype or int(np.prod(shape, dtype=np.int64)) != want.size:
                raise DeployError(
                    f"kernel {c.kernel}: parameter {p.name} is {buf.dtype}{list(shape)}, "
                    f"main passes {want.dtype}{list(want.shape)}"
                )


def _align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


def plan_memory(prog: Program, align: int = ALIGN) -> tuple[dict[int, int], int]:
    """Place every ``temp`` buffer in one arena; buffers whose lifetimes overlap never overlap in memory.

    A buffer lives from the call that writes it to the last call (or output copy)
    that reads it. Greedy first-fit by size, largest first. Returns
    ``({buffer index: byte offset}, arena bytes)``.
    """
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i, c in enumerate(prog.calls):
        for a in c.args[len(c.args) - c.n_out :]:
            first.setdefault(a, i)
            last[a] = max(last.get(a, i), i)
        for a in c.args[: len(c.args) - c.n_out]:
            last[a] = i
    for src, _ in prog.copies:
        last[src] = len(prog.calls)
    temps = [b for b in prog.buffers if b.kind == "temp"]
    order = sorted(temps, key=lambda b: (-b.nbytes, first.get(b.index, 0), b.index))
    placed: list[tuple[int, int, int, int]] = []  # (offset, end, first, last)
    offsets: dict[int, int] = {}
    for b in order:
        lo, hi = first.get(b.index, 0), last.get(b.index, first.get(b.index, 0))
        size = _align(max(b.nbytes, 1), align)
        clashes = sorted((o, e) for o, e, f, last_use in placed if not (last_use < lo or hi < f))
        off = 0
        for o, e in clashes:
            if off + size <= o:
                break
            off = max(off, _align(e, align))
        offsets[b.index] = off
        placed.append((off, off + size, lo, hi))
    total = max((e for _, e, _, _ in placed), default=0)
    return offsets, total
