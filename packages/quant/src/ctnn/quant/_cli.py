"""The ``ctnn-quant`` command: check integer graphs, quantize checkpoints, and turn data into input codes."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from ._dialect import DialectError, load_model
from ._semantics import BitWidthError, check_bits


def _check(args: argparse.Namespace) -> int:
    from ._dialect import check_model
    from ._sidecar import read_sidecar, sidecar_path

    model = load_model(args.model)
    summary = check_model(model, source=args.model)
    print(f"{args.model}: in the integer dialect (opset {summary.opset})")
    for name, (dtype, shape) in summary.inputs.items():
        print(f"  input  {name}: {dtype} {shape}")
    for name, (dtype, shape) in summary.outputs.items():
        print(f"  output {name}: {dtype} {shape}")
    print(f"  parameters: {summary.parameters}")
    print("  ops: " + ", ".join(f"{k}×{v}" for k, v in sorted(summary.op_counts.items())))
    if sidecar_path(args.model).is_file():
        sc = read_sidecar(args.model)
        print(
            f"  sidecar: family={sc.family} weight_bits={sc.weight_bits} act_bits={sc.act_bits} "
            f"input_bits={sc.input.bits} dataset={sc.dataset or '-'}"
        )
    return 0


def _data_name(args: argparse.Namespace, config: dict) -> str:
    """The data set: ``--data``, else the one the checkpoint records, else digits."""
    if args.data:
        return args.data
    ds = config.get("dataset")
    name = config.get("data_path") or (ds.get("name") if isinstance(ds, dict) else ds)
    return str(name or "digits")


def _calibration_inputs(args: argparse.Namespace, data) -> np.ndarray:
    import numpy as np

    if args.calib and args.calib.endswith((".npy", ".npz")):
        try:
            arr = np.load(args.calib, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{args.calib}: cannot read calibration data ({exc})") from None
        if isinstance(arr, np.lib.npyio.NpzFile):
            arr = arr[arr.files[0]]
        if not np.issubdtype(arr.dtype, np.number):
            raise ValueError(f"{args.calib}: calibration data must be numeric, got {arr.dtype}")
        return np.asarray(arr, np.float64)
    if args.calib and args.calib != data.name:
        from ctnn.models import load_dataset

        data = load_dataset(args.calib)
    return np.asarray(data.X_train, np.float64)[: args.calib_size]


def _quantize(args: argparse.Namespace) -> int:
    import numpy as np

    from ctnn.models import accuracy, load_checkpoint, load_dataset

    from ._ptq import export_onnx
    from ._quantize import model_family, quantize_model

    check_bits(args.bits, "weight bit-width (--bits)")
    check_bits(args.act_bits, "activation bit-width (--act-bits)")
    check_bits(args.in_bits, "input bit-width (--in-bits)")
    model, config = load_checkpoint(args.checkpoint)
    family = model_family(model)
    name = _data_name(args, config)
    data = load_dataset(name)
    calib = _calibration_inputs(args, data)
    opts = {"calibration": args.calibration}
    if args.per_channel:
        opts["per_channel"] = True
    if args.state_bits is not None:
        opts["state_bits"] = args.state_bits
    input_range = tuple(data.value_range) if family == "mlp" else None
    float_acc = float(accuracy(model, data.X_test, data.y_test))
    if args.qat:
        from ._qat import QATModel, qat_finetune

        QATModel(model, calib, weight_bits=args.bits, act_bits=args.act_bits, in_bits=args.in_bits,
                 input_range=input_range, **opts)  # fmt: skip  # bad options fail before training
        q = qat_finetune(model, data, bits=args.bits, act_bits=args.act_bits, in_bits=args.in_bits, epochs=args.qat,
                         lr=args.lr, calib_size=args.calib_size, input_range=input_range, **opts)  # fmt: skip
    else:
        q = quantize_model(
            model, calib, args.bits, args.act_bits, args.in_bits, input_range=input_range, **opts
        )
    X_test = np.asarray(data.X_test, np.float64)
    if family in ("mlp", "continuous_net") and np.isnan(X_test).any():
        raise ValueError(f"data set {name!r} has variable-length (NaN-padded) samples; the integer graph needs "
                         "fixed-length sequences")  # fmt: skip
    acc = float((q.predict(X_test) == np.asarray(data.y_test)).mean())
    metrics = {"float_test_accuracy": float_acc, "int_test_accuracy": acc, "qat_epochs": int(args.qat or 0)}
    out = export_onnx(q, args.out, dataset=data.name, classes=list(data.class_names or []), metrics=metrics)
    print(json.dumps({"onnx": str(out), "family": family, "dataset": data.name, **metrics}))
    return 0


def _codes(args: argparse.Namespace) -> int:
    """A data set's samples as the graph's input codes, through its sidecar's input quantization."""
    import numpy as np

    from ctnn.models import load_dataset

    from ._samples import check_sample_path, write_samples
    from ._sidecar import read_sidecar, sidecar_path

    out = check_sample_path(args.out)  # before the data set loads
    if not sidecar_path(args.model).is_file():
        raise FileNotFoundError(
            f"{args.model}: no sidecar ({sidecar_path(args.model).name}) to quantize inputs with"
        )
    sc = read_sidecar(args.model)
    name = args.data or sc.dataset
    if not name:
        raise ValueError(f"{args.model}: its sidecar records no data set; name one with --data")
    data = load_dataset(name, seed=args.seed)
    x, y = {"train": (data.X_train, data.y_train), "val": (data.X_val, data.y_val),
            "test": (data.X_test, data.y_test)}[args.split]  # fmt: skip
    n = len(x)
    if n == 0:
        raise ValueError(f"the {args.split} split of {data.name!r} has no samples")
    if args.indices:
        bad = [i for i in args.indices if not 0 <= i < n]
        if bad:
            raise ValueError(f"--indices {bad}: the {args.split} split of {data.name!r} has {n} samples")
        idx = np.asarray(args.indices)
    else:
        if args.first < 1:
            raise ValueError(f"--first must be >= 1, got {args.first}")
        idx = np.arange(min(args.first, n))
    x = np.asarray(x, np.float64)[idx]
    if np.isnan(x).any():
        raise ValueError(f"data set {data.name!r} has variable-length (NaN-padded) samples; an integer graph "
                         "takes fixed-length ones")  # fmt: skip
    shape = [int(d) for d in sc.input.shape[1:] if isinstance(d, int)]
    if len(shape) != len(sc.input.shape) - 1 or int(np.prod(shape)) != x[0].size:
        raise ValueError(f"data set {data.name!r} has samples of {x[0].size} values; {args.model}'s input "
                         f"{sc.input.name!r} takes shape {sc.input.shape}")  # fmt: skip
    codes = sc.input.quantize(x).reshape(len(x), *shape)
    write_samples(out, codes, np.asarray(y)[idx], idx)  # .npz: a campaign's sample file (samples.file)
    print(json.dumps({"out": str(out), "dataset": data.name, "split": args.split, "samples": len(codes),
                      "shape": list(codes.shape), "dtype": str(codes.dtype)}))  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ctnn-quant``."""
    p = argparse.ArgumentParser(prog="ctnn-quant", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="check that an .onnx file is in the integer dialect")
    c.add_argument("model")
    c.set_defaults(fn=_check)
    q = sub.add_parser(
        "quantize", help="quantize a ctnn-models checkpoint (PTQ, optionally QAT) to an integer graph"
    )
    q.add_argument("checkpoint", help="a .safetensors checkpoint with its JSON config beside it")
    q.add_argument("--bits", type=int, default=8, help="weight bit-width (2-16)")
    q.add_argument("--act-bits", type=int, default=8, help="activation bit-width (2-16)")
    q.add_argument("--in-bits", type=int, default=8, help="input bit-width (2-16)")
    q.add_argument("--per-channel", action="store_true", help="weight scales per output channel")
    q.add_argument(
        "--state-bits", type=int, help="state accumulator bit-width (lipschitz_rnn, ctrnn, lstm, gru)"
    )
    q.add_argument("--calibration", default="minmax", help="range calibration (minmax, percentile, …)")
    q.add_argument("--data", help="data set for accuracy and QAT (default: the one the checkpoint records)")
    q.add_argument(
        "--calib", help="calibration inputs: a data set name or an .npy file (default: --data's train split)"
    )
    q.add_argument("--calib-size", type=int, default=512, help="calibration samples taken from a data set")
    q.add_argument(
        "--qat", type=int, default=0, metavar="EPOCHS", help="quantization-aware fine-tuning epochs"
    )
    q.add_argument("--lr", type=float, default=1e-3, help="QAT learning rate")
    q.add_argument("--out", required=True, help="output .onnx path (a .json sidecar is written beside it)")
    q.set_defaults(fn=_quantize)
    k = sub.add_parser(
        "codes",
        help="a data set's samples as a graph's input codes (.npy; .npz with labels), via its sidecar",
    )
    k.add_argument("model", help="an integer .onnx graph with its .json sidecar beside it")
    k.add_argument("--data", help="data set name or .ts path (default: the one the sidecar records)")
    k.add_argument("--split", choices=["train", "val", "test"], default="test")
    k.add_argument("--first", type=int, default=100, help="the first N samples of the split (default 100)")
    k.add_argument("--indices", type=int, nargs="+", help="these samples of the split instead")
    k.add_argument("--seed", type=int, default=0, help="the data set's split seed (default 0)")
    k.add_argument("--out", required=True, help="codes.npy, or samples.npz (codes, labels, indices)")
    k.set_defaults(fn=_codes)
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except ModuleNotFoundError as exc:  # the torch-free core install: quantize and codes need ctnn-models
        print(f"ctnn-quant: error: {args.cmd} needs the torch extra: pip install 'ctnn-quant[torch]' ({exc})",
              file=sys.stderr)  # fmt: skip
        return 2
    except (DialectError, BitWidthError, ValueError, FileNotFoundError, TypeError, OverflowError, RuntimeError,
            KeyError) as exc:  # fmt: skip
        print(f"ctnn-quant: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
