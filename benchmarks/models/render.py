"""Write docs/results/models.md from the JSON results in benchmarks/models/results/ (never typed by hand)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PAGE = HERE.parent.parent / "docs" / "results" / "models.md"

NAMES = {
    "ltc": "LTC", "lipschitz_rnn": "Lipschitz RNN", "lem": "LEM", "ctrnn": "CT-RNN", "lstm": "LSTM",
    "gru": "GRU", "mlp": "MLP", "continuous_net": "ContinuousNet",
}  # fmt: skip
SETS = ["italy_power_demand", "gunpoint", "basic_motions", "japanese_vowels", "digits"]


def _json(name: str):
    p = RESULTS / name
    return json.loads(p.read_text()) if p.is_file() else None


def _runs() -> list[dict]:
    p = RESULTS / "accuracy_runs.jsonl"
    if not p.is_file():
        return []
    from accuracy_table import run_settings  # only runs made with the current settings count

    runs = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    return [r for r in runs if r["settings"] == run_settings(r["model"], r["dataset"])]


def _accuracy_section(runs: list[dict]) -> list[str]:
    out = ["## Accuracy", ""]
    if not runs:
        return out + ["No runs yet: `python benchmarks/models/accuracy_table.py`.", ""]
    cells: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    for r in runs:
        cells.setdefault((r["model"], r["dataset"]), []).append(r["test_accuracy"])
        cpu.setdefault((r["model"], r["dataset"]), []).append(r["cpu_seconds"])
    models = [m for m in NAMES if any(k[0] == m for k in cells)]
    out += [
        "Test accuracy (%), mean ± std over seeds (n = seeds finished). Test splits: the official "
        "UCR/UEA test sets; digits: a stratified 20% split. 32 units (ContinuousNet: width 32, 4 basis "
        "functions, 4 Euler steps), Adam, early stopping on a validation split carved from the training "
        "set, **short budgets** (at most 150 epochs with patience 30 on ItalyPowerDemand; all 150 epochs on "
        "GunPoint and BasicMotions, whose 10- and 8-sample validation splits stopped runs on an early "
        "plateau, keeping the weights of the best validation loss; 100/20 on JapaneseVowels, 40/10 on "
        "digits; learning rates 2e-2 LTC, 5e-3 other "
        "RNNs with gradient-norm clipping at 1, 3e-3 MLP and ContinuousNet; no tuning per data set): "
        "these compare the families under one small CPU budget; they are not the papers' tuned results. "
        "`—`: not run (flat models do not read sequences). LEM's runs on ItalyPowerDemand, JapaneseVowels "
        "and digits were made with ctnn-models 0.2.0's per-step LEM loop, the others with 0.3.0's fused "
        "sequence: the same function, only float rounding differs.",
        "",
        "| model | " + " | ".join(SETS) + " |",
        "|---|" + "---|" * len(SETS),
    ]
    for m in models:
        row = [NAMES[m]]
        for s in SETS:
            v = cells.get((m, s))
            if not v:
                row.append("—")
            elif len(v) == 1:
                row.append(f"{100 * v[0]:.1f} (n=1)")
            else:
                row.append(f"{100 * statistics.mean(v):.1f} ± {100 * statistics.stdev(v):.1f} (n={len(v)})")
        out.append("| " + " | ".join(row) + " |")
    total = sum(sum(v) for v in cpu.values())
    out += ["", f"{len(runs)} runs, {total / 60:.1f} CPU minutes in all (one thread).", ""]
    out += [
        "CPU seconds per run (mean):",
        "",
        "| model | " + " | ".join(SETS) + " |",
        "|---|" + "---|" * len(SETS),
    ]
    for m in models:
        row = [NAMES[m]] + [f"{statistics.mean(cpu[(m, s)]):.0f}" if (m, s) in cpu else "—" for s in SETS]
        out.append("| " + " | ".join(row) + " |")
    out.append("")
    studies = [r for r in runs if r.get("discretisations")]
    if studies:
        out += [
            "## ContinuousNet on digits: other discretisations, refinement, compression",
            "",
            "The trained network (Euler, 4 steps, 4 piecewise-constant basis functions per stage) "
            "evaluated unchanged under other schemes and step counts, refined (`refine()`: 8 nodes, "
            "8 steps, the same θ(t)), and compressed by L2 projection of θ(t) onto smaller bases. "
            "Test accuracy (%), mean over seeds.",
            "",
            "| evaluation | accuracy | change |",
            "|---|---|---|",
        ]
        base = statistics.mean(r["discretisations"]["base"] for r in studies)
        out.append(f"| as trained (euler, 4 steps) | {100 * base:.1f} | |")
        for i, ev in enumerate(studies[0]["discretisations"]["evaluations"]):
            a = statistics.mean(r["discretisations"]["evaluations"][i]["test_accuracy"] for r in studies)
            out.append(f"| {ev['scheme']}, {ev['n_steps']} steps | {100 * a:.1f} | {100 * (a - base):+.1f} |")
        a = statistics.mean(r["discretisations"]["refined"]["test_accuracy"] for r in studies)
        out.append(f"| refine() → 8 nodes, 8 steps | {100 * a:.1f} | {100 * (a - base):+.1f} |")
        params = studies[0]["discretisations"]["params"]
        for i, c in enumerate(studies[0]["discretisations"]["compressed"]):
            a = statistics.mean(r["discretisations"]["compressed"][i]["test_accuracy"] for r in studies)
            out.append(
                f"| compress → {c['basis']} × {c['n_basis']} ({c['params']} of {params} parameters) "
                f"| {100 * a:.1f} | {100 * (a - base):+.1f} |"
            )
        out.append("")
    return out


def _speed_section() -> list[str]:
    out = ["## Speed: one training step", ""]
    ltc = _json("ltc_speed.json")
    if ltc:
        c = ltc["config"]
        out += [
            f"LTC, {c['units']} units, batch {c['batch']}, T={c['seq_len']}, {c['in_features']} inputs, "
            f"ode_unfolds {c['ode_unfolds']}, `torch.set_num_threads(1)`, forward + backward + Adam step, "
            f"median of {c['repeats']} after {c['warmup']} warm-up steps, all in one process "
            f"(`{ltc['command']}`). {ltc.get('machine', '')}",
            "",
            "| implementation | s / step | speed-up vs ncps | max abs output diff vs ncps | max abs grad diff |",
            "|---|---|---|---|---|",
        ]
        for name, r in ltc["results"].items():
            out.append(
                f"| {name} | {r['seconds']:.4f} | {r.get('speedup_vs_ncps', float('nan')):.2f}× "
                f"| {r.get('max_abs_output_diff', 0):.2e} | {r.get('max_abs_grad_diff', 0):.2e} |"
            )
        out.append("")
    rnn = _json("rnn_speed.json")
    if rnn:
        c = rnn["config"]
        out += [
            f"LEM and Lipschitz RNN ({c['units']} units, batch {c['batch']}, T={c['seq_len']}, "
            f"{c['in_features']} inputs, one thread) against a straightforward per-step PyTorch loop "
            f"written from the papers' public code (`{rnn['command']}`). The two sides are timed in "
            "interleaved rounds in one process; on this shared machine absolute times move with its load, "
            "so compare within a row.",
            "",
            "| model | straightforward loop s / step | ctnn s / step | speed-up | max abs output diff |",
            "|---|---|---|---|---|",
        ]
        for name, r in rnn["results"].items():
            out.append(
                f"| {name} | {r['reference_seconds']:.4f} | {r['ctnn_seconds']:.4f} | {r['speedup']:.2f}× "
                f"| {r['max_abs_output_diff']:.2e} |"
            )
        out.append("")
    if not ltc and not rnn:
        out += ["Not measured yet: `python benchmarks/models/speed.py` (needs ncps).", ""]
    return out


def _agreement_section() -> list[str]:
    out = ["## Agreement with ncps", ""]
    agr = _json("ncps_agreement.json")
    if not agr:
        return out + ["Not measured yet: `python benchmarks/models/ncps_agreement.py` (needs ncps).", ""]
    out += [
        f"ncps {agr['ncps_version']}, torch {agr['torch_version']}; parameters copied from the ncps "
        f"model into ctnn's (`{agr['command']}`). Tolerance {agr['tolerance']:g}.",
        "",
        "| case | max abs diff | within tolerance |",
        "|---|---|---|",
    ]
    for case in agr["cases"]:
        out.append(f"| {case['name']} | {case['max_abs_diff']:.2e} | {'yes' if case['ok'] else 'NO'} |")
    out.append("")
    return out


def render() -> Path:
    lines = [
        "# ctnn-models: measured results",
        "",
        "Generated by `benchmarks/models/*.py` from `benchmarks/models/results/`; do not edit by hand "
        "(`python benchmarks/models/render.py` rewrites it).",
        "",
    ]
    lines += _agreement_section() + _speed_section() + _accuracy_section(_runs())
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return PAGE


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(HERE))
    print(render())
