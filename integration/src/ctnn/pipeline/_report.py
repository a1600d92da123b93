"""The run report: reads a run directory and writes report.html + report.md with ctnn-analysis."""

from __future__ import annotations

import json
import platform
import statistics
from importlib import metadata
from pathlib import Path

from ctnn.analysis import Report, plot_accuracy, plot_robustness, verdict_counts

_DISTS = ["ctnn-models", "ctnn-quant", "ctnn-verify", "ctnn-deploy", "ctnn-analysis", "ctnn-pipeline",
          "torch", "onnx", "onnxruntime", "z3-solver", "apache-tvm", "ray", "numpy", "matplotlib"]  # fmt: skip


def _versions() -> list[list[str]]:
    rows = []
    for d in _DISTS:
        try:
            rows.append([d, metadata.version(d)])
        except metadata.PackageNotFoundError:
            rows.append([d, "not installed"])
    rows.append(["python", platform.python_version()])
    return rows


def _stage(run: Path, name: str) -> dict | None:
    p = run / "stages" / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def write_run_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained) and ``report.md`` into ``run_dir``."""
    from ._store import ResultStore

    run = Path(run_dir)
    if not (run / "config.json").exists():
        raise FileNotFoundError(f"{run}: not a ctnn run directory (no config.json)")
    cfg = json.loads((run / "config.json").read_text())
    r = Report(f"ctnn run {run.name}")
    r.paragraph(
        "One pipeline from a trained float model to verified, deployed integer code: the integer ONNX "
        "graph that was verified is the one that was compiled, and every build was checked against the "
        "numpy integer reference bit for bit."
    )

    r.heading("Stages")
    rows = []
    for name in ("train", "quantize", "verify", "deploy", "report"):
        st = _stage(run, name)
        rows.append(
            [name, f"{st['wall_s']:.1f}" if st else "(this stage)" if name == "report" else "not run"]
        )
    r.table(["stage", "wall time (s)"], rows)

    train, quant = _stage(run, "train"), _stage(run, "quantize")
    if train:
        r.heading("Models (float)")
        r.table(["model", "test accuracy (%)"],
                [[k, 100 * v["test_accuracy"]] for k, v in train["outputs"].items()])  # fmt: skip
    if quant:
        q = quant["outputs"]
        r.heading("Quantization")
        r.table(
            ["weight bits", "activation bits", "float accuracy (%)", "integer accuracy (%)", "graph"],
            [[v["weight_bits"], v["act_bits"], 100 * v["float_accuracy"], 100 * v["int_accuracy"], v["onnx"]]
             for _, v in sorted(q.items(), key=lambda kv: int(kv[0]))],
        )  # fmt: skip
        acc = {int(k): {"float": v["float_accuracy"], "integer": v["int_accuracy"]} for k, v in q.items()}
        r.figure(plot_accuracy(acc), "Test accuracy of the float model and its integer versions",
                 png_path=run / "accuracy.png")  # fmt: skip

    if (run / "results.sqlite").exists():
        store = ResultStore(run / "results.sqlite")
        results = list(store.results())
        store.close()
        if results:
            r.heading("Robustness (bit-precise, on the integer graph)")
            r.paragraph(
                f"L∞ boxes of ε input codes around correctly classified test samples; "
                f"timeout {cfg['timeout_s']} s per query. 'unknown' means the solver timed out."
            )
            counts = verdict_counts(results)
            rows = []
            for (bits, eps), c in counts.items():
                sel = [x for x in results if x["bits"] == bits and x["eps"] == eps]
                times = [x.get("total_time_s", 0.0) for x in sel]
                methods: dict[str, int] = {}
                for x in sel:
                    methods[x.get("method", "?")] = methods.get(x.get("method", "?"), 0) + 1
                rows.append([bits, eps, c["robust"], c["vulnerable"], c["unknown"],
                             statistics.median(times) if times else 0.0,
                             ", ".join(f"{k} {v}" for k, v in sorted(methods.items()))])  # fmt: skip
            r.table(["bits", "ε", "robust", "vulnerable", "unknown", "median time (s)", "decided by"], rows)
            r.figure(
                plot_robustness(results), "Verdicts per bit-width and ε", png_path=run / "robustness.png"
            )
            vulns = [x for x in results if x["verdict"] == "vulnerable"][:10]
            if vulns:
                r.heading("Counterexamples (replayed on the reference and in onnxruntime)", level=3)
                r.table(["bits", "ε", "sample", "label", "counterexample label"],
                        [[x["bits"], x["eps"], x["sample"], x.get("label"), x.get("counterexample_label")]
                         for x in vulns])  # fmt: skip

    dep = _stage(run, "deploy")
    if dep:
        r.heading("Deployment (TVM)")
        rows = []
        for wb, targets in sorted(dep["outputs"].items(), key=lambda kv: int(kv[0])):
            for t, v in targets.items():
                rows.append([wb, t, v["exact_on"], v["build_s"], v["dir"]])
        r.table(["weight bits", "target", "bit-exact on (random inputs)", "build (s)", "output"], rows)

    r.heading("Configuration")
    r.preformatted(json.dumps(cfg, indent=2))
    r.heading("Versions")
    r.table(["package", "version"], _versions())
    return r.write(run)
