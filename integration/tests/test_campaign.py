"""Campaign specs, the result store and exports — everything of campaigns that needs no Ray."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from ctnn.pipeline import CAMPAIGN_PROPERTIES, CampaignSpec, ResultStore, export_results, query_key

GOOD = """
[campaign]
name = "c"
timeout_s = 5

[samples]
file = "samples.npz"
select = "first"
count = 3

[[models]]
onnx = "tiny.onnx"

[[properties]]
name = "robustness"
eps = [1, 2, 3]
"""


@pytest.fixture
def spec_dir(tmp_path, tiny_model) -> Path:
    for f in (tiny_model, tiny_model.with_name("samples.npz")):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "c.toml").write_text(GOOD)
    return tmp_path


def test_a_good_spec(spec_dir):
    spec = CampaignSpec.from_toml(spec_dir / "c.toml")
    assert spec.name == "c" and spec.timeout_s == 5.0 and spec.solver == "z3"
    assert [p for _, p in spec.properties] == [
        {"eps": e, "attack": True, "encoding": "optimized"} for e in (1, 2, 3)
    ]
    assert spec.store == spec_dir / "c.sqlite" and spec.models[0].onnx == spec_dir / "tiny.onnx"
    assert spec.samples.file == spec_dir / "samples.npz" and spec.samples.dataset is None
    assert set(spec.files()) == {spec_dir / "tiny.onnx", spec_dir / "samples.npz"}
    assert len(spec.sha256) == 64


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("eps = [1, 2, 3]", "eps = [1, -2]", r"c\.toml: properties\[0\]: eps must be non-negative .* got -2"),
        ("eps = [1, 2, 3]", "eps = []", r"properties\[0\]: eps = \[\] \(no values\)"),
        ('name = "robustness"', 'name = "robustnes"', r"name = 'robustnes' is not a campaign property; known: .*robustness"),
        ("eps = [1, 2, 3]", "eps = [1]\nepsilon = 2", r"properties\[0\]: unknown keys \['epsilon'\]"),
        ("timeout_s = 5", "timeout_s = 0", r"campaign\.timeout_s must be > 0"),
        ("timeout_s = 5", 'timeout_s = "5"', r"campaign\.timeout_s = '5' has the wrong type"),
        ("timeout_s = 5", "timeouts = 5", r"unknown \[campaign\] keys \['timeouts'\]"),
        ('select = "first"', 'select = "best"', r"samples\.select = 'best': expected one of"),
        ('onnx = "tiny.onnx"', 'onnx = "tiny.onnx"\nbits = [4]', r"models\[0\]: bits applies to checkpoints"),
        ('onnx = "tiny.onnx"', 'onnx = "tiny.onnx"\nrecipe = {}', r"models\[0\] needs exactly one of onnx, checkpoint, recipe"),
        ('onnx = "tiny.onnx"', 'recipe = {kind = "mlp"}\nbits = [1]', r"models\[0\] bit-width must be in 2\.\.16, got 1"),
        ('onnx = "tiny.onnx"', 'recipe = {kind = "transformer"}\nbits = [4]', r"recipe\.kind = 'transformer': not one of"),
        ('onnx = "tiny.onnx"', 'recipe = {kind = "mlp", epoch = 3}\nbits = [4]', r"unknown models\[0\]\.recipe keys of an mlp \['epoch'\]"),
        ('onnx = "tiny.onnx"', 'recipe = {kind = "lem", interval_eps = 0.5}\nbits = [4]', r"recipe\.interval_eps applies to kind = 'mlp' only, not to 'lem'"),
        ('onnx = "tiny.onnx"', 'recipe = {kind = "lem", unit = 8}\nbits = [4]', r"unknown models\[0\]\.recipe keys of kind 'lem' \['unit'\]; known: \['dataset', 'dt', 'epochs', 'input_norm', 'kind', 'lr', 'seed', 'units'\]"),
        ('onnx = "tiny.onnx"', 'recipe = {kind = "ltc", wirng = "ncp"}\nbits = [4]', r"unknown models\[0\]\.recipe keys of kind 'ltc' \['wirng'\]"),
        ('onnx = "tiny.onnx"', 'recipe = {interval_eps = -1}\nbits = [4]', r"recipe\.interval_eps = -1 must be >= 0"),
        ('onnx = "tiny.onnx"', 'recipe = {interval_eps = "big"}\nbits = [4]', r"recipe\.interval_eps = 'big' has the wrong type"),
        ('onnx = "tiny.onnx"', 'recipe = {epochs = 0}\nbits = [4]', r"models\[0\]\.recipe\.epochs = 0 must be >= 1"),
        ('onnx = "tiny.onnx"', 'recipe = {lr = -0.1}\nbits = [4]', r"models\[0\]\.recipe\.lr = -0\.1 must be > 0"),
        ('onnx = "tiny.onnx"', 'onnx = "tiny.onnx"\ndeploy = ["avr"]', r"models\[0\]\.deploy: unknown target 'avr'; available: c, "),
        ('onnx = "tiny.onnx"', 'onnx = "tiny.onnx"\ndeploy = ["c"]\ndeploy_inputs = 0', r"models\[0\]\.deploy_inputs = 0 must be >= 1"),
        ("[[models]]", "[[modelz]]", r"unknown top-level tables \['modelz'\]"),
        ("[campaign]", "[campaign", r"c\.toml: not valid TOML"),
    ],
)  # fmt: skip
def test_bad_specs_name_the_key_and_value(spec_dir, old, new, message):
    (spec_dir / "c.toml").write_text(GOOD.replace(old, new, 1))
    with pytest.raises(ValueError, match=message):
        CampaignSpec.from_toml(spec_dir / "c.toml")


def test_missing_files_are_named(spec_dir):
    (spec_dir / "c.toml").write_text(GOOD.replace("tiny.onnx", "nope.onnx"))
    with pytest.raises(FileNotFoundError, match=r"models\[0\]\.onnx = 'nope\.onnx': no such file"):
        CampaignSpec.from_toml(spec_dir / "c.toml")
    with pytest.raises(FileNotFoundError, match="nothere.toml: no such campaign spec"):
        CampaignSpec.from_toml(spec_dir / "nothere.toml")
    (spec_dir / "c.toml").write_text(GOOD.replace("[campaign]\n", '[campaign]\nplugins = ["gone.py"]\n'))
    with pytest.raises(FileNotFoundError, match=r"campaign\.plugins = 'gone\.py'"):
        CampaignSpec.from_toml(spec_dir / "c.toml")


def test_an_unreadable_samples_file_is_named(spec_dir, tiny_model):
    from ctnn.pipeline import select_samples
    from ctnn.pipeline._sweep import ResolvedModel

    spec = CampaignSpec.from_toml(spec_dir / "c.toml")
    (spec_dir / "samples.npz").write_bytes(b"truncated")
    with pytest.raises(ValueError, match=r"samples\.npz: cannot read a \.npy or \.npz of samples"):
        select_samples(spec.samples, ResolvedModel("tiny", tiny_model))


def test_cli_reports_a_bad_spec_with_exit_code_2(spec_dir):
    (spec_dir / "c.toml").write_text(GOOD.replace("eps = [1, 2, 3]", "eps = [0.5]"))
    p = subprocess.run([sys.executable, "-m", "ctnn.pipeline._cli", "campaign", "run", "c.toml"], cwd=spec_dir,
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert p.returncode == 2 and "c.toml: properties[0]: eps must be non-negative integers" in p.stderr


def test_a_plugin_registers_a_property(spec_dir):
    plugin = Path(__file__).with_name("campaign_props.py")
    (spec_dir / "p.py").write_text(plugin.read_text())
    (spec_dir / "c.toml").write_text(GOOD.replace("[campaign]\n", '[campaign]\nplugins = ["p.py"]\n')
                                     .replace('name = "robustness"\neps = [1, 2, 3]', 'name = "sleep"\nseconds = [0, 1]'))  # fmt: skip
    spec = CampaignSpec.from_toml(spec_dir / "c.toml")
    assert [p for _, p in spec.properties] == [{"seconds": 0}, {"seconds": 1}]
    assert "sleep" in CAMPAIGN_PROPERTIES and "robustness" in CAMPAIGN_PROPERTIES


def test_store_is_exactly_once_with_provenance(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as s:
        prov = {
            "host": "h1",
            "started": 1.0,
            "finished": 2.5,
            "wall_s": 1.5,
            "versions": {"ctnn-verify": "9"},
        }
        assert s.put("k1", {"verdict": "robust", "eps": 1}, "c", prov) is True
        assert s.put("k1", {"verdict": "vulnerable", "eps": 1}, "c", prov) is False
        assert s.put_many([("k1", {"verdict": "x"}, "c", None), ("k2", {"verdict": "unknown", "status": "timeout"},
                                                                   "c", None)]) == 1  # fmt: skip
        assert s.missing(["k3", "k1", "k2", "k4"]) == ["k3", "k4"]
        assert s.counts("c") == {"robust": 1, "timeout": 1} and s.count("c") == 2 and s.count("other") == 0
        row = next(s.rows("c"))
        assert (row["key"], row["verdict"], row["status"], row["host"], row["wall_s"], row["eps"]) == (
            "k1", "robust", "ok", "h1", 1.5, 1)  # fmt: skip
        assert json.loads(row["versions"]) == {"ctnn-verify": "9"}
        assert s.put_stage("s1", "train", {"checkpoint": "a"}) and not s.put_stage("s1", "train", {})
        assert s.get_stage("s1") == {"checkpoint": "a"} and s.get_stage("s2") is None


def test_a_store_of_version_0_1_is_upgraded_in_place(tmp_path):
    db = sqlite3.connect(tmp_path / "old.sqlite")
    db.execute("CREATE TABLE results (key TEXT PRIMARY KEY, campaign TEXT, "
               "created REAL DEFAULT (unixepoch('subsec')), body TEXT NOT NULL)")  # fmt: skip
    db.execute(
        "INSERT INTO results (key, campaign, body) VALUES ('k0', 'pipeline', '{\"verdict\": \"robust\"}')"
    )
    db.commit()
    db.close()
    with ResultStore(tmp_path / "old.sqlite") as s:
        assert [r["verdict"] for r in s.results("pipeline")] == ["robust"]
        assert s.put("k1", {"verdict": "vulnerable"}, "pipeline") and len(s) == 2


def test_not_a_store_is_a_clear_error(tmp_path):
    (tmp_path / "x.sqlite").write_text("this is not sqlite " * 100)
    with pytest.raises(ValueError, match=r"x\.sqlite: not a ctnn result store"):
        ResultStore(tmp_path / "x.sqlite")


def test_export_keeps_types(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as s:
        for i in range(25):
            s.put(query_key(i=i), {"verdict": "vulnerable" if i % 5 == 0 else "robust", "eps": i % 3,
                                   "counterexample": [i, -i] if i % 5 == 0 else None, "solver_time_s": i / 10},
                  "c" if i < 20 else "d", {"host": "h", "wall_s": 0.1})  # fmt: skip
    n = export_results(tmp_path / "r.sqlite", tmp_path / "r.parquet", "parquet", campaign="c", batch=7)
    t = pq.read_table(tmp_path / "r.parquet")
    assert n == 20 and t.num_rows == 20
    assert (
        str(t.schema.field("eps").type) == "int64" and str(t.schema.field("solver_time_s").type) == "double"
    )
    assert str(t.schema.field("counterexample").type) == "string"
    assert json.loads(t.column("counterexample")[0].as_py()) == [0, 0]
    assert t.column("verdict").to_pylist().count("vulnerable") == 4
    assert export_results(tmp_path / "r.sqlite", tmp_path / "r.csv", "csv") == 25
    assert pacsv.read_csv(tmp_path / "r.csv").num_rows == 25
    with pytest.raises(ValueError, match="export format 'xlsx'"):
        export_results(tmp_path / "r.sqlite", tmp_path / "r.x", "xlsx")
    with pytest.raises(FileNotFoundError, match="no such result store"):
        export_results(tmp_path / "none.sqlite", tmp_path / "r.csv", "csv")


def test_the_properties_of_ctnn_verify_are_campaign_properties(spec_dir, tiny_model):
    """Each registry entry runs its ctnn-verify entry point (here directly, as a worker would)."""
    import numpy as np

    from ctnn.quant import load_model, run_reference

    (spec_dir / "c.toml").write_text(
        GOOD.replace(
            'name = "robustness"\neps = [1, 2, 3]',
            """name = "targeted"
