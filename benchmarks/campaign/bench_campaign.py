"""Ray campaign benchmarks: throughput against direct calls, and driver memory over 100,000 queries.

1. Throughput: 1000 robustness queries (ε = 1 input code) on the 8-bit digits MLP, run
   (a) as direct sequential calls in this process, (b) as a campaign on an embedded Ray
   with 1 worker, (c) with 2 workers. Same queries, same code (the campaign property's
   ``run``); the verdicts must agree. Reported: speedup of (c) over (a), and the Ray
   overhead per query, (b − a) / n and (b − Σ task wall) / n.
2. Memory: a campaign of 100,000 trivial queries (a property that answers at once) on
   2 workers; the driver's RSS is sampled as results arrive. Flat = the RSS at the end
   is within 64 MiB of the RSS at 10% done.

The machine's load average is recorded before and after: on a shared machine the
speedup is bounded by the cores other processes leave free.

    python benchmarks/campaign/bench_campaign.py [--queries 1000] [--memory-queries 100000]

Writes benchmarks/campaign/results.json and the results section of docs/campaigns.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DOC = HERE.parents[1] / "docs" / "campaigns.md"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def digits_model(work: Path) -> Path:
    """The digits MLP 64-32-10, trained (40 epochs) and quantized to 8 bits, as ONNX + sidecar."""
    import torch

    from ctnn.models import MLP, load_dataset, train_classifier
    from ctnn.quant import export_onnx, quantize_mlp

    torch.set_num_threads(1)
    torch.manual_seed(0)
    d = load_dataset("digits", seed=0)
    m = MLP([64, 32, 10])
    train_classifier(m, d, epochs=40, seed=0, progress=False)
    q = quantize_mlp(m, d.X_train, weight_bits=8, act_bits=8, in_bits=8, input_range=d.value_range)
    return export_onnx(q, work / "digits_w8a8.onnx", dataset="digits")


def spec_for(model: Path, store: Path, n: int, prop: dict, select: str = "first"):
    from ctnn.pipeline import CampaignSpec

    return CampaignSpec.from_dict(
        {
            "campaign": {
                "name": f"bench-{prop['name']}",
                "timeout_s": 5.0,
                "grace_s": 30.0,
                "store": str(store),
            },
            "samples": {"dataset": "digits", "split": "train", "select": select, "count": n},
            "models": [{"onnx": str(model), "name": "digits_w8a8"}],
            "properties": [prop],
        },
        path=store.with_suffix(".toml"),
    )


def run_on_ray(spec, workers: int) -> dict:
    import ray

    from ctnn.pipeline import CampaignProgress, ResultStore, run_campaign

    t0 = time.perf_counter()
    ray.init(address="local", include_dashboard=False, num_cpus=workers, object_store_memory=256 * 1024**2,
             log_to_driver=False, configure_logging=False)  # fmt: skip
    startup = time.perf_counter() - t0
    try:
        # warm the workers (imports, z3) on a few queries stored elsewhere, as the sequential run is warm
        warm = spec_for(spec.models[0].onnx, spec.store.with_name(f"warm{workers}.sqlite"), 2 * workers,
                        {"name": spec.properties[0][0], **spec.properties[0][1]})  # fmt: skip
        run_campaign(warm, progress=CampaignProgress("warm", quiet=True))
        res = run_campaign(spec, progress=CampaignProgress(f"{workers} worker(s)", every_s=15))
    finally:
        ray.shutdown()
    with ResultStore(spec.store) as s:
        rows = list(s.rows(spec.name))
    return {
        "workers": workers,
        "ray_startup_s": round(startup, 2),
        "wall_s": round(res.stats.wall_s, 3),
        "queries": res.stats.finished,
        "task_wall_sum_s": round(sum(r["wall_s"] for r in rows), 3),
        "counts": res.counts,
        "verdicts": {r["sample"]: r["verdict"] for r in rows},
    }


SEQUENTIAL = """
import json, sys, time, numpy as np
from ctnn.pipeline import CAMPAIGN_PROPERTIES
from ctnn.quant import load_model
model, d = load_model(sys.argv[1]), np.load(sys.argv[2])
params, timeout, rng = json.loads(sys.argv[3]), float(sys.argv[4]), json.loads(sys.argv[5])
run = CAMPAIGN_PROPERTIES["robustness"].run
for j in range(2):  # warm, as the workers are
    run(model, d["codes"][j], int(d["labels"][j]), params, timeout, "z3", rng)
t0 = time.perf_counter()
verdicts = {}
for j, i in enumerate(d["indices"]):
    verdicts[int(i)] = run(model, d["codes"][j], int(d["labels"][j]), params, timeout, "z3", rng)["verdict"]
