"""Shared builds: each model is lowered, built for every target and compiled once per session.

Tests that need an optional tool (arm-none-eabi-gcc, qemu-system-arm, iverilog, verilator,
yosys, nextpnr-ice40) skip when it is missing and say which Debian package provides it;
CI installs them all, so nothing skips there.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

import numpy as np
import onnx
import pytest

from ctnn.deploy._testing import gated_rnn, ltc_cell
from ctnn.quant import ReferenceInterpreter, random_integer_mlp

N_SAMPLES = 1000  # host targets
N_MCU = 200  # each emulated core
CORES = ("cortex-m3", "cortex-m4")

# name -> (layer sizes, weight bits). "3layer" has 520 inputs: the int16 scratch row of its
# first dense layer (ctnn_dot_prep) is 1040 bytes, above TVM's 1 KiB stack limit, so it
# exercises the workspace arena.
MODELS = {
    "mlp64-w8": ([64, 32, 10], 8),
    "mlp64-w4": ([64, 32, 10], 4),
    "3layer-w8": ([520, 96, 48, 10], 8),
}
#: hand-built recurrent graphs (Slice/Concat/Split/Gather/Where/Equal/Div/ReduceSum...)
GRAPHS = {
    "gated_rnn": lambda: gated_rnn(features=8, hidden=16, classes=4, steps=5, seed=1),
    "ltc16": lambda: ltc_cell(units=16, features=8, classes=4, steps=4, unfolds=3, seed=2),
}

#: optional tool -> the Debian/Ubuntu package(s) to install
TOOLS = {
    "arm-none-eabi-gcc": "gcc-arm-none-eabi libnewlib-arm-none-eabi",
    "qemu-system-arm": "qemu-system-arm",
    "iverilog": "iverilog",
    "verilator": "verilator",
    "yosys": "yosys",
    "nextpnr-ice40": "nextpnr-ice40",
    "cmake": "cmake",
    "make": "make",
    "gcc": "gcc",
}


def require(tool: str) -> str:
    """Skip the calling test unless ``tool`` is installed, naming the package to install."""
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian/Ubuntu: apt-get install {TOOLS.get(tool, tool)})")
    return path


def random_codes(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Random int8 codes over the whole range, with the extremes -128 and 127 always present."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(n, *shape)).astype(np.int8)
    x[0], x[1], x[2] = -128, 127, 0
    x.reshape(n, -1)[3, ::2], x.reshape(n, -1)[3, 1::2] = -128, 127
    x[4:20] = rng.choice(np.array([-128, 127], np.int8), size=(16, *shape))  # saturating inputs
    return x


@dataclass
class Case:
    name: str
    model: onnx.ModelProto
    x: np.ndarray
    refs: dict[str, np.ndarray]
    tmp: object
    builds: dict = field(default_factory=dict)

    @property
    def ref(self) -> np.ndarray:
        return self.refs["y"]

    @property
    def lowered(self):
        """Lowered for the llvm target (TVM's own matmul)."""
        from ctnn.deploy import lower

        if "lowered" not in self.builds:
            self.builds["lowered"] = lower(self.model)
        return self.builds["lowered"]

    @property
    def host(self):
        from ctnn.deploy import build_host

        if "host" not in self.builds:
            self.builds["host"] = build_host(self.lowered)
        return self.builds["host"]

    def build(self, target: str, **options):
        """The build for ``target`` (one per session)."""
        from ctnn.deploy import build

        key = (target, tuple(sorted(options.items())))
        if key not in self.builds:
            out = self.tmp / "-".join([target, *(f"{k}{v}" for k, v in key[1])])
            self.builds[key] = build(self.model, target=target, out_dir=out, **options)
        return self.builds[key]

    @property
    def c_build(self):
        return self.build("c")


def _make_case(name: str, model: onnx.ModelProto, seed: int, tmp_path_factory) -> Case:
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    x = random_codes(N_SAMPLES, tuple(dims), seed=seed)
    refs = ReferenceInterpreter(model).run({"x": x})
    return Case(name, model, x, refs, tmp_path_factory.mktemp(name))


_CASES: dict[str, Case] = {}  # one Case (and its builds) per model per session


def _mlp_case(name: str, tmp_path_factory) -> Case:
    if name not in _CASES:
        sizes, wbits = MODELS[name]
        model = random_integer_mlp(sizes, weight_bits=wbits, seed=len(sizes) * 10 + wbits).to_onnx()
        _CASES[name] = _make_case(name, model, wbits, tmp_path_factory)
    return _CASES[name]


@pytest.fixture(scope="session", params=sorted(MODELS))
def case(request, tmp_path_factory) -> Case:
    return _mlp_case(request.param, tmp_path_factory)


@pytest.fixture(scope="session")
def digits_case(tmp_path_factory) -> Case:
    """The 8-bit 64-32-10 MLP (the size of the digits benchmark), shared with ``case``."""
    return _mlp_case("mlp64-w8", tmp_path_factory)


@pytest.fixture(scope="session", params=sorted(GRAPHS))
def graph_case(request, tmp_path_factory) -> Case:
    return _make_case(request.param, GRAPHS[request.param](), 7, tmp_path_factory)


@pytest.fixture(scope="session")
def gated_case(tmp_path_factory) -> Case:
    """The hand-built gated RNN alone (the FPGA's Verilator test)."""
    return _make_case("gated_rnn", GRAPHS["gated_rnn"](), 7, tmp_path_factory)


@pytest.fixture(scope="session")
def small_model() -> onnx.ModelProto:
    return random_integer_mlp([16, 8, 4], weight_bits=8, seed=3).to_onnx()


@pytest.fixture
def gcc() -> str:
    """Skip a test that compiles C when gcc is missing."""
    return require("gcc")


@pytest.fixture
def arm_gcc() -> str:
    return require("arm-none-eabi-gcc")


@pytest.fixture
def qemu(arm_gcc) -> str:
    return require("qemu-system-arm")


@pytest.fixture
def require_tool():
    """``require_tool(name)`` skips the test unless the tool is installed."""
    return require
