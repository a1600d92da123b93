"""One LTC training step (forward + backward + Adam), ctnn against ncps in the same process.

    python benchmarks/models/ltc_speed.py [--repeats 10] [--out results/ltc_speed.json]

32 units (fully connected), batch 64, T=100, 4 input features, ode_unfolds 6,
torch.set_num_threads(1). Both models start from the same parameters (ncps's, copied
into ctnn's); the benchmark checks that outputs and gradients agree before timing and
records the differences. Needs the ncps package (nox -s bench-models installs it).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
import statistics
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _ncps_bridge import ctnn_named, ctnn_twin, grads, ncps_available, ncps_named, time_steps  # noqa: E402

CONFIG = {"units": 32, "batch": 64, "seq_len": 100, "in_features": 4, "ode_unfolds": 6}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--out", type=Path, default=HERE / "results" / "ltc_speed.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    ok, why = ncps_available()
    if not ok:
        print(f"ncps is not importable ({why}); run `nox -s bench-models`, or pip install --no-deps ncps")
        return 2
    from ncps.torch import LTC as NcpsLTC

    from ctnn.models import _native

    c = CONFIG
    torch.manual_seed(0)
    peer = NcpsLTC(c["in_features"], c["units"], ode_unfolds=c["ode_unfolds"])
    ours = ctnn_twin(peer, c["in_features"], c["ode_unfolds"])
    x = torch.randn(c["batch"], c["seq_len"], c["in_features"])
    target = torch.randn(c["batch"], c["units"])

    # identical outputs and gradients first
    ref_out, _ = peer(x)
    torch.nn.functional.mse_loss(ref_out[:, -1], target).backward()
    g_ref = grads(peer, ncps_named)
    results = {}
    impls = ["native", "eager"] if _native.available() else ["eager"]
    for impl in impls:
        ours.implementation = impl
        ours.zero_grad()
        out, _ = ours(x)
        torch.nn.functional.mse_loss(out[:, -1], target).backward()
        g = grads(ours, ctnn_named)
        results[f"ctnn ({impl})"] = {
            "max_abs_output_diff": float((out - ref_out).detach().abs().max()),
            "max_abs_grad_diff": max(float((g[k] - g_ref[k]).abs().max()) for k in g_ref),
        }
    # then time, interleaved so that machine load hits every implementation alike
    secs: dict[str, list[float]] = {"ncps": []} | {k: [] for k in results}
    for _ in range(3):
        secs["ncps"].append(time_steps(peer, x, target, max(1, args.repeats // 3), args.warmup))
        for impl in impls:
            ours.implementation = impl
            secs[f"ctnn ({impl})"].append(time_steps(ours, x, target, max(1, args.repeats // 3), args.warmup))
    ncps_s = statistics.median(secs["ncps"])
    results = {"ncps": {"seconds": ncps_s, "speedup_vs_ncps": 1.0}} | {
        k: v | {"seconds": statistics.median(secs[k]), "speedup_vs_ncps": ncps_s / statistics.median(secs[k])}
        for k, v in results.items()
    }
    report = {
        "benchmark": "ltc_training_step",
        "command": "python benchmarks/models/ltc_speed.py",
        "config": c | {"repeats": args.repeats, "warmup": args.warmup, "threads": 1},
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, torch {torch.__version__}, "
        f"ncps {importlib.metadata.version('ncps')}",
        "native_kernel": _native.available(),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for k, r in results.items():
        print(f"{k:16s} {r['seconds']:.4f} s/step  {r['speedup_vs_ncps']:.2f}x", flush=True)
    from render import render

    render()
    target_met = results.get("ctnn (native)", results.get("ctnn (eager)"))["speedup_vs_ncps"] >= 5.0
    print("target >= 5x:", "met" if target_met else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
