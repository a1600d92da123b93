"""The ``ctnn`` command: ``ctnn pipeline`` and ``ctnn report``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _pipeline(args: argparse.Namespace) -> int:
    from ._config import PipelineConfig
    from ._pipeline import run_pipeline

    cfg = PipelineConfig.from_toml(args.config) if args.config else PipelineConfig()
    t0 = time.monotonic()
    run = run_pipeline(cfg, run_dir=args.run_dir, address=args.address, quiet=args.quiet)
    print(f"report: {(run / 'report.html').resolve()}")
    print(f"run directory: {run.resolve()} ({time.monotonic() - t0:.0f} s)")
    return 0


def _report(args: argparse.Namespace) -> int:
    from ._report import write_run_report

    html, md = write_run_report(Path(args.run_dir))
    print(f"report: {html.resolve()}\nsummary: {md.resolve()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ctnn``."""
    p = argparse.ArgumentParser(prog="ctnn", description="ctnn: continuous-time neural networks to hardware")
    sub = p.add_subparsers(dest="cmd", required=True)
    pl = sub.add_parser("pipeline", help="train, quantize, verify (Ray), deploy and report")
    pl.add_argument("--config", help="a TOML file overriding the default configuration")
    pl.add_argument("--run-dir", help="run (or resume) in this directory instead of runs/<timestamp>/")
    pl.add_argument(
        "--address", help="an existing Ray cluster (default: RAY_ADDRESS, else embedded local Ray)"
    )
    pl.add_argument("--quiet", action="store_true")
    pl.set_defaults(fn=_pipeline)
    rp = sub.add_parser("report", help="(re)write the report of a run directory")
    rp.add_argument("run_dir")
    rp.set_defaults(fn=_report)
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"ctnn: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
