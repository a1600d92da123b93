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

from ._config import PipelineConfig

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


def stage_train(run: Path, cfg: PipelineConfig, con: Console) -> dict[str, Any]:
    import torch

    from ctnn.models import MLP, LTCClassifier, accuracy, load_dataset, save_checkpoint, train_classifier

    torch.set_num_threads(1)
    data = load_dataset(cfg.dataset, seed=cfg.seed)
    models = run / "models"
    models.mkdir(exist_ok=True)
    torch.manual_seed(cfg.seed)
    mlp = MLP(cfg.mlp_sizes)
    hist = train_classifier(mlp, data, epochs=cfg.epochs, seed=cfg.seed, progress=not con.quiet)
    mlp_acc = accuracy(mlp, data.X_test, data.y_test)
    save_checkpoint(mlp, models / "mlp.safetensors")
    con.say(f"  MLP {cfg.mlp_sizes}: float test accuracy {100 * mlp_acc:.2f}%")
    out: dict[str, Any] = {"mlp": {"checkpoint": "models/mlp.safetensors", "test_accuracy": mlp_acc,
                                   "epochs_run": hist.epochs_run}}  # fmt: skip
    if cfg.ltc_epochs > 0:
        # the LTC reads an 8x8 digit as a sequence of 8 rows of 8 pixels
        rows, width = data.sample_shape
        torch.manual_seed(cfg.seed)
        ltc = LTCClassifier(width, cfg.ltc_units, data.n_classes, ode_unfolds=cfg.ltc_ode_unfolds)
        train_classifier(ltc, data, epochs=cfg.ltc_epochs, lr=3e-2, seed=cfg.seed, progress=not con.quiet)
        ltc_acc = accuracy(ltc, data.X_test, data.y_test)
        save_checkpoint(ltc, models / "ltc.safetensors")
        con.say(f"  LTC ({cfg.ltc_units} units, {cfg.ltc_ode_unfolds} unfolds, {rows} steps): "
                f"float test accuracy {100 * ltc_acc:.2f}%")  # fmt: skip
        out["ltc"] = {"checkpoint": "models/ltc.safetensors", "test_accuracy": ltc_acc}
    return out


def stage_quantize(run: Path, cfg: PipelineConfig, con: Console) -> dict[str, Any]:
    import onnxruntime as ort

    from ctnn.models import accuracy, load_checkpoint, load_dataset
    from ctnn.quant import ReferenceInterpreter, export_onnx, quantize_mlp

    data = load_dataset(cfg.dataset, seed=cfg.seed)
    mlp, _ = load_checkpoint(run / "models" / "mlp.safetensors")
    float_acc = accuracy(mlp, data.X_test, data.y_test)
    (run / "onnx").mkdir(exist_ok=True)
    out: dict[str, Any] = {}
    for wb in cfg.weight_bits:
        ab = cfg.acts_for(wb)
        q = quantize_mlp(mlp, data.X_train, weight_bits=wb, act_bits=ab, in_bits=cfg.in_bits,
                         input_range=data.value_range)  # fmt: skip
        codes = q.quantize_input(data.X_test)
        ref = ReferenceInterpreter(q.to_onnx()).run({"x": codes})["y"]
        int_acc = float((np.argmax(ref, -1) == data.y_test).mean())
        path = export_onnx(q, run / "onnx" / f"mlp_w{wb}a{ab}.onnx", dataset=cfg.dataset,
                           classes=[str(c) for c in range(data.n_classes)],
                           metrics={"float_test_accuracy": float_acc, "int_test_accuracy": int_acc})  # fmt: skip
        # the exported file, read back, must run in onnxruntime exactly as the reference does
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = sess.run(None, {"x": codes})[0]
        if not np.array_equal(got, ref):
            raise AssertionError(f"{path}: onnxruntime differs from the reference on the test set")
        con.say(f"  {wb}-bit weights / {ab}-bit activations: integer test accuracy {100 * int_acc:.2f}% "
                f"(float {100 * float_acc:.2f}%), onnxruntime == reference on {len(codes)} test inputs")  # fmt: skip
        out[str(wb)] = {"onnx": str(path.relative_to(run)), "weight_bits": wb, "act_bits": ab,
                        "float_accuracy": float_acc, "int_accuracy": int_acc}  # fmt: skip
    return out


