"""Verilog generation for the "fpga" target: graph walk (:mod:`._graph`), emission (:mod:`._emit`),
simulation (:mod:`._sim`) and synthesis reports (:mod:`._synth`)."""

from ._emit import write_hdl
from ._graph import HDL_OPS, build_netlist

__all__ = ["HDL_OPS", "build_netlist", "write_hdl"]
