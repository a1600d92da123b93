"""The ``targeted``, ``bias`` and ``equivalence`` subcommands of ``ctnn-verify``.

ctnn-verify targeted model.onnx --input codes.npy --eps 2 --target 3
ctnn-verify bias model.onnx --sensitive 0 --values 0 127 [--input codes.npy --eps 4 | --box lo.npy hi.npy]
ctnn-verify equivalence a.onnx b.onnx --delta 1 [--units real] [--argmax | --max]
ctnn-verify float-gap float.onnx model.onnx [--input codes.npy --eps 1 | --box lo.npy hi.npy]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from ._encoder import ENCODINGS
from ._errors import VerifyError

COMMANDS = ("targeted", "bias", "equivalence", "float-gap")


def _common(p: argparse.ArgumentParser, box: bool = True) -> None:
    if box:
        p.add_argument("--input", type=Path, default=None, help=".npy of input codes: the box's centre")
        p.add_argument("--sample-index", type=int, default=None, help="row of an [N,F] --input")
        p.add_argument(
            "--eps", type=int, default=None, help="radius of the box around --input, in input codes"
        )
        p.add_argument(
            "--box",
            type=Path,
            nargs=2,
            metavar=("LO.npy", "HI.npy"),
            default=None,
            help="an explicit box of input codes (default: the whole input code range)",
        )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds for the whole query (default 60)")
    p.add_argument("--encoding", choices=ENCODINGS, default="optimized")
    p.add_argument(
        "--no-attack", action="store_true", help="skip the attack (and the enumeration of small boxes)"
    )
    p.add_argument(
        "--input-range",
        type=int,
        nargs=2,
        metavar=("LO", "HI"),
        default=None,
        help="input code range (default: the sidecar's, else the input dtype's)",
    )
    p.add_argument("--json", type=Path, default=None, help="write the result as JSON here")


def add_commands(sub: Any) -> None:
    """Add the subcommands to ``ctnn-verify``'s subparsers."""
    t = sub.add_parser(
        "targeted", help="an input in an L-infinity box classified as --target, or a proof of none"
    )
    t.add_argument("model", type=Path, help="integer ONNX graph")
    t.add_argument("--target", type=int, required=True, help="the class to reach")
    _common(t)
    b = sub.add_parser("bias", help="the largest output change when only the sensitive input(s) change")
    b.add_argument("model", type=Path, help="integer ONNX graph (a classifier or a one-output regressor)")
    b.add_argument(
        "--sensitive", type=int, nargs="+", required=True, help="flat index(es) of the sensitive input"
    )
    g = b.add_mutually_exclusive_group()
    g.add_argument("--values", type=int, nargs="+", default=None, help="the sensitive attribute's codes")
    g.add_argument(
        "--sensitive-range",
        type=int,
        nargs=2,
        metavar=("LO", "HI"),
        default=None,
        help="any two codes in this range (default: the input code range)",
    )
    b.add_argument("--output", type=int, default=None, help="only this output (default: every output)")
    _common(b)
    e = sub.add_parser("equivalence", help="is |A(x) - B(x)| <= delta everywhere in the box (or same argmax)")
    e.add_argument("model_a", type=Path)
    e.add_argument("model_b", type=Path)
    e.add_argument("--delta", type=float, default=0.0, help="largest allowed difference (default 0)")
    e.add_argument(
        "--units",
        choices=("codes", "real"),
        default="codes",
        help="compare output codes, or dequantized values (scales from the sidecars)",
    )
    mode = e.add_mutually_exclusive_group()
    mode.add_argument("--argmax", action="store_true", help="ask for the same predicted class instead")
    mode.add_argument("--max", action="store_true", help="find the largest difference (binary search)")
    e.add_argument("--output", type=int, default=None, help="only this output (default: every output)")
    _common(e)
    f = sub.add_parser(
        "float-gap", help="a sound bound on |float model - integer model| over a box of input codes"
    )
    f.add_argument(
        "float_model",
        type=Path,
        help="float MLP: an ONNX graph (MatMul/Add/Gemm/Relu) or an .npz "
        "of W0, b0, W1, b1, ... (W as [in, out])",
    )
    f.add_argument("model", type=Path, help="its integer ONNX graph (scales from the sidecar unless given)")
    f.add_argument("--input-quant", type=float, nargs=2, metavar=("SCALE", "ZERO"), default=None)
    f.add_argument("--output-quant", type=float, nargs=2, metavar=("SCALE", "ZERO"), default=None)
    f.add_argument("--max-boxes", type=int, default=2000, help="sub-boxes to bound at most (default 2000)")
    _common(f)


