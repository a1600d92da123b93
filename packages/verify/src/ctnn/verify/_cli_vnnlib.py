"""``ctnn-verify vnnlib MODEL.onnx PROP.vnnlib``: a VNNLIB property from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ctnn.quant import DialectError

from ._backends import SOLVERS
from ._encoder import ENCODINGS
from ._errors import VerifyError
from ._vnnlib import ROUNDINGS, verify_vnnlib


def add_vnnlib(sub: Any) -> None:
    """Add the ``vnnlib`` subcommand to the CLI's subparsers."""
    v = sub.add_parser("vnnlib", help="decide a VNNLIB property (box inputs, linear output constraints)")
    v.add_argument("model", type=Path, help="integer ONNX graph (its sidecar gives the scales)")
    v.add_argument("property", type=Path, help="VNNLIB file")
    v.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    v.add_argument("--units", choices=("real", "codes"), default="real",
                   help="X and Y as real values through the sidecar's scales (default), or as codes")  # fmt: skip
    v.add_argument("--rounding", choices=ROUNDINGS, default="quantize",
                   help="real input bounds -> codes (default: as the sidecar's quantizer rounds)")  # fmt: skip
    v.add_argument("--encoding", choices=ENCODINGS, default="optimized")
    v.add_argument("--solver", choices=SOLVERS, default="auto")
    v.add_argument("--json", type=Path, default=None, help="write the result as JSON here")


def run_vnnlib(args: argparse.Namespace) -> int:
    """Run the ``vnnlib`` subcommand; prints VNN-COMP's word (sat/unsat/timeout) and the verdict."""
    try:
        res = verify_vnnlib(args.model, args.property, args.timeout, units=args.units, rounding=args.rounding,
                            encoding=args.encoding, solver=args.solver)  # fmt: skip
    except (VerifyError, DialectError, FileNotFoundError, ModuleNotFoundError) as exc:
        print(f"ctnn-verify: error: {exc}", file=sys.stderr)
        return 2
    word = {"robust": "unsat", "vulnerable": "sat", "unknown": "timeout"}[res.verdict]
    line = f"{word}: property {'holds' if res.robust else 'violated' if res.vulnerable else 'undecided'}"
    line += f" (decided by {res.method}) in {res.total_time_s:.2f}s"
    if res.vulnerable:
        line += (
            f": counterexample codes {res.counterexample[:8]}{'...' if len(res.counterexample) > 8 else ''}"
        )
    print(line)
    if args.json:
        args.json.write_text(json.dumps(res.to_dict(), indent=2) + "\n")
    return 0
