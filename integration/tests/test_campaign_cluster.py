"""Campaigns on a real Ray cluster (``ray start --head`` on loopback): Ray Jobs, faults, deadlines.

Every driver is a real ``ctnn campaign`` process. Faults are real: ``kill -9`` of a
worker that is running a query, ``kill -9`` of the driver; a query that sleeps past
its deadline is force-cancelled. The store is checked row by row afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ctnn.pipeline import ResultStore, export_results, job_status, submit_campaign, wait_job

PLUGIN = Path(__file__).with_name("campaign_props.py")


def _workdir(tmp_path: Path, tiny_model: Path, body: str, name: str = "c", count: int = 12) -> Path:
    """A spec directory holding the tiny model, its samples, the test plugin and ``<name>.toml``."""
    for f in (tiny_model, tiny_model.with_name("samples.npz"), PLUGIN):
        shutil.copy(f, tmp_path / f.name)
    spec = tmp_path / f"{name}.toml"
    spec.write_text(
        f'[campaign]\nname = "{name}"\nplugins = ["campaign_props.py"]\n{body}\n'
        f'[samples]\nfile = "samples.npz"\nselect = "first"\ncount = {count}\n\n[[models]]\nonnx = "tiny.onnx"\n'
    )
    return spec


def _ctnn(cluster, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ctnn.pipeline._cli", *args], cwd=cwd, env=cluster.env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def _driver(cluster, spec: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ctnn.pipeline._cli", "campaign", "run", str(spec), "--quiet",
                             "--address", cluster.address], cwd=spec.parent, env=cluster.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip


def _rows(store: Path) -> list[tuple]:
    if not store.exists():
        return []
    db = sqlite3.connect(store)
    try:
        return db.execute("SELECT key, created, body, status FROM results ORDER BY key").fetchall()
    except sqlite3.OperationalError:  # the driver has not created the table yet
        return []
    finally:
        db.close()


def _wait_rows(store: Path, n: int, timeout: float = 120) -> None:
    t_end = time.monotonic() + timeout
    while len(_rows(store)) < n:
        assert time.monotonic() < t_end, f"{store}: fewer than {n} rows after {timeout} s"
        time.sleep(0.1)


def test_campaign_as_ray_job(ray_cluster, tiny_model, tmp_path):
    spec = _workdir(
        tmp_path, tiny_model, 'timeout_s = 20\n[[properties]]\nname = "robustness"\neps = [1, 2]\n'
    )
    store = tmp_path / "job-results.sqlite"
    job = submit_campaign(spec, ray_cluster.dashboard, store=store)
    assert wait_job(job, ray_cluster.dashboard, timeout_s=240) == "SUCCEEDED", _ctnn(
        ray_cluster, "campaign", "logs", job, "--address", ray_cluster.dashboard, cwd=tmp_path
    ).stdout[-3000:]
    st = _ctnn(ray_cluster, "campaign", "status", job, "--address", ray_cluster.dashboard, cwd=tmp_path)
    assert st.returncode == 0 and f"{job}: SUCCEEDED" in st.stdout
    logs = _ctnn(
        ray_cluster, "campaign", "logs", job, "--address", ray_cluster.dashboard, cwd=tmp_path
    ).stdout
    assert "campaign c: 24 queries; this run: 24 finished" in logs
    # the results, read back: 12 samples x 2 eps, each a real verdict with provenance from a worker
    with ResultStore(store) as s:
        rows = list(s.rows("c"))
    assert len(rows) == 24 and len({r["key"] for r in rows}) == 24
    assert {r["verdict"] for r in rows} <= {"robust", "vulnerable"} and {r["status"] for r in rows} == {"ok"}
    assert sorted((r["eps"], r["sample"]) for r in rows) == sorted((e, i) for e in (1, 2) for i in range(12))
    assert all(r["host"] and r["wall_s"] > 0 and r["finished"] >= r["started"] for r in rows)
    assert json.loads(rows[0]["versions"])["ctnn-verify"]
    # a robust sample at eps 2 is robust at eps 1 (the box is smaller)
    robust2 = {r["sample"] for r in rows if r["eps"] == 2 and r["verdict"] == "robust"}
    assert robust2 <= {r["sample"] for r in rows if r["eps"] == 1 and r["verdict"] == "robust"}
    out = tmp_path / "res.csv"
    assert export_results(store, out, "csv") == 24 and out.read_text().count("\n") == 25


def test_stop_a_job(ray_cluster, tiny_model, tmp_path):
    spec = _workdir(tmp_path, tiny_model, '[[properties]]\nname = "sleep"\nseconds = [30]\n')
    job = submit_campaign(spec, ray_cluster.dashboard, store=tmp_path / "stopped.sqlite")
    t_end = time.monotonic() + 60
    while job_status(job, ray_cluster.dashboard)["status"] != "RUNNING":
        assert time.monotonic() < t_end
        time.sleep(0.2)
    p = _ctnn(ray_cluster, "campaign", "stop", job, "--address", ray_cluster.dashboard, cwd=tmp_path)
    assert p.returncode == 0 and "stop requested" in p.stdout
    assert wait_job(job, ray_cluster.dashboard, timeout_s=60) == "STOPPED"


def test_kill_worker_mid_campaign(ray_cluster, tiny_model, tmp_path):
    spec = _workdir(
        tmp_path, tiny_model, 'max_retries = 3\n[[properties]]\nname = "sleep"\nseconds = [0.4]\n'
    )
    driver = _driver(ray_cluster, spec)
    try:
        _wait_rows(tmp_path / "c.sqlite", 2)
        t_end = time.monotonic() + 30
        while not (busy := ray_cluster.workers_running("_query_task")):
            assert time.monotonic() < t_end, "no worker is running a query"
            time.sleep(0.02)
        victim = busy[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.time()
        out, err = driver.communicate(timeout=180)
    finally:
        driver.kill()
    assert driver.returncode == 0, err[-3000:]
    rows = _rows(tmp_path / "c.sqlite")
    assert len(rows) == 12 and {r[3] for r in rows} == {"ok"}
    provs = [
        json.loads(p)
        for (p,) in sqlite3.connect(tmp_path / "c.sqlite").execute("SELECT provenance FROM results")
    ]
    # the query the victim was running was retried on another worker: nothing it ran finished after the kill
    assert all(p["finished"] < killed_at for p in provs if p["pid"] == victim)
    assert any(p["pid"] != victim and p["started"] > killed_at for p in provs)
    assert "12 finished (0 at the deadline), 0 already stored, 0 failed" in out


def test_kill_driver_mid_campaign_and_rerun(ray_cluster, tiny_model, tmp_path):
    spec = _workdir(tmp_path, tiny_model, '[[properties]]\nname = "sleep"\nseconds = [0.3, 0.31]\n')
    store = tmp_path / "c.sqlite"
    driver = _driver(ray_cluster, spec)
    try:
        _wait_rows(store, 5)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.communicate(timeout=30)
    before = _rows(store)
    assert 5 <= len(before) < 24
    again = _ctnn(ray_cluster, "campaign", "run", str(spec), "--quiet", "--address", ray_cluster.address,
                  cwd=tmp_path)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert (
        f"{24 - len(before)} finished (0 at the deadline), {len(before)} already stored, 0 failed"
        in again.stdout
    )
    after = _rows(store)
    assert len(after) == 24 and len({r[0] for r in after}) == 24
    assert set(before) <= set(after)  # every result stored before the kill is there, unchanged


def test_query_past_its_deadline_is_cancelled(ray_cluster, tiny_model, tmp_path):
    # the deadline runs from the moment a task starts on its worker (not from its submission: starting
    # a worker after a forced cancel takes seconds on a loaded machine), so the quick queries are never cut
    spec = _workdir(tmp_path, tiny_model, "timeout_s = 1\ngrace_s = 2\n"
                    '[[properties]]\nname = "sleep"\nseconds = [0, 600]\n', count=4)  # fmt: skip
    t0 = time.monotonic()
    p = _ctnn(ray_cluster, "campaign", "run", str(spec), "--address", ray_cluster.address, cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert time.monotonic() - t0 < 120  # 4 hanging queries, 2 at a time, ~3 s each
    with ResultStore(tmp_path / "c.sqlite") as s:
        rows = list(s.rows("c"))
        assert s.counts("c") == {"robust": 4, "timeout": 4}
    for r in rows:
        if r["seconds"] == 600:
            assert (
                r["status"] == "timeout"
                and r["verdict"] == "unknown"
                and "cancelled by the driver" in r["reason"]
            )
            assert 3 <= r["wall_s"] < 30
        else:
            assert r["status"] == "ok"
    assert "timeout" in p.stdout  # the summary table has the column
    # no worker is left running a hanging query
    time.sleep(1)
    assert not ray_cluster.workers_running("_query_task")


@pytest.mark.parametrize("bad", ["spec", "outside"])
def test_submit_refuses_what_it_cannot_ship(ray_cluster, tiny_model, tmp_path, bad):
    spec = _workdir(tmp_path, tiny_model, '[[properties]]\nname = "robustness"\neps = [1]\n')
    if bad == "spec":
        spec.write_text(spec.read_text().replace("eps = [1]", "eps = [-1]"))
        with pytest.raises(ValueError, match=r"c\.toml: properties\[0\]: eps must be non-negative"):
            submit_campaign(spec, ray_cluster.dashboard)
    else:
        sub = tmp_path / "sub"
        sub.mkdir()
        (sub / "c.toml").write_text(spec.read_text().replace('"tiny.onnx"', '"../tiny.onnx"'))
        shutil.copy(PLUGIN, sub)
        shutil.copy(tmp_path / "samples.npz", sub)
        with pytest.raises(ValueError, match="is outside the spec's directory"):
            submit_campaign(sub / "c.toml", ray_cluster.dashboard)


BACKPRESSURE = """
import json, sys, numpy as np, ray
from ctnn.pipeline import Query, ResultStore, execute, init_ray
sys.path.insert(0, {plugin_dir!r})
import campaign_props  # registers "sleep"
from ray import cloudpickle
cloudpickle.register_pickle_by_value(campaign_props)
init_ray({address!r})
model = ray.put(b"")  # the sleep property never reads its model
state = {{"pulled": 0, "ahead": 0}}
def gen():
    for i in range(120):
        state["pulled"] += 1
        yield Query(f"q{{i}}", "sleep", "m", model, np.zeros(4, np.int8), 0, {{"seconds": 0}}, None, {{"i": i}})
