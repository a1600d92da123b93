"""Why MNIST queries time out: each open class of each timeout, given to one method at a time.

For every query (``--cases 24/2,97/2`` or the MNIST timeouts in ``--from results.json``):
the classes still open after ``--quick`` seconds of branch and bound per class, as
``verify_robustness`` starts (or only the classes named, as in ``--cases 24/2:6,97/2:0``);
then, per open class and per method, one process with ``--limit`` seconds:

* ``bab``    -- branch and bound alone (``_bab.prove_margin``);
* ``cpsat``  -- CP-SAT alone on the root's intervals, with the first-layer step conflicts as
  ``verify_robustness`` runs it (``_cpsat.solve_margin``, ``--threads``);
* ``cpsat-plain`` -- the same without the conflicts (as ctnn-verify 0.6.0 ran it);
* ``attack`` -- greedy coordinate descent on the reference: from the box's middle, then random
  corners, each step the single coordinate moved to a bound that lowers (margin, accumulator
  difference) most, until none does; restarts until the limit or a violation.

Rows go to ``--out`` (JSON lines, appended) and a summary is printed. The study in the verify
README ran 16 processes at once on a 16-core machine:

    python benchmarks/verify/hard_classes.py --from benchmarks/verify/results.json --procs 16
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _setup(case: str) -> tuple:
    """The query ``image/eps`` on the MNIST model: (its query, predicted label, layered bounds)."""
    from models import build, test_set

    from ctnn.verify._bab import LayeredBounds
    from ctnn.verify._layered import layers_of
    from ctnn.verify._network import as_network
    from ctnn.verify._properties import LocalRobustness
    from ctnn.verify._verify import _Query

    i, eps = map(int, case.split("/"))
    net = as_network(str(build("mnist")))
    X, _ = test_set("mnist")
    lo_in, hi_in = net.input_range
    x0 = X[i]
    lo, hi = np.maximum(x0 - eps, lo_in), np.minimum(x0 + eps, hi_in)
    q = _Query(net, LocalRobustness(0), x0, lo, hi)
    label = int(np.argmax(q.y0))
    q.prop = LocalRobustness(label)
    q.bound(linear=True)
    return q, label, LayeredBounds(layers_of(net, q.dtypes), net.ref.constants, lo, hi, q.bounds)


def open_classes(task: tuple[str, float]) -> dict:
    """The classes of query ``case`` that ``quick`` seconds of per-class branch and bound leave open."""
    from ctnn.verify._bab import prove_robustness

    case, quick = task
    q, label, _ = _setup(case)
    others = [j for j in range(10) if j != label]
    proved, x, _ = prove_robustness(q.net, q.dtypes, q.bounds, q.lo, q.hi, label, others,
                                    time.perf_counter() + quick, q.prop.violated)  # fmt: skip
    return {
        "case": case,
        "label": label,
        "open": [j for j in others if j not in proved],
        "witness": x is not None,
    }


def _attack(lb, label: int, other: int, thr: int, limit: float) -> tuple[str, float]:
    """Greedy coordinate descent (see the module docstring); ``("sat" | "none", best margin)``."""
    rng = np.random.default_rng(0)
    xlo, xhi = lb.xlo, lb.xhi
    free = np.flatnonzero(xlo < xhi)
    rows = np.arange(len(free))

    def score(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        zs, out = lb.run(xs)
        return out[:, label] - out[:, other], zs[-1][:, label] - zs[-1][:, other]

    deadline = time.perf_counter() + limit
    best, first = (np.inf, np.inf), True
    while time.perf_counter() < deadline and best[0] >= thr:
        x = np.round((xlo + xhi) / 2) if first else np.where(rng.random(len(xlo)) < 0.5, xlo, xhi)
        first = False
        m, d = score(x[None])
        cur = (m[0], d[0])
        while time.perf_counter() < deadline:
            c = np.repeat(x[None], 2 * len(free), 0)
            c[rows, free], c[len(free) + rows, free] = xlo[free], xhi[free]
            m, d = score(c)
            k = np.lexsort((d, m))[0]
            if (m[k], d[k]) >= cur:
                break
            x, cur = c[k], (m[k], d[k])
        best = min(best, cur)
    return ("sat" if best[0] < thr else "none"), float(best[0])


def one(task: tuple[str, int, str, float, int]) -> dict:
    """One open class of one query, given to one method for ``limit`` seconds."""
    from ctnn.verify import __version__
    from ctnn.verify._bab import prove_margin
    from ctnn.verify._cpsat import solve_margin, threshold_of

    case, other, method, limit, threads = task
    q, label, lb = _setup(case)
    thr = threshold_of(label, other)
    t = time.perf_counter()
    row: dict = {"case": case, "cls": other, "method": method, "ctnn_verify": __version__}
    if method == "bab":
        row["verdict"], _, row["branches"] = prove_margin(lb, label, other, thr, t + limit, q.prop.violated)
    elif method in ("cpsat", "cpsat-plain"):
        row["verdict"] = solve_margin(lb, *lb.root, label, other, thr, limit, threads, method == "cpsat")[0]
    else:
        row["verdict"], row["best_margin"] = _attack(lb, label, other, thr, limit)
        row["threshold"] = thr
    row["s"] = round(time.perf_counter() - t, 1)
    return row


def _timeouts(path: Path) -> list[str]:
    q = json.loads(path.read_text())["queries"]
    return [
        k[len("mnist/mnist/") :]
        for k, v in q.items()
        if k.startswith("mnist/mnist/") and v["verdict"] == "unknown"
    ]


def summarize(rows: list[dict]) -> str:
    """Open classes, and how many each method (and either exact one) decides within its limit."""
    by: dict[tuple, dict] = {}
    for r in rows:
        if "cls" in r:
            by.setdefault((r["case"], r["cls"]), {})[r["method"]] = r["verdict"]
    exact = {"sat", "unsat"}
    done = {"bab": {"proved", "violated"}, "cpsat": exact, "cpsat-plain": exact, "attack": {"sat"}}
    lines = [f"{len(by)} open classes in {len({c for c, _ in by})} queries"]
    for m in done:
        n = sum(v.get(m) in done[m] for v in by.values() if m in v)
        lines.append(f"  {m}: {n} of {sum(m in v for v in by.values())} decided")
    neither = [k for k, v in by.items() if not any(v.get(m) in done[m] for m in ("bab", "cpsat"))]
    lines.append(f"  decided by neither bab nor cpsat: {len(neither)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default="", help="queries image/eps (or image/eps:class), comma-separated")
    p.add_argument("--from", dest="src", type=Path, help="take the MNIST timeouts of this results JSON")
    p.add_argument(
        "--methods", default="bab,cpsat", help="of bab, cpsat, cpsat-plain, attack (default bab,cpsat)"
    )
    p.add_argument("--limit", type=float, default=60.0, help="seconds per class and method (default 60)")
    p.add_argument("--quick", type=float, default=1.0, help="seconds of branch and bound per class first")
    p.add_argument("--threads", type=int, default=1, help="CP-SAT's threads (default 1)")
    p.add_argument("--procs", type=int, default=os.cpu_count() or 1, help="processes at once")
    p.add_argument("--out", type=Path, default=HERE / "hard_classes.jsonl")
    args = p.parse_args(argv)
    cases = [c for c in args.cases.split(",") if c] + (_timeouts(args.src) if args.src else [])
    if not cases:
        p.error("give --cases or --from")
    named = [c.split(":") for c in cases if ":" in c]
    cases = [c for c in cases if ":" not in c]
    methods = args.methods.split(",")
    rows: list[dict] = []
    with Pool(args.procs) as pool, args.out.open("a") as out:

        def keep(r: dict) -> None:
            print(json.dumps(r), flush=True)
            out.write(json.dumps(r) + "\n")
            out.flush()
            rows.append(r)

        tasks = []
        for r in pool.map(open_classes, [(c, args.quick) for c in cases]):
            keep(r)
            tasks += [(r["case"], j, m, args.limit, args.threads) for j in r["open"] for m in methods]
        tasks += [(c, int(j), m, args.limit, args.threads) for c, j in named for m in methods]
        for r in pool.imap_unordered(one, tasks):
            keep(r)
    print(summarize(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