def stage_verify(run: Path, cfg: PipelineConfig, con: Console, address: str | None = None) -> dict[str, Any]:
    import ray

    from ctnn.models import load_dataset
    from ctnn.quant import ReferenceInterpreter, load_model, read_sidecar

    from ._ray import Query, init_ray, run_robustness_queries
    from ._store import ResultStore, query_key

    quant = json.loads((run / "stages" / "quantize.json").read_text())["outputs"]
    data = load_dataset(cfg.dataset, seed=cfg.seed)
    t0 = time.monotonic()
    started = init_ray(address)
    con.say(f"  Ray ready in {time.monotonic() - t0:.1f}s ({ray.cluster_resources().get('CPU', 0):.0f} CPUs)")
    store = ResultStore(run / "results.sqlite")
    queries: list[Query] = []
    try:
        for wb, info in sorted(quant.items(), key=lambda kv: int(kv[0])):
            path = run / info["onnx"]
            sc = read_sidecar(path)
            model = load_model(path)
            codes = sc.input.quantize(data.X_test)
            pred = np.argmax(ReferenceInterpreter(model).run({"x": codes})["y"], -1)
            # robustness is asked of correctly classified samples, the first ones of the test split
            picked = [i for i in range(len(codes)) if pred[i] == data.y_test[i]][: cfg.samples]
            ref = ray.put(model.SerializeToString())
            for eps in cfg.eps:
                for i in picked:
                    meta = {"bits": int(wb), "eps": eps, "sample": i, "model": info["onnx"]}
                    key = query_key(model=sc.onnx_sha256, prop="robustness", eps=eps, sample=i,
                                    timeout=cfg.timeout_s, solver="z3")  # fmt: skip
                    queries.append(
                        Query(
                            key,
                            ref,
                            codes[i].tolist(),
                            eps,
                            int(data.y_test[i]),
                            (sc.input.lo, sc.input.hi),
                            meta,
                        )
                    )
        bar = _progress(con, "verify", len(queries))
        results = run_robustness_queries(queries, store, "pipeline", cfg.timeout_s, progress=bar)
        bar(len(queries), len(queries), None, close=True)
    finally:
        store.close()
        if started:
            ray.shutdown()
    counts: dict[str, int] = {}
    for r in results:
        counts[r["verdict"]] = counts.get(r["verdict"], 0) + 1
    con.say(f"  {len(results)} queries: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    return {"store": "results.sqlite", "queries": len(results), "counts": counts}


def stage_deploy(run: Path, cfg: PipelineConfig, con: Console) -> dict[str, Any]:
    from ctnn.deploy import build
    from ctnn.quant import ReferenceInterpreter, load_model, read_sidecar

    quant = json.loads((run / "stages" / "quantize.json").read_text())["outputs"]
    out: dict[str, Any] = {}
    rng = np.random.default_rng(cfg.seed)
    for wb, info in sorted(quant.items(), key=lambda kv: int(kv[0])):
        path = run / info["onnx"]
        sc = read_sidecar(path)
        model = load_model(path)
        x = rng.integers(sc.input.lo, sc.input.hi + 1, size=(cfg.deploy_inputs, sc.input.shape[-1]))
        x = x.astype(sc.input.dtype)
        ref = ReferenceInterpreter(model).run({"x": x})["y"]
        entry: dict[str, Any] = {}
        for target in cfg.deploy_targets:
            t0 = time.monotonic()
            res = build(path, target=target, out_dir=run / "build" / f"{path.stem}_{target}")
            got = res.load().run(x)
            exact = bool(np.array_equal(got, ref))
            if not exact:
                raise AssertionError(f"{path.name} on target {target}: output differs from the reference")
            entry[target] = {"dir": str(res.out_dir.relative_to(run)), "exact_on": len(x),
                             "build_s": round(time.monotonic() - t0, 2)}  # fmt: skip
            con.say(f"  {path.name} → {target}: bit-exact with the reference on {len(x)} random inputs")
        out[wb] = entry
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
    ("report", stage_report),
]


def _progress(con: Console, what: str, total: int):
    """A tqdm bar fed by (done, total, verdict counts) callbacks."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=f"  {what}", unit="query", disable=con.quiet, dynamic_ncols=True)

    def update(done: int, total: int, counts, close: bool = False) -> None:
        bar.n = done
        if counts:
            bar.set_postfix({k: v for k, v in sorted(counts.items()) if k}, refresh=False)
        bar.refresh()
        if close:
            bar.close()

    return update


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
        saved = json.loads(cfg_path.read_text())
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
        t0 = time.monotonic()
        outputs = fn(run, cfg, con, address) if name == "verify" else fn(run, cfg, con)
        _save_json(marker, {"stage": name, "wall_s": round(time.monotonic() - t0, 2), "outputs": outputs})
    return run
