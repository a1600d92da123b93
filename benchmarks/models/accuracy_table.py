"""Accuracy table: every family on the four UCR/UEA sets and on digits, mean ± std over seeds.

    python benchmarks/models/accuracy_table.py                 # all runs still missing, then the page
    python benchmarks/models/accuracy_table.py --only lem gru   # some families
    python benchmarks/models/accuracy_table.py --render-only    # rewrite docs/results/models.md

Resumable: each finished run is appended (and fsynced) to results/accuracy_runs.jsonl,
keyed by model, data set, seed and the run's settings; runs already stored are
skipped, and the results page is rewritten after every run, so a partial table
survives an interruption. One thread, small models (32 units), short training
(the epoch budgets below, early stopping on the validation split) — minutes of CPU
per run, not the papers' hours: the numbers are a fair comparison between families
under one budget, not the papers' best results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RUNS = RESULTS / "accuracy_runs.jsonl"

SEQUENCE_MODELS = ["ltc", "lipschitz_rnn", "lem", "ctrnn", "lstm", "gru"]
DATASETS = {  # name: (max epochs, batch size, patience)
    "italy_power_demand": (150, 16, 30),
    # the 10- and 8-sample validation splits of these two end training on a plateau
    # (seeds stuck at chance after 30 epochs): all 150 epochs, the best validation loss kept
    "gunpoint": (150, 16, None),
    "basic_motions": (150, 16, None),
    "japanese_vowels": (100, 32, 20),
    "digits": (40, 64, 10),
}
IMAGE_ONLY = ["mlp", "continuous_net"]  # flat models: digits only
UNITS = 32
LR = {"mlp": 3e-3, "continuous_net": 3e-3, "ltc": 2e-2}
DEFAULT_LR = 5e-3


def run_settings(model: str, dataset: str) -> dict:
    epochs, batch, patience = DATASETS[dataset]
    s = {"epochs": epochs, "batch_size": batch, "lr": LR.get(model, DEFAULT_LR), "patience": patience,
         "units": UNITS, "clip_grad_norm": None if model in IMAGE_ONLY else 1.0}  # fmt: skip
    if model == "continuous_net":
        s |= {"widths": [32], "n_basis": 4, "n_steps": 4}
    return s


def key(model: str, dataset: str, seed: int, settings: dict) -> str:
    blob = json.dumps([model, dataset, seed, settings], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_runs() -> dict[str, dict]:
    runs = {}
    if RUNS.is_file():
        for line in RUNS.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                runs[r["key"]] = r
    return runs


def append_run(record: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RUNS, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def one_run(model: str, dataset: str, seed: int, settings: dict) -> dict:
    from ctnn.models import build_classifier, load_dataset, train_classifier

    data = load_dataset(dataset, seed=seed)
    torch.manual_seed(seed)
    opts = {k: v for k, v in settings.items() if k in ("units", "widths", "n_basis", "n_steps")}
    net = build_classifier(model, data, **opts)
    t0 = time.process_time()
    res = train_classifier(
        net, data, epochs=settings["epochs"], lr=settings["lr"], batch_size=settings["batch_size"],
        seed=seed, patience=settings["patience"], progress=False, clip_grad_norm=settings["clip_grad_norm"],
    )  # fmt: skip
    record = {
        "model": model, "dataset": dataset, "seed": seed, "settings": settings,
        "test_accuracy": res.test_accuracy, "val_accuracy": res.val_accuracy,
        "epochs_run": res.epochs_run, "best_epoch": res.best_epoch,
        "cpu_seconds": time.process_time() - t0,
        "params": sum(p.numel() for p in net.parameters()),
    }  # fmt: skip
    if model == "continuous_net":
        record["discretisations"] = continuous_net_study(net, data)
    return record


def continuous_net_study(net, data) -> dict:
    """The trained ContinuousNet under other schemes/step counts, refined, and compressed."""
    from ctnn.models import accuracy

    acc = lambda m: accuracy(m, data.X_test, data.y_test)  # noqa: E731
    base = acc(net)
    evals = []
    for scheme, steps in [("euler", 4), ("euler", 2), ("euler", 8), ("euler", 16), ("midpoint", 4),
                          ("midpoint", 8), ("rk4", 4), ("rk4", 8)]:  # fmt: skip
        net.scheme, net.n_steps = scheme, steps
        evals.append({"scheme": scheme, "n_steps": steps, "test_accuracy": acc(net)})
    net.scheme, net.n_steps = "euler", 4
    refined = net.refine()
    comp = []
    for basis, n in [("piecewise_constant", 2), ("piecewise_constant", 1), ("piecewise_linear", 2)]:
        small = net.compress(basis, n)
        comp.append({"basis": basis, "n_basis": n, "test_accuracy": acc(small), "change": acc(small) - base,
                     "params": sum(p.numel() for p in small.parameters())})  # fmt: skip
    return {"base": base, "evaluations": evals,
            "refined": {"n_basis": refined.n_basis, "n_steps": refined.n_steps, "test_accuracy": acc(refined)},
            "compressed": comp, "params": sum(p.numel() for p in net.parameters())}  # fmt: skip


def plan(only: list[str] | None, seeds: list[int]) -> list[tuple[str, str, int]]:
    jobs = []
    for dataset in DATASETS:
        models = SEQUENCE_MODELS + (IMAGE_ONLY if dataset == "digits" else [])
        for model in models:
            if only and model not in only:
                continue
            for seed in seeds:
                jobs.append((model, dataset, seed))
    return jobs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--only", nargs="+", default=None, help="models to run")
    p.add_argument("--render-only", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE))
    from render import render

    if not args.render_only:
        done = load_runs()
        for model, dataset, seed in plan(args.only, args.seeds):
            settings = run_settings(model, dataset)
            k = key(model, dataset, seed, settings)
            if k in done:
                continue
            rec = one_run(model, dataset, seed, settings) | {"key": k}
            append_run(rec)
            done[k] = rec
            print(f"{model:15s} {dataset:20s} seed {seed}: test {rec['test_accuracy']:.3f} "
                  f"({rec['epochs_run']} epochs, {rec['cpu_seconds']:.0f} s CPU)", flush=True)  # fmt: skip
            render()
    render()
    return 0


if __name__ == "__main__":
    sys.exit(main())