def _load(path: Path, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise VerifyError(f"{path}: cannot read the {what} ({exc})") from None


def _box_args(args: argparse.Namespace) -> dict[str, Any]:
    from ._cli import _sample, load_codes

    if args.box is not None:
        if args.input is not None or args.eps is not None:
            raise VerifyError("give --box or --input/--eps, not both")
        return {
            "box": (load_codes(args.box[0], "lower box bounds"), load_codes(args.box[1], "upper box bounds"))
        }
    if args.input is None:
        if args.eps is not None:
            raise VerifyError("--eps needs --input (the box's centre)")
        return {}
    return {"x_codes": _sample(args.input, args.sample_index), "eps": 0 if args.eps is None else args.eps}


def run(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """Answer one of :data:`COMMANDS`: (the line to print, the JSON-ready result)."""
    from ._bias import verify_bias
    from ._equivalence import max_difference, verify_argmax_equivalence, verify_equivalence
    from ._targeted import verify_targeted

    kw = {
        "timeout_s": args.timeout,
        "attack": not args.no_attack,
        "encoding": args.encoding,
        "input_range": tuple(args.input_range) if args.input_range else None,
    }
    if args.command == "targeted":
        box = _box_args(args)
        if "x_codes" not in box:
            raise VerifyError("targeted needs --input (and --eps)")
        r = verify_targeted(args.model, box["x_codes"], box["eps"], args.target, **kw)
        line = f"{r.verdict} (decided by {r.method}) target {r.label} eps {r.eps} in {r.total_time_s:.2f}s"
        if r.vulnerable:
            line += f": input {r.counterexample} is classified {r.counterexample_label}"
        elif r.robust:
            line = line.replace("robust", "unreachable", 1)
        return line, r.to_dict()
    if args.command == "bias":
        r = verify_bias(
            args.model,
            args.sensitive,
            sensitive_values=args.values,
            output=args.output,
            sensitive_range=tuple(args.sensitive_range) if args.sensitive_range else None,
            **_box_args(args),
            **kw,
        )
        return _gap_line("bias", r), r.to_dict()
    if args.command == "float-gap":
        return _float_gap(args, kw)
    box = _box_args(args)
    if args.argmax:
        r = verify_argmax_equivalence(args.model_a, args.model_b, **box, **kw)
    elif args.max:
        g = max_difference(args.model_a, args.model_b, units=args.units, output=args.output, **box, **kw)
        return _gap_line("max difference", g), g.to_dict()
    else:
        r = verify_equivalence(
            args.model_a, args.model_b, delta=args.delta, units=args.units, output=args.output, **box, **kw
        )
    line = (
        f"{r.verdict} (decided by {r.method}) {r.property} delta {r.delta} {r.units} in {r.total_time_s:.2f}s"
    )
    if r.verdict == "different" and r.real_input is not None:  # each graph reads its own codes
        line += f": real input {r.real_input} (codes {r.inputs[0]} and {r.inputs[1]}) gives {r.outputs[0]} vs {r.outputs[1]}"
    elif r.verdict == "different":
        line += f": input {r.counterexample} gives {r.outputs[0]} vs {r.outputs[1]}"
    elif r.verdict == "unknown":
        line += f": {r.reason}"
    return line, r.to_dict()


def _float_gap(args: argparse.Namespace, kw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    from ._float import FloatMLP, float_int_gap

    if args.float_model.suffix == ".npz":
        z = _load(args.float_model, "float weights")
        n = len([k for k in z.files if k.startswith("W")])
        fm: Any = FloatMLP([z[f"W{i}"] for i in range(n)], [z[f"b{i}"] for i in range(n)])
    else:
        fm = args.float_model
    quant = [None if q is None else (q[0], int(q[1])) for q in (args.input_quant, args.output_quant)]
    r = float_int_gap(
        fm,
        args.model,
        input_quant=quant[0],
        output_quant=quant[1],
        max_boxes=args.max_boxes,
        timeout_s=kw["timeout_s"],
        input_range=kw["input_range"],
        **_box_args(args),
    )
    line = (
        f"float-int gap <= {r.bound:.6g} (proved; {r.boxes} sub-boxes), {r.observed:.6g} observed at "
        f"{r.witness} output {r.witness_output}, in {r.total_time_s:.2f}s"
    )
    return line, r.to_dict()


def _gap_line(what: str, r: Any) -> str:
    line = f"{what} {r.gap} {r.units}" + (" (exact)" if r.exact else f" (proved bound {r.bound}: {r.reason})")
    if r.witness:
        line += f": {r.witness[0]} -> {r.witness_outputs[0]} vs {r.witness[1]} -> {r.witness_outputs[1]}"
    if r.real_witness is not None:
        line += f" (real input {r.real_witness})"
    return line + f" in {r.total_time_s:.2f}s"


def write_json(path: Path | None, result: dict[str, Any]) -> None:
    if path is not None:
        path.write_text(json.dumps(result, indent=2) + "\n")
