"""Integer accuracy of every family × data set at 16/8/6/4/3 bits, PTQ and QAT, next to float.

One command writes ``benchmarks/quant/results.json`` and then ``docs/results/quant.md``::

    python benchmarks/quant/accuracy.py                                   # everything (hours on 2 cores)
    python benchmarks/quant/accuracy.py --families mlp lem --datasets digits --bits 8 4
    python benchmarks/quant/accuracy.py --budget 50                       # stop starting new work after 50 min
    python benchmarks/quant/accuracy.py --render-only                     # rewrite the page from the JSON

It resumes: an entry already in the JSON is not run again (``--redo`` forces it).
Each entry is one float model (trained once, cached as a checkpoint under ``--cache``),
quantized with b-bit weights and 8-bit activations (``--act-bits``; 0 = b) and 8-bit inputs (LUT nonlinearities),
calibrated on 256 training samples (PTQ), then fine-tuned with :func:`ctnn.quant.qat_finetune`
(QAT; the weights with the best integer *validation* accuracy are kept, the PTQ start
included). Accuracies are on the test split; the peer of every number is the float model
in the same run. Families the integer core cannot quantize yet, and data sets it cannot
export, are recorded as such, never dropped. Variable-length data (japanese_vowels) runs on the
sequence families: the graph is unrolled over the longest sequence and a reserved input code marks
padded steps, which leave the state unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

import ctnn.quant as cq
from ctnn.models import (
    CLASSIFIERS,
    DATASETS,
    build_classifier,
    load_checkpoint,
    load_dataset,
    save_checkpoint,
    train_classifier,
)
from ctnn.models import accuracy as float_accuracy

ROOT = Path(__file__).resolve().parents[2]
BITS = [16, 8, 6, 4, 3]
# small models: the machine is shared and slow
MODEL_OPTS = {
    "mlp": dict(hidden=[32]),
    "ltc": dict(units=16, ode_unfolds=3),
    "lipschitz_rnn": dict(units=32),
    "lem": dict(units=32),
    "ctrnn": dict(units=32, ode_unfolds=2),
    "lstm": dict(units=32),
    "gru": dict(units=32),
    "continuous_net": dict(widths=[32]),
}
# float training as benchmarks/models/accuracy_table.py trains (docs/results/models.md): Adam, gradient-norm
# clipping for the sequence families, the weights of the best validation loss kept.
# data set -> (max epochs, batch size, patience; None: all epochs — the 8- and 10-sample validation splits of
# gunpoint and basic_motions stop runs on an early plateau)
FLOAT_TRAIN = {
    "italy_power_demand": (150, 16, 30),
    "gunpoint": (150, 16, None),
    "basic_motions": (150, 16, None),
    "japanese_vowels": (100, 32, 20),
    "digits": (40, 64, 10),
    "mnist_subset": (20, 64, 5),
}
FLOAT_LR = {"mlp": 1e-3, "continuous_net": 3e-3, "ltc": 2e-2}  # others: 5e-3
FLAT = ("mlp", "continuous_net")  # no gradient clipping (as in benchmarks/models)


def float_settings(family: str, dataset: str) -> dict:
    """The float training settings of one (family, data set) — part of the checkpoint cache key."""
    epochs, batch, patience = FLOAT_TRAIN.get(dataset, (80, 32, 15))
    return {"epochs": epochs, "batch_size": batch, "patience": patience, "lr": FLOAT_LR.get(family, 5e-3),
            "clip_grad_norm": None if family in FLAT else 1.0, "options": MODEL_OPTS.get(family, {}), "seed": 0}  # fmt: skip


# quantizer options per family: a 16-bit state accumulator (the LSTM's cell state) whose act-bit view the
# matmuls and tables read — an 8-bit state rounds the Lipschitz RNN's ε = 0.03 increments (and the LSTM's
# f ≈ 1 updates) away over 100-150 steps (see docs/results/quant.md)
QUANT_OPTS = {f: {"state_bits": 16} for f in ("lipschitz_rnn", "ctrnn", "lstm", "gru")}
ORDER = ["italy_power_demand", "digits", "gunpoint", "basic_motions", "japanese_vowels", "mnist_subset"]


def _key(*parts) -> str:
    return "/".join(str(p) for p in parts)


def _save(results: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _int_acc(q, X, y) -> float:
    return float((q.predict(np.asarray(X, np.float64)) == np.asarray(y)).mean())


def _ckpt_path(cache: Path, family: str, dataset: str) -> Path:
    tag = hashlib.sha256(json.dumps(float_settings(family, dataset), sort_keys=True).encode()).hexdigest()[
        :10
    ]
    return cache / dataset / family / tag / "model.safetensors"


def _float_model(family: str, data, cache: Path, results: dict, json_path: Path):
    """Train (or reuse) the float model; checkpoints are cached as safetensors + JSON keyed by their settings."""
    settings = float_settings(family, data.name)
    ckpt = _ckpt_path(cache, family, data.name)
    key = _key(family, data.name)
    if ckpt.is_file():
        _, cfg = load_checkpoint(ckpt)
        if "float" in cfg:
            results["float"][key] = cfg["float"]
            return ckpt
    torch.manual_seed(0)
    model = build_classifier(family, data, **settings["options"])
    t0 = time.perf_counter()
    res = train_classifier(model, data, epochs=settings["epochs"], lr=settings["lr"], batch_size=settings["batch_size"],
                           seed=0, patience=settings["patience"], progress=False,
                           clip_grad_norm=settings["clip_grad_norm"])  # fmt: skip
    entry = {
        "test_accuracy": float(float_accuracy(model, data.X_test, data.y_test)),
        "val_accuracy": float(res.val_accuracy),
        "epochs": int(res.epochs_run),
        "train_s": round(time.perf_counter() - t0, 1),
        **settings,
    }
    save_checkpoint(model, ckpt, {"dataset": data.summary(), "float": entry})
    results["float"][key] = entry
    _save(results, json_path)
    print(
        f"float {family:15s} {data.name:20s} {entry['test_accuracy']:.3f} ({entry['train_s']} s)", flush=True
    )
    return ckpt


def _run_entry(family: str, data, bits: int, ckpt: Path, args, float_acc: float) -> dict:
    calib = np.asarray(data.X_train, np.float64)[: args.calib_size]
    input_range = tuple(data.value_range) if family == "mlp" else None
    model, _ = load_checkpoint(ckpt)
    t0 = time.perf_counter()
    act = args.act_bits or bits
    qo = QUANT_OPTS.get(family, {})
    q = cq.quantize_model(
        model, calib, weight_bits=bits, act_bits=act, in_bits=8, input_range=input_range, **qo
    )
    out = {"ptq": _int_acc(q, data.X_test, data.y_test), "ptq_s": round(time.perf_counter() - t0, 2)}
    if out["ptq"] >= float_acc and not args.qat_always:
        out["qat"] = None
        out["qat_note"] = "not run: PTQ already matches float"
        return out
    n_batches = math.ceil(len(data.X_train) / args.qat_batch)
    epochs = max(args.qat_epochs, math.ceil(args.min_qat_steps / n_batches))
    t0 = time.perf_counter()
    select = "train+val" if len(data.y_val) < args.min_val else "val"
    qq = cq.qat_finetune(model, data, bits=bits, act_bits=act, in_bits=8, epochs=epochs, lr=args.qat_lr, select_on=select,
                         select_by=args.qat_select_by,
                         calib_size=args.calib_size, input_range=input_range, batch_size=args.qat_batch, **qo)  # fmt: skip
    out.update(qat=_int_acc(qq, data.X_test, data.y_test), qat_s=round(time.perf_counter() - t0, 1),
               qat_epochs=epochs, qat_best_epoch=qq.hyperparameters["qat"]["best_epoch"], qat_batch=args.qat_batch,
               qat_select_on=select, qat_select_by=args.qat_select_by)  # fmt: skip
    return out


def _cached_model(args, family: str, dataset: str):
    """(data, float model, calibration inputs) from the checkpoint cache, or None when it is not cached."""
    ckpt = _ckpt_path(Path(args.cache), family, dataset)
    if not ckpt.is_file():
        return None
    data = load_dataset(dataset, seed=0)
    model, _ = load_checkpoint(ckpt)
    return data, model, np.asarray(data.X_train, np.float64)[: args.calib_size]


def probe(args, results: dict) -> None:
    """Where 8-bit PTQ loses > 5 points, measure PTQ with 8-bit weights and 16-bit activations (the state's share)."""
    results.setdefault("probes", {})
    for key, f in sorted(results["float"].items()):
        fam, ds = key.split("/")
        r = results["runs"].get(_key(fam, ds, 8))
        if (
            not r
            or "error" in r
            or f["test_accuracy"] - r["ptq"] <= 0.05
            or (key in results["probes"] and not args.redo)
        ):
            continue
        cached = _cached_model(args, fam, ds)
        if cached is None:
            continue
        data, model, calib = cached
        ir = tuple(data.value_range) if fam == "mlp" else None
        accs = {}
        for a in (12, 16):
            qo = {"state_bits": max(a, 16)} if fam in QUANT_OPTS else {}
            q = cq.quantize_model(model, calib, weight_bits=8, act_bits=a, in_bits=8, input_range=ir, **qo)
            accs[f"w8a{a}_ptq"] = _int_acc(q, data.X_test, data.y_test)
        results["probes"][key] = accs
        _save(results, Path(args.json))
        print(f"probe {key}: float {f['test_accuracy']:.3f} w8a8 {r['ptq']:.3f} {accs}", flush=True)


def state_probe(args, results: dict) -> None:
    """W8/A8 PTQ of every state_bits family with an 8-bit state (the old default) next to the 16-bit one."""
    results.setdefault("state_probe", {})
    for key in sorted(results["float"]):
        fam, ds = key.split("/")
        if fam not in QUANT_OPTS or (key in results["state_probe"] and not args.redo):
            continue
        cached = _cached_model(args, fam, ds)
        if cached is None:
            continue
        data, model, calib = cached
        accs = {}
        for sb in (8, 16):
            q = cq.quantize_model(model, calib, weight_bits=8, act_bits=8, in_bits=8, state_bits=sb)
            accs[f"state{sb}"] = _int_acc(q, data.X_test, data.y_test)
        results["state_probe"][key] = accs
        _save(results, Path(args.json))


def run(args) -> dict:
    json_path = Path(args.json)
    results = json.loads(json_path.read_text()) if json_path.is_file() else {}
    results.setdefault("float", {})
    results.setdefault("runs", {})
    results.setdefault("skipped", {})
    results["settings"] = {
        "act_bits": args.act_bits or "equal to the weight bits", "in_bits": 8, "calib_size": args.calib_size,
        "qat_epochs": args.qat_epochs, "min_qat_steps": args.min_qat_steps, "qat_lr": args.qat_lr, "qat_batch": args.qat_batch,
        "model_options": MODEL_OPTS, "float_train": FLOAT_TRAIN, "float_lr": FLOAT_LR, "quant_options": QUANT_OPTS,
        "qat_ranges": "frozen (calibrated once on the PTQ start)", "qat_select_on_train_val_below": args.min_val,
        "qat_select_by": args.qat_select_by,
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "threads": torch.get_num_threads(),
    }  # fmt: skip
    deadline = time.monotonic() + args.budget * 60 if args.budget else math.inf
    supported = set(cq.supported_families())
    for ds_name in args.datasets:
        try:
            data = load_dataset(ds_name, seed=0)
        except Exception as exc:  # a data set that is not bundled
            results["skipped"][_key("*", ds_name)] = f"data set unavailable: {exc}"
            continue
        variable = bool(data.summary().get("variable_length"))
        for family in args.families:
            if family not in supported:
                results["skipped"][_key(family, ds_name)] = "not supported yet by the integer core"
                continue
            if variable and family in FLAT:
                results["skipped"][_key(family, ds_name)] = (
                    "variable-length (NaN-padded) sequences: a flat family reads the padding as NaN features "
                    "(its float model predicts nothing); the sequence families hold their state over padded steps"
                )
                continue
            todo = [b for b in args.bits if args.redo or _key(family, ds_name, b) not in results["runs"]]
            if not todo:
                continue
            if time.monotonic() > deadline:
                print(f"budget spent: {family}/{ds_name} not run", flush=True)
                continue
            results["skipped"].pop(_key(family, ds_name), None)  # a reason from an older run
            try:
                ckpt = _float_model(family, data, Path(args.cache), results, json_path)
            except Exception as exc:
                results["skipped"][_key(family, ds_name)] = (
                    f"float training failed: {type(exc).__name__}: {exc}"
                )
                _save(results, json_path)
                continue
            fa = results["float"][_key(family, ds_name)]["test_accuracy"]
            if args.float_only:
                continue
            for b in todo:
                if time.monotonic() > deadline:
                    print(f"budget spent: {family}/{ds_name}/{b} not run", flush=True)
                    break
                try:
                    entry = _run_entry(family, data, b, ckpt, args, fa)
                except Exception as exc:
                    entry = {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
                    if args.verbose:
                        traceback.print_exc()
                results["runs"][_key(family, ds_name, b)] = entry
                _save(results, json_path)
                print(f"{family:15s} {ds_name:20s} {b:2d} bits  float {fa:.3f}  {entry}", flush=True)
    return results


def _acts(s: dict) -> str:
    a = s.get("act_bits", 8)
    return f"**{a}-bit activations**" if isinstance(a, int) else "**b-bit activations**"


def _merge(into: Path, others: list[Path]) -> None:
    """Fold parallel runs' entries into ``into`` (entries already there win)."""
    results = json.loads(into.read_text()) if into.is_file() else {}
    for o in others:
        other = json.loads(o.read_text())
        for section in ("float", "runs", "skipped"):
            results.setdefault(section, {})
            for k, v in other.get(section, {}).items():
                results[section].setdefault(k, v)
        results.setdefault("settings", other.get("settings", {}))
        if other.get("settings") != results["settings"]:
            raise SystemExit(
                f"{o}: its settings differ from {into}'s; results of different settings do not mix"
            )
        results["parallel_runs"] = results.get("parallel_runs", 1) + 1
    _save(results, into)


_INFO: dict[str, tuple[int, int, int]] = {}


def _info(ds: str) -> tuple[int, int, int]:
    """(validation size, classes, test size) of a data set; zeros when it cannot be loaded."""
    if ds not in _INFO:
        try:
            d = load_dataset(ds, seed=0)
            _INFO[ds] = (len(d.y_val), d.n_classes, len(d.y_test))
        except Exception:
            return 0, 0, 0
    return _INFO[ds]


def _n_val(ds: str) -> int | str:
    return _info(ds)[0] or "?"


def _pct(v) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def render(
    results: dict, page: Path, all_families: list[str], all_datasets: list[str], bits: list[int]
) -> None:
    fl, runs, skipped = results.get("float", {}), results.get("runs", {}), results.get("skipped", {})
    s = results.get("settings", {})
    lines = [
        "# Quantization accuracy (ctnn-quant)",
        "",
        "Generated by `python benchmarks/quant/accuracy.py` from `benchmarks/quant/results.json` — not typed by hand.",
        "",
        "Each cell is the **test accuracy (%)** of the integer model, `PTQ / QAT`, with **b-bit weights** and "
        f"{_acts(s)} (inputs at 8 bits, nonlinearities as lookup tables, per-tensor scales), next to the float model "
        "it came from. The Lipschitz RNN, CT-RNN, LSTM and GRU keep their state (the LSTM: its cell state) in a "
        "**16-bit accumulator** (`state_bits=16`) that the matmuls and tables read through its 8-bit view — "
        "without it an 8-bit state rounds their small per-step changes away (see below). PTQ: post-training "
        f"quantization calibrated on {s.get('calib_size', 256)} training samples. QAT: `qat_finetune` from the PTQ "
        f"start (≥ {s.get('qat_epochs', '?')} epochs and ≥ {s.get('min_qat_steps', '?')} steps of batch "
        f"{s.get('qat_batch', '?')}, lr {s.get('qat_lr', '?')}, ranges frozen at the PTQ start), keeping the weights "
        + (
            'whose integer logits have the lowest cross-entropy on the *validation* split (`select_by="loss"`; '
            "accuracy on 8–14 validation samples rarely tells epochs apart — selected by validation accuracy, the "
            "same settings met 84 of 92 targets)"
            if s.get("qat_select_by") == "loss"
            else "whose integer model scores best on the *validation* split"
        )
        + " (the PTQ start included; the test split is never looked at). QAT's "
        "forward pass is the exported graph itself, so every QAT number is the accuracy of the graph that "
        "`export_onnx` writes. `—` for QAT: not run because PTQ already matched float. The float models are "
        "trained as `benchmarks/models` trains them (Adam, gradient clipping for sequences, best validation loss "
        "kept; `settings.float_train` in the JSON) and cached as safetensors + JSON, small (32 units, LTC 16).",
        "",
        "japanese_vowels has variable-length sequences (right-padded with NaN): the graph is unrolled over the "
        "longest (29 steps), the lowest input code marks a padded step, and a padded step leaves the state "
        "unchanged (`Equal` + `Where`), as the float model reads each sequence at its last valid step. The flat "
        "families (MLP, ContinuousNet) have no float model for it (they read the padding as NaN features).",
        "",
        f"Entries come from {results.get('parallel_runs', 1)} run(s) of this script with the settings below "
        "(parallel runs on subsets, folded together with `--merge`).",
        "",
        "Targets (issue #4): QAT at 8 bits within 1 point of float, at 4 bits within 3 points; ✓/✗ below.",
        "",
    ]
    target_rows = []
    for ds in all_datasets:
        lines += [f"## {ds}", "", "| family | float | " + " | ".join(f"{b} bits" for b in bits) + " |",
                  "|---|---|" + "---|" * len(bits)]  # fmt: skip
        for fam in all_families:
            f = fl.get(_key(fam, ds))
            why = skipped.get(_key(fam, ds)) or skipped.get(_key("*", ds))
            if f is None:
                lines.append(f"| {fam} | {why or 'not run (time)'} |" + " |" * len(bits))
                continue
            cells = []
            for b in bits:
                r = runs.get(_key(fam, ds, b))
                if r is None:
                    cells.append("not run")
                elif "error" in r:
                    cells.append(f"error¹ ({r['error'][:60]})")
                else:
                    cells.append(f"{_pct(r['ptq'])} / {_pct(r['qat'])}")
            lines.append(f"| {fam} | {_pct(f['test_accuracy'])} | " + " | ".join(cells) + " |")
            for b, tol in ((8, 0.01), (4, 0.03)):
                r = runs.get(_key(fam, ds, b))
                if r and "error" not in r:
                    best = r["qat"] if r["qat"] is not None else r["ptq"]
                    gap = f["test_accuracy"] - best
                    target_rows.append((ds, fam, b, gap, gap <= tol + 1e-9))
        lines.append("")
    lines += [
        "## Targets",
        "",
        "| data set | family | bits | float − QAT (points) | within target |",
        "|---|---|---|---|---|",
    ]
    for ds, fam, b, gap, ok in target_rows:
        lines.append(f"| {ds} | {fam} | {b} | {100 * gap:+.1f} | {'✓' if ok else '✗'} |")
    met = sum(ok for *_, ok in target_rows)
    lines += [
        "",
        f"{met} of {len(target_rows)} measured (family, data set, bits) cases meet their target.",
        "",
    ]
    not_run = [(fam, ds) for ds in all_datasets for fam in all_families
               if _key(fam, ds) not in fl and _key(fam, ds) not in skipped and _key("*", ds) not in skipped]  # fmt: skip
    short = [(ds, fam, b, gap) for ds, fam, b, gap, ok in target_rows if not ok]
    lines += ["## Where a family falls short, and why", ""]
    if short:
        lines += [
            "Each ✗ above, with what the run itself shows (`test samples`: the gap in test samples; `best epoch 0`: "
            "no QAT epoch beat the PTQ start on the validation split, so QAT returned the PTQ model). What is behind "
            "them (measured while preparing this run): (a) **tiny test splits** — GunPoint has 150 test samples "
            "(one = 0.67 points) and BasicMotions 40 (one = 2.5 points): the 1-point target at 8 bits allows one "
            "GunPoint sample and *no* BasicMotions sample; (b) **tiny validation splits** (GunPoint 10, BasicMotions "
            "8) — QAT's choice of epoch is noisy there, and it can pick an epoch that the test split disagrees with "
            "(GRU/BasicMotions/4: PTQ 85.0 → QAT 77.5); choosing on training + validation (`--min-val 50`) picked "
            "over-fitted epochs instead (LEM/GunPoint/8: PTQ 94.7 → QAT 91.3), so it is off; (c) **8-bit inputs** — "
            "BasicMotions spans −27.8…34.9, one input code is 0.25: the LTC at W8/A8 reaches its float accuracy "
            "(65.0) with 10-bit inputs, 62.5 with 8; (d) **8-bit activations** — the Lipschitz RNN on GunPoint is "
            "no better with 16-bit weights (76.7) than with 8-bit ones (78.0): the last two samples are lost in the "
            "8-bit pre-activations and tanh table, not in the weights or the (16-bit) state.",
            "",
            "| data set | family | bits | float | PTQ | QAT | test samples | best epoch / QAT epochs | n_val |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for ds, fam, b, _gap in short:
            r, f = runs[_key(fam, ds, b)], fl[_key(fam, ds)]
            best = r["qat"] if r["qat"] is not None else r["ptq"]
            n_test = _info(ds)[2]
            lost = f"{round((f['test_accuracy'] - best) * n_test)} of {n_test}" if n_test else "?"
            lines.append(f"| {ds} | {fam} | {b} | {_pct(f['test_accuracy'])} | {_pct(r['ptq'])} | {_pct(r['qat'])} | "
                         f"{lost} | {r.get('qat_best_epoch', '—')} / {r.get('qat_epochs', '—')} | {_n_val(ds)} |")  # fmt: skip
    else:
        lines.append("Every measured case meets its target.")
    chance = [(ds, fam) for (fam, ds) in ((k.split("/")[0], k.split("/")[1]) for k in fl)
              if _info(ds)[1] and fl[_key(fam, ds)]["test_accuracy"] <= 1.0 / _info(ds)[1] + 0.05]  # fmt: skip
    if chance:
        lines += ["", "Float models at (or within 5 points of) chance — their rows say nothing about quantization; the "
                  "float training (small model, fixed epochs, one seed) did not learn the task: "
                  + ", ".join(f"`{f}/{d}`" for d, f in sorted(chance)) + "."]  # fmt: skip
    worse = [(k, r) for k, r in sorted(runs.items()) if r.get("qat") is not None and r["qat"] < r["ptq"]]
    if worse:
        lines += ["", "QAT below PTQ on the test split (QAT won on the validation split, the test split disagrees — "
                  "cause (b)): " + ", ".join(f"`{k}` ({_pct(r['ptq'])} → {_pct(r['qat'])})" for k, r in worse) + "."]  # fmt: skip
    probes = results.get("probes", {})
    if probes:
        lines += ["", "Activation-bit probe: where 8-bit PTQ loses more than 5 points, the same float model quantized "
                  "with 8-bit weights and 12- or 16-bit activations (PTQ only) — if that recovers float accuracy, the "
                  "loss is the activations' (state's) resolution, not the weights':", "",
                  "| family / data set | float | W8/A8 PTQ | W8/A12 PTQ | W8/A16 PTQ |", "|---|---|---|---|---|"]  # fmt: skip
        for k, p in sorted(probes.items()):
            fam, ds = k.split("/")
            lines.append(f"| {k} | {_pct(fl[k]['test_accuracy'])} | {_pct(runs[_key(fam, ds, 8)]['ptq'])} | "
                         f"{_pct(p.get('w8a12_ptq'))} | {_pct(p.get('w8a16_ptq'))} |")  # fmt: skip
    sp = results.get("state_probe", {})
    if sp:
        lines += ["", "## The state accumulator", "",
                  "Why the Lipschitz RNN collapsed (25% on BasicMotions, 50% on GunPoint at *every* weight width, "
                  "even 16 bits, in the previous table): its explicit Euler step `h ← h + ε(A h + tanh(W h + U x + b))` "
                  "with ε = 0.03 moves the state by a median 0.25–0.5 of an 8-bit state code per step (measured on "
                  "the calibration data), and each rounded increment is zero. Over 100–150 steps the state never "
                  "leaves its start, whatever the weights' width. The same holds for an LSTM whose forget gate is "
                  "near 1 (`c ← f·c + i·g`). The fix is a 16-bit state accumulator (`state_bits=16`): the update "
                  "is requantized into 16-bit state units, and the matmuls, lookup tables and head read the state's "
                  "8-bit view (a rounding shift by 8), so at 8 bits every matmul stays int8 × int8. W8/A8 PTQ with an "
                  "8-bit and with a 16-bit state, same float model:", "",
                  "| family / data set | float | 8-bit state | 16-bit state |", "|---|---|---|---|"]  # fmt: skip
        for k, v in sorted(sp.items(), key=lambda kv: (kv[0].split("/")[1], kv[0])):
            lines.append(
                f"| {k} | {_pct(fl[k]['test_accuracy'])} | {_pct(v['state8'])} | {_pct(v['state16'])} |"
            )
    lines += ["", "## Other fixes behind this table", "",
              "- LEM and GRU on mnist_subset at 4 bits were at 16% / 11% (chance 10%): the rows of the input matrix "
              "`U` carry the folded input normalization `1/std` per pixel column, and MNIST's border columns have a "
              "tiny std, so a few weights are ~100× the rest; the MSE weight-clip search only tried thresholds down "
              "to 0.1·max, so one per-tensor 4-bit scale rounded every ordinary weight to zero. The search now goes "
              "down to 0.003·max (measured while fixing, W4/A8 PTQ on 500 test images: LEM 15.6% → 94.6%, "
              "GRU 20.0% → 87.4%).",
              "- QAT runs with ranges frozen at the PTQ start (`FrozenRanges`) and the integer program in numpy "
              "instead of a rebuilt ONNX graph: a step (W4/A8, batch 64, one thread) is 5–8× cheaper — digits LEM "
              "54 → 10 ms, GunPoint Lipschitz RNN 442 → 69 ms, mnist_subset GRU 173 → 22 ms — "
              "so QAT runs ≥ 60 steps everywhere; its forward pass is still the exported graph bit for bit.",
              "- Variable-length calibration: the float simulation the ranges are calibrated on holds the state over "
              "padded steps too, as the graph does (before, it ran the zero-filled padding on, and the LTC on "
              "japanese_vowels lost 1.6 points at W8/A8; with the hold it matches float).",
              "- LTC on GunPoint (55.3) and mnist_subset (50.9) remain weak float models (16 units, 3 unfolds; "
              "docs/results/models.md has LTC/GunPoint at 61 ± 9 with 32 units): their rows measure the quantization "
              "of a model that barely learned the task.",
              "- The float models of the previous table were partly at chance (GunPoint LTC 49%, GRU 43%; "
              "mnist_subset MLP 56%; BasicMotions MLP 38%): they are now trained as `benchmarks/models` trains them."]  # fmt: skip
    lines += ["", "## What was not run, and why", ""]
    for k, why in sorted(skipped.items()):
        lines.append(f"- `{k}`: {why}")
    if not_run:
        lines.append("- not run in the time available: " + ", ".join(f"`{f}/{d}`" for f, d in not_run))
    errs = [(k, r["error"]) for k, r in sorted(runs.items()) if "error" in r]
    for k, e in errs:
        lines.append(f"- ¹ `{k}`: {e}")
    lines += ["", "## Settings", "", "```json", json.dumps(s, indent=1, sort_keys=True), "```", ""]
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--families", nargs="+", default=list(CLASSIFIERS), choices=list(CLASSIFIERS))
    p.add_argument(
        "--datasets", nargs="+", default=[d for d in ORDER if d in DATASETS], choices=list(DATASETS)
    )
    p.add_argument("--bits", nargs="+", type=int, default=BITS)
    p.add_argument("--qat-epochs", type=int, default=3)
    p.add_argument(
        "--min-qat-steps", type=int, default=60, help="QAT runs at least this many optimizer steps"
    )
    p.add_argument("--qat-lr", type=float, default=2e-3)
    p.add_argument("--qat-select-by", default="loss", choices=["loss", "accuracy"],
                   help="QAT keeps the epoch of the lowest integer validation loss (or best accuracy)")  # fmt: skip
    p.add_argument("--min-val", type=int, default=0,
                   help="QAT selects its weights on train+val where the validation split is smaller than this "
                   "(default 0: always on the validation split; training accuracy favours overfitted epochs)")  # fmt: skip
    p.add_argument("--qat-batch", type=int, default=64, help="QAT batch size")
    p.add_argument("--qat-always", action="store_true", help="run QAT even where PTQ matches float")
    p.add_argument("--calib-size", type=int, default=128)
    p.add_argument("--act-bits", type=int, default=8, help="activation bits (0: equal to the weight bits)")
    p.add_argument(
        "--budget", type=float, default=0, help="minutes after which no new entry starts (0: none)"
    )
    p.add_argument("--redo", action="store_true", help="re-run entries already in the JSON")
    p.add_argument("--json", default=str(ROOT / "benchmarks/quant/results.json"))
    p.add_argument("--page", default=str(ROOT / "docs/results/quant.md"))
    p.add_argument("--cache", default=os.environ.get("CTNN_BENCH_CACHE", "/tmp/ctnn-bench-quant"),
                   help="float checkpoints are cached here")  # fmt: skip
    p.add_argument("--render-only", action="store_true")
    p.add_argument(
        "--float-only", action="store_true", help="train (cache) the float models, quantize nothing"
    )
    p.add_argument(
        "--probe", action="store_true", help="with --render-only: run the activation-bit probe first"
    )
    p.add_argument(
        "--merge", nargs="*", default=[], help="fold these results files (e.g. from a parallel run) in first"
    )
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    for b in args.bits:
        cq.check_bits(b, "--bits")
    torch.set_num_threads(int(os.environ.get("CTNN_BENCH_THREADS", "1")))
    if args.merge:
        _merge(Path(args.json), [Path(m) for m in args.merge])
    if args.render_only:
        results = json.loads(Path(args.json).read_text())
    else:
        results = run(args)
    if args.probe or not args.render_only:
        probe(args, results)
        state_probe(args, results)
    all_datasets = [d for d in ORDER if d in DATASETS] + [d for d in DATASETS if d not in ORDER]
    render(results, Path(args.page), list(CLASSIFIERS), all_datasets, BITS)
    print(f"wrote {args.json} and {args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
