"""The ``ctnn-models`` command: train a model on an offline data set and write a checkpoint."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._checkpoint import save_checkpoint
from ._data import DATASETS, Dataset, load_dataset
from ._ltc import LTCClassifier
from ._mlp import MLP
from ._solvers import SOLVERS
from ._train import train_classifier


def _build_mlp(args: argparse.Namespace, data: Dataset) -> nn.Module:
    return MLP([data.n_features, *args.hidden, data.n_classes])


def _build_ltc(args: argparse.Namespace, data: Dataset) -> nn.Module:
    # A sample shaped (T, F) is read as T steps of F features; anything flat as T steps of 1.
    in_features = data.sample_shape[-1] if len(data.sample_shape) > 1 else 1
    return LTCClassifier(
        in_features, args.units, data.n_classes, ode_unfolds=args.ode_unfolds, solver=args.solver
    )


#: What ``train --model NAME`` builds from the parsed arguments and the data.
_BUILDERS: dict[str, Callable[[argparse.Namespace, Dataset], nn.Module]] = {
    "mlp": _build_mlp,
    "ltc": _build_ltc,
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ctnn-models", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser(
        "train", help="train a classifier and write model.safetensors, model.json, metrics.json"
    )
    t.add_argument("--model", choices=sorted(_BUILDERS), default="mlp")
    t.add_argument("--dataset", choices=sorted(DATASETS), default="digits")
    t.add_argument("--epochs", type=int, default=100, help="maximum epochs (early stopping may end sooner)")
    t.add_argument(
        "--seed", type=int, default=0, help="seeds the split, the initial weights and the batch order"
    )
    t.add_argument("--out", type=Path, required=True, help="output directory")
    t.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: 3e-3 mlp, 3e-2 ltc)")
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument(
        "--patience", type=int, default=10, help="epochs without validation improvement before stopping"
    )
    t.add_argument("--hidden", type=int, nargs="+", default=[32], help="mlp: hidden layer sizes")
    t.add_argument("--units", type=int, default=16, help="ltc: number of neurons")
    t.add_argument("--ode-unfolds", type=int, default=6, help="ltc: solver steps per input step")
    t.add_argument("--solver", choices=sorted(SOLVERS), default="semi_implicit", help="ltc: ODE solver")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def _train(args: argparse.Namespace) -> dict[str, Any]:
    data = load_dataset(args.dataset, seed=args.seed)
    torch.manual_seed(args.seed)  # before construction, so the initial weights follow the seed
    model = _BUILDERS[args.model](args, data)
    lr = args.lr if args.lr is not None else (3e-2 if args.model == "ltc" else 3e-3)
    training = {
        "epochs": args.epochs, "lr": lr, "batch_size": args.batch_size,
        "patience": args.patience, "seed": args.seed,
    }  # fmt: skip
    result = train_classifier(model, data, progress=not args.no_progress, **training)
    metrics = {
        "val_accuracy": result.val_accuracy,
        "test_accuracy": result.test_accuracy,
        "train_accuracy": result.train_accuracy,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
    }
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        model,
        out / "model.safetensors",
        {"dataset": data.summary(), "training": training, "metrics": metrics},
    )
    report = {"model": args.model, "dataset": data.summary(), "training": training, **result.to_dict()}
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ctnn-models`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "train":
        m = _train(args)
        print(
            f"{args.model} on {args.dataset}: test accuracy {m['test_accuracy']:.4f} "
            f"(val {m['val_accuracy']:.4f}, best epoch {m['best_epoch']}/{m['epochs_run']}) -> {args.out}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
