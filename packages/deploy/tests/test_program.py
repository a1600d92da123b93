"""The memory plan: live intermediates never share bytes; the arena is no larger than needed."""

from __future__ import annotations

import numpy as np
import pytest

from ctnn.deploy._program import ALIGN, Buffer, KernelCall, Program, extract_program, plan_memory


def _lifetimes(prog: Program) -> dict[int, tuple[int, int]]:
    life: dict[int, tuple[int, int]] = {}
    for i, c in enumerate(prog.calls):
        for a in c.args:
            lo, hi = life.get(a, (i, i))
            life[a] = (min(lo, i), max(hi, i))
    return life


def _check_plan(prog: Program, offsets: dict[int, int], total: int) -> None:
    life = _lifetimes(prog)
    temps = [b for b in prog.buffers if b.kind == "temp"]
    assert set(offsets) == {b.index for b in temps}
    for b in temps:
        assert offsets[b.index] % ALIGN == 0 and offsets[b.index] + b.nbytes <= total
    for i, a in enumerate(temps):
        for b in temps[i + 1 :]:
            (a0, a1), (b0, b1) = life[a.index], life[b.index]
            if a1 < b0 or b1 < a0:
                continue
            oa, ob = offsets[a.index], offsets[b.index]
            assert oa + a.nbytes <= ob or ob + b.nbytes <= oa, (a, b)
    assert total <= sum(-(-b.nbytes // ALIGN) * ALIGN for b in temps)


def test_plan_of_a_lowered_model(case):
    prog = extract_program(case.lowered.mod)
    offsets, total = plan_memory(prog)
    _check_plan(prog, offsets, total)
    assert [b.kind for b in prog.buffers].count("input") == 1
    assert [b.kind for b in prog.buffers].count("output") == 1
    # one fused kernel per dense layer (matmul + requantization), no separate input cast
    layers = sum(1 for i in case.model.graph.initializer if i.name.endswith("/W"))
    assert len(prog.calls) == len(prog.kernels) == layers


@pytest.mark.parametrize("seed", range(20))
def test_plan_of_random_chains(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 12))
    bufs = [Buffer(0, "int8", (4,), "input", io=0)]
    calls = []
    for i in range(n):
        size = int(rng.integers(1, 300))
        bufs.append(Buffer(len(bufs), rng.choice(["int8", "int32", "int64"]), (size,), "temp"))
        # read one or two earlier buffers (skip connections make lifetimes overlap)
        reads = sorted({len(bufs) - 2, int(rng.integers(0, len(bufs) - 1))})
        calls.append(KernelCall(f"k{i}", [*reads, len(bufs) - 1], 1, f"v{i}"))
    bufs[-1].kind, bufs[-1].io = "output", 0
    prog = Program(bufs, calls, [0], [len(bufs) - 1])
    offsets, total = plan_memory(prog)
    _check_plan(prog, offsets, total)
