"""ctnn-deploy: compile integer ONNX graphs with TVM, bit-exact, for hosts and microcontrollers.

The graph (ctnn's integer dialect, see ctnn-quant) is imported into TVM Relax, fused
and optimised, and built for a target from a registry: ``"llvm"`` (alias ``"host"``:
TVM's LLVM backend and Relax VM) or ``"c"`` (standalone C: TVM's kernels plus a small
generated ``model.c`` with static buffers and ``const`` weights, no TVM runtime).

>>> from ctnn.quant import random_integer_mlp
>>> from ctnn.deploy import build
>>> res = build(random_integer_mlp([64, 32, 10]).to_onnx(), target="c", out_dir="build/mlp")  # doctest: +SKIP
>>> res.load().run(codes)  # gcc-compiled, [N, 64] int8 -> [N, 10] int8   # doctest: +SKIP
"""

from ._build import BuildResult, build
from ._errors import DeployError, FrontendError, ToolchainError
from ._frontend import PIPELINE, Lowered, lower
from ._spec import TensorSpec
from ._targets import TARGETS, Target, get_target, register_target
from ._targets._llvm import HostModule, build_host
from ._toolchain import CModule, compile_c

__version__ = "0.1.0"

__all__ = [
    "build", "BuildResult", "build_host", "HostModule", "compile_c", "CModule",
    "lower", "Lowered", "PIPELINE", "TensorSpec", "TARGETS", "Target", "get_target",
    "register_target", "DeployError", "FrontendError", "ToolchainError", "__version__",
]  # fmt: skip
