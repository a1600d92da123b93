"""Shared TVM builds: each model is lowered, built for the host and as C, and compiled once per session."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import numpy as np
import onnx
import pytest

from ctnn.quant import ReferenceInterpreter, random_integer_mlp

N_SAMPLES = 1000

# name -> (layer sizes, weight bits). "3layer" has a 160-wide hidden layer: its fused
# kernels need more than TVM's stack limit, so it exercises the workspace arena.
MODELS = {
    "mlp64-w8": ([64, 32, 10], 8),
    "mlp64-w4": ([64, 32, 10], 4),
    "3layer-w8": ([96, 160, 48, 10], 8),
}


def random_codes(n: int, features: int, seed: int) -> np.ndarray:
    """Random int8 codes over the whole range, with the extremes -128 and 127 always present."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(n, features)).astype(np.int8)
    x[0], x[1], x[2] = -128, 127, 0
    x[3, ::2], x[3, 1::2] = -128, 127
    x[4:20] = rng.choice(np.array([-128, 127], np.int8), size=(16, features))  # saturating inputs
    return x


@dataclass
class Case:
    name: str
    model: onnx.ModelProto
    x: np.ndarray
    ref: np.ndarray
    lowered: object
    tmp: object

    _host = None
    _c = None

    @property
    def host(self):
        from ctnn.deploy import build_host

        if self._host is None:
            self._host = build_host(self.lowered)
        return self._host

    @property
    def c_build(self):
        from ctnn.deploy import build

        if self._c is None:
            self._c = build(self.lowered, target="c", out_dir=self.tmp / "c")
        return self._c


@pytest.fixture(scope="session", params=sorted(MODELS))
def case(request, tmp_path_factory) -> Case:
    from ctnn.deploy import lower

    sizes, wbits = MODELS[request.param]
    model = random_integer_mlp(sizes, weight_bits=wbits, seed=len(sizes) * 10 + wbits).to_onnx()
    x = random_codes(N_SAMPLES, sizes[0], seed=wbits)
    ref = ReferenceInterpreter(model).run({"x": x})["y"]
    tmp = tmp_path_factory.mktemp(request.param)
    return Case(request.param, model, x, ref, lower(model), tmp)


@pytest.fixture(scope="session")
def small_model() -> onnx.ModelProto:
    return random_integer_mlp([16, 8, 4], weight_bits=8, seed=3).to_onnx()


@pytest.fixture
def gcc() -> str:
    """Skip a test that compiles C when gcc is missing."""
    path = shutil.which("gcc")
    if path is None:
        pytest.skip("gcc is not installed")
    return path
