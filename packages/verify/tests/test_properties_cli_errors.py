"""The targeted/bias/equivalence CLI and the errors of bad relational queries, each naming the value."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from ctnn.quant import random_integer_mlp
from ctnn.verify import (
    BoxError,
    FloatMLP,
    SampleError,
    max_difference,
    verify_bias,
    verify_equivalence,
    verify_targeted,
)
from ctnn.verify._cli import main

RANGE = (-4, 3)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("rel")
    a = random_integer_mlp([3, 4, 2], weight_bits=4, act_bits=4, in_bits=3, seed=0).to_onnx()
    b = random_integer_mlp([3, 4, 2], weight_bits=4, act_bits=3, in_bits=3, seed=0).to_onnx()
    onnx.save(a, d / "a.onnx")
    onnx.save(b, d / "b.onnx")
    np.save(d / "x.npy", np.array([1, 0, -2]))
    np.save(d / "lo.npy", np.array([-4, -1, -4]))
    np.save(d / "hi.npy", np.array([3, 1, 3]))
    return d, a, b


def test_bad_queries_name_the_value(models):
    _, a, b = models
    with pytest.raises(SampleError, match="target label .* got 2"):
        verify_targeted(a, np.zeros(3), 1, target=2, input_range=RANGE)
    with pytest.raises(BoxError, match="sensitive feature 3 is out of range"):
        verify_bias(a, 3, input_range=RANGE)
    with pytest.raises(BoxError, match="sensitive feature -1 is out of range"):
        verify_bias(a, [0, -1], input_range=RANGE)
    with pytest.raises(BoxError, match="sensitive value 9 is outside the input code range"):
        verify_bias(a, 0, sensitive_values=[0, 9], input_range=RANGE)
    with pytest.raises(BoxError, match="upper bound 5 at feature 1 is outside the input code range"):
        verify_bias(a, 0, box=([-4, -4, -4], [3, 5, 3]), input_range=RANGE)
    with pytest.raises(BoxError, match="empty at feature 2"):
        verify_equivalence(a, b, box=([0, 0, 1], [0, 0, 0]), input_range=RANGE)
    with pytest.raises(SampleError, match="sample value 7 at index 0"):
        verify_equivalence(a, b, np.array([7, 0, 0]), 1, input_range=RANGE)
    with pytest.raises(BoxError, match="output 2 is out of range"):
        max_difference(a, b, output=2, input_range=RANGE)
    with pytest.raises(BoxError, match="units='real' needs the output scale"):
        verify_equivalence(a, b, units="real", input_range=RANGE)
    other = random_integer_mlp([2, 4, 2], weight_bits=4, act_bits=4, in_bits=3, seed=0).to_onnx()
    with pytest.raises(BoxError, match="different inputs: 3 values .* and 2"):
        verify_equivalence(a, other, input_range=RANGE)


def test_cli_subcommands(models, capsys):
    d, a, b = models
    rng = ["--input-range", "-4", "3"]
    assert (
        main(
            [
                "targeted",
                str(d / "a.onnx"),
                "--input",
                str(d / "x.npy"),
                "--eps",
                "1",
                "--target",
                "1",
                "--json",
                str(d / "t.json"),
                *rng,
            ]
        )
        == 0
    )
    t = json.loads((d / "t.json").read_text())
    assert t["property"] == "targeted" and t["label"] == 1 and t["verdict"] in ("vulnerable", "robust")
    assert (
        main(
            [
                "bias",
                str(d / "a.onnx"),
                "--sensitive",
                "1",
                "--values",
                "0",
                "2",
                "--box",
                str(d / "lo.npy"),
                str(d / "hi.npy"),
                "--json",
                str(d / "bias.json"),
                *rng,
            ]
        )
        == 0
    )
    bias = json.loads((d / "bias.json").read_text())
    assert bias["exact"] and bias["kind"] == "bias" and bias["witness"][0][1] != bias["witness"][1][1]
    direct = verify_bias(
        a, 1, sensitive_values=[0, 2], box=(np.load(d / "lo.npy"), np.load(d / "hi.npy")), input_range=RANGE
    )
    assert bias["gap"] == direct.gap
    assert (
        main(
            ["equivalence", str(d / "a.onnx"), str(d / "b.onnx"), "--max", "--json", str(d / "e.json"), *rng]
        )
        == 0
    )
    gap = json.loads((d / "e.json").read_text())["gap"]
    assert main(["equivalence", str(d / "a.onnx"), str(d / "b.onnx"), "--delta", str(gap), *rng]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("equivalent")
    assert main(["equivalence", str(d / "a.onnx"), str(d / "b.onnx"), "--delta", str(gap - 1), *rng]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("different")
    assert main(["bias", str(d / "a.onnx"), "--sensitive", "4", *rng]) == 2
    assert "sensitive feature 4 is out of range" in capsys.readouterr().err
    assert (
        main(
            ["targeted", str(d / "a.onnx"), "--input", str(d / "x.npy"), "--eps", "1", "--target", "5", *rng]
        )
        == 2
    )
    assert "got 5" in capsys.readouterr().err


def test_cli_float_gap(models, capsys):
    d, a, _ = models
    net = random_integer_mlp([3, 4, 2], weight_bits=4, act_bits=4, in_bits=3, seed=0)
    np.savez(
        d / "f.npz",
        **{f"W{i}": L.weight * 1.0 for i, L in enumerate(net.layers)},
        **{f"b{i}": L.bias * 1.0 for i, L in enumerate(net.layers)},
    )
    args = [
        "float-gap",
        str(d / "f.npz"),
        str(d / "a.onnx"),
        "--input-quant",
        "1",
        "0",
        "--output-quant",
        "0.125",
        "0",
        "--input-range",
        "-4",
        "3",
        "--json",
        str(d / "g.json"),
    ]
    assert main(args) == 0
    g = json.loads((d / "g.json").read_text())
    xs = np.array(list(np.ndindex(8, 8, 8))) - 4
    truth = np.abs(
        FloatMLP([L.weight * 1.0 for L in net.layers], [L.bias * 1.0 for L in net.layers]).forward(xs)
        - 0.125 * net.forward(xs)
    ).max()
    assert g["observed"] <= truth + 1e-9 <= g["bound"] + 2e-9
    assert capsys.readouterr().out.startswith("float-int gap <=")
    assert main(["float-gap", str(d / "f.npz"), str(d / "a.onnx"), "--input-range", "-4", "3"]) == 2
    assert "the input scale is needed" in capsys.readouterr().err
