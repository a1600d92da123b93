"""Bad queries fail with errors that say what is wrong; a bad witness is a loud bug."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from ctnn.quant import DialectError, random_integer_mlp
from ctnn.verify import EpsError, SampleError, UnsupportedError, VerifyError, WitnessError, verify_robustness


@pytest.fixture(scope="module")
def model():
    return random_integer_mlp([3, 4, 3], weight_bits=4, act_bits=4, in_bits=4, seed=1).to_onnx()


X = np.array([1, -2, 3])


def test_negative_eps_names_the_value(model):
    with pytest.raises(EpsError, match="eps must be >= 0, got -2"):
        verify_robustness(model, X, -2)
    with pytest.raises(EpsError, match="got -1"):
        verify_robustness(model, X, [0, -1, 2])


@pytest.mark.parametrize("eps", [0.5, "2", None, True, float("nan"), [1, 2]])
def test_eps_that_is_not_an_integer_or_has_the_wrong_shape(model, eps):
    with pytest.raises(EpsError):
        verify_robustness(model, X, eps)


def test_integral_float_eps_is_accepted(model):
    assert verify_robustness(model, X, 2.0, input_range=(-8, 7)).eps == 2


def test_sample_that_does_not_fit(model):
    with pytest.raises(SampleError, match=r"shape \[4\].*takes 3 values"):
        verify_robustness(model, np.zeros(4, int), 1)
    with pytest.raises(SampleError, match="value 9 at index 1 is outside the input code range \\[-8, 7\\]"):
        verify_robustness(model, np.array([0, 9, 0]), 1, input_range=(-8, 7))
    with pytest.raises(SampleError, match="value 200 at index 0 .* \\[-128, 127\\]"):
        verify_robustness(model, np.array([200, 0, 0]), 1)  # the int8 dtype's range by default
    with pytest.raises(SampleError, match="integers"):
        verify_robustness(model, np.array([0.5, 0, 0]), 1)
    with pytest.raises(SampleError, match="label must be an integer in \\[0, 3\\)"):
        verify_robustness(model, X, 1, label=3)
    with pytest.raises(SampleError, match="input range"):
        verify_robustness(model, X, 1, input_range=(5, -5))
    assert issubclass(SampleError, VerifyError) and issubclass(VerifyError, ValueError)


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_workers_must_be_a_positive_integer(model, workers):
    with pytest.raises(VerifyError, match=f"workers must be a positive integer, got {workers!r}"):
        verify_robustness(model, X, 1, input_range=(-8, 7), workers=workers)


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf"), True, "5", None])
def test_timeout_must_be_a_positive_number(model, timeout):
    from ctnn.verify import (
        float_int_gap,
        max_difference,
        verify_argmax_equivalence,
        verify_bias,
        verify_equivalence,
        verify_targeted,
        verify_vnnlib,
    )

    box = (np.array([-8, -8, -8]), np.array([7, 7, 7]))
    prop = "".join(f"(declare-const X_{i} Real)(assert (>= X_{i} -1))(assert (<= X_{i} 1))" for i in range(3))
    prop += "(declare-const Y_0 Real)(declare-const Y_1 Real)(declare-const Y_2 Real)(assert (> Y_0 100))"
    fm = [(np.ones((3, 4)), np.zeros(4)), (np.ones((4, 3)), np.zeros(3))]
    calls = [
        lambda t: verify_robustness(model, X, 1, input_range=(-8, 7), timeout_s=t),
        lambda t: verify_targeted(model, X, 1, target=0, input_range=(-8, 7), timeout_s=t),
        lambda t: verify_bias(model, sensitive=0, sensitive_values=[-8, 7], box=box, timeout_s=t),
        lambda t: verify_equivalence(model, model, box=box, timeout_s=t),
        lambda t: max_difference(model, model, box=box, timeout_s=t),
        lambda t: float_int_gap(fm, model, box=box, input_quant=(1.0, 0), output_quant=(1.0, 0), timeout_s=t),
        lambda t: verify_argmax_equivalence(model, model, box=box, timeout_s=t),
        lambda t: verify_vnnlib(model, prop, timeout_s=t, units="codes", input_range=(-8, 7)),
    ]
    for call in calls:
        with pytest.raises(
            VerifyError, match=f"timeout_s must be a positive number of seconds, got {timeout!r}"
        ):
            call(timeout)
    assert calls[0](5).verdict in ("robust", "vulnerable")
    assert calls[-1](5).verdict == "robust"  # the same property, well-formed apart from the timeout


def test_a_1xF_sample_is_accepted(model):
    r = verify_robustness(model, X[None, :], 0, input_range=(-8, 7))
    assert r.verdict == "robust" and r.method == "interval"


def test_files_that_are_not_onnx_or_outside_the_dialect(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf \x00\xff")
    with pytest.raises(DialectError, match="junk.onnx: not an ONNX model"):
        verify_robustness(junk, X, 1)
    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="act")], "f",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )  # fmt: skip
    p = tmp_path / "float.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), p)
    with pytest.raises(DialectError, match="node 'act' uses op 'Relu'"):
        verify_robustness(p, X, 1)
    with pytest.raises(DialectError, match="no such file"):
        verify_robustness(tmp_path / "absent.onnx", X, 1)


def test_two_inputs_are_unsupported():
    g = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])], "two",
        [helper.make_tensor_value_info(n, TensorProto.INT8, [1, 2]) for n in "ab"],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 2])],
    )  # fmt: skip
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedError, match="one input and one output"):
        verify_robustness(m, np.zeros(2, int), 1)


def test_a_witness_that_does_not_replay_is_a_loud_bug(model):
    from ctnn.verify._network import Network
    from ctnn.verify._properties import LocalRobustness
    from ctnn.verify._replay import replay

    net = Network(model, (-8, 7))
    lo, hi = np.full(3, -8), np.full(3, 7)
    label = int(np.argmax(net.reference(X)["y"]))
    with pytest.raises(WitnessError, match="does not violate"):
        replay(net, LocalRobustness(label), X, lo, hi)  # the sample keeps its own label
    with pytest.raises(WitnessError, match="outside the box"):
        replay(net, LocalRobustness(label), np.array([8, 0, 0]), lo, hi)
    y = net.reference(X)["y"].ravel()
    with pytest.raises(WitnessError, match="solver model's output"):
        replay(net, LocalRobustness((label + 1) % 3), X, lo, hi, expected=y + 1)
    assert not issubclass(WitnessError, ValueError)  # never mistaken for a user error