def progress(done, total, counts):
    state["ahead"] = max(state["ahead"], state["pulled"] - done)
store = ResultStore({store!r})
store.put_many([(f"q{{i}}", {{"verdict": "robust", "pre": True}}, "bp", None) for i in range(0, 120, 4)])
st = execute(gen(), store, "bp", timeout_s=10, max_in_flight=3, lookahead=8, total=120, progress=progress)
print(json.dumps({{"ahead": state["ahead"], "skipped": st.skipped, "stored": st.stored, "n": len(store),
                  "pre": sum(1 for r in store.results() if r.get("pre"))}}))
"""


def test_backpressure_and_skipping_stored_keys(ray_cluster, tmp_path):
    script = BACKPRESSURE.format(plugin_dir=str(PLUGIN.parent), address=ray_cluster.address,
                                 store=str(tmp_path / "bp.sqlite"))  # fmt: skip
    p = subprocess.run([sys.executable, "-c", script], env=ray_cluster.env, capture_output=True, text=True,
                       timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    # never more than the lookahead batch plus the in-flight window pulled ahead of the results
    assert got["ahead"] <= 8 + 3 + 1
    assert got == {"ahead": got["ahead"], "skipped": 30, "stored": 90, "n": 120, "pre": 30}


def test_a_given_onnx_file_is_deployed_too(ray_cluster, tiny_model, tmp_path):
    spec = _workdir(tmp_path, tiny_model, '[[properties]]\nname = "robustness"\neps = [1]\n', count=2)
    spec.write_text(spec.read_text() + 'deploy = ["c"]\ndeploy_inputs = 20\n')
    first = _ctnn(ray_cluster, "campaign", "run", spec.name, "--address", ray_cluster.address, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "stages: 1 ran, 0 reused" in first.stdout and "tiny → c" in first.stdout
    assert first.stdout.count("bit-exact with the reference on 20 inputs") == 1
    (build,) = (tmp_path / "artifacts" / "deploy").iterdir()
    assert (build / "model.c").is_file()
    again = _ctnn(ray_cluster, "campaign", "run", spec.name, "--address", ray_cluster.address, cwd=tmp_path)
    assert again.returncode == 0 and "stages: 0 ran, 1 reused" in again.stdout


SWEEP = """
[campaign]
name = "sweep"
timeout_s = 20

