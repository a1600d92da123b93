"""Simulating an FPGA build (iverilog, or Verilator for large vector sets) on integer codes."""

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

from .._errors import DeployError, ToolchainError
from .._manifest import read_manifest
from .._spec import TensorSpec, join_batch, split_batch

SOURCES = ("ctnn_lib.v", "ctnn_top.v", "ctnn_tb.v")
PACKAGES = {"iverilog": "iverilog", "vvp": "iverilog", "verilator": "verilator", "yosys": "yosys",
            "nextpnr-ice40": "nextpnr-ice40"}  # fmt: skip
TIMEOUT = 1800


def find_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolchainError(
            f"{name} not found on PATH: install it (Debian/Ubuntu: apt-get install {PACKAGES.get(name, name)})"
        )
    return path


def _run(cmd: list[str], cwd: Path, what: str) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"{what} did not finish in {TIMEOUT} s") from None
    if proc.returncode != 0:
        raise ToolchainError(
            f"{what} failed ({' '.join(cmd[:3])} ...):\n{(proc.stdout + proc.stderr).strip()[-3000:]}"
        )
    return proc.stdout + proc.stderr


@dataclass(frozen=True)
class SimResult:
    simulator: str
    vectors: int
    fails: int  # mismatches the testbench itself found against the reference vectors
    latency_cycles: int  # from the input handshake to out_valid (the same for every vector)
    cycles: int


def pack(values: list[np.ndarray], bits: list[int]) -> list[str]:
    """One hex line per sample: every element of every tensor in order, each in its container's bits."""
    n = len(values[0])
    total = sum(b * v.reshape(n, -1).shape[1] for v, b in zip(values, bits))
    lines = []
    flat = [v.reshape(n, -1).astype(np.int64) for v in values]
    for i in range(n):
        word, at = 0, 0
        for v, b in zip(flat, bits):
            mask = (1 << b) - 1
            for x in v[i].tolist():
                word |= (x & mask) << at
                at += b
        lines.append(f"{word:0{-(-total // 4)}x}")
    return lines


def unpack(lines: list[str], specs: list[dict]) -> list[np.ndarray]:
    out = [np.empty((len(lines), s["elements"]), dtype=np.dtype(s["dtype"])) for s in specs]
    for i, line in enumerate(lines):
        word, at = int(line, 16), 0
        for s, o in zip(specs, out):
            b = s["bits"]
            signed = np.dtype(s["dtype"]).kind == "i"
            for j in range(s["elements"]):
                v = (word >> at) & ((1 << b) - 1)
                if signed and v >> (b - 1):
                    v -= 1 << b
                o[i, j] = v
                at += b
    return out


class FpgaModule:
    """An FPGA build simulated on integer codes; the self-checking testbench compares every
    output with the numpy reference of the graph stored in the build.

    >>> FpgaModule("build/hdl").run(codes)  # a build from build(..., target="fpga")  # doctest: +SKIP
    """

    def __init__(self, build_dir: str | os.PathLike[str], simulator: str = "iverilog"):
        self.build_dir = Path(build_dir)
        manifest = read_manifest(self.build_dir)
        if manifest["target"] != "fpga":
            raise DeployError(f"{build_dir}: a {manifest['target']!r} build, not an FPGA build")
        self.info = manifest["info"]
        self.inputs = tuple(TensorSpec.from_dict(s) for s in manifest["inputs"])
        self.outputs = tuple(TensorSpec.from_dict(s) for s in manifest["outputs"])
        self.simulator = simulator
        self.last: SimResult | None = None

    def run(self, feeds: np.ndarray | Mapping[str, np.ndarray], simulator: str | None = None):
        """Outputs for integer ``feeds``, simulated (``simulator``: "iverilog" or "verilator")."""
        from ctnn.quant import ReferenceInterpreter

        sim = simulator or self.simulator
        n, arrays, stacked = split_batch(self.inputs, feeds)
        if n == 0:
            raise ValueError("no samples to simulate")
        ref = ReferenceInterpreter(self.build_dir / "model.onnx").run(
            {
                s.name: a.reshape((n * s.shape[0], *s.shape[1:])) if s.batched else a
                for s, a in zip(self.inputs, arrays)
            }
        )
        in_lines = pack(list(arrays), [b["bits"] for b in self.info["inputs"]])
        ref_lines = pack(
            [ref[s.name].reshape(n, -1) for s in self.outputs], [b["bits"] for b in self.info["outputs"]]
        )
        with tempfile.TemporaryDirectory(prefix="ctnn-sim-") as tmp:
            work = Path(tmp)
            for name in self.info["files"]:
                shutil.copyfile(self.build_dir / name, work / name)
            (work / "vectors_in.hex").write_text("\n".join(in_lines) + "\n")
            (work / "vectors_ref.hex").write_text("\n".join(ref_lines) + "\n")
            log = self._simulate(sim, work, n)
            m = re.search(
                r"CTNN_RESULT vectors=(\d+) fails=(\d+) latency_min=(\d+) latency_max=(\d+) cycles=(\d+)", log
            )
            if m is None:
                raise ToolchainError(f"{sim}: the testbench did not finish:\n{log.strip()[-2000:]}")
            vectors, fails, lmin, lmax, cycles = (int(g) for g in m.groups())
            if lmin != lmax:
                raise DeployError(
                    f"latency varies between vectors ({lmin}..{lmax} cycles); the schedule is static"
                )
            self.last = SimResult(sim, vectors, fails, lmin, cycles)
            lines = (work / "sim_out.hex").read_text().split()
        outs = unpack(lines, self.info["outputs"])
        outs = [o.reshape((n, *s.shape)) for o, s in zip(outs, self.outputs)]
        return join_batch(self.outputs, outs, stacked)

    __call__ = run

    def _simulate(self, sim: str, work: Path, n: int) -> str:
        if sim == "iverilog":
            iverilog, vvp = find_tool("iverilog"), find_tool("vvp")
            _run([iverilog, "-g2012", "-o", "tb.vvp", f"-Pctnn_tb.NMAX={n}", *SOURCES], work, "iverilog")
            return _run([vvp, "-n", "tb.vvp", f"+N={n}"], work, "vvp")
        if sim == "verilator":
            verilator = find_tool("verilator")
            cmd = [verilator, "--binary", "--timing", "-j", "2", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                   "--top-module", "ctnn_tb", f"-GNMAX={n}", "-O2", "--Mdir", "obj", "-o", "Vtb", *SOURCES]  # fmt: skip
            _run(cmd, work, "verilator")
            return _run([str(work / "obj" / "Vtb"), f"+N={n}"], work, "the Verilator model")
        raise DeployError(f"unknown simulator {sim!r}; use iverilog or verilator")

    def __repr__(self) -> str:
        return f"FpgaModule({str(self.build_dir)!r})"
