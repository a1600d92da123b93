"""The run report: reads a run directory and writes report.html + report.md with ctnn-analysis."""

from __future__ import annotations

import importlib
import json
import statistics
from pathlib import Path
from typing import Any

from ctnn.analysis import (
    Report,
    bias_vs_bits,
    float_integer_disagreements,
    plot_family_accuracy,
    robustness_vs_bits,
)

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


#: ctnn-verify's ``method`` values in words.
_METHODS = {
    "interval": "interval pass",
    "attack": "attack",
    "bab": "branch and bound",
    "cpsat": "CP-SAT",
    "smt": "SMT",
}

#: How each deploy target is built and run.
_TARGET_HOW = {
    "llvm": "TVM's LLVM backend on the host",
    "c": "TVM's C kernels and ctnn's model.c, gcc on the host",
    "cortex-m3": "arm-none-eabi-gcc firmware under QEMU (mps2-an385)",
    "cortex-m4": "arm-none-eabi-gcc firmware under QEMU (mps2-an386)",
    "fpga": "ctnn's Verilog in the iverilog simulator",
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
        f"The MLP quantized at each bit-width (weights and activations), L∞ boxes of ε input codes around "
        f"the first {cfg.get('samples')} test samples that graph classifies correctly (so a low-bit graph is "
        f"asked only about the samples it gets right), one Ray task per query; timeout {cfg['timeout_s']} s "
        f"per query ('unknown': the solver timed out)."
    )
    rows = []
    for bits in sorted({x["bits"] for x in results}):
        for eps in sorted({x["eps"] for x in results if x["bits"] == bits}):
            sel = [x for x in results if x["bits"] == bits and x["eps"] == eps]
            methods: dict[str, int] = {}
            for x in sel:
                methods[x.get("method", "?")] = methods.get(x.get("method", "?"), 0) + 1
            med = statistics.median(x.get("total_time_s", 0.0) for x in sel)
            rows.append([bits, eps, len(sel), f"{1000 * med:.1f}",
                         ", ".join(f"{_METHODS.get(k, k)}: {v}" for k, v in sorted(methods.items()))])  # fmt: skip
    r.study(robustness_vs_bits(results), png_path=run / "robustness_vs_bits.png", level=3)
    r.paragraph("How each query was decided: the interval pass (a cheap proof), the attack "
                "replayed on the reference, branch and bound on linear bounds, CP-SAT on the integer program "
                "where branch and bound left a class open, or the SMT solver.")  # fmt: skip
    r.table(["bits", "ε", "queries", "median time per query (ms)", "decided by (method: queries)"], rows)
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
    r.heading("Bias vs bits (exam-scores predictor)")
    r.paragraph(
        "The exam-scores predictor (mlmRev/Exam, an MLP regressor of normexam, the standardised exam score: "
        "a gap of 0.1 is a tenth of a standard deviation) quantized per bit-width; the verifier searches "
        "two inputs that differ only in sex (the other inputs within ±"
        f"{info.get('eps', '?')} codes of a test pupil) for the largest predicted-score gap. The float "
        f"gap is the float model's gap at the same pupils (a lower bound). {len(results)} queries in all."
    )
    r.study(bias_vs_bits(rows, float_gap=info.get("float_gap")), png_path=run / "bias_vs_bits.png", level=3)


def _architecture(family: str, cfg: dict) -> str:
    """What the pipeline built for ``family`` (see ``_pipeline._build``), in a few words."""
    if family == "mlp":
        eps = cfg.get("mlp_interval_eps")
        how = f", interval training ε = {eps:g}" if eps else ""
        return "MLP " + "-".join(str(n) for n in cfg.get("mlp_sizes", [])) + how
    if family == "continuous_net":
        return "ContinuousNet, width 16, 4 basis functions"
    units = f"{cfg.get('ltc_units')} units"
    extra = {"ltc": f", {cfg.get('ltc_ode_unfolds')} unfolds per step",
             "lipschitz_rnn": f", Euler ε = {cfg.get('lipschitz_eps', 0.03)}"}  # fmt: skip
    return units + extra.get(family, "")


def _pct(v: float) -> str:
    return f"{100 * v:.1f}"


