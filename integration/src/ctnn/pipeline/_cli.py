"""The ``ctnn`` command: ``ctnn pipeline``, ``ctnn report`` and ``ctnn campaign run|submit|status|logs|stop|export``."""

from __future__ import annotations

import argparse
import atexit
import os
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


def _campaign_run(args: argparse.Namespace) -> int:
    from ._campaign import run_campaign
    from ._progress import print_summary
    from ._spec import CampaignSpec
    from ._store import ResultStore

    spec = CampaignSpec.from_toml(args.spec)
    res = run_campaign(
        spec, address=args.address, num_cpus=args.workers, store_path=args.store, quiet=args.quiet
    )
    s = res.stats
    print(
        f"campaign {res.name}: {res.total} queries; this run: {s.finished} finished ({s.timeouts} at the "
        f"deadline), {s.skipped} already stored, {s.failed} failed; {s.wall_s:.1f} s; store {res.store}"
    )
    if res.stages_ran or res.stages_reused:
        print(f"stages: {res.stages_ran} ran, {res.stages_reused} reused from the store")
    failed_builds = [(label, d["error"]) for label, d in res.deploys if "error" in d]
    for label, d in res.deploys:
        if "error" not in d:
            print(f"  {label}: bit-exact with the reference on {d['exact_on']} inputs ({d['dir']})")
    if not args.quiet:
        with ResultStore(res.store) as store:
            print_summary(store, res.name)
    for label, err in failed_builds:
        print(f"ctnn: deploy {label} failed: {err}", file=sys.stderr)
    if s.failed:
        print(
            f"ctnn: {s.failed} queries failed (workers died more than max_retries times); run again to "
            f"retry them. First: {s.first_failure}",
            file=sys.stderr,
        )
    return 1 if s.failed or failed_builds else 0


def _campaign_submit(args: argparse.Namespace) -> int:
    from ._jobs import job_logs, submit_campaign

    job = submit_campaign(args.spec, args.address, store=args.store, python=args.python)
    print(job)
    if args.wait:
        status = job_logs(job, args.address, follow=True)
        print(f"job {job}: {status}")
        return 0 if status == "SUCCEEDED" else 1
    return 0


def _campaign_status(args: argparse.Namespace) -> int:
    from ._jobs import job_status

    st = job_status(args.job_id, args.address)
    print(f"{st['job_id']}: {st['status']}" + (f" ({st['message']})" if st["message"] else ""))
    return 0


def _campaign_logs(args: argparse.Namespace) -> int:
    from ._jobs import job_logs

    got = job_logs(args.job_id, args.address, follow=args.follow)
    if not args.follow:
        print(got, end="")
    return 0


def _campaign_stop(args: argparse.Namespace) -> int:
    from ._jobs import stop_job

    print(f"{args.job_id}: " + ("stop requested" if stop_job(args.job_id, args.address) else "not running"))
    return 0


def _campaign_export(args: argparse.Namespace) -> int:
    from ._export import export_results

    store, campaign = Path(args.source), args.campaign
    if store.suffix == ".toml":  # a spec: its store and its campaign
        from ._spec import CampaignSpec

        spec = CampaignSpec.from_toml(store)
        store, campaign = spec.store, campaign or spec.name
    out = Path(args.output or store.with_suffix(f".{args.format}"))
    n = export_results(store, out, args.format, campaign)
    print(f"{n} rows → {out.resolve()}")
    return 0


def _add_campaign(sub: argparse._SubParsersAction) -> None:
    cp = sub.add_parser("campaign", help="verification campaigns on Ray (run, submit as a Ray Job, export)")
    cs = cp.add_subparsers(dest="campaign_cmd", required=True)
    r = cs.add_parser("run", help="run (or finish) a campaign spec on Ray (embedded local by default)")
    r.add_argument("spec", help="the campaign's TOML spec")
    r.add_argument(
        "--address", help="an existing Ray cluster (default: RAY_ADDRESS, else embedded local Ray)"
    )
    r.add_argument("--store", help="the result store (default: the spec's campaign.store)")
    r.add_argument("--workers", type=int, help="CPUs of the embedded local Ray (default: all)")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(fn=_campaign_run)
    addr = {
        "help": "the cluster's dashboard, http://HEAD:8265 (default: RAY_API_SERVER_ADDRESS, RAY_ADDRESS)"
    }
    s = cs.add_parser("submit", help="submit a campaign to a Ray cluster as a Ray Job; prints the job id")
    s.add_argument("spec")
    s.add_argument("--address", **addr)
    s.add_argument("--store", help="the store's absolute path as the head node sees it (default: the spec's)")
    s.add_argument("--python", help="the interpreter on the head node (default: this one)")
    s.add_argument("--wait", action="store_true", help="follow the job's logs until it ends")
    s.set_defaults(fn=_campaign_submit)
    for name, fn, hlp in [("status", _campaign_status, "a campaign job's status"),
                          ("logs", _campaign_logs, "a campaign job's logs"),
                          ("stop", _campaign_stop, "stop a campaign job")]:  # fmt: skip
        j = cs.add_parser(name, help=hlp)
        j.add_argument("job_id")
        j.add_argument("--address", **addr)
        if name == "logs":
            j.add_argument("--follow", action="store_true")
        j.set_defaults(fn=fn)
    e = cs.add_parser("export", help="write a store's results as Parquet or CSV")
    e.add_argument("source", help="a campaign spec (.toml) or a result store (.sqlite)")
    e.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    e.add_argument(
        "--campaign", help="only this campaign's rows (default: the spec's, or every row of a store)"
    )
    e.add_argument("-o", "--output", help="the output file (default: next to the store)")
    e.set_defaults(fn=_campaign_export)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ctnn``."""
    p = argparse.ArgumentParser(prog="ctnn", description="ctnn: continuous-time neural networks to hardware")
    sub = p.add_subparsers(dest="cmd", required=True)
    pl = sub.add_parser("pipeline", help="train, quantize, verify (Ray), deploy, analyze and report")
    pl.add_argument(
        "--config",
        help="a TOML [pipeline] table overriding the defaults (e.g. integration/configs/large.toml)",
    )
    pl.add_argument("--run-dir", help="run (or resume) in this directory instead of runs/<timestamp>/")
    pl.add_argument(
        "--address", help="an existing Ray cluster (default: RAY_ADDRESS, else embedded local Ray)"
    )
    pl.add_argument("--quiet", action="store_true")
    pl.set_defaults(fn=_pipeline)
    rp = sub.add_parser("report", help="(re)write the report of a run directory")
    rp.add_argument("run_dir")
    rp.set_defaults(fn=_report)
    _add_campaign(sub)
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"ctnn: error: {exc}", file=sys.stderr)
        return 2


def entry() -> None:
    """Console-script entry of ``ctnn``: :func:`main`, then exit without native library teardown.

    A run loads Ray's and TVM's native libraries into one process, and objects of one can
    outlive the other at interpreter shutdown (tvm-ffi issue #264 describes the pattern). A
    finished ``ctnn pipeline`` once died there with SIGSEGV, after writing its report, and
    reported failure. So once the command has returned, the Python exit handlers run (Ray's
    shutdown, temporary directories, logging), the streams are flushed, and the process exits
    with the command's status without unloading anything.
    """
    code = main()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
