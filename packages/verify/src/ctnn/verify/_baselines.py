"""Real-number baselines, judged against the integer network's exact verdicts.

Two analyses a float-only tool would run on the *float* model, asked about the same
samples and boxes as the integer verification:

* interval bound propagation (``ibp_robust``): "robust" when the label's lower bound beats
  every other class's upper bound on the float model. Wrong about the integer network when
  it says robust and the integer network is vulnerable.
* a PGD attack (``pgd_attack``): sign-gradient ascent on the largest other-class margin, with
  random restarts, projected onto the box. Wrong about the integer network when it finds
  nothing although an integer counterexample exists (a *miss*), or when it reports an attack
  on a box where the integer network is robust (a *false alarm*).

:func:`float_baselines` runs both and :func:`~ctnn.verify.verify_robustness` on each query and
tabulates where each baseline's conclusion about the integer network is false.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ._float import FloatMLP, as_float_mlp
from ._network import ModelLike, as_network
from ._verify import check_eps, check_sample, verify_robustness


def ibp_robust(float_model: Any, lo: np.ndarray, hi: np.ndarray, label: int) -> bool:
    """Interval bound propagation on the float model: is ``label`` the argmax everywhere in ``[lo, hi]``?"""
    fm = as_float_mlp(float_model)
    ylo, yhi = fm.bounds(np.asarray(lo, np.float64), np.asarray(hi, np.float64))
    others = np.delete(yhi, label)
    return bool(ylo[label] > others.max()) if len(others) else True


def pgd_attack(
    float_model: Any,
    x0: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    label: int,
    steps: int = 50,
    restarts: int = 4,
    seed: int = 0,
) -> np.ndarray | None:
    """A real input in ``[lo, hi]`` that the float model does not classify as ``label``, or None.

    Projected sign-gradient ascent on ``max_{j != label} y_j - y_label`` with step ``(hi - lo) / 8``
    halving over the run, from ``x0`` and then from random points of the box.
    """
    fm: FloatMLP = as_float_mlp(float_model)
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    rng = np.random.default_rng(seed)
    starts = [np.clip(np.asarray(x0, np.float64), lo, hi)] + [rng.uniform(lo, hi) for _ in range(restarts)]
    for x in starts:
        x = x.copy()
        step = (hi - lo) / 8
        for k in range(steps + 1):
            y = fm.forward(x[None])[0]
            other = np.delete(np.arange(len(y)), label)
            j = int(other[np.argmax(y[other])])
            if np.argmax(y) != label:
                return x
            if k == steps:
                break
            c = np.zeros(len(y))
            c[j], c[label] = 1.0, -1.0
            g = fm.gradient(x[None], c[None])[0]
            x = np.clip(x + step * np.sign(g), lo, hi)
            if k % 10 == 9:
                step = step / 2
    return None


def float_baselines(
    float_model: Any,
    model: ModelLike,
    samples: Any,
    eps: int | list[int],
    *,
    input_quant: tuple[float, int],
    input_range: tuple[int, int] | None = None,
    timeout_s: float = 60.0,
    pgd_steps: int = 50,
    pgd_restarts: int = 4,
    seed: int = 0,
) -> dict[str, Any]:
    """IBP and PGD on the float model vs the integer verdict, per sample (rows of ``samples``, input codes).

    The float box of a query is the dequantized code box, ``s_in·([lo, hi] - z_in)``. The label is the
    integer network's prediction on the sample (the question is about the integer network). Returns
    ``{"rows": [...], "summary": {...}}``; each row holds the three conclusions and the error flags
    ``ibp_false_robust``, ``pgd_missed`` and ``pgd_false_alarm``.
    """
    fm = as_float_mlp(float_model)
    net = as_network(model, input_range)
    s_in, z_in = float(input_quant[0]), int(input_quant[1])
    xs = np.atleast_2d(np.asarray(samples))
    eps_list = [eps] if np.ndim(eps) == 0 else list(eps)
    rows = []
    for e in eps_list:
        for i, x in enumerate(xs):
            x0 = check_sample(net, x)
            ev = check_eps(e, net.n_features)
            rlo, rhi = net.input_range
            lo, hi = np.maximum(x0 - ev, rlo), np.minimum(x0 + ev, rhi)
            t = time.perf_counter()
            r = verify_robustness(net, x0, e, timeout_s=timeout_s, seed=seed)
            int_s = time.perf_counter() - t
            flo, fhi = s_in * (lo - z_in), s_in * (hi - z_in)
            t = time.perf_counter()
            ibp = ibp_robust(fm, flo, fhi, r.label)
            ibp_s = time.perf_counter() - t
            t = time.perf_counter()
            adv = pgd_attack(fm, s_in * (x0 - z_in), flo, fhi, r.label, pgd_steps, pgd_restarts, seed)
            pgd_s = time.perf_counter() - t
            float_label = int(np.argmax(fm.forward(s_in * (x0[None] - z_in))[0]))
            rows.append(
                {
                    "sample": i,
                    "eps": int(e),
                    "label": r.label,
                    "float_label": float_label,
                    "int_verdict": r.verdict,
                    "int_method": r.method,
                    "int_s": int_s,
                    "ibp_robust": ibp,
                    "ibp_s": ibp_s,
                    "pgd_found": adv is not None,
                    "pgd_s": pgd_s,
                    "ibp_false_robust": ibp and r.verdict == "vulnerable",
                    "pgd_missed": adv is None and r.verdict == "vulnerable",
                    "pgd_false_alarm": adv is not None and r.verdict == "robust",
                }
            )
    return {"rows": rows, "summary": summarize_baselines(rows)}


def summarize_baselines(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per ε: queries, integer verdicts, and how often each baseline's conclusion is false."""
    out: dict[str, Any] = {}
    for e in sorted({r["eps"] for r in rows}):
        rs = [r for r in rows if r["eps"] == e]
        out[str(e)] = {
            "queries": len(rs),
            "int_robust": sum(r["int_verdict"] == "robust" for r in rs),
            "int_vulnerable": sum(r["int_verdict"] == "vulnerable" for r in rs),
            "int_unknown": sum(r["int_verdict"] == "unknown" for r in rs),
            "ibp_robust": sum(r["ibp_robust"] for r in rs),
            "ibp_false_robust": sum(r["ibp_false_robust"] for r in rs),
            "pgd_found": sum(r["pgd_found"] for r in rs),
            "pgd_missed": sum(r["pgd_missed"] for r in rs),
            "pgd_false_alarm": sum(r["pgd_false_alarm"] for r in rs),
        }
    return out