eps = [1]
target = [0, 2]

[[properties]]
name = "bias"
eps = [2]
sensitive = 1
sensitive_values = [0, 1]

[[properties]]
name = "equivalence"
eps = [1]
other = "tiny.onnx"
delta = "argmax"
""",
        )
    )
    spec = CampaignSpec.from_toml(spec_dir / "c.toml")
    names = [n for n, _ in spec.properties]
    assert names == ["targeted", "targeted", "bias", "equivalence"]
    eq = spec.properties[3][1]
    assert eq["other"] == str(spec_dir / "tiny.onnx") and len(eq["other_sha256"]) == 64
    assert spec_dir / "tiny.onnx" in spec.files()
    model = load_model(tiny_model)
    x = np.load(spec_dir / "samples.npz")["codes"][0]
    label = int(np.argmax(run_reference(model, {"x": x[None]})["y"]))
    for name, params in spec.properties:
        r = CAMPAIGN_PROPERTIES[name].run(model, x, label, params, 20.0, "z3", (-8, 7))
        if name == "targeted" and params["target"] == label:
            assert r["status"] == "error" and "is the label" in r["reason"]
        elif name == "targeted":
            assert r["verdict"] in ("robust", "vulnerable") and r["label"] == params["target"]
        elif name == "bias":
            assert r["verdict"] in ("fair", "biased") and r["gap"] <= r["bound"]
        else:  # a model is argmax-equivalent to itself
            assert r["verdict"] == "equivalent"
    # an other graph that reads its inputs on another code range: a worker compares codes, so it refuses
    import shutil

    from ctnn.quant import Sidecar, TensorQuant, write_sidecar

    other = spec_dir / "six.onnx"
    shutil.copy(spec_dir / "tiny.onnx", other)
    quant = TensorQuant("x", [None, 4], 3, -4, 3, 0.5), TensorQuant("y", [None, 3], 4, -8, 7, 1.0)
    write_sidecar(other, Sidecar("mlp", *quant, weight_bits=4, act_bits=4))
    with pytest.raises(
        ValueError, match=r"six.onnx: its inputs are codes in \[-4, 3\], the model's in \[-8, 7\]"
    ):
        CAMPAIGN_PROPERTIES["equivalence"].run(
            model, x, label, {**eq, "other": str(other)}, 20.0, "z3", (-8, 7)
        )


def test_solver_must_be_one_verify_knows(spec_dir):
    (spec_dir / "c.toml").write_text(GOOD.replace("timeout_s = 5", 'timeout_s = 5\nsolver = "cvc9"'))
    with pytest.raises(ValueError, match=r"campaign\.solver = 'cvc9': this ctnn-verify knows"):
        CampaignSpec.from_toml(spec_dir / "c.toml")
    (spec_dir / "c.toml").write_text(GOOD.replace("timeout_s = 5", 'timeout_s = 5\nsolver = "bitwuzla"'))
    assert CampaignSpec.from_toml(spec_dir / "c.toml").solver == "bitwuzla"
    # a property whose ctnn-verify entry point takes no solver runs z3 only: refused before any query
    from ctnn.pipeline import CampaignProperty

    class Bounds(CampaignProperty):
        name, entry_points = "bounds", ("interval_bounds",)

    Bounds().check_solver("z3", "here")
    with pytest.raises(
        ValueError, match=r"here: property 'bounds': this ctnn-verify's interval_bounds runs z3 only"
    ):
        Bounds().check_solver("bitwuzla", "here")


def test_a_vnnlib_property_is_one_query_per_model(spec_dir, tiny_model):
    from ctnn.pipeline import select_samples
    from ctnn.pipeline._campaign import generate_queries
    from ctnn.pipeline._sweep import ResolvedModel
    from ctnn.quant import load_model

    (spec_dir / "p.vnnlib").write_text(
        "".join(f"(declare-const X_{i} Real)" for i in range(4)) + "(declare-const Y_0 Real)(declare-const Y_1 Real)"
        "(declare-const Y_2 Real)" + "".join(f"(assert (>= X_{i} -2))(assert (<= X_{i} 2))" for i in range(4))
        + "(assert (> Y_0 1000))"
    )  # fmt: skip
    (spec_dir / "c.toml").write_text(GOOD.replace('name = "robustness"\neps = [1, 2, 3]',
                                                  'name = "vnnlib"\nspec = "p.vnnlib"'))  # fmt: skip
    spec = CampaignSpec.from_toml(spec_dir / "c.toml")
    model = ResolvedModel("tiny", tiny_model)
    total, queries = generate_queries(spec, [(model, "sha", None, select_samples(spec.samples, model))])
    queries = list(queries)
    assert total == len(queries) == 1 and queries[0].meta["sample"] == -1
    r = CAMPAIGN_PROPERTIES["vnnlib"].run(load_model(tiny_model), queries[0].x, -1, queries[0].params, 20.0, "z3",
                                          (-8, 7))  # fmt: skip
    assert r["verdict"] == "robust"  # an output of 4-bit codes never exceeds 1000


def test_an_equivalence_campaign_compares_two_input_quantizations(spec_dir, tiny_model):
    """The model's sidecar quantizes inputs to 4 bits, the other's to 3: the driver hands the
    model's quantizer to the query, and the worker compares the graphs on every real input."""
    import shutil

    from ctnn.pipeline import select_samples
    from ctnn.pipeline._campaign import generate_queries
    from ctnn.pipeline._sweep import ResolvedModel
    from ctnn.quant import Sidecar, TensorQuant, load_model, write_sidecar
    from ctnn.verify import verify_equivalence

    for name, bits, lo, hi, scale in (("q4", 4, -8, 7, 0.25), ("q3", 3, -4, 3, 0.5)):
        shutil.copy(tiny_model, spec_dir / f"{name}.onnx")
        quant = (
            TensorQuant("x", [None, 4], bits, lo, hi, scale),
            TensorQuant("y", [None, 3], 8, -128, 127, 1.0),
        )
        write_sidecar(spec_dir / f"{name}.onnx", Sidecar("mlp", *quant, weight_bits=4, act_bits=4))
    (spec_dir / "c.toml").write_text(GOOD.replace('name = "robustness"\neps = [1, 2, 3]',
                                                  'name = "equivalence"\neps = [1]\nother = "q3.onnx"'))  # fmt: skip
    spec = CampaignSpec.from_toml(spec_dir / "c.toml")
    model = ResolvedModel("q4", spec_dir / "q4.onnx")
    samples = select_samples(spec.samples, model)
    assert samples.input_quant == [0.25, 0, -8, 7]
    _, queries = generate_queries(spec, [(model, "sha", None, samples)])
    verdicts = set()
    for q in list(queries)[:4]:
        assert q.params["input_quant"] == [0.25, 0, -8, 7]
        r = CAMPAIGN_PROPERTIES["equivalence"].run(load_model(model.path), q.x, q.label, q.params, 20.0, "z3",
                                                   q.input_range)  # fmt: skip
        direct = verify_equivalence(spec_dir / "q4.onnx", spec_dir / "q3.onnx", q.x, 1, timeout_s=20.0)
        assert r["verdict"] == direct.verdict
        if r["verdict"] == "different":  # each graph on its own codes of one real input
            assert all(-4 <= v <= 3 for v in r["inputs"][1]) and len(r["real_input"]) == 4
        verdicts.add(r["verdict"])
    assert "different" in verdicts
