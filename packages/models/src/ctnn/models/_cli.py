"""The ``ctnn-models`` command: train any family on an offline data set; evaluate and compress ContinuousNets.

ctnn-models train --model ltc --dataset italy_power_demand --epochs 50 --seed 0 --out runs/ltc
ctnn-models train --model lem --dataset /data/UCR/GunPoint --out runs/lem     # local .ts files
ctnn-models evaluate runs/cn/model.safetensors --scheme rk4 --n-steps 8
ctnn-models compress runs/cn/model.safetensors --basis piecewise_linear --n-basis 2 --out runs/cn2
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ._builders import CLASSIFIERS, build_classifier
from ._checkpoint import load_checkpoint, save_checkpoint
from ._continuous import BASES, DEPTH_SCHEMES, ContinuousNet
from ._data import DATASETS, Dataset, load_dataset
from ._train import accuracy, train_classifier

_SEQUENCE_LR = 1e-2


def _dataset(name: str, seed: int, data_path: str | None, val_fraction: float | None) -> Dataset:
    kwargs: dict[str, Any] = {"seed": seed}
    if data_path is not None:
        kwargs["path"] = data_path
    if val_fraction is not None:
        kwargs["val_fraction"] = val_fraction
    return load_dataset(name, **kwargs)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ctnn-models", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser(
        "train", help="train a classifier and write model.safetensors, model.json, metrics.json"
    )
    t.add_argument("--model", choices=sorted(CLASSIFIERS), default="mlp")
    t.add_argument(
        "--dataset", default="digits", help=f"one of {sorted(DATASETS)}, or a path to UCR/UEA .ts files"
    )
    t.add_argument("--data-path", default=None, help="read the named data set from local files instead")
    t.add_argument("--val-fraction", type=float, default=None, help="validation share of the training data")
    t.add_argument("--epochs", type=int, default=100, help="maximum epochs (early stopping may end sooner)")
    t.add_argument(
        "--seed", type=int, default=0, help="seeds the split, the initial weights and the batch order"
    )
    t.add_argument("--out", type=Path, required=True, help="output directory")
    t.add_argument(
        "--lr", type=float, default=None, help="Adam learning rate (default: 3e-3 mlp, 3e-2 ltc, 1e-2 others)"
    )
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument(
        "--patience", type=int, default=10, help="epochs without validation improvement before stopping"
    )
    t.add_argument(
        "--clip-grad", type=float, default=None, help="clip the gradient norm (default: 1.0 for RNNs)"
    )
    t.add_argument("--hidden", type=int, nargs="+", default=[32], help="mlp: hidden layer sizes")
    t.add_argument(
        "--interval-eps", type=float, default=0.0,
        help="mlp: train for verification, by interval bound propagation over the L∞ box of this radius "
        "(in the data's units, clipped to its value range)",
    )  # fmt: skip
    t.add_argument(
        "--units", type=int, default=None, help="sequence models: neurons (default 16 ltc, 32 others)"
    )
    t.add_argument("--ode-unfolds", type=int, default=None, help="ltc, ctrnn: solver steps per input step")
    t.add_argument(
        "--solver", default=None,
        help="ltc: semi_implicit|explicit_euler|rk4; lipschitz_rnn: euler|rk2; ctrnn: euler|rk4",
    )  # fmt: skip
    t.add_argument("--wiring", choices=["fully_connected", "ncp"], default="fully_connected", help="ltc")
    t.add_argument("--sparsity", type=float, default=0.5, help="ltc with --wiring ncp: sparsity level")
    t.add_argument("--beta", type=float, default=None, help="lipschitz_rnn: skew-symmetric share β")
    t.add_argument("--gamma", type=float, default=None, help="lipschitz_rnn: γ for both A and W")
    t.add_argument("--eps", type=float, default=None, help="lipschitz_rnn: step size ε")
    t.add_argument("--dt", type=float, default=None, help="lem: base step Δt")
    t.add_argument("--widths", type=int, nargs="+", default=None, help="continuous_net: stage widths")
    t.add_argument("--n-basis", type=int, default=4, help="continuous_net: basis functions per stage")
    t.add_argument("--basis", choices=sorted(BASES), default="piecewise_constant", help="continuous_net")
    t.add_argument(
        "--n-steps", type=int, default=None, help="continuous_net: steps per stage (default n-basis)"
    )
    t.add_argument("--scheme", choices=sorted(DEPTH_SCHEMES), default="euler", help="continuous_net")
    t.add_argument("--no-input-norm", action="store_true", help="sequence models: feed raw inputs")
    t.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    e = sub.add_parser(
        "evaluate", help="test accuracy of a checkpoint (ContinuousNet: any scheme and step count)"
    )
    e.add_argument("checkpoint", type=Path)
    e.add_argument("--scheme", choices=sorted(DEPTH_SCHEMES), default=None)
    e.add_argument("--n-steps", type=int, default=None)

    c = sub.add_parser("compress", help="project a ContinuousNet's weights onto a smaller basis in depth")
    c.add_argument("checkpoint", type=Path)
    c.add_argument("--basis", choices=sorted(BASES), required=True)
    c.add_argument("--n-basis", type=int, required=True)
    c.add_argument("--n-steps", type=int, default=None)
    c.add_argument("--out", type=Path, default=None, help="write the compressed checkpoint here")
    return p


def _options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "hidden": args.hidden, "wiring": args.wiring, "sparsity": args.sparsity, "widths": args.widths,
        "n_basis": args.n_basis, "basis": args.basis, "n_steps": args.n_steps, "scheme": args.scheme,
        "input_norm": not args.no_input_norm,
    }  # fmt: skip
    if args.units is not None:
        opts["units"] = args.units
    if args.ode_unfolds is not None:
        opts["ode_unfolds"] = args.ode_unfolds
    for name in ("solver", "beta", "eps", "dt"):
        if getattr(args, name) is not None:
            opts[name] = getattr(args, name)
    if args.gamma is not None:
        opts["gamma_a"] = opts["gamma_w"] = args.gamma
    return opts


def _train(args: argparse.Namespace) -> dict[str, Any]:
    data = _dataset(args.dataset, args.seed, args.data_path, args.val_fraction)
    torch.manual_seed(args.seed)  # before construction, so the initial weights follow the seed
    opts = _options(args)
    model = build_classifier(args.model, data, **opts)
    default_lr = {"mlp": 3e-3, "ltc": 3e-2, "continuous_net": 3e-3}.get(args.model, _SEQUENCE_LR)
    lr = args.lr if args.lr is not None else default_lr
    recurrent = args.model not in ("mlp", "continuous_net")
    clip = args.clip_grad if args.clip_grad is not None else (1.0 if recurrent else None)
    training = {
        "epochs": args.epochs, "lr": lr, "batch_size": args.batch_size,
        "patience": args.patience, "seed": args.seed, "clip_grad_norm": clip,
    }  # fmt: skip
    if args.interval_eps:
        if args.model != "mlp":
            raise ValueError(f"--interval-eps trains an mlp (its interval bounds), not --model {args.model}")
        training["interval_eps"] = args.interval_eps
        training["interval_clip"] = list(data.value_range)
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
    extra: dict[str, Any] = {"dataset": data.summary(), "training": training, "metrics": metrics}
    if args.data_path is not None or args.dataset not in DATASETS:
        extra["data_path"] = str(args.data_path or args.dataset)
    save_checkpoint(model, out / "model.safetensors", extra)
    report = {"model": args.model, "dataset": data.summary(), "training": training, **result.to_dict()}
    if isinstance(model, ContinuousNet):
        report["n_basis"], report["n_steps"], report["scheme"] = model.n_basis, model.n_steps, model.scheme
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return metrics


def _checkpoint_data(config: dict[str, Any], path: Path) -> Dataset:
    ds = config.get("dataset") or {}
    name = config.get("data_path") or ds.get("name")
    if not name:
        raise ValueError(f"{path}: the checkpoint does not record its data set")
    return load_dataset(name, seed=int(config.get("training", {}).get("seed", 0)))


def _evaluate(args: argparse.Namespace) -> None:
    model, config = load_checkpoint(args.checkpoint)
    data = _checkpoint_data(config, args.checkpoint)
    if isinstance(model, ContinuousNet):
        if args.scheme is not None:
            model.scheme = args.scheme
        if args.n_steps is not None:
            model.n_steps = args.n_steps
    elif args.scheme is not None or args.n_steps is not None:
        raise ValueError("--scheme and --n-steps apply to ContinuousNet checkpoints only")
    acc = accuracy(model, data.X_test, data.y_test)
    what = f" ({model.scheme}, {model.n_steps} steps)" if isinstance(model, ContinuousNet) else ""
    print(json.dumps({"test_accuracy": acc, "checkpoint": str(args.checkpoint)}))
    print(f"test accuracy{what}: {acc:.4f}", file=sys.stderr)


def _compress(args: argparse.Namespace) -> None:
    model, config = load_checkpoint(args.checkpoint)
    if not isinstance(model, ContinuousNet):
        raise ValueError(f"{args.checkpoint}: compress needs a ContinuousNet checkpoint")
    data = _checkpoint_data(config, args.checkpoint)
    small = model.compress(args.basis, args.n_basis, n_steps=args.n_steps)
    before, after = accuracy(model, data.X_test, data.y_test), accuracy(small, data.X_test, data.y_test)
    n_before = sum(p.numel() for p in model.parameters())
    n_after = sum(p.numel() for p in small.parameters())
    report = {
        "from": {"basis": model.basis, "n_basis": model.n_basis, "params": n_before, "test_accuracy": before},
        "to": {"basis": small.basis, "n_basis": small.n_basis, "params": n_after, "test_accuracy": after},
        "accuracy_change": after - before,
    }
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        save_checkpoint(small, args.out / "model.safetensors", {
            k: v for k, v in config.items() if k in ("dataset", "training", "data_path")
        } | {"compressed_from": str(args.checkpoint), "compression": report})  # fmt: skip
    print(json.dumps(report))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ctnn-models`` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            m = _train(args)
            print(
                f"{args.model} on {args.dataset}: test accuracy {m['test_accuracy']:.4f} "
                f"(val {m['val_accuracy']:.4f}, best epoch {m['best_epoch']}/{m['epochs_run']}) -> {args.out}"
            )
        elif args.command == "evaluate":
            _evaluate(args)
        elif args.command == "compress":
            _compress(args)
    except (ValueError, OSError) as exc:  # a bad data set, checkpoint or option: its message, not a traceback
        print(f"ctnn-models: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