print(json.dumps({"wall_s": time.perf_counter() - t0, "verdicts": verdicts}))
"""


def throughput(work: Path, model: Path, n: int) -> dict:
    from ctnn.pipeline import select_samples
    from ctnn.pipeline._sweep import ResolvedModel

    prop = {"name": "robustness", "eps": [1]}
    spec = spec_for(model, work / "seq.sqlite", n, prop)
    ss = select_samples(spec.samples, ResolvedModel("digits_w8a8", model, 8))
    assert len(ss.indices) == n, f"only {len(ss.indices)} samples"
    # the direct calls run in a fresh process, as a Ray worker is one (with the same imports), and with
    # OMP_NUM_THREADS=1 as Ray sets it for a 1-CPU task, in a session of its own as a Ray worker is (with
    # the kernel's autogroup scheduling a session is what gets a fair share of a shared machine)
    params = spec.properties[0][1]
    np.savez(work / "seq.npz", codes=ss.codes, labels=ss.labels, indices=ss.indices)
    load_before = load()
    p = subprocess.run([sys.executable, "-c", SEQUENTIAL, str(model), str(work / "seq.npz"), json.dumps(params),
                        str(spec.timeout_s), json.dumps(ss.input_range)], capture_output=True, text=True, check=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)  # fmt: skip
    out = json.loads(p.stdout.strip().splitlines()[-1])
    seq_wall, seq = out["wall_s"], {int(k): v for k, v in out["verdicts"].items()}
    one = run_on_ray(spec_for(model, work / "ray1.sqlite", n, prop), 1)
    two = run_on_ray(spec_for(model, work / "ray2.sqlite", n, prop), 2)
    agree = {
        w: sum(seq[k] == v for k, v in r["verdicts"].items() if "unknown" not in (seq[k], v))
        for w, r in ((1, one), (2, two))
    }
    decided = {
        w: sum("unknown" not in (seq[k], v) for k, v in r["verdicts"].items())
        for w, r in ((1, one), (2, two))
    }
    for r in (one, two):
        r.pop("verdicts")
    return {
        "queries": n,
        "sequential_wall_s": round(seq_wall, 3),
        "sequential_ms_per_query": round(1000 * seq_wall / n, 2),
        "ray_1_worker": one,
        "ray_2_workers": two,
        "speedup_2_workers": round(seq_wall / two["wall_s"], 3),
        "speedup_1_worker": round(seq_wall / one["wall_s"], 3),
        "overhead_ms_per_query_vs_sequential": round(1000 * (one["wall_s"] - seq_wall) / n, 2),
        "overhead_ms_per_query_vs_task_time": round(1000 * (one["wall_s"] - one["task_wall_sum_s"]) / n, 2),
        "verdicts_agree": {str(w): f"{agree[w]}/{decided[w]} decided by both" for w in agree},
        "load_before": load_before,
        "load_after": load(),
    }


def memory(work: Path, model: Path, n: int) -> dict:
    """n trivial queries: 359 test samples x ceil(n/359) values of a dummy parameter, cut to n by the samples."""
    import ray

    from ctnn.pipeline import CampaignProgress, CampaignProperty, register_campaign_property, run_campaign

    class Trivial(CampaignProperty):  # defined in __main__: travels to the workers by value
        name, grid, required = "trivial", ("k",), ("k",)

        def run(self, model, x, label, params, timeout_s, solver, input_range):
            return {"verdict": "robust"}

    register_campaign_property(Trivial())
    per = -(-n // 359)
    spec = spec_for(
        model, work / "mem.sqlite", 359, {"name": "trivial", "k": list(range(per))}, select="first"
    )
    spec.samples.split = "test"
    samples: list[tuple[int, float, float]] = []
    t0 = time.perf_counter()

    class Sampled(CampaignProgress):
        def update(self, done, total, counts):
            super().update(done, total, counts)
            if not samples or done - samples[-1][0] >= total // 200:
                samples.append((done, round(time.perf_counter() - t0, 2), round(rss_mib(), 1)))

    load_before = load()
    ray.init(address="local", include_dashboard=False, num_cpus=2, object_store_memory=256 * 1024**2,
             log_to_driver=False, configure_logging=False)  # fmt: skip
    try:
        t0 = time.perf_counter()
        res = run_campaign(spec, progress=Sampled("memory", every_s=30))
    finally:
        ray.shutdown()
    total = res.total
    at10 = next(s for s in samples if s[0] >= total // 10)
    end = samples[-1]
    return {
        "queries": total,
        "wall_s": round(res.stats.wall_s, 1),
        "queries_per_s": round(res.stats.finished / res.stats.wall_s, 1),
        "rss_mib_at_10pct": at10[2],
        "rss_mib_at_end": end[2],
        "rss_mib_max": max(s[2] for s in samples),
        "growth_mib_10pct_to_end": round(end[2] - at10[2], 1),
        "flat": end[2] - at10[2] < 64,
        "samples_done_s_rss": samples[:: max(1, len(samples) // 40)],
        "load_before": load_before,
        "load_after": load(),
    }


def render(res: dict) -> str:
    t, m = res.get("throughput"), res.get("memory")
    lines = [f"Measured {res['date']} on {res['machine']} ({res['cpus']} CPUs, shared: load average "
             f"{res['load_at_start']} at the start), ray {res['versions']['ray']}.", ""]  # fmt: skip
    if t:
        lines += [
            f"Throughput, {t['queries']} robustness queries (ε = 1) on the 8-bit digits MLP:",
            "",
            "| run | wall (s) | ms/query | speedup |",
            "|---|---|---|---|",
            f"| direct sequential calls | {t['sequential_wall_s']} | {t['sequential_ms_per_query']} | 1.00 |",
            f"| Ray, 1 worker | {t['ray_1_worker']['wall_s']} | {1000 * t['ray_1_worker']['wall_s'] / t['queries']:.2f} "
            f"| {t['speedup_1_worker']:.2f} |",
            f"| Ray, 2 workers | {t['ray_2_workers']['wall_s']} | "
            f"{1000 * t['ray_2_workers']['wall_s'] / t['queries']:.2f} | {t['speedup_2_workers']:.2f} |",
            "",
            f"Ray overhead per query: {t['overhead_ms_per_query_vs_sequential']} ms against the direct calls, "
            f"{t['overhead_ms_per_query_vs_task_time']} ms against the tasks' own wall time. Verdicts agree: "
            f"{t['verdicts_agree']}. Load average {t['load_before']} before, {t['load_after']} after. "
            "On a shared machine the direct-call process and the Ray workers do not get the same CPU share "
            "(the overhead against the direct calls can come out negative); (1-worker wall − Σ task wall) / n "
            "is the measure of Ray's own cost per query.",
            "",
        ]  # fmt: skip
    if m:
        lines += [
            f"Driver memory over {m['queries']} trivial queries on 2 workers ({m['queries_per_s']} queries/s): "
            f"RSS {m['rss_mib_at_10pct']} MiB at 10% done, {m['rss_mib_at_end']} MiB at the end (max "
            f"{m['rss_mib_max']} MiB): {'flat' if m['flat'] else 'NOT flat'} "
            f"({m['growth_mib_10pct_to_end']:+} MiB). Load average {m['load_before']} before, {m['load_after']} after.",
        ]  # fmt: skip
    return "\n".join(lines)


def _write_doc(text: str) -> None:
    if DOC.exists():
        doc = DOC.read_text()
        new = re.sub(r"(<!-- bench:start -->\n).*?(\n<!-- bench:end -->)", lambda mt: mt[1] + text + mt[2], doc,
                     flags=re.S)  # fmt: skip
        DOC.write_text(new)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--memory-queries", type=int, default=100_000)
    ap.add_argument("--skip", choices=["throughput", "memory"], action="append", default=[])
    ap.add_argument("--render", action="store_true", help="only rewrite the doc from results.json")
    args = ap.parse_args()
    if args.render:
        _write_doc(render(json.loads((HERE / "results.json").read_text())))
        return 0
    res: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": platform.node(),
        "cpus": os.cpu_count(),
        "load_at_start": load(),
        "versions": {d: metadata.version(d) for d in ("ray", "ctnn-pipeline", "ctnn-verify", "z3-solver")},
    }
    with tempfile.TemporaryDirectory(prefix="bench-campaign") as tmp:
        work = Path(tmp)
        model = digits_model(work)
        if "throughput" not in args.skip:
            res["throughput"] = throughput(work, model, args.queries)
            print(json.dumps(res["throughput"], indent=1), flush=True)
        if "memory" not in args.skip:
            res["memory"] = memory(work, model, args.memory_queries)
            print(json.dumps({k: v for k, v in res["memory"].items() if k != "samples_done_s_rss"}, indent=1))
    (HERE / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    text = render(res)
    print(text)
    _write_doc(text)
    t = res.get("throughput")
    if t and (t["speedup_2_workers"] < 1.8 or t["overhead_ms_per_query_vs_sequential"] > 20):
        print(f"below target (≥1.8x with 2 workers, ≤20 ms overhead); load average {load()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
