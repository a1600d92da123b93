"""ctnn-deploy: compile integer ONNX graphs with TVM, bit-exact, for hosts, Cortex-M cores and FPGAs.

The graph (ctnn's integer dialect, see ctnn-quant) is imported into TVM Relax, fused
and optimised, and built for a target from a registry: ``"llvm"`` (alias ``"host"``:
TVM's LLVM backend and Relax VM), ``"c"`` (standalone C: TVM's kernels plus a small
generated ``model.c`` with static buffers and ``const`` int8 weights, no TVM runtime),
``"cortex-m3"``/``"cortex-m4"`` (that C as bare-metal firmware, cross-compiled and run
under QEMU) and ``"fpga"`` (Verilog simulated with iverilog/Verilator, synthesized with yosys).

>>> from ctnn.quant import random_integer_mlp
>>> from ctnn.deploy import build
>>> res = build(random_integer_mlp([64, 32, 10]).to_onnx(), target="c", out_dir="build/mlp")  # doctest: +SKIP
>>> res.load().run(codes)  # gcc-compiled, [N, 64] int8 -> [N, 10] int8   # doctest: +SKIP
"""

from ._build import BuildResult, build
from ._errors import DeployError, FrontendError, ToolchainError
from ._frontend import PIPELINE, Lowered, lower
from ._hdl._sim import FpgaModule, SimResult
from ._hdl._synth import place_and_route_ice40, synthesize
from ._qemu import QemuModule, Timing
from ._spec import TensorSpec
from ._targets import TARGETS, Target, get_target, register_target
from ._targets._llvm import HostModule, build_host
from ._toolchain import CModule, compile_c

__version__ = "0.3.0"

__all__ = [
    "build", "BuildResult", "build_host", "HostModule", "compile_c", "CModule", "QemuModule",
    "Timing", "FpgaModule", "SimResult", "synthesize", "place_and_route_ice40",
    "lower", "Lowered", "PIPELINE", "TensorSpec", "TARGETS", "Target", "get_target",
    "register_target", "DeployError", "FrontendError", "ToolchainError", "__version__",
]  # fmt: skip