def _quantization(r: Report, run: Path, cfg: dict, q: list[dict]) -> None:
    """One row per family: float accuracy, then the integer accuracy at each bit-width (as docs/results/quant.md)."""
    r.heading("Quantization")
    bits = sorted({v["weight_bits"] for v in q})
    fams = list(dict.fromkeys(v["family"] for v in q))
    wide = sorted({v["state_bits"] for v in q if v.get("state_bits")})
    acts = "at the same width as the weights" if cfg.get("act_bits") is None else f"at {cfg['act_bits']} bits"
    r.paragraph(
        f"Test accuracy (%) of each family's float model and of its integer graph (ctnn.quant.quantize_model, "
        f"post-training, {cfg.get('in_bits', 8)}-bit inputs) at b-bit weights, activations {acts}. Every "
        f"graph ran in onnxruntime exactly as the numpy reference did on the whole test set."
        + (f" The recurrent state of {', '.join(sorted({v['family'] for v in q if v.get('state_bits')}))} "
           f"is a {'/'.join(map(str, wide))}-bit accumulator read through its activation-width view "
           "(state_bits): an activation-width state rounds their small per-step changes to zero."
           if wide else "")
        + (" docs/results/quant.md holds activations at 8 bits and trains larger models (32 units), so its "
           "low-bit rows are higher than the W4/A4 ones here." if cfg.get("act_bits") is None else "")
    )  # fmt: skip
    by = {(v["family"], v["weight_bits"]): v for v in q}
    rows = []
    for f in fams:
        first = next(v for v in q if v["family"] == f)
        state = sorted({str(v.get("state_bits") or "= act") for v in q if v["family"] == f})
        rows.append([f, first.get("dataset", ""), _pct(first["float_accuracy"]),
                     *[_pct(by[f, b]["int_accuracy"]) if (f, b) in by else "" for b in bits],
                     ", ".join(state)])  # fmt: skip
    r.table(["family", "data set", "float", *[f"{b} bits" for b in bits], "state bits"], rows)
    r.figure(plot_family_accuracy(q), "Integer test accuracy per bit-width; hollow: the float model",
             png_path=run / "accuracy.png")  # fmt: skip


def _deployment(r: Report, cfg: dict, outputs: dict) -> None:
    r.heading("Deployment")
    targets = list(dict.fromkeys(v["target"] for v in outputs.values()))
    r.paragraph(
        f"Each {cfg.get('deploy_bits', 8)}-bit graph compiled for each target ("
        + "; ".join(f"{t}: {_TARGET_HOW[t]}" for t in targets if t in _TARGET_HOW)
        + ") and run on random input codes over the whole input range; 'bit-exact' means every output "
        "equalled the numpy integer reference's. The time includes compilation, the run and, where a "
        f"synthesis entry is shown, yosys synthesis for {cfg.get('synth_family')} (LUTs, flip-flops, DSPs, "
        "block RAMs, latency in clock cycles)."
    )  # fmt: skip
    rows = []
    for v in outputs.values():
        if "skipped" in v or "error" in v:
            status, n = (f"skipped: {v['skipped']}", "") if "skipped" in v else (f"FAILED: {v['error']}", "")
        else:
            status, n = "bit-exact", v["exact_on"]
        syn = v.get("synthesis")
        if isinstance(syn, dict):
            syn = ", ".join(f"{k} {syn[k]}" for k in ("lut", "ff", "dsp", "bram", "latency_cycles")
                            if syn.get(k) is not None).replace("latency_cycles", "latency")  # fmt: skip
        rows.append([Path(v["onnx"]).stem, v["target"], status, n,
                     f"{v['wall_s']:.1f}" if "wall_s" in v else "", syn or ""])  # fmt: skip
    r.table(["graph", "target", "result", "inputs checked", "time (s)", "yosys synthesis"], rows)


def write_run_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.html`` (self-contained) and ``report.md`` into ``run_dir``."""
    from ._store import ResultStore

    run = Path(run_dir)
    if not (run / "config.json").exists():
        raise FileNotFoundError(f"{run}: not a ctnn run directory (no config.json)")
    cfg = json.loads((run / "config.json").read_text())
    r = Report(f"ctnn run {run.name}")
    r.paragraph(
        "One pipeline from trained float models to verified, deployed integer code. Every family is "
        "quantized to integer ONNX graphs; the MLP's (robustness) and the exam-scores regressor's (bias) are "
        "verified bit-precisely, and the graph files that were verified are the ones that were compiled. "
        "Every build was checked against the numpy integer reference bit for bit. The recurrent graphs are "
        "deployed, not verified, here."
    )
    stages = {n: _stage(run, n) for n in _STAGE_NAMES}
    r.stage_times({n: (st["wall_s"] if st else None) for n, st in stages.items() if n != "report"})

    train, quant = stages["train"], stages["quantize"]
    if train:
        r.heading("Models (float)")
        r.paragraph("Each family trained with Adam on its data set's training split, keeping the weights of the "
                    "best validation loss (early stopping); test accuracy on the test split.")  # fmt: skip
        r.table(["family", "data set", "architecture", "epochs run", "test accuracy (%)"],
                [[k, v.get("dataset", ""), _architecture(k, cfg), v.get("epochs_run", ""),
                  _pct(v["test_accuracy"])] for k, v in train["outputs"].items() if "test_accuracy" in v])  # fmt: skip
        exam = train["outputs"].get("exam")
        if exam and "test_mse" in exam:
            r.paragraph(f"Exam-scores regressor (mlmRev/Exam, {', '.join(exam['features'])}): test MSE "
                        f"{exam['test_mse']:.3f} on the normalised score (variance 1).")  # fmt: skip
    if quant:
        _quantization(r, run, cfg, [v for v in quant["outputs"].values() if "int_accuracy" in v])

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
        _deployment(r, cfg, dep["outputs"])

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
