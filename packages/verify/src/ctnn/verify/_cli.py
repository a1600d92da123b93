"""``ctnn-verify``: verification queries from the command line.

ctnn-verify robustness model.onnx --input codes.npy --eps 2 [--sample-index 7] [--workers 2] [--json out.json]
(and ``targeted``, ``bias``, ``equivalence``, ``float-gap``: see :mod:`._cli_properties`;
``vnnlib``: :mod:`._cli_vnnlib`)
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
from pathlib import Path

import numpy as np

from ctnn.quant import DialectError, SampleFileError, read_codes

from ._backends import SOLVERS
from ._cli_properties import COMMANDS, add_commands, write_json
from ._cli_properties import run as run_command
from ._cli_vnnlib import add_vnnlib, run_vnnlib
from ._encoder import ENCODINGS
from ._errors import VerifyError
from ._verify import verify_robustness


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ctnn-verify", description="Bit-precise verification of integer ONNX graphs."
    )
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "robustness", help="local robustness of one sample in an L-infinity box of input codes"
    )
    r.add_argument(
        "model", type=Path, help="integer ONNX graph (its sidecar .json, if any, gives the code range)"
    )
    r.add_argument(
        "--input", type=Path, required=True, help=".npy of input codes: one sample [F] or [1,F], or [N,F]"
    )
    r.add_argument("--sample-index", type=int, default=None, help="row of an [N,F] --input to verify")
    r.add_argument("--eps", type=int, required=True, help="radius of the box, in input codes")
    r.add_argument(
        "--label", type=int, default=None, help="expected class (default: the reference's prediction)"
    )
    r.add_argument("--timeout", type=float, default=60.0, help="seconds for the whole query (default 60)")
    r.add_argument("--encoding", choices=ENCODINGS, default="optimized")
    r.add_argument(
        "--solver",
        choices=SOLVERS,
        default="auto",
        help="exact backend (auto: CP-SAT on graphs it takes, else bitwuzla or z3)",
    )
    r.add_argument("--no-attack", action="store_true", help="skip the attack: interval pass, then SMT")
    r.add_argument("--workers", type=int, default=1,
                   help="processes for branch and bound and threads for CP-SAT (default 1; POSIX: forked)")  # fmt: skip
    r.add_argument("--input-range", type=int, nargs=2, metavar=("LO", "HI"), default=None,
                   help="input code range (default: the sidecar's, else the input dtype's)")  # fmt: skip
    r.add_argument("--json", type=Path, default=None, help="write the result as JSON here")
    add_commands(sub)
    add_vnnlib(sub)
    return p


def load_codes(path: Path, what: str = "input codes") -> np.ndarray:
    """An array from a ``.npy``, or an ``.npz``'s ``codes`` array (the format of ``ctnn-quant
    codes`` and of campaign sample files; an ``.npz`` holding a single array gives that one)."""
    try:
        return read_codes(path, what)
    except SampleFileError as exc:
        raise VerifyError(str(exc)) from None


def _sample(path: Path, index: int | None) -> np.ndarray:
    x = load_codes(path)
    if index is not None:
        if x.ndim < 2 or not -len(x) <= index < len(x):
            raise VerifyError(
                f"--sample-index {index} does not select a row of {path} (shape {list(x.shape)})"
            )
        return x[index]
    if x.ndim >= 2 and x.shape[0] != 1:
        raise VerifyError(
            f"{path} holds {x.shape[0]} samples (shape {list(x.shape)}): pick one with --sample-index"
        )
    return x


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "vnnlib":
        return run_vnnlib(args)
    if args.command in COMMANDS:
        try:
            line, result = run_command(args)
        except (VerifyError, DialectError, FileNotFoundError) as exc:
            print(f"ctnn-verify: error: {exc}", file=sys.stderr)
            return 2
        print(line)
        write_json(args.json, result)
        return 0
    try:
        x = _sample(args.input, args.sample_index)
        res = verify_robustness(
            args.model, x, args.eps, label=args.label, timeout_s=args.timeout, attack=not args.no_attack,
            input_range=tuple(args.input_range) if args.input_range else None, encoding=args.encoding,
            solver=args.solver, workers=args.workers,
        )  # fmt: skip
    except (VerifyError, DialectError, FileNotFoundError) as exc:
        print(f"ctnn-verify: error: {exc}", file=sys.stderr)
        return 2
    line = (
        f"{res.verdict} (decided by {res.method}) label {res.label} eps {res.eps} in {res.total_time_s:.2f}s"
    )
    if res.verdict == "vulnerable":
        line += f": counterexample predicted {res.counterexample_label}"
    elif res.verdict == "unknown":
        line += f": {res.reason}"
        if res.stats.get("open_classes"):
            line += f" (classes still open: {', '.join(map(str, res.stats['open_classes']))})"
    print(line)
    if args.json:
        args.json.write_text(json.dumps(res.to_dict(), indent=2) + "\n")
    return 0


def entry() -> None:
    """Console-script entry of ``ctnn-verify``: :func:`main`, then exit without z3's teardown.

    z3 frees its context at interpreter exit, and after a large query (an unrolled recurrent
    graph of 10⁵ terms) that took 100 s, longer than the query itself. Once the command has
    returned, the exit handlers run, the streams are flushed and the process exits with the
    command's status.
    """
    code = main()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
