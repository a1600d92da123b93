"""ctnn-verify benchmarks: robustness queries on quantized MNIST and digits MLPs.

Suites (each a list of queries; every result lands in one JSON file, keyed, so a run
can be resumed or extended with more samples/eps later):

* ``mnist``     -- the published benchmark's setting: MLP 784-64-32-10 on the MNIST subset,
                   8-bit inputs, 6-bit weights/activations, ε = 1..4 input codes, the first
                   N test images, classes interleaved (``models.test_set``; misclassified
                   ones are counted, not queried).
* ``mnist-ibp`` -- the same queries on ``models.py``'s ``mnist-ibp``: the same architecture and
                   bits trained by interval bound propagation (a different network, beside the
                   target's, not part of it).
* ``encodings`` -- optimized vs naive encoding on the same MNIST queries, SMT stage only
                   (no interval proof, attack or splitting), the naive one under a shorter cap.
* ``solvers``   -- z3 vs bitwuzla vs CP-SAT on the whole graph (``--solvers``) on the same MNIST
                   (``--eps``) and digits-8 (``--digits-eps``) queries, exact stage only; the answers
                   of the solvers are compared.
* ``solvers``/``encodings`` also run a random 6-bit MLP 16-12-10 (``--random-eps``), small enough
  that the solver decides within the limit, so the comparison has decided queries.
* ``solvers`` also runs recurrent graphs: random integer LEM, Lipschitz RNN and LTC cells
  (ctnn-verify's test builders: 2 features, 4-bit activations, 3-bit inputs) with
  ``--recurrent-units`` units unrolled over ``--recurrent-lengths`` steps, ε = 1 around
  ``--recurrent-samples`` random sequences: formulas of 1,000 to 100,000 symbolic elements, where
  ``solver="auto"`` has to choose by size.
* ``isolation`` -- the same recurrent queries (SMT stage only, ``--solver``) decided in-process and in
                   a child process killed at the deadline, whatever their size: where the child's start-up
                   costs more than the overrun it prevents.
* ``digits``    -- MLP 64-32-10 on scikit-learn's digits at 8, 6 and 4 bits, ε = 1..4.
* ``targeted``  -- targeted attacks on the ``mnist`` images: is any input in the box classified as
                   the image's runner-up class? The default stages against the peer without branch
                   and bound (``bab=False``: bounds, attack, then the exact stage on the whole
                   property), each going first on every other query.
* ``argmax``    -- argmax equivalence of ``mnist`` and ``mnist-ibp`` in the box around each image:
                   the default (each network first asked to keep one class, by robustness queries)
                   against the peer with ``bab=False`` (the product graph alone).

    python benchmarks/verify/bench_verify.py --suite mnist --eps 1 2 --samples 20
    python benchmarks/verify/bench_verify.py --render      # docs/results/verify.md

Two runs at once (``--first`` splits the images, ``--merge`` folds the files): ``--cpu 0`` and
``--cpu 1`` pin each to its own core, threads included. ctnn-verify's CP-SAT stage searches a
query's open classes on threads; pinned, they share that query's one core and no more.

The models are trained once by ``models.py`` (torch) and cached next to this script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

# one query per core: BLAS threads in the bound passes would fight the solver (and other jobs) for it
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from models import IBP_EPS, build, test_set  # noqa: E402

from ctnn.verify._backends import AUTO_LARGE_INPUTS, ISOLATE_ELEMENTS  # noqa: E402
from ctnn.verify._solver_process import GRACE_S  # noqa: E402
from ctnn.verify._verify import BAB_SHARE, EXACT_SHARE  # noqa: E402

RESULTS = HERE / "results.json"
RANDOM_SIZES = [16, 12, 10]
#: the stages that decide a robustness query, as `method` names them
DECIDERS = ("interval", "attack", "bab", "cpsat", "smt")
PAGE = HERE.parents[1] / "docs" / "results" / "verify.md"


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {"queries": {}, "runs": []}


def _save(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


def _query(net, x, label, eps, timeout, target: int | None = None, other=None, **kw) -> dict:
    """One robustness query (``label``); a targeted one where ``target`` is given; argmax
    equivalence with the network ``other`` where that is given."""
    from ctnn.verify import verify_argmax_equivalence, verify_robustness, verify_targeted

    t = time.perf_counter()
    if other is not None:
        r = verify_argmax_equivalence(net, other, x, eps, timeout_s=timeout, **kw)
    elif target is None:
        r = verify_robustness(net, x, eps, label=label, timeout_s=timeout, **kw)
    else:
        r = verify_targeted(net, x, eps, target=target, timeout_s=timeout, **kw)
    wall = time.perf_counter() - t
    return {"verdict": r.verdict, "method": r.method, "time_s": round(wall, 3),
            "solver_time_s": round(getattr(r, "solver_time_s", 0.0), 3), "reason": r.reason,
            "goals": r.stats.get("goals"), "open_goals": r.stats.get("open_goals", 0),
            "solver_calls": r.stats.get("solver_calls", 0), "counterexample_label": getattr(r, "counterexample_label", None),
            "elements": r.stats.get("symbolic_elements"), "translate_s": r.stats.get("translate_s"),
            "cp_variables": r.stats.get("cp_variables")}  # fmt: skip


def _samples(model: str, n: int):
    from ctnn.verify._network import Network

    if model == "random":  # a mid-size random MLP the solver decides within seconds to minutes
        from ctnn.quant import random_integer_mlp

        onnx_model = random_integer_mlp(RANDOM_SIZES, weight_bits=6, act_bits=6, in_bits=8, seed=0).to_onnx()
        net = Network(onnx_model, input_range=(-128, 127))
        X = np.random.default_rng(0).integers(-100, 100, size=(n, RANDOM_SIZES[0]))
        pred = net.outputs(X).argmax(1)
        return net, X, pred, pred

    net = Network(str(build(model)))
    X, y = test_set(model)
    pred = net.outputs(X[:n]).argmax(1)
    return net, X[:n], y[:n], pred


def _recurrent(family: str, units: int, steps: int, n: int):
    """A random integer ``family`` cell (ctnn-verify's test builder), ``n`` random sequences and the
    cell's own labels for them."""
    tests = str(HERE.parents[1] / "packages" / "verify" / "tests")  # the random recurrent builders
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from verify_recurrent import BUILDERS

    from ctnn.verify._network import Network

    net = Network(BUILDERS[family](steps, units=units, act_bits=4, seed=1).to_onnx(), input_range=(-4, 3))
    X = np.random.default_rng(steps).integers(-4, 4, size=(n, 2 * steps))
    return net, X, net.outputs(X).argmax(1)


#: the solvers suite's recurrent rows split here: from 2026-11-24 12:31 formulas above it ran in a child
#: process (ctnn-verify's threshold then; it is ISOLATE_ELEMENTS now), those below in-process
SOLVERS_BAND = 20_000


def _recurrent_cases(args: argparse.Namespace):
    """(name, network, sample index, sequence, label) for each random recurrent cell and sequence."""
    for family in ("lem", "lipschitz_rnn", "ltc"):
        for units in args.recurrent_units:
            for steps in args.recurrent_lengths:
                net, X, pred = _recurrent(family, units, steps, args.recurrent_samples)
                for i, x in enumerate(X):
                    yield f"{family}-u{units}-T{steps}", net, i, x, int(pred[i])


def run_suite(suite: str, args: argparse.Namespace, data: dict) -> None:
    q = data["queries"]

    def record(key: str, *a, **kw) -> None:
        """Run one query (``_query(*a, **kw)``) unless the JSON already holds it."""
        if key in q and not args.redo:
            return
        q[key] = _query(*a, **kw) if a else {"verdict": "misclassified", "time_s": 0.0}
        print(key, q[key], flush=True)
        _save(args.out, data)

    def encodings(net, model: str, x, i: int, lab: int, eps: int, naive_only: bool = False) -> None:
        """The SMT stage alone (no bounds, attack or branch and bound), optimized then naive encoding."""
        smt_only = {"attack": False, "interval": False, "solver": args.solver}
        if not naive_only:
            record(f"encodings/optimized/{model}/{i}/{eps}", net, x, lab, eps, args.timeout,
                   encoding="optimized", **smt_only)  # fmt: skip
        record(f"encodings/naive/{model}/{i}/{eps}", net, x, lab, eps, args.naive_timeout, encoding="naive",
               **smt_only)  # fmt: skip

    def solvers(net, model: str, x, i: int, lab: int, eps: int) -> None:
        """The exact stage alone on each solver (CP-SAT: the whole graph as one model)."""
        for s in args.solvers:
            record(f"solvers/{s}/{model}/{i}/{eps}", net, x, lab, eps, args.timeout, attack=False, interval=False,
                   solver=s)  # fmt: skip

    if suite == "mnist-workers":  # the 1-core run's timeouts again, one query at a time on several cores
        net, X, y, pred = _samples("mnist", args.samples)
        for key, v in sorted(q.items()):
            if key.startswith("mnist/mnist/") and v["verdict"] == "unknown":
                i, eps = map(int, key.split("/")[2:])
                if args.first <= i < len(X) and eps in args.eps:
                    record(f"mnist-workers/mnist/{i}/{eps}", net, X[i], int(y[i]), eps, args.timeout,
                           solver=args.solver, workers=args.workers)  # fmt: skip
    if suite in ("mnist", "mnist-ibp", "encodings", "solvers") and args.samples:
        model = "mnist-ibp" if suite == "mnist-ibp" else "mnist"
        net, X, y, pred = _samples(model, args.samples)
        whole = suite in ("mnist", "mnist-ibp")  # the default verifier on every query
        for eps in args.eps:
            for i in range(args.first, len(X)):
                if pred[i] != y[i]:
                    record(f"{suite}/{model}/{i}/{eps}" if whole else f"{suite}/misclassified/{i}/{eps}")
                    continue
                lab = int(y[i])
                if whole:
                    record(
                        f"{suite}/{model}/{i}/{eps}", net, X[i], lab, eps, args.timeout, solver=args.solver
                    )
                elif suite == "encodings":
                    encodings(net, "mnist", X[i], i, lab, eps, naive_only=args.naive_only)
                else:
                    solvers(net, "mnist", X[i], i, lab, eps)
    if suite in ("solvers", "encodings") and args.random_eps and args.samples:
        net, X, y, _ = _samples("random", args.samples)
        for eps in args.random_eps:
            for i in range(len(X)):
                lab = int(y[i])
                if suite == "encodings":
                    encodings(net, "random", X[i], i, lab, eps)
                else:
                    solvers(net, "random", X[i], i, lab, eps)
    if suite == "solvers":
        for name, net, i, x, label in _recurrent_cases(args):
            solvers(net, name, x, i, label, 1)
    if suite == "isolation":  # the same recurrent queries in-process and in a child process
        import ctnn.verify._verify as verifier

        for k, (name, net, i, x, label) in enumerate(_recurrent_cases(args)):
            modes = (("in-process", sys.maxsize), ("child", -1))
            for mode, threshold in modes if k % 2 == 0 else modes[::-1]:  # each goes first half the time
                verifier.ISOLATE_ELEMENTS = threshold
                try:
                    record(f"isolation/{mode}/{name}/{i}", net, x, label, 1, args.timeout, attack=False,
                           interval=False, solver=args.solver)  # fmt: skip
                finally:
                    verifier.ISOLATE_ELEMENTS = ISOLATE_ELEMENTS
    if suite in ("targeted", "argmax") and args.samples:  # each query with and without branch and bound
        net, X, y, pred = _samples("mnist", args.samples)
        other = _samples("mnist-ibp", 1)[0] if suite == "argmax" else None
        ways = (("default", True), ("whole", False))
        for eps in args.eps:
            for k, i in enumerate(range(args.first, len(X))):
                kw: dict = {"other": other}
                if suite == "targeted":  # the image's runner-up class, on the images classified right
                    if pred[i] != y[i]:
                        continue
                    kw = {"target": int(np.argsort(-net.outputs(X[i : i + 1])[0], kind="stable")[1])}
                for way, bab in ways if k % 2 == 0 else ways[::-1]:  # each goes first half the time
                    record(f"{suite}/{way}/mnist/{i}/{eps}", net, X[i], None, eps, args.timeout, solver=args.solver,
                           bab=bab, **kw)  # fmt: skip
    if suite in ("digits", "solvers", "encodings") and args.samples:
        for bits in (8, 6, 4) if suite == "digits" else (8,):
            name = f"digits-{bits}"
            net, X, y, pred = _samples(name, args.samples)
            for eps in args.eps if suite == "digits" else args.digits_eps:
                for i in range(len(X)):
                    if pred[i] != y[i]:
                        continue
                    lab = int(y[i])
                    if suite == "digits":
                        record(
                            f"digits/{name}/{i}/{eps}", net, X[i], lab, eps, args.timeout, solver=args.solver
                        )
                    elif suite == "encodings":
                        encodings(net, name, X[i], i, lab, eps)
                    else:
                        solvers(net, name, X[i], i, lab, eps)


# -- the page ------------------------------------------------------------------------------------
def _rows(q: dict, prefix: str) -> dict[str, dict]:
    return {k[len(prefix) :]: v for k, v in q.items() if k.startswith(prefix)}


def _med(ts: list[float]) -> str:
    return f"{statistics.median(ts):.2f}" if ts else "–"


def _redone(q: dict, runs: list[dict]) -> tuple[dict, int]:
    """The mnist suite's timeouts as the mnist-workers suite ran them again (rows of an older
    mnist run's timeouts that the current one decided are left out), and its ``workers``."""
    w = _rows(q, "mnist-workers/mnist/")
    m = _rows(q, "mnist/mnist/")
    workers = next((r.get("workers", 2) for r in reversed(runs) if r["suite"] == "mnist-workers"), 2)
    return {k: v for k, v in w.items() if m.get(k, {}).get("verdict") == "unknown"}, workers


def _workers_line(m: dict, redone: dict, workers: int) -> str:
    """The summary's sentence on the mnist suite's timeouts (``m`` its rows) re-run on several
    cores (:func:`_redone`), if they were."""
    if not redone:
        return ""
    decided = sum(v["verdict"] != "unknown" for v in redone.values())
    left = sum(v["verdict"] == "unknown" for v in m.values()) - decided
    return (f" Run again one at a time with `workers={workers}`, {decided} of those {len(redone)} are decided: "
            f"**{left} timeouts** with {workers} cores per query.")  # fmt: skip


def _eps_table(m: dict) -> list[str]:
    """A robustness suite's rows (``m``, keyed ``image/eps``) as a table, a row per ε."""
    out = ["| ε | queries | robust | vulnerable | timeout | misclassified | decided by interval / attack / bab / cpsat / smt "
           "| median s | max s |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for eps in sorted({int(k.split("/")[1]) for k in m}):
        rs = [v for k, v in m.items() if int(k.split("/")[1]) == eps]
        c = {
            v: sum(r["verdict"] == v for r in rs)
            for v in ("robust", "vulnerable", "unknown", "misclassified")
        }
        meth = {mm: sum(r.get("method") == mm for r in rs if r["verdict"] not in ("misclassified", "unknown"))
                for mm in DECIDERS}  # fmt: skip
        ts = [r["time_s"] for r in rs if r["verdict"] != "misclassified"]
        out.append(f"| {eps} | {len(rs)} | {c['robust']} | {c['vulnerable']} | {c['unknown']} | {c['misclassified']} "
                   f"| {' / '.join(str(meth[mm]) for mm in DECIDERS)} | {_med(ts)} "
                   f"| {max(ts) if ts else 0:.2f} |")  # fmt: skip
    if not m:
        out.append("| – | not run | | | | | | | |")
    return out


def _accuracy(model: str) -> str:
    """The cached model's integer test accuracy, from its sidecar (``?`` if not built)."""
    side = HERE / "models" / f"{model}.json"
    acc = json.loads(side.read_text()).get("metrics", {}).get("int_test_accuracy") if side.is_file() else None
    return "?" if acc is None else f"{acc:.1%}"


def _ibp_summary(ibp: dict) -> list[str]:
    """The summary's line on the ``mnist-ibp`` suite's rows, if it ran."""
    rs = [v for v in ibp.values() if v["verdict"] != "misclassified"]
    if not rs:
        return []
    n_to = sum(v["verdict"] == "unknown" for v in rs)
    return [
        f"- The same MLP trained by interval bound propagation (`mnist-ibp`, a different network, outside "
        f"the target): {n_to} timeouts on its {len(rs)} queries, the slowest decided in "
        f"{max((v['time_s'] for v in rs if v['verdict'] != 'unknown'), default=0.0):.1f} s; integer test accuracy "
        f"{_accuracy('mnist-ibp')} against {_accuracy('mnist')}."
    ]


def _isolation_table(rows: dict[str, dict]) -> list[str]:
    """In-process vs child process on the same recurrent queries, by the formula's size."""
    out = ["", "## In-process vs child process (recurrent, SMT stage only)", "",
           "The same query decided twice, each way first on every other query: in-process, and in a child "
           "process that is killed "
           f"{GRACE_S} s past the check's limit (ctnn-verify does the latter above {ISOLATE_ELEMENTS:,} "
           "elements). Queries that reached the solver, by the formula's symbolic elements; times are "
           "whole queries.", "",
           "| elements | queries | decided in-process | decided in a child | median s in-process "
           "| median s in a child | slowest in-process | slowest in a child |",
           "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    pairs = [
        (v, rows.get("child/" + k.split("/", 1)[1])) for k, v in rows.items() if k.startswith("in-process/")
    ]
    pairs = [(a, b) for a, b in pairs if b and (a.get("goals") or b.get("goals"))]
    bands = [(0, 5_000), (5_000, 10_000), (10_000, 20_000), (20_000, 10**9)]
    for lo, hi in bands:
        band = [(a, b) for a, b in pairs if lo < (a.get("elements") or 0) <= hi]
        if not band:
            continue
        ta, tb = [a["time_s"] for a, _ in band], [b["time_s"] for _, b in band]
        da, db = (sum(r["verdict"] != "unknown" for r in side) for side in zip(*band))
        label = f"over {lo:,}" if hi == 10**9 else f"{lo:,}–{hi:,}"
        out.append(f"| {label} | {len(band)} | {da} | {db} | {_med(ta)} | {_med(tb)} | {max(ta):.2f} "
                   f"| {max(tb):.2f} |")  # fmt: skip
    if not pairs:
        out.append("| not run | | | | | | | |")
    return out


def _both_ways(rows: dict[str, dict]) -> list[tuple[int, dict, dict]]:
    """(ε, default's row, whole's row) of each query run both ways."""
    pairs = [(int(k.split("/")[-1]), v, rows.get("whole/" + k.split("/", 1)[1]))
             for k, v in rows.items() if k.startswith("default/")]  # fmt: skip
    return [p for p in pairs if p[2]]


def _ways_table(rows: dict[str, dict], title: str, text: str, verdicts: tuple[str, str]) -> list[str]:
    """The same queries run two ways (rows ``default/...`` and ``whole/...``), a row per ε:
    ``verdicts`` names the proof and the witness verdicts."""
    names = " / ".join((*verdicts, "timeout"))
    out = ["", title, "", text, "",
           f"| ε | queries | default: {names} | whole: {names} "
           "| default median s | whole median s | default max s | whole max s | disagree |",
           "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    pairs = _both_ways(rows)
    for eps in sorted({p[0] for p in pairs}):
        band = [(a, b) for e, a, b in pairs if e == eps]
        counts = [" / ".join(str(sum(r["verdict"] == v for r in side)) for v in (*verdicts, "unknown"))
                  for side in zip(*band)]  # fmt: skip
        ta, tb = [a["time_s"] for a, _ in band], [b["time_s"] for _, b in band]
        dis = sum({a["verdict"], b["verdict"]} == set(verdicts) for a, b in band)
        out.append(f"| {eps} | {len(band)} | {counts[0]} | {counts[1]} | {_med(ta)} | {_med(tb)} | {max(ta):.2f} "
                   f"| {max(tb):.2f} | {dis} |")  # fmt: skip
    if not pairs:
        out.append("| – | not run | | | | | | | |")
    return out


def _ways_summary(q: dict, runs: list[dict]) -> list[str]:
    """The summary's line on the targeted and argmax suites (timeouts each way), if they ran."""
    parts = []
    limits = sorted({f"{r['timeout']:g} s" for r in runs if r["suite"] in ("targeted", "argmax")})
    for suite, what in (("targeted", "targeted attacks (runner-up class)"), ("argmax", "argmax equivalence")):
        pairs = [(a, b) for _, a, b in _both_ways(_rows(q, f"{suite}/"))]
        if pairs:
            to = [sum(r["verdict"] == "unknown" for r in side) for side in zip(*pairs)]
            parts.append(
                f"{what}: {to[0]} timeouts of {len(pairs)} queries, against {to[1]} without branch and bound"
            )
    if not parts:
        return []
    return [f"- Other properties at MNIST scale (tables below, {' or '.join(limits)} per query): "
            + "; ".join(parts) + "."]  # fmt: skip


def _relational_tables(q: dict) -> list[str]:
    """Targeted attacks and argmax equivalence on MNIST, each with and without branch and bound."""
    both = ("The same query both ways in one run, each going first on every other query; a timeout counts "
            "as its limit.")  # fmt: skip
    return _ways_table(
        _rows(q, "targeted/"), "## Targeted attacks on MNIST (each image's runner-up class)",
        "`verify_targeted(model, x, eps, target)` on the `mnist` network and the first images of the MNIST "
        "table above (those it classifies correctly), the target "
        "being the class the image's output puts second: is any input of the box classified as it? "
        "*default*: on this MLP, branch and bound first proves a margin (the target cannot win where "
        "the class closest to beating it everywhere always does; the class by the linear bounds), for "
        "half of the time the bounds and the attack leave, then the exact stage on the whole property. "
        "*whole*: the peer without branch and bound (`bab=False`): bounds, attack, then CP-SAT on the "
        "whole graph and property. " + both, ("robust", "vulnerable"),
    ) + _ways_table(
        _rows(q, "argmax/"), "## Argmax equivalence on MNIST (`mnist` and `mnist-ibp`)",
        "`verify_argmax_equivalence(mnist, mnist_ibp, x, eps)`: do the plainly trained network and the one "
        "trained by interval bound propagation predict the same class everywhere in the box around each "
        "of the first images of the MNIST table above? *default*: each network is first asked to keep the "
        "class `mnist` gives the box's centre (two robustness queries with branch and bound, in at most half the time), then the product graph "
        "of the two decides in the time left. *whole*: the peer with `bab=False`, the product graph alone "
        "(bounds, attack, CP-SAT on the whole graph). " + both, ("equivalent", "different"),
    )  # fmt: skip


def render(data: dict) -> str:
    q = data["queries"]
    runs = data.get("runs", [])
    out = ["# ctnn-verify: measured", "",
           "Written by `python benchmarks/verify/bench_verify.py --render` from "
           "`benchmarks/verify/results.json`; every number below is a query that was run (the page says "
           "which were not). Machine: " + (runs[-1]["machine"] if runs else "?") + ", shared with other jobs "
           "while these ran, so times are upper bounds.", ""]  # fmt: skip

    # MNIST
    m = _rows(q, "mnist/mnist/")
    w, workers = _redone(q, runs)
    ibp = _rows(q, "mnist-ibp/mnist-ibp/")
    queried = [v for v in m.values() if v["verdict"] != "misclassified"]
    n_to = sum(v["verdict"] == "unknown" for v in queried)
    solver_decided = sum(v.get("method") == "smt" and v["verdict"] != "unknown" and v.get("solver_calls")
                         for v in queried)  # fmt: skip
    by = {mm: sum(v.get("method") == mm and v["verdict"] != "unknown" for v in queried) for mm in DECIDERS}
    out += ["## Summary", "",
            f"- MNIST target (zero timeouts at 60 s per query for ε ≤ 4): "
            f"{'**met**' if queried and n_to == 0 else '**not met**'} on the {len(queried)} queries run "
            f"({n_to} timeouts). Decided by the interval/linear pass: {by['interval']}, the attack: "
            f"{by['attack']}, branch and bound on backward bounds: {by['bab']}, CP-SAT on the classes branch "
            f"and bound left open: {by['cpsat']}, the SMT solver: {by['smt']} ({solver_decided} with solver "
            f"calls). A timeout is a query where a class stayed open through its share of the exact stage "
            f"({BAB_SHARE:.0%} of what the interval pass and the attack leave; branch and bound first, each "
            f"class for its part of {1 - EXACT_SHARE:.0%} of it, then CP-SAT on the classes left open, all at "
            f"once) and the SMT solver did not finish the rest in "
            f"the other {1 - BAB_SHARE:.0%}." + _workers_line(m, w, workers),
            *_ibp_summary(ibp),
            *_ways_summary(q, runs),
            "- Optimized vs naive: two tables below. *The whole verifier vs the naive encoding* is the "
            "issue's target (≥ 100× faster median on the MNIST queries): the default stages against the "
            "encoding with every optimisation off. *Optimized vs naive encoding* isolates the SMT encoding "
            "(bounds, attack and branch and bound off on both sides). z3 vs bitwuzla: the faster at the "
            "median is the `faster` column; `solver=\"auto\"` follows it by the query's size (bitwuzla "
            f"up to {AUTO_LARGE_INPUTS} free inputs, z3 above).",
            "- Agreement of the two solvers and of the two encodings: the `disagree` and `verdicts agree` "
            "columns below. Every vulnerable verdict was replayed on the reference and in onnxruntime.",
            ""]  # fmt: skip
    out += ["## MNIST subset, MLP 784-64-32-10 (8-bit inputs, 6-bit weights and activations)", "",
            "The published benchmark's setting (AAAI'21 tool: 5/20, 13/20, 9/10 and 10/10 timeouts at "
            "ε = 1, 2, 3, 4 on this subset with a 60 s limit). The first 100 test images with the classes "
            "interleaved (ten of each class; the subset is stored class by class, and before 2026-11-23 this "
            "suite ran its first 100 rows, all zeros: those results are in git history); a misclassified "
            "image is counted and not queried. Every *vulnerable* verdict's counterexample was replayed on the numpy "
            "reference and in onnxruntime; *robust* verdicts come from the interval/linear pass, from branch "
            "and bound (sound backward bounds, float sums widened before rounding) or from the solver "
            "(cross-checked against the second solver in the solver table below).", "",
            *_eps_table(m)]  # fmt: skip
    # the AAAI'21 tool's own numbers are on the first 20 images (ε 1, 2) and the first 10 (ε 3, 4)
    same = []
    for eps, n in ((1, 20), (2, 20), (3, 10), (4, 10)):
        rs = [v for k, v in m.items() if int(k.split("/")[1]) == eps and int(k.split("/")[0]) < n]
        if len(rs) == n:
            same.append(f"{sum(r['verdict'] == 'unknown' for r in rs)}/{n} at ε = {eps}")
    if same:
        out += ["", "On the images the AAAI'21 tool's numbers cover, timeouts here: " + ", ".join(same) + "."]

    if w:
        out += ["", "### The timeouts again, one query at a time on several cores", "",
                f"Each query the table above left open, run again alone with `workers={workers}`: branch and "
                f"bound's open branches dealt to {workers} forked processes and CP-SAT on {workers} threads "
                f"(`verify_robustness(..., "
                f"workers={workers})`), the same 60 s of wall clock. The table above ran two queries at once, "
                "one per core.", "",
                "| ε | timeouts above | robust | vulnerable | still timeout | median s |", "|---|---|---|---|---|---|"]  # fmt: skip
        for eps in sorted({int(k.split("/")[1]) for k in w}):
            rs = [v for k, v in w.items() if int(k.split("/")[1]) == eps]
            c = {v: sum(r["verdict"] == v for r in rs) for v in ("robust", "vulnerable", "unknown")}
            out.append(f"| {eps} | {len(rs)} | {c['robust']} | {c['vulnerable']} | {c['unknown']} "
                       f"| {_med([r['time_s'] for r in rs])} |")  # fmt: skip

    out += ["", "## The same MLP trained for verification (interval bound propagation)", "",
            f"`models.py`'s `mnist-ibp`: the architecture, bits, data and queries above, trained by interval "
            f"bound propagation (Gowal et al., 2018) at ε = {IBP_EPS} of the [0, 1] pixel range "
            f"({IBP_EPS * 255:.2f} input codes). A different network, so it does not count toward the target: "
            f"it shows how much of the verifier's work is the network's training. Integer test accuracy: "
            f"{_accuracy('mnist-ibp')} (the plainly trained `mnist` above: {_accuracy('mnist')}).", "",
            *_eps_table(ibp)]  # fmt: skip

    # encodings
    e = _rows(q, "encodings/")
    out += ["", "## Optimized vs naive encoding (same queries, same run, SMT stage only)", "",
            "Interval proof, attack and splitting off: the solver gets the whole query (both encodings use "
            "the interval pass's widths and fixed phases; the naive one writes every op literally). The "
            "naive encoding runs under a shorter cap; a naive timeout counts as the cap, so the ratio of "
            "medians is a **lower bound** on the speed-up wherever the naive side timed out. Only queries "
        "that reached the solver stage count (a goal left after the bounds); times are whole queries "
        "(bounds, encoding, solver), a timeout counting as its cap.",
        "",
        "| model | queries | optimized decided | naive decided | optimized median s | naive median s "
            "| naive / optimized (median) | verdicts agree |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    any_pairs = False
    for mod in sorted({k.split("/")[1] for k in e}):
        pairs = []
        for k, v in e.items():
            if k.startswith(f"optimized/{mod}/") and "naive/" + k[len("optimized/") :] in e:
                n = e["naive/" + k[len("optimized/") :]]
                if v.get("goals") or n.get("goals"):
                    pairs.append((v, n))
        if not pairs:
            continue
        any_pairs = True
        to = [p[0]["time_s"] for p in pairs]
        tn = [p[1]["time_s"] for p in pairs]
        dec_o = sum(p[0]["verdict"] != "unknown" for p in pairs)
        dec_n = sum(p[1]["verdict"] != "unknown" for p in pairs)
        agree = all(p[0]["verdict"] == p[1]["verdict"] for p in pairs
                    if "unknown" not in (p[0]["verdict"], p[1]["verdict"]))  # fmt: skip
        ratio = statistics.median(tn) / max(statistics.median(to), 1e-3)
        bound = "≥ " if dec_n < len(pairs) else ""
        out.append(f"| {mod} | {len(pairs)} | {dec_o} | {dec_n} | {_med(to)} | {_med(tn)} | {bound}{ratio:.1f}× "
                   f"| {'yes' if agree else 'NO'} |")  # fmt: skip
    if not any_pairs:
        out.append("| – | not run | | | | | | |")

    # the whole verifier against the naive encoding with every optimisation off
    full = _rows(q, "mnist/mnist/")
    pairs = [(full[k[len("naive/mnist/"):]], v) for k, v in e.items() if k.startswith("naive/mnist/")
             and k[len("naive/mnist/"):] in full]  # fmt: skip
    out += ["", "## The whole verifier vs the naive encoding (MNIST queries, every optimisation off)", "",
            "The issue's comparison read as the published tool's: its encoding with every optimisation off "
            "(no interval pass, no attack, no branch and bound, every op written literally) against the "
            "default verifier (interval/linear pass, branch and bound, attack, optimized encoding) on the same "
            "MNIST queries. A naive timeout counts as its cap, so the ratio is a **lower bound** where the "
            "naive side timed out.", "",
            "| queries | verifier decided | naive decided | verifier median s | naive median s "
            "| naive / verifier (median) | verdicts agree |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    if pairs:
        tf = [a["time_s"] for a, _ in pairs]
        tn = [b["time_s"] for _, b in pairs]
        dec_f = sum(a["verdict"] != "unknown" for a, _ in pairs)
        dec_n = sum(b["verdict"] != "unknown" for _, b in pairs)
        agree = all(
            a["verdict"] == b["verdict"] for a, b in pairs if "unknown" not in (a["verdict"], b["verdict"])
        )
        ratio = statistics.median(tn) / max(statistics.median(tf), 1e-3)
        bound = "≥ " if dec_n < len(pairs) else ""
        out.append(f"| {len(pairs)} | {dec_f} | {dec_n} | {_med(tf)} | {_med(tn)} | {bound}{ratio:.0f}× "
                   f"| {'yes' if agree else 'NO'} |")  # fmt: skip
    else:
        out.append("| not run | | | | | | |")

    # solvers
    s = _rows(q, "solvers/")
    names = ("z3", "bitwuzla", "cpsat")
    out += ["", "## z3 vs bitwuzla vs CP-SAT (exact stage only)", "",
            "z3 and bitwuzla read one formula: bitwuzla parses z3's SMT-LIB2 export of the encoder's terms. "
            "CP-SAT gets the whole graph as one integer model (`solver=\"cpsat\"`: each element an integer "
            "variable with the interval pass's bounds, products, divisions and tables as CP-SAT constraints). "
            "Only queries that reached the solver stage count (the encoding's bounds decide the rest before any "
            "solver runs); times are whole queries, a timeout counting as its cap. `disagree` counts queries one "
            "solver called robust and another vulnerable. *elements*: the SMT formula's symbolic elements "
            "(median); *round trip*: z3 writing the formula as SMT-LIB2 and bitwuzla reading it (largest), which "
            "no deadline stops; a formula of more than "
            f"{SOLVERS_BAND:,} elements was read in a child process that is killed at the deadline, so only the "
            "writing counts there (rows run since 2026-11-24 12:31; the threshold is 5,000 now, "
            "`ISOLATE_ELEMENTS`). Recurrent rows (`family-uUNITS-TSTEPS`): "
            "random integer cells, ε = 1 around random sequences, 2 features, 4-bit activations. "
            "The rows' dates are in the run log below: bitwuzla and CP-SAT ran side by side (one core each) "
            "on 2026-11-24 (recurrent rows 20 s per query, the others 30 s); z3's rows are older. Where "
            "CP-SAT ran on only some of a model's queries, the row counts those alone.", "",
            "| model | queries | elements | z3 decided | bitwuzla decided | CP-SAT decided | z3 median s "
            "| bitwuzla median s | CP-SAT median s | fastest (median) | round trip s | disagree |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    models = sorted({k.split("/")[1] for k in s if k.split("/")[0] in names},
                    key=lambda m: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", m)])  # fmt: skip
    bands: dict[bool, list[tuple[dict | None, ...]]] = {False: [], True: []}  # recurrent rows by size
    for mod in models:
        keys = sorted({"/".join(k.split("/")[2:]) for k in s if k.split("/")[1] == mod})
        rows = [tuple(s.get(f"{n}/{mod}/{k}") for n in names) for k in keys]
        # only queries the solver itself had to decide (the encoding's bounds leave an SMT goal)
        rows = [r for r in rows if r[1] and r[1]["verdict"] != "misclassified"
                and ((r[0] or {}).get("goals") or r[1].get("goals"))]  # fmt: skip
        if any(r[2] for r in rows):  # CP-SAT ran on some of them: compare on those alone
            rows = [r for r in rows if r[2]]
        if not rows:
            continue
        ran = [[r[k] for r in rows if r[k]] for k in range(len(names))]
        decided = [sum(v["verdict"] != "unknown" for v in side) for side in ran]
        meds = [statistics.median(v["time_s"] for v in side) if side else None for side in ran]
        dis = sum(len({v["verdict"] for v in r if v} & {"robust", "vulnerable"}) == 2 for r in rows)
        fast = min((m, n) for m, n in zip(meds, names) if m is not None)[1]
        if "-T" in mod:
            for r in rows:
                bands[(r[1].get("elements") or 0) > SOLVERS_BAND].append(r)
        els = [r[1]["elements"] for r in rows if r[1].get("elements")]
        trips = [r[1]["translate_s"] for r in rows if r[1].get("translate_s") is not None]
        cells = [("–" if not side else f"{d}" if len(side) == len(rows) else f"{d} of {len(side)}")
                 for d, side in zip(decided, ran)]  # fmt: skip
        cells += [_med([v["time_s"] for v in side]) if side else "–" for side in ran]
        out.append(f"| {mod} | {len(rows)} | {f'{statistics.median(els):,.0f}' if els else '–'} | "
                   + " | ".join(cells) + f" | {fast} | {f'{max(trips):.2f}' if trips else '–'} | {dis} |")  # fmt: skip
    if not models:
        out.append("| – | not run | | | | | | | | | | |")
    for large, rows in bands.items():
        if rows:
            decided = [f"{n} {sum(r[k]['verdict'] != 'unknown' for r in rows if r[k])} of "
                       f"{sum(1 for r in rows if r[k])}" for k, n in enumerate(names)]  # fmt: skip
            over = max(v["time_s"] for r in rows for v in r if v)
            out += ["", f"Recurrent queries {'over' if large else 'up to'} {SOLVERS_BAND:,} elements: decided by "
                    + ", ".join(decided) + f"; the slowest query took {over:.1f} s."]  # fmt: skip

    out += _isolation_table(_rows(q, "isolation/"))
    out += _relational_tables(q)

    # digits
    d = _rows(q, "digits/")
    out += ["", "## Digits MLP 64-32-10 at 8, 6 and 4 bits (full pipeline)", "",
            "| bits | ε | queries | robust | vulnerable | timeout | share decided | median s | max s |",
            "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for bits in (8, 6, 4):
        for eps in sorted({int(k.split("/")[2]) for k in d if k.startswith(f"digits-{bits}/")}):
            rs = [v for k, v in d.items() if k.startswith(f"digits-{bits}/") and int(k.split("/")[2]) == eps]
            c = {v: sum(r["verdict"] == v for r in rs) for v in ("robust", "vulnerable", "unknown")}
            ts = [r["time_s"] for r in rs]
            out.append(
                f"| {bits} | {eps} | {len(rs)} | {c['robust']} | {c['vulnerable']} | {c['unknown']} "
                f"| {(len(rs) - c['unknown']) / max(len(rs), 1):.0%} | {_med(ts)} | {max(ts):.2f} |"
            )
    if not d:
        out.append("| – | – | not run | | | | | | |")
    out += [
        "",
        "## Runs",
        "",
        "Load average and CPU count when each run started: with the load far above the CPU count, a query "
        "gets a small share of a core and its wall-clock limit is a few seconds of CPU.",
        "",
        "| suite | eps | samples | timeout s | solver | date | load / CPUs | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        note = r.get("note", "")
        if "workers" in r and "workers=" not in note:  # older records wrote it into the note
            note = f"workers={r['workers']}, {note}"
        if "solvers" in r:
            note = f"{' and '.join(r['solvers'])}{', ' + note if note else ''}"
        out.append(
            f"| {r['suite']} | {r['eps']} | {r['samples']} | {r['timeout']} | {r['solver']} | {r['date']} "
            f"| {r.get('load', '?')} / {r.get('cpus', '?')} | {note} |"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--suite", choices=["mnist", "mnist-workers", "mnist-ibp", "encodings", "solvers", "isolation", "digits",
                                       "targeted", "argmax", "all"],
                   default=None, help="mnist-workers: the mnist suite's timeouts again with --workers")  # fmt: skip
    p.add_argument("--workers", type=int, default=2, help="mnist-workers: processes per query (default 2)")
    p.add_argument("--eps", type=int, nargs="*", default=[1, 2, 3, 4])
    p.add_argument("--samples", type=int, default=100,
                   help="test images up to the N-th (default 100; 0: no MNIST, digits or random MLP queries)")  # fmt: skip
    p.add_argument("--first", type=int, default=0,
                   help="MNIST: start at this test image (split a long run over processes, then --merge)")  # fmt: skip
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per query (default 60)")
    p.add_argument("--naive-timeout", type=float, default=20.0, help="cap of the naive encoding (default 20)")
    p.add_argument("--solver", default="auto", choices=["auto", "z3", "bitwuzla", "cpsat"])
    p.add_argument("--solvers", nargs="+", default=["z3", "bitwuzla", "cpsat"], choices=["z3", "bitwuzla", "cpsat"],
                   help="solvers suite: the exact solvers compared")  # fmt: skip
    p.add_argument("--random-eps", type=int, nargs="*", default=[3],
                   help="ε of the random 16-12-10 MLP queries of the solvers/encodings suites (none: skip)")  # fmt: skip
    p.add_argument("--digits-eps", type=int, nargs="*", default=[8, 16, 32],
                   help="ε of the digits-8 queries of the solvers suite (default 8 16 32: wide enough "
                        "that the solver, not the bounds, decides)")  # fmt: skip
    p.add_argument("--recurrent-units", type=int, nargs="*", default=[4, 8, 16],
                   help="solvers suite: units of the random recurrent cells (none: skip them)")  # fmt: skip
    p.add_argument("--recurrent-lengths", type=int, nargs="+", default=[8, 16, 24],
                   help="solvers suite: sequence lengths of the recurrent cells")  # fmt: skip
    p.add_argument("--recurrent-samples", type=int, default=2, help="solvers suite: sequences per cell")
    p.add_argument("--naive-only", action="store_true",
                   help="encodings suite: only the naive side on MNIST (for the whole-verifier comparison)")  # fmt: skip
    p.add_argument("--cpu", type=int, default=None,
                   help="run on this core alone, every thread of it (two runs at once: --cpu 0, --cpu 1)")  # fmt: skip
    p.add_argument("--out", type=Path, default=RESULTS, help="results JSON (resumed if present)")
    p.add_argument("--redo", action="store_true", help="rerun queries already in the JSON")
    p.add_argument("--render", action="store_true", help="write docs/results/verify.md from the JSON")
    p.add_argument("--merge", type=Path, nargs="*", default=[],
                   help="result JSONs of parallel runs to fold into --out first")  # fmt: skip
    args = p.parse_args(argv)
    if args.cpu is not None:  # CP-SAT searches several classes on threads: they share this core
        os.sched_setaffinity(0, {args.cpu})
    data = _load(args.out)
    for m in args.merge:  # parallel runs write separate files; fold them in
        other = _load(m)
        data["queries"].update(other["queries"])
        data["runs"] += [r for r in other["runs"] if r not in data["runs"]]
    if args.merge:
        _save(args.out, data)
    if args.suite:
        suites = (
            ["mnist", "mnist-ibp", "encodings", "solvers", "digits", "targeted", "argmax"]
            if args.suite == "all"
            else [args.suite]
        )
        for s in suites:
            data["runs"].append({"suite": s, "eps": args.eps, "samples": args.samples, "timeout": args.timeout,
                                 "solver": args.solver, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                 "machine": f"{platform.machine()}, {platform.python_version()}", "load": round(os.getloadavg()[0], 1), "cpus": os.cpu_count(),
                                 "note": "one query at a time" if s == "mnist-workers" else (
                                     f"pinned to core {args.cpu}" if args.cpu is not None else ""),
                                 **({"workers": args.workers} if s == "mnist-workers" else {}),
                                 **({"solvers": args.solvers} if s == "solvers" else {})})  # fmt: skip
            run_suite(s, args, data)
            _save(args.out, data)
    if args.render:
        PAGE.parent.mkdir(parents=True, exist_ok=True)
        PAGE.write_text(render(data))
        print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
