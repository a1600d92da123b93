"""Running Cortex-M firmware under ``qemu-system-arm``: outputs, instruction counts, a trace cross-check.

Facts this relies on (measured with QEMU 7.2 on mps2-an385/an386):

- The DWT cycle counter reads 0, so ctnn counts with SysTick: with ``-icount shift=0``
  one instruction is one nanosecond of virtual time and SysTick (processor clock, reload
  0xFFFFFF, 25 MHz on the mps2 boards) ticks once every 40 instructions. The firmware
  calibrates this ratio with a loop of known length in the same run, times many
  inferences in one SysTick period, and subtracts the same measurement of the firmware
  without the model (``baseline.elf``).
- ``-singlestep -d exec,nochain`` logs every executed instruction (each translation block
  is one instruction and no block is chained), so the lines between the firmware's
  ``ctnn_trace_begin`` and ``ctnn_trace_end`` count one inference exactly.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._errors import DeployError, ToolchainError
from ._firmware import CORES, QEMU_PACKAGE, Core
from ._manifest import read_manifest
from ._spec import TensorSpec, join_batch, split_batch

#: seconds one QEMU run may take before it is killed (a firmware that hangs)
TIMEOUT = 600


def find_qemu() -> str:
    """``qemu-system-arm`` on PATH (``$CTNN_QEMU`` overrides), or a ToolchainError naming the package."""
    name = os.environ.get("CTNN_QEMU", "qemu-system-arm")
    path = shutil.which(name)
    if path is None:
        raise ToolchainError(
            f"emulator {name!r} not found on PATH: install it (Debian/Ubuntu: apt-get install {QEMU_PACKAGE})"
        )
    return path


def qemu_command(core: Core, elf: Path, args: list[str], *, icount: bool = False, trace: Path | None = None):
    cmd = [find_qemu(), "-M", core.machine, "-cpu", core.cpu, "-nographic", "-monitor", "none"]
    cmd += ["-serial", "none", "-semihosting-config", "enable=on,target=native," + ",".join(f"arg={a}" for a in ["fw", *args])]  # fmt: skip
    if icount:
        cmd += ["-icount", "shift=0"]
    if trace is not None:
        cmd += ["-singlestep", "-d", "exec,nochain", "-D", str(trace)]
    return [*cmd, "-kernel", str(elf)]


def run_firmware(core: Core, elf: Path, args: list[str], cwd: Path, **kw) -> None:
    cmd = qemu_command(core, elf, args, **kw)
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"{elf.name} under {core.machine} did not finish in {TIMEOUT} s") from None
    if proc.returncode != 0:
        msg = (proc.stdout + proc.stderr).strip()[-2000:]
        raise ToolchainError(
            f"{elf.name} under qemu-system-arm -M {core.machine} exited with {proc.returncode}: {msg}"
        )


@dataclass(frozen=True)
class Timing:
    """Instructions per inference on the emulated core, from SysTick (averaged) and optionally a trace."""

    core: str
    runs: int
    instructions: float  # per inference: model firmware minus baseline firmware
    instructions_per_tick: float  # calibrated in the same run (40 on mps2 under -icount shift=0)
    ticks_model: int
    ticks_baseline: int
    stack_bytes: int  # measured high-water mark, model minus baseline
    traced_instructions: int | None = None  # exact count of one inference (-singlestep trace)


class QemuModule:
    """A Cortex-M build run under ``qemu-system-arm`` with semihosting.

    ``run(codes)`` sends every sample through one QEMU process and reads the outputs back;
    ``timing(codes)`` measures instructions per inference.

    >>> QemuModule("build/m4").run(codes)  # a build from build(..., target="cortex-m4")  # doctest: +SKIP
    """

    def __init__(self, build_dir: str | os.PathLike[str]):
        self.build_dir = Path(build_dir)
        manifest = read_manifest(self.build_dir)
        info = manifest.get("info", {})
        if manifest["target"] not in CORES:
            raise DeployError(f"{build_dir}: a {manifest['target']!r} build, not a Cortex-M build")
        self.core = CORES[manifest["target"]]
        self.inputs = tuple(TensorSpec.from_dict(s) for s in manifest["inputs"])
        self.outputs = tuple(TensorSpec.from_dict(s) for s in manifest["outputs"])
        self.elf = self.build_dir / info.get("elf", "model.elf")
        self.baseline = self.build_dir / info.get("baseline_elf", "baseline.elf")
        if not self.elf.is_file():
            raise DeployError(
                f"{build_dir}: no {self.elf.name}; rebuild with ctnn-deploy build --target {self.core.name}"
            )

    def _samples(self, feeds) -> tuple[int, bytes, bool]:
        n, arrays, stacked = split_batch(self.inputs, feeds)
        data = (
            np.concatenate([a.reshape(n, -1).view(np.uint8) for a in arrays], axis=1).tobytes() if n else b""
        )
        return n, data, stacked

    def _outputs(self, raw: bytes, n: int, stacked: bool):
        per = sum(s.nbytes for s in self.outputs)
        buf = np.frombuffer(raw, dtype=np.uint8)
        if buf.size != n * per:
            raise ToolchainError(
                f"{self.elf.name} wrote {buf.size} bytes for {n} samples, expected {n * per}"
            )
        buf = buf.reshape(n, per)
        outs, at = [], 0
        for s in self.outputs:
            outs.append(
                np.ascontiguousarray(buf[:, at : at + s.nbytes])
                .view(np.dtype(s.dtype))
                .reshape((n, *s.shape))
            )
            at += s.nbytes
        return join_batch(self.outputs, outs, stacked)

    def run(self, feeds: np.ndarray | Mapping[str, np.ndarray]) -> np.ndarray | dict[str, np.ndarray]:
        """Outputs for integer ``feeds`` (``[N, F]`` for one batched input, or a dict by input name)."""
        n, data, stacked = self._samples(feeds)
        with tempfile.TemporaryDirectory(prefix="ctnn-qemu-") as tmp:
            (Path(tmp) / "in.bin").write_bytes(data)
            run_firmware(self.core, self.elf.absolute(), ["run", "in.bin", "out.bin"], Path(tmp))
            raw = (Path(tmp) / "out.bin").read_bytes()
        return self._outputs(raw, n, stacked)

    __call__ = run

    def _bench(self, elf: Path, data: bytes, runs: int) -> dict[str, int]:
        with tempfile.TemporaryDirectory(prefix="ctnn-qemu-") as tmp:
            (Path(tmp) / "in.bin").write_bytes(data)
            run_firmware(
                self.core,
                elf.absolute(),
                ["bench", "in.bin", "report.txt", str(runs)],
                Path(tmp),
                icount=True,
            )
            text = (Path(tmp) / "report.txt").read_text()
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", text)}

    def trace_instructions(self, feeds) -> int:
        """Exact instructions of one inference on the first sample (a ``-singlestep`` trace), minus the baseline's."""
        n, data, _ = self._samples(feeds)
        per = len(data) // max(n, 1)
        return self._trace(self.elf, data[:per]) - self._trace(self.baseline, data[:per])

    def _trace(self, elf: Path, data: bytes) -> int:
        from ._firmware import arm_tool, find_arm_gcc

        nm = arm_tool(find_arm_gcc(), "nm")
        syms = dict(
            (name, int(addr, 16) & ~1)
            for addr, _, name in (ln.split()[:3] for ln in subprocess.run([nm, str(elf)], capture_output=True, text=True).stdout.splitlines() if len(ln.split()) >= 3)
        )  # fmt: skip
        begin, end = syms["ctnn_trace_begin"], syms["ctnn_trace_end"]
        with tempfile.TemporaryDirectory(prefix="ctnn-qemu-") as tmp:
            (Path(tmp) / "in.bin").write_bytes(data)
            log = Path(tmp) / "trace.log"
            run_firmware(self.core, elf.absolute(), ["trace", "in.bin", "out.bin"], Path(tmp), trace=log)
            count, inside = 0, False
            pc_re = re.compile(r"^Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/")
            with open(log) as f:
                for line in f:
                    m = pc_re.match(line)
                    if m is None:
                        continue
                    pc = int(m.group(1), 16)
                    if pc == begin:
                        inside, count = True, 0
                    elif pc == end and inside:
                        return count
                    elif inside:
                        count += 1
        raise ToolchainError(f"the trace of {elf.name} has no ctnn_trace_begin/ctnn_trace_end pair")

    def timing(self, feeds, runs: int = 200, trace: bool = False) -> Timing:
        """Instructions per inference on the first sample: SysTick over ``runs`` inferences, calibrated,
        minus the firmware without the model; with ``trace``, also the exact count from a trace."""
        n, data, _ = self._samples(feeds)
        sample = data[: len(data) // max(n, 1)]
        if not self.baseline.is_file():
            raise DeployError(f"{self.build_dir}: no {self.baseline.name} to subtract")
        m, b = self._bench(self.elf, sample, runs), self._bench(self.baseline, sample, runs)
        ipt = m["calibration_instructions"] / m["calibration_ticks"]
        per = m["ticks"] / m["runs"] - b["ticks"] / b["runs"]
        return Timing(
            core=self.core.name,
            runs=m["runs"],
            instructions=per * ipt,
            instructions_per_tick=ipt,
            ticks_model=m["ticks"],
            ticks_baseline=b["ticks"],
            stack_bytes=m["stack_bytes"] - b["stack_bytes"],
            traced_instructions=self.trace_instructions(feeds) if trace else None,
        )

    def __repr__(self) -> str:
        return f"QemuModule({str(self.build_dir)!r})"
