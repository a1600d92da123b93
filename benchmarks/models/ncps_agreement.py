"""ctnn's LTC against the ncps package's torch LTC with the same parameters copied in.

    python benchmarks/models/ncps_agreement.py [--out results/ncps_agreement.json]

Cases: fully connected wiring (softplus and clamp positivity), several ode_unfolds,
irregular time spans are not compared (ncps 1.0.1 broadcasts a per-sample time span
against the neurons, which is only right when batch == 1: compared with batch 1),
and the NCP wiring generator (same seed, same matrices). Tolerance 1e-5 on float32
outputs. Exit status 1 if any case fails.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _ncps_bridge import ctnn_twin, ncps_available  # noqa: E402

TOL = 1e-5


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=HERE / "results" / "ncps_agreement.json")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    ok, why = ncps_available()
    if not ok:
        print(f"ncps is not importable ({why}); run `nox -s bench-models`, or pip install --no-deps ncps")
        return 2
    from ncps.torch import LTC as NcpsLTC
    from ncps.wirings import NCP as NcpsNCP

    from ctnn.models import NCP, _native

    cases = []
    impls = ["native", "eager", "cell"] if _native.available() else ["eager", "cell"]
    for unfolds in (1, 6):
        for implicit in (True, False):
            torch.manual_seed(unfolds)
            peer = NcpsLTC(4, 32, ode_unfolds=unfolds, implicit_param_constraints=implicit)
            ours = ctnn_twin(peer, 4, unfolds)
            x = torch.randn(64, 100, 4)
            with torch.no_grad():
                ref, _ = peer(x)
                for impl in impls:
                    ours.implementation = impl
                    out, _ = ours(x)
                    d = float((out - ref).abs().max())
                    name = (f"fully connected, 32 units, ode_unfolds {unfolds}, "
                            f"{'softplus' if implicit else 'clamp'}, T=100, batch 64 ({impl})")  # fmt: skip
                    cases.append({"name": name, "max_abs_diff": d, "ok": d <= TOL})
    # irregular time spans: batch 1 (see the docstring)
    torch.manual_seed(7)
    peer = NcpsLTC(4, 16, ode_unfolds=6)
    ours = ctnn_twin(peer, 4, 6)
    x, ts = torch.randn(1, 50, 4), torch.rand(1, 50) * 2 + 0.1
    with torch.no_grad():
        ref, _ = peer(x, timespans=ts)
        out, _ = ours(x, timespans=ts)
    d = float((out - ref).abs().max())
    cases.append({"name": "irregular time spans, 16 units, batch 1, T=50", "max_abs_diff": d, "ok": d <= TOL})
    # the NCP wiring: same hyper-parameters and seed, same matrices
    theirs = NcpsNCP(8, 6, 4, 4, 3, 5, 3, seed=1234)
    theirs.build(5)
    mine = NCP(8, 6, 4, 4, 3, 5, 3, seed=1234)
    mine.build(5)
    diff = int(np.abs(theirs.adjacency_matrix - mine.adjacency_matrix).sum()) + int(
        np.abs(theirs.sensory_adjacency_matrix - mine.sensory_adjacency_matrix).sum()
    )
    cases.append(
        {
            "name": "NCP wiring generator (seed 1234): matrix entries that differ",
            "max_abs_diff": diff,
            "ok": diff == 0,
        }
    )

    report = {
        "benchmark": "ncps_agreement", "command": "python benchmarks/models/ncps_agreement.py",
        "ncps_version": importlib.metadata.version("ncps"), "torch_version": torch.__version__,
        "tolerance": TOL, "cases": cases,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for c in cases:
        print(f"{'ok ' if c['ok'] else 'FAIL'} {c['max_abs_diff']:.2e}  {c['name']}")
    from render import render

    render()
    return 0 if all(c["ok"] for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
