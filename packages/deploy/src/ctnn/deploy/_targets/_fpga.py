"""Target "fpga": synthesizable Verilog from the TVM-optimized Relax graph, simulated and synthesized.

TVM has no FPGA backend any more and Debian has no HLS tool, so ctnn maps the Relax graph
(after TVM's import and FoldConstant and ctnn's exact rewrites) onto a library of
parameterized Verilog modules, one per op kind (see :mod:`ctnn.deploy._hdl`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._frontend import Lowered
from .._hdl import build_netlist, write_hdl
from .._hdl._sim import pack


class FpgaTarget:
    name = "fpga"
    aliases: tuple[str, ...] = ("verilog",)
    lowering: dict[str, Any] = {}
    description = "synthesizable Verilog (ctnn_top with valid/ready streams) + self-checking testbench"

    def build(self, lowered: Lowered, out_dir: Path, *, reuse: int = 1, vectors: int = 64) -> dict[str, Any]:
        """Write the Verilog; ``reuse`` is the dense layers' reuse factor (multiplications per multiplier);
        ``vectors`` reference vectors go with it so that the testbench runs as is."""
        net = build_netlist(lowered.graph, reuse=reuse)
        info = write_hdl(net, out_dir)
        if vectors:
            import numpy as np

            from ctnn.quant import ReferenceInterpreter

            rng = np.random.default_rng(0)
            feeds = {}
            for s in lowered.inputs:
                lo, hi = np.iinfo(np.dtype(s.dtype)).min, np.iinfo(np.dtype(s.dtype)).max
                feeds[s.name] = rng.integers(
                    lo, hi + 1, size=(vectors, *s.shape[1:]) if s.batched else s.shape
                )
                feeds[s.name] = feeds[s.name].astype(np.dtype(s.dtype))
            ref = ReferenceInterpreter(lowered.model).run(feeds)
            ins = [feeds[s.name].reshape(vectors, -1) for s in lowered.inputs]
            outs = [ref[s.name].reshape(vectors, -1) for s in lowered.outputs]
            (out_dir / "vectors_in.hex").write_text(
                "\n".join(pack(ins, [b["bits"] for b in info["inputs"]])) + "\n"
            )
            (out_dir / "vectors_ref.hex").write_text(
                "\n".join(pack(outs, [b["bits"] for b in info["outputs"]])) + "\n"
            )
        (out_dir / "Makefile").write_text(_makefile(vectors))
        return info

    def load(self, build_dir: Path):
        from .._hdl._sim import FpgaModule

        return FpgaModule(build_dir)


def _makefile(vectors: int) -> str:
    return f"""# Simulate and synthesize the generated Verilog (ctnn-deploy).
# Debian/Ubuntu: apt-get install iverilog verilator yosys nextpnr-ice40
SRC := ctnn_lib.v ctnn_top.v
N ?= {vectors}

sim: ## iverilog: stream vectors_in.hex through ctnn_top, check against vectors_ref.hex
\tiverilog -g2012 -o tb.vvp -Pctnn_tb.NMAX=$(N) $(SRC) ctnn_tb.v && vvp -n tb.vvp +N=$(N)

sim-verilator:
\tverilator --binary --timing -Wno-fatal -Wno-lint -Wno-style --top-module ctnn_tb -GNMAX=$(N) --Mdir obj -o Vtb $(SRC) ctnn_tb.v && obj/Vtb +N=$(N)

synth-ice40:
\tyosys -p "read_verilog $(SRC); synth_ice40 -top ctnn_top -json ctnn_ice40.json; stat"
synth-ecp5:
\tyosys -p "read_verilog $(SRC); synth_ecp5 -top ctnn_top; stat"
synth-xilinx:
\tyosys -p "read_verilog $(SRC); synth_xilinx -top ctnn_top -family xc7; stat"

.PHONY: sim sim-verilator synth-ice40 synth-ecp5 synth-xilinx
"""


from . import register_target  # noqa: E402

register_target(FpgaTarget())
