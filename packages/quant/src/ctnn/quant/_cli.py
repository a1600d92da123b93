"""The ``ctnn-quant`` command: check integer graphs and quantize checkpoints."""

from __future__ import annotations

import argparse
import json
import sys

from ._dialect import DialectError, load_model
from ._semantics import BitWidthError


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


def _quantize(args: argparse.Namespace) -> int:
    import numpy as np

    from ctnn.models import load_checkpoint, load_dataset

    from ._ptq import export_onnx, quantize_mlp

    model, config = load_checkpoint(args.checkpoint)
    data = load_dataset(args.calib)
    calib = np.asarray(data.X_train).reshape(len(data.X_train), -1)
    q = quantize_mlp(
        model, calib, weight_bits=args.bits, act_bits=args.act_bits, in_bits=args.in_bits,
        per_channel=args.per_channel, calibration=args.calibration,
        input_range=getattr(data, "value_range", None),
    )  # fmt: skip
    X_test = np.asarray(data.X_test).reshape(len(data.X_test), -1)
    acc = float((q.predict(X_test) == np.asarray(data.y_test)).mean())
    out = export_onnx(q, args.out, dataset=args.calib, metrics={"int_test_accuracy": acc})
    print(json.dumps({"onnx": str(out), "int_test_accuracy": acc}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ctnn-quant``."""
    p = argparse.ArgumentParser(prog="ctnn-quant", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="check that an .onnx file is in the integer dialect")
    c.add_argument("model")
    c.set_defaults(fn=_check)
    q = sub.add_parser("quantize", help="post-training quantization of a ctnn-models checkpoint")
    q.add_argument("checkpoint", help="a .safetensors checkpoint with its JSON config beside it")
    q.add_argument("--bits", type=int, default=8, help="weight bit-width (2-16)")
    q.add_argument("--act-bits", type=int, default=8, help="activation bit-width (2-16)")
    q.add_argument("--in-bits", type=int, default=8, help="input bit-width (2-16)")
    q.add_argument("--per-channel", action="store_true")
    q.add_argument("--calibration", default="minmax", choices=["minmax", "percentile"])
    q.add_argument("--calib", default="digits", help="calibration data set name")
    q.add_argument("--out", required=True, help="output .onnx path (a .json sidecar is written beside it)")
    q.set_defaults(fn=_quantize)
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except (DialectError, BitWidthError, ValueError, FileNotFoundError, TypeError) as exc:
        print(f"ctnn-quant: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
