"""Quantized families (ctnn-quant: Lipschitz RNN, CT-RNN, LTC, LEM, ContinuousNet) compiled by
ctnn-deploy equal the integer reference: llvm and C (1000 inputs), emulated Cortex-M3/M4 (100
inputs per core, one firmware run each), the FPGA target in Verilator (1000 vectors)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ctnn.deploy import build  # noqa: E402
from ctnn.models import build_classifier, load_dataset, train_classifier  # noqa: E402
from ctnn.quant import ReferenceInterpreter, quantize_model, quantize_sequence_classifier  # noqa: E402

FAMILIES = {
    "lipschitz_rnn": dict(eps=0.2, gamma_a=0.1, gamma_w=0.1),
    "ctrnn": dict(ode_unfolds=2),
    "ltc": dict(ode_unfolds=3),
    "lem": dict(dt=1.0),
    "continuous_net": {},
}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


_GRAPHS: dict = {}  # (family, bits, state_bits) -> graph: each model is trained once per session


def _graph(family: str, data, bits: int, state_bits: int | None = None):
    if (family, bits, state_bits) not in _GRAPHS:
        _GRAPHS[family, bits, state_bits] = _train(family, data, bits, state_bits)
    return _GRAPHS[family, bits, state_bits]


def _train(family: str, data, bits: int, state_bits: int | None = None):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_classifier(family, data, units=8, **FAMILIES.get(family, {}))
    train_classifier(model, data, epochs=2, seed=0, progress=False)
    if family == "continuous_net":  # not a sequence model: quant's one PTQ entry point
        return quantize_model(model, data.X_train, weight_bits=bits, act_bits=bits).to_onnx()
    opts = {} if state_bits is None else {"state_bits": state_bits}
    return quantize_sequence_classifier(
        model, data.X_train, weight_bits=bits, act_bits=bits, **opts
    ).to_onnx()


def _inputs(data, n_random: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, size=(n_random, 64)).astype(np.int8)
    x[0], x[1] = -128, 127
    return x


@pytest.mark.parametrize("bits", [8, 6])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_host_builds_are_bit_exact(digits, family, bits, tmp_path):
    model = _graph(family, digits, bits)
    x = _inputs(digits, 1000, seed=bits)
    ref = ReferenceInterpreter(model).run({"x": x})["y"]
    assert len(np.unique(ref)) > 3  # a degenerate output would make the comparison vacuous
    for target in ("llvm", "c"):
        got = build(model, target=target, out_dir=tmp_path / target).load().run(x)
        np.testing.assert_array_equal(got, ref, err_msg=f"{family} {bits}-bit on {target}")


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install: {', '.join(APT[t] for t in missing)})")


APT = {
    "arm-none-eabi-gcc": "gcc-arm-none-eabi libnewlib-arm-none-eabi",
    "qemu-system-arm": "qemu-system-arm",
    "verilator": "verilator",
}
N_MCU = 100  # inputs per emulated core: one firmware run handles them all


@pytest.mark.parametrize("core", ["cortex-m3", "cortex-m4"])
@pytest.mark.parametrize("family", ["continuous_net", "lem", "lipschitz_rnn", "ltc"])
def test_families_on_emulated_cortex_m_cores_are_bit_exact(digits, family, core, tmp_path):
    _need("arm-none-eabi-gcc", "qemu-system-arm")
    model = _graph(family, digits, 8)
    x = _inputs(digits, N_MCU, seed=4)
    ref = ReferenceInterpreter(model).run({"x": x})["y"]
    assert len(np.unique(ref)) > 3
    got = build(model, target=core, out_dir=tmp_path / core).load().run(x)
    np.testing.assert_array_equal(got, ref, err_msg=f"{family} on {core}")


def test_lipschitz_rnn_on_the_fpga_is_bit_exact_on_1000_vectors(digits, tmp_path):
    """The Verilog build of a quantized Lipschitz RNN (tanh LUT ROM, one MAC engine per weight
    matrix shared by every unrolled step) under Verilator; the testbench checks itself too."""
    _need("verilator")
    model = _graph("lipschitz_rnn", digits, 8)
    x = _inputs(digits, 1000, seed=5)
    ref = ReferenceInterpreter(model).run({"x": x})["y"]
    res = build(model, target="fpga", out_dir=tmp_path / "hdl", reuse=4)
    sim = res.load()
    np.testing.assert_array_equal(sim.run(x, simulator="verilator"), ref)
    assert sim.last.fails == 0 and sim.last.vectors == 1000
    assert res.info["netlist"]["engines"] < res.info["netlist"]["stages"]


@pytest.mark.parametrize("family", ["lipschitz_rnn", "lstm"])
def test_wide_state_graphs_build_bit_exact(digits, family, tmp_path):
    """The pipeline quantizes these families with a 16-bit state read through an 8-bit view
    (``state_bits=16``): int16 state tensors and their narrowing requantization, on llvm, C and
    (when the toolchain is there) an emulated Cortex-M4."""
    model = _graph(family, digits, 8, state_bits=16)
    to_int16 = [
        n for n in model.graph.node if n.op_type == "Cast" and n.attribute[0].i == 5
    ]  # TensorProto.INT16
    assert len(to_int16) >= 8, "the state is not held in int16"  # one per step at least (digits: 8 rows)
    x = _inputs(digits, 1000, seed=6)
    ref = ReferenceInterpreter(model).run({"x": x})["y"]
    assert len(np.unique(ref)) > 3
    for target in ("llvm", "c"):
        got = build(model, target=target, out_dir=tmp_path / target).load().run(x)
        np.testing.assert_array_equal(got, ref, err_msg=f"{family} with a 16-bit state on {target}")
    _need("arm-none-eabi-gcc", "qemu-system-arm")
    got = build(model, target="cortex-m4", out_dir=tmp_path / "m4").load().run(x[:N_MCU])
    np.testing.assert_array_equal(got, ref[:N_MCU], err_msg=f"{family} with a 16-bit state on cortex-m4")
