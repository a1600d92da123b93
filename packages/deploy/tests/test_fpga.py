"""FPGA target: Verilog from the TVM-optimized graph, simulated bit-exact (iverilog, Verilator), synthesized."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from ctnn.quant import ReferenceInterpreter, random_integer_mlp


@pytest.fixture(scope="session")
def tiny_mlp():
    """The smallest model: 16-8-4, 8-bit (for synthesis and place-and-route)."""
    return random_integer_mlp([16, 8, 4], weight_bits=8, seed=3).to_onnx()


@pytest.fixture(scope="session")
def fpga_builds(tmp_path_factory):
    """Cache: (name, reuse) -> build."""
    return {}


def _fpga(cache, tmp_path_factory, name, model, reuse):
    from ctnn.deploy import build

    if (name, reuse) not in cache:
        cache[name, reuse] = build(model, target="fpga", out_dir=tmp_path_factory.mktemp(f"{name}-r{reuse}") / "hdl",
                                   reuse=reuse)  # fmt: skip
    return cache[name, reuse]


def _check(got, refs, n, label):
    got = got if isinstance(got, dict) else {next(iter(refs)): got}
    for name, ref in refs.items():
        g, r = got[name].reshape(n, -1), ref[:n].reshape(n, -1)
        bad = np.flatnonzero(np.any(g != r, axis=1))
        assert bad.size == 0, f"{label} {name}: {bad.size} of {n} vectors differ, first {bad[:5]}"


N_IVERILOG = 200  # iverilog runs ~3 us per multiply event; Verilator runs the large vector sets


@pytest.mark.parametrize("reuse", [1, 4, 16])
def test_mlp_simulates_bit_exact_with_iverilog(
    require_tool, digits_case, fpga_builds, tmp_path_factory, reuse
):
    """The 64-32-10 MLP for every reuse factor; the testbench checks itself too."""
    require_tool("iverilog")
    res = _fpga(fpga_builds, tmp_path_factory, "mlp64", digits_case.model, reuse)
    sim = res.load()
    x = digits_case.x[:N_IVERILOG]
    _check(sim.run(x), digits_case.refs, len(x), f"iverilog reuse={reuse}")
    assert sim.last.fails == 0 and sim.last.vectors == len(x)
    assert sim.last.latency_cycles == res.info["latency_cycles"]
    # fewer multipliers, more cycles
    k_layers = [(64, 32), (32, 10)]
    assert res.info["netlist"]["multipliers"] == sum(n * -(-k // min(reuse, k)) for k, n in k_layers)


def test_mlp_1000_vectors_with_verilator(require_tool, digits_case, fpga_builds, tmp_path_factory):
    require_tool("verilator")
    res = _fpga(fpga_builds, tmp_path_factory, "mlp64", digits_case.model, 4)
    sim = res.load()
    _check(sim.run(digits_case.x, simulator="verilator"), digits_case.refs, len(digits_case.x), "verilator")
    assert sim.last.fails == 0 and sim.last.vectors == len(digits_case.x) >= 1000


def test_small_mlp_1000_vectors_with_iverilog(require_tool, tiny_mlp, fpga_builds, tmp_path_factory):
    require_tool("iverilog")
    x = np.random.default_rng(4).integers(-128, 128, size=(1000, 16)).astype(np.int8)
    x[0], x[1] = -128, 127
    res = _fpga(fpga_builds, tmp_path_factory, "tiny", tiny_mlp, 16)
    sim = res.load()
    _check(sim.run(x), ReferenceInterpreter(tiny_mlp).run({"x": x}), 1000, "iverilog tiny")
    assert sim.last.fails == 0


def test_latency_grows_with_the_reuse_factor(digits_case, fpga_builds, tmp_path_factory):
    lat = [
        _fpga(fpga_builds, tmp_path_factory, "mlp64", digits_case.model, r).info["latency_cycles"]
        for r in (1, 4, 16)
    ]
    assert lat[0] < lat[1] < lat[2]


def test_recurrent_graph_simulates_bit_exact_with_verilator(
    require_tool, gated_case, fpga_builds, tmp_path_factory
):
    """The hand-built gated RNN on 1000 vectors: LUT ROMs (Gather), Where, Concat, Split, and one
    engine shared by every time step. (ctnn-quant's Lipschitz RNN runs 1000 vectors in Verilator in
    integration/tests/test_recurrent_deploy.py; the LTC's divider is checked with iverilog below.)"""
    require_tool("verilator")
    res = _fpga(fpga_builds, tmp_path_factory, gated_case.name, gated_case.model, 4)
    sim = res.load()
    got = sim.run(gated_case.x, simulator="verilator")
    _check(got, gated_case.refs, len(gated_case.x), f"verilator {gated_case.name}")
    assert sim.last.fails == 0 and sim.last.vectors >= 1000
    net = res.info["netlist"]
    assert net["engines"] < net["stages"], "the steps of an unrolled graph share their engines"


def test_recurrent_graph_simulates_with_iverilog_too(require_tool, graph_case, fpga_builds, tmp_path_factory):
    require_tool("iverilog")
    res = _fpga(fpga_builds, tmp_path_factory, graph_case.name, graph_case.model, 4)
    n = 30 if res.info["latency_cycles"] < 1000 else 4  # the LTC's divider takes thousands of cycles
    _check(res.load().run(graph_case.x[:n]), graph_case.refs, n, f"iverilog {graph_case.name}")


def test_build_writes_a_runnable_testbench(require_tool, tiny_mlp, tmp_path):
    """The build directory simulates as is: ROMs for $readmemh, reference vectors, a Makefile."""
    import subprocess

    from ctnn.deploy import build

    require_tool("iverilog")
    res = build(tiny_mlp, target="fpga", out_dir=tmp_path / "hdl", reuse=4)
    d = res.out_dir
    for name in ("ctnn_lib.v", "ctnn_top.v", "ctnn_tb.v", "vectors_in.hex", "vectors_ref.hex", "Makefile"):
        assert (d / name).is_file(), name
    top = (d / "ctnn_top.v").read_text()
    assert "module ctnn_top" in top and "in_valid" in top and "out_ready" in top
    assert re.search(r"ctnn_dense #\(.*\.R\(4\)", top) and "$readmemh" in (d / "ctnn_lib.v").read_text()
    proc = subprocess.run(["make", "-C", str(d), "sim"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"CTNN_RESULT vectors=64 fails=0", proc.stdout), proc.stdout[-500:]


def test_synthesis_reports_resources(require_tool, tiny_mlp, fpga_builds, tmp_path_factory):
    from ctnn.deploy import synthesize

    require_tool("yosys")
    low = _fpga(fpga_builds, tmp_path_factory, "tiny", tiny_mlp, 16)
    rep = synthesize(low.out_dir, "ecp5")
    assert (
        rep["lut"] > 0
        and rep["ff"] > 0
        and rep["dsp"] >= 1
        and rep["latency_cycles"] == low.info["latency_cycles"]
    )


def test_a_small_model_places_and_routes_on_ice40(require_tool, fpga_builds, tmp_path_factory):
    """yosys + nextpnr-ice40 on an 8-4-2 MLP (the benchmark routes the 16-8-4 one, ~45 s)."""
    from ctnn.deploy import place_and_route_ice40

    require_tool("yosys")
    require_tool("nextpnr-ice40")
    micro = random_integer_mlp([8, 4, 2], weight_bits=4, seed=1).to_onnx()
    res = _fpga(fpga_builds, tmp_path_factory, "micro", micro, 8)
    rep = place_and_route_ice40(res.out_dir)
    assert rep["fits"], rep
    assert rep["fmax_mhz"] > 5


def test_unsupported_graph_is_a_clear_error(tmp_path):
    from onnx import TensorProto, helper

    from ctnn.deploy import DeployError, build

    x = helper.make_tensor_value_info("x", TensorProto.INT32, ["N", 4])
    w = helper.make_tensor_value_info("w", TensorProto.INT32, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.INT32, ["N", 1])
    g = helper.make_graph(
        [helper.make_node("Unsqueeze", ["w", "ax"], ["wt"], name="u"),
         helper.make_node("MatMul", ["x", "wt"], ["y3"], name="mm"),
         helper.make_node("Squeeze", ["y3", "ax"], ["y"], name="sq")],
        "two_inputs", [x, w], [y],
        initializer=[helper.make_tensor("ax", TensorProto.INT64, [1], [2])],
    )  # fmt: skip
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(DeployError, match=r"fpga target: .*MatMul needs a constant"):
        build(model, target="fpga", out_dir=tmp_path / "hdl")
    assert os.listdir(tmp_path) == []


def test_cli_builds_and_simulates(require_tool, tiny_mlp, tmp_path, capsys):
    import onnx

    from ctnn.deploy._cli import main

    require_tool("iverilog")
    onnx.save(tiny_mlp, str(tmp_path / "m.onnx"))
    codes = np.random.default_rng(0).integers(-128, 128, size=(50, 16)).astype(np.int8)
    np.save(tmp_path / "codes.npy", codes)
    assert (
        main(
            [
                "build",
                str(tmp_path / "m.onnx"),
                "--target",
                "fpga",
                "--reuse",
                "4",
                "--out",
                str(tmp_path / "hdl"),
            ]
        )
        == 0
    )
    assert "latency_cycles:" in capsys.readouterr().out
    assert main(["run", str(tmp_path / "hdl"), "--input", str(tmp_path / "codes.npy"), "--check"]) == 0
    assert "50/50 samples equal to the reference" in capsys.readouterr().err
    assert ReferenceInterpreter(tiny_mlp).run({"x": codes})["y"].shape == (50, 4)


def test_missing_simulator_or_synthesis_tool_names_the_package(
    tiny_mlp, fpga_builds, tmp_path_factory, monkeypatch
):
    from ctnn.deploy import ToolchainError, synthesize

    res = _fpga(fpga_builds, tmp_path_factory, "tiny", tiny_mlp, 16)
    monkeypatch.setenv("PATH", str(tmp_path_factory.mktemp("empty-path")))
    x = np.zeros((2, 16), np.int8)
    with pytest.raises(ToolchainError, match=r"iverilog not found on PATH: .*apt-get install iverilog"):
        res.load().run(x)
    with pytest.raises(ToolchainError, match=r"verilator not found on PATH: .*apt-get install verilator"):
        res.load().run(x, simulator="verilator")
    with pytest.raises(ToolchainError, match=r"yosys not found on PATH: .*apt-get install yosys"):
        synthesize(res.out_dir, "ice40")
