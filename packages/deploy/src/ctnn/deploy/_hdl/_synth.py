"""Synthesis reports of an FPGA build: yosys (iCE40, ECP5, Xilinx 7-series) and nextpnr-ice40."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from .._errors import DeployError
from .._manifest import read_manifest
from ._sim import _run, find_tool

#: family -> (yosys synthesis command, cell type -> resource class)
FAMILIES: dict[str, tuple[str, dict[str, str]]] = {
    "ice40": ("synth_ice40 -top ctnn_top", {
        r"SB_LUT4": "lut", r"SB_DFF\w*": "ff", r"SB_MAC16": "dsp", r"SB_RAM40_4K\w*": "bram", r"SB_CARRY": "carry",
    }),
    "ice40-dsp": ("synth_ice40 -dsp -top ctnn_top", {
        r"SB_LUT4": "lut", r"SB_DFF\w*": "ff", r"SB_MAC16": "dsp", r"SB_RAM40_4K\w*": "bram", r"SB_CARRY": "carry",
    }),
    "ecp5": ("synth_ecp5 -top ctnn_top", {
        r"LUT4": "lut", r"TRELLIS_FF": "ff", r"MULT18X18D": "dsp", r"ALU54B": "dsp", r"DP16KD": "bram",
        r"TRELLIS_DPR16X4": "lutram", r"CCU2C": "carry", r"PFUMX|L6MUX21": "mux",
    }),
    "xilinx": ("synth_xilinx -family xc7 -top ctnn_top", {
        r"LUT[1-6]": "lut", r"FD[RSCP]E": "ff", r"DSP48E1": "dsp", r"RAMB18E1": "bram", r"RAMB36E1": "bram36",
        r"RAM\d+[SMXD]\w*": "lutram", r"CARRY4": "carry", r"MUXF[78]": "mux", r"SRL\w+": "srl",
    }),
}  # fmt: skip


def _parse_stat(text: str, classes: dict[str, str]) -> dict[str, int]:
    cells = dict((m.group(1), int(m.group(2))) for m in re.finditer(r"^\s+(\S+)\s+(\d+)\s*$", text, re.M))
    out: dict[str, int] = {}
    for cell, count in cells.items():
        for pat, cls in classes.items():
            if re.fullmatch(pat, cell):
                out[cls] = out.get(cls, 0) + count
                break
    out.setdefault("lut", 0)
    out.setdefault("ff", 0)
    out.setdefault("dsp", 0)
    out.setdefault("bram", 0)
    return out


def synthesize(build_dir: str | os.PathLike[str], family: str = "ice40", json_out: str | None = None) -> dict:
    """Run yosys on an FPGA build; return the resources (lut, ff, dsp, bram, ...) and the cell counts."""
    if family not in FAMILIES:
        raise DeployError(f"unknown FPGA family {family!r}; available: {', '.join(FAMILIES)}")
    d = Path(build_dir)
    info = read_manifest(d)["info"]
    yosys = find_tool("yosys")
    cmd, classes = FAMILIES[family]
    if json_out:
        cmd += f" -json {json_out}"
    script = f"read_verilog -defer ctnn_lib.v ctnn_top.v; {cmd}; tee -o stat_{family}.txt stat"
    with tempfile.TemporaryDirectory(prefix="ctnn-yosys-") as tmp:
        work = Path(tmp)
        for name in info["files"]:
            shutil.copyfile(d / name, work / name)
        _run([yosys, "-q", "-p", script], work, f"yosys {family}")
        text = (work / f"stat_{family}.txt").read_text()
        if json_out:
            shutil.copyfile(work / json_out, d / json_out)
    res = _parse_stat(text, classes)
    return {"family": family, **res, "latency_cycles": info["latency_cycles"], "reuse": info["reuse"]}


def place_and_route_ice40(
    build_dir: str | os.PathLike[str], device: str = "hx8k", package: str = "ct256", freq_mhz: float = 12.0
) -> dict:
    """yosys synth_ice40 + nextpnr-ice40; return the achieved clock frequency (or why it does not fit)."""
    d = Path(build_dir)
    nextpnr = find_tool("nextpnr-ice40")
    info = read_manifest(d)["info"]
    synth = synthesize(d, "ice40", json_out="ctnn_ice40.json")
    with tempfile.TemporaryDirectory(prefix="ctnn-pnr-") as tmp:
        cmd = [nextpnr, f"--{device}", "--package", package, "--json", str(d / "ctnn_ice40.json"),
               "--pcf-allow-unconstrained", "--freq", str(freq_mhz), "--asc", str(Path(tmp) / "out.asc")]  # fmt: skip
        import subprocess

        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    log = proc.stdout + proc.stderr
    util = {
        m.group(1): (int(m.group(2)), int(m.group(3)))
        for m in re.finditer(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)", log)
    }
    fmax = [float(v) for v in re.findall(r"Max frequency for clock\s+'[^']*':\s+([\d.]+) MHz", log)]
    result = {
        "device": f"{device}-{package}",
        "synth": synth,
        "utilisation": util,
        "latency_cycles": info["latency_cycles"],
    }
    if proc.returncode != 0 or not fmax:
        err = re.search(r"ERROR: (.*)", log)
        return {**result, "fits": False, "error": err.group(1) if err else log.strip()[-500:]}
    return {**result, "fits": True, "fmax_mhz": min(fmax)}