[samples]
dataset = "digits"
select = "correct"
count = 2

[[models]]
name = "mlp"
recipe = {{kind = "mlp", sizes = [64, 8, 10], epochs = 3, seed = 0}}
bits = [8]
deploy = ["c"]
deploy_inputs = 50

[[properties]]
name = "robustness"
eps = [1]
"""


def test_sweep_is_a_task_graph_that_reuses_stored_stages(ray_cluster, tmp_path):
    (tmp_path / "s.toml").write_text(SWEEP.format())
    first = _ctnn(ray_cluster, "campaign", "run", "s.toml", "--address", ray_cluster.address, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    # train → quantize → deploy: three tasks, one graph; 2 samples x 1 eps queries on the quantized graph
    assert (
        "stages: 3 ran, 0 reused" in first.stdout
        and "campaign sweep: 2 queries; this run: 2 finished" in first.stdout
    )
    assert first.stdout.count("bit-exact with the reference on 50 inputs") == 1
    onnx = list((tmp_path / "artifacts" / "quantize").glob("*/model_w8a8.onnx"))
    assert len(onnx) == 1 and onnx[0].with_suffix(".json").is_file()
    again = _ctnn(ray_cluster, "campaign", "run", "s.toml", "--address", ray_cluster.address, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (
        "stages: 0 ran, 3 reused" in again.stdout
        and "0 finished (0 at the deadline), 2 already stored" in again.stdout
    )
    with ResultStore(tmp_path / "sweep.sqlite") as s:
        assert [r["model"] for r in s.results("sweep")] == ["mlp_w8", "mlp_w8"]
    # interval training is part of the recipe: a new train key, and weights that differ from the same seed's
    trained = tmp_path / "artifacts" / "train"
    (plain,) = trained.glob("*/model.safetensors")
    (tmp_path / "s.toml").write_text(SWEEP.format().replace("seed = 0}", "seed = 0, interval_eps = 1.0}"))
    ibp = _ctnn(ray_cluster, "campaign", "run", "s.toml", "--address", ray_cluster.address, cwd=tmp_path)
    assert ibp.returncode == 0, ibp.stderr[-3000:]
    assert "stages: 3 ran, 0 reused" in ibp.stdout
    (interval,) = set(trained.glob("*/model.safetensors")) - {plain}
    assert plain.read_bytes() != interval.read_bytes()
