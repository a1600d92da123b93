"""Quantized recurrent families (ctnn-quant) compiled by ctnn-deploy equal the integer reference."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ctnn.deploy import build  # noqa: E402
from ctnn.models import build_classifier, load_dataset, train_classifier  # noqa: E402
from ctnn.quant import ReferenceInterpreter, quantize_sequence_classifier  # noqa: E402

FAMILIES = {
    "lipschitz_rnn": dict(eps=0.2, gamma_a=0.1, gamma_w=0.1),
    "ctrnn": dict(ode_unfolds=2),
    "ltc": dict(ode_unfolds=3),
    "lem": dict(dt=1.0),
}


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def _graph(family: str, data, bits: int):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_classifier(family, data, units=8, **FAMILIES[family])
    train_classifier(model, data, epochs=2, seed=0, progress=False)
    return quantize_sequence_classifier(model, data.X_train, weight_bits=bits, act_bits=bits).to_onnx()


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


@pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
    reason="needs gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm (apt-get install)",
)
def test_ltc_on_an_emulated_cortex_m4_is_bit_exact(digits, tmp_path):
    model = _graph("ltc", digits, 8)
    x = _inputs(digits, 100, seed=4)
    ref = ReferenceInterpreter(model).run({"x": x})["y"]
    got = build(model, target="cortex-m4", out_dir=tmp_path / "m4").load().run(x)
    np.testing.assert_array_equal(got, ref)
