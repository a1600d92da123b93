"""The run report: reads a run directory and writes report.html + report.md with ctnn-analysis."""

from __future__ import annotations

import importlib
import json
import statistics
from pathlib import Path
from typing import Any

from ctnn.analysis import Report, bias_vs_bits, float_integer_disagreements, plot_accuracy, robustness_vs_bits

#: The stages in the order the pipeline runs them (``_pipeline.STAGES`` imports torch-side code lazily).
_STAGE_NAMES = ("train", "quantize", "verify", "deploy", "analyze", "report")

#: What each model-side study is called in the report, in the order it appears.
_ANALYSES = {
    "trajectory_length": "Expressivity",
    "lipschitz_spectra": "Stability",
    "ltc_ranges": "Stability",
    "lem_timescales": "Stability",
    "hessian": "Loss curvature",
    "continuous_net": "ContinuousNet",
}


def _stage(run: Path, name: str) -> dict | None:
    p = run / "stages" / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None


def _load_study(path: Path) -> Any:
    """A study saved by the analyze stage: ``{"module", "type", "data"}`` → ``Type.from_dict(data)``."""
    d = json.loads(path.read_text())
    if not str(d.get("module", "")).startswith("ctnn.analysis"):
        raise ValueError(f"{path}: not a ctnn-analysis study (module {d.get('module')!r})")
    cls = getattr(importlib.import_module(d["module"]), d["type"])
    return cls.from_dict(d["data"])


def _robustness(r: Report, run: Path, cfg: dict, results: list[dict]) -> None:
    r.heading("Robustness vs bits (bit-precise, on the integer graph)")
    r.paragraph(
        f"The MLP quantized at each bit-width, L∞ boxes of ε input codes around correctly classified "
        f"test samples, one Ray task per query; timeout {cfg['timeout_s']} s per query ('unknown': the "
        f"solver timed out)."
    )
    rows = []
    for bits in sorted({x["bits"] for x in results}):
        for eps in sorted({x["eps"] for x in results if x["bits"] == bits}):
            sel = [x for x in results if x["bits"] == bits and x["eps"] == eps]
            methods: dict[str, int] = {}
            for x in sel:
                methods[x.get("method", "?")] = methods.get(x.get("method", "?"), 0) + 1
            rows.append([bits, eps, len(sel), statistics.median(x.get("total_time_s", 0.0) for x in sel),
                         ", ".join(f"{k} {v}" for k, v in sorted(methods.items()))])  # fmt: skip
    r.study(robustness_vs_bits(results), png_path=run / "robustness_vs_bits.png", level=3)
    r.table(["bits", "ε", "queries", "median time (s)", "decided by"], rows)
    fv_path = run / "float_verdicts.json"
    if fv_path.exists():
        fv = {
            (x["model"], x["eps"], x["sample"]): x["float_verdict"] for x in json.loads(fv_path.read_text())
        }
        merged = [
            {**x, "float_verdict": fv[k]} for x in results if (k := (x["model"], x["eps"], x["sample"])) in fv
        ]
        r.study(float_integer_disagreements(merged), png_path=run / "float_vs_integer.png", level=3)
    else:
        r.paragraph("Float verdicts are not available for this run (float_baselines = false).")
    vulns = [x for x in results if x["verdict"] == "vulnerable"][:10]
    if vulns:
        r.heading("Counterexamples (replayed on the reference and in onnxruntime)", level=3)
        r.table(["bits", "ε", "sample", "label", "counterexample label"],
                [[x["bits"], x["eps"], x["sample"], x.get("label"), x.get("counterexample_label")]
                 for x in vulns])  # fmt: skip


def _bias(r: Report, run: Path, verify: dict, results: list[dict]) -> None:
    from ctnn.quant import read_sidecar

    info = verify.get("bias", {})
    if "skipped" in info:
        r.heading("Bias vs bits")
        r.paragraph(f"Not run: {info['skipped']}.")
        return
    if not results:
        return
    # one row per bit-width: the largest gap over the pupils and the largest of their proved bounds
    # (each bound holds for its pupil only, so the bit-width's bound is their maximum)
    per_bits: dict[int, dict[str, Any]] = {}
    for x in results:
        scale = read_sidecar(run / x["model"]).output.scale  # codes → normalised exam score units
        row = per_bits.setdefault(x["bits"], {"bits": x["bits"], "gap": 0.0, "bound": 0.0})
        row["gap"] = max(row["gap"], x["gap"] * scale)
        row["bound"] = max(row["bound"], x["bound"] * scale)
        if x["gap"] < x["bound"]:
            row["verdict"] = "unknown"
    rows = [per_bits[b] for b in sorted(per_bits)]
    r.study(bias_vs_bits(rows, float_gap=info.get("float_gap")), png_path=run / "bias_vs_bits.png")
    r.paragraph(
        "The exam-scores predictor (mlmRev/Exam, an MLP regressor of normexam) quantized per bit-width; "
        "the verifier searches two inputs that differ only in sex (the other inputs within ±"
        f"{info.get('eps', '?')} codes of a test pupil) for the largest predicted-score gap. The float "
        f"gap is the float model's gap at the same pupils (a lower bound). {len(results)} queries in all."
    )


def write_run_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained) and ``report.md`` into ``run_dir``."""
    from ._store import ResultStore

    run = Path(run_dir)
    if not (run / "config.json").exists():
        raise FileNotFoundError(f"{run}: not a ctnn run directory (no config.json)")
    cfg = json.loads((run / "config.json").read_text())
    r = Report(f"ctnn run {run.name}")
    r.paragraph(
        "One pipeline from trained float models to verified, deployed integer code: the integer ONNX "
        "graph that was verified is the one that was compiled, and every build was checked against the "
        "numpy integer reference bit for bit."
    )
    stages = {n: _stage(run, n) for n in _STAGE_NAMES}
    r.stage_times({n: (st["wall_s"] if st else None) for n, st in stages.items() if n != "report"})

    train, quant = stages["train"], stages["quantize"]
    if train:
        r.heading("Models (float)")
        r.table(["model", "data set", "test accuracy (%)"],
                [[k, v.get("dataset", ""), 100 * v["test_accuracy"]] for k, v in train["outputs"].items()
                 if "test_accuracy" in v])  # fmt: skip
        exam = train["outputs"].get("exam")
        if exam and "test_mse" in exam:
            r.paragraph(f"Exam-scores regressor (mlmRev/Exam, {', '.join(exam['features'])}): test MSE "
                        f"{exam['test_mse']:.3f} on the normalised score (variance 1).")  # fmt: skip
    if quant:
        q = [v for v in quant["outputs"].values() if "int_accuracy" in v]
        r.heading("Quantization")
        r.paragraph("Every family quantized by ctnn.quant.quantize_model; each exported graph ran in "
                    "onnxruntime exactly as the numpy reference did on the whole test set.")  # fmt: skip
        r.table(["model", "weight bits", "activation bits", "float accuracy (%)", "integer accuracy (%)"],
                [[v["family"], v["weight_bits"], v["act_bits"], 100 * v["float_accuracy"], 100 * v["int_accuracy"]]
                 for v in sorted(q, key=lambda v: (v["family"], v["weight_bits"]))])  # fmt: skip
        acc = {v["weight_bits"]: {"float": v["float_accuracy"], "integer": v["int_accuracy"]}
               for v in q if v["family"] == "mlp"}  # fmt: skip
        if acc:
            r.figure(plot_accuracy(acc), "Test accuracy of the float MLP and its integer versions",
                     png_path=run / "accuracy.png")  # fmt: skip

    if (run / "results.sqlite").exists():
        with ResultStore(run / "results.sqlite") as store:
            rob = [x for x in store.results("robustness") if x.get("status") != "error"]
            bias = list(store.results("bias"))
        if rob:
            _robustness(r, run, cfg, rob)
        if stages["verify"]:
            _bias(r, run, stages["verify"]["outputs"], bias)

    dep = stages["deploy"]
    if dep:
        r.heading("Deployment")
        rows = []
        for v in dep["outputs"].values():
            if "skipped" in v or "error" in v:
                status = f"skipped: {v['skipped']}" if "skipped" in v else f"failed: {v['error']}"
            else:
                status = f"bit-exact on {v['exact_on']} input" + ("s" if v["exact_on"] != 1 else "")
            syn = v.get("synthesis")
            if isinstance(syn, dict):
                syn = ", ".join(f"{k} {syn[k]}" for k in ("lut", "ff", "dsp", "bram", "latency_cycles")
                                if syn.get(k) is not None)  # fmt: skip
            rows.append([v["onnx"], v["target"], status, v.get("wall_s", ""), syn or ""])
        r.table(["graph", "target", "result", "build + check (s)", "synthesis (yosys)"], rows)

    ana = stages["analyze"]
    if ana:
        done_sections: set[str] = set()
        for name, section in _ANALYSES.items():
            entry = ana["outputs"].get(name)
            if entry is None:
                continue
            if section not in done_sections:
                r.heading(section)
                done_sections.add(section)
            if isinstance(entry, dict):  # the study failed; say why instead of dropping it
                r.paragraph(f"{name}: not available ({entry['error']}).")
            else:
                r.study(_load_study(run / entry), png_path=run / f"{name}.png", level=3)

    r.configuration(cfg)
    r.versions()
    return r.write(run)
