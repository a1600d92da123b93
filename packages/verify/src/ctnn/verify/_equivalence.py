"""Differential equivalence of two integer graphs on one input box.

Both graphs run on the same input inside one product graph (:mod:`._product`). Two notions:

``verify_equivalence`` (and ``max_difference``)
    ``|A_j(x) - B_j(x)| <= delta`` for every output ``j`` and every ``x`` in the box. With
    ``units="codes"`` the outputs are compared as codes; with ``units="real"`` as dequantized
    values ``scale·(q - zero_point)`` (scales and zero points from the sidecars, or given).
    The real-unit comparison is exact: each scale (a binary float) is a fraction with a
    power-of-two denominator, so with ``D`` their common denominator the query compares the
    integers ``D·s_A·(q_A - z_A)`` and ``D·s_B·(q_B - z_B)`` against ``floor(D·delta)``. The
    factors ``D·s`` weigh the product graph's outputs in the property (:class:`OutputGap`), not in
    the graph, so the solvers see codes and small constants.
``verify_argmax_equivalence``
    ``argmax A(x) == argmax B(x)`` everywhere (numpy argmax, ties to the lowest index).
"""

from __future__ import annotations

from fractions import Fraction
from math import lcm
from typing import Any

import numpy as np

from ._errors import BoxError, UnsupportedError, check_timeout
from ._inputs import JointCodes, input_quant, joint_codes, same_codes, sidecar_of
from ._layered import layers_of
from ._network import ModelLike, Network, as_network
from ._product import n_outputs
from ._properties import ArgmaxAgreement, LocalRobustness
from ._relational import Pairing, ascent_witness, check_output, decide_boxes, enumerated, input_box, max_gap
from ._result import EquivalenceResult, GapResult, VerificationResult
from ._stages import Deadline, Stages
from ._verify import _Query

UNITS = ("codes", "real")
#: argmax equivalence of two MLPs: the share of the time for proving that each keeps one class
#: over the whole box (then they agree everywhere), before the product graph gets what is left
KEEP_CLASS_SHARE = 0.5


def _networks(
    model_a: ModelLike, model_b: ModelLike, input_range: tuple[int, int] | None, input_quants: Any = None
) -> tuple[Network, Network, JointCodes | None]:
    """Both graphs, and their joint cells where they quantize one real input differently.

    Where both input quantizers are known (sidecars, or ``input_quants``) and differ, ``b`` keeps
    its own code range and the two are compared over every real input (:mod:`._inputs`);
    otherwise ``b`` reads ``a``'s codes, on ``a``'s code range."""
    a = as_network(model_a, input_range)
    given = (None, None) if input_quants is None else tuple(input_quants)
    if len(given) != 2:
        raise BoxError(f"input_quants must be a pair (one per graph), got {input_quants!r}")
    b = as_network(model_b)
    qa, qb = input_quant(a, given[0]), input_quant(b, given[1])
    joint = None
    # (re-ranging a Network copies it: the graph is not loaded and checked again)
    if same_codes(qa, qb):
        b = as_network(b, a.input_range)
    else:
        assert qa is not None and qb is not None
        joint = joint_codes(qa, qb)
        b = as_network(b, (qb.lo, qb.hi))
        if input_range is None:  # the codes real inputs quantize to
            a = as_network(a, (qa.lo, qa.hi))
        rlo, rhi = a.input_range
        if rlo < qa.lo or rhi > qa.hi:
            raise BoxError(
                f"the input code range [{rlo}, {rhi}] of {a.source} is wider than its input quantizer's "
                f"[{qa.lo}, {qa.hi}]: codes outside it come from no real input"
            )
    if a.n_features != b.n_features:
        raise BoxError(
            f"the graphs take different inputs: {a.n_features} values per sample ({a.source}) and "
            f"{b.n_features} ({b.source})"
        )
    ma, mb = n_outputs(a), n_outputs(b)
    if ma != mb:
        raise UnsupportedError(
            f"the graphs have different output sizes: {ma} ({a.source}) and {mb} ({b.source})"
        )
    return a, b, joint


def _product(
    model_a: ModelLike,
    model_b: ModelLike,
    input_range: tuple[int, int] | None,
    x_codes: Any,
    eps: Any,
    box: Any,
    units: str = "codes",
    scales: Any = None,
    delta: Any = 0,
    input_quants: Any = None,
) -> tuple[Pairing, list[tuple[np.ndarray, np.ndarray, None]], int, int]:
    """Both graphs on one input (the product reads every input column once, for both), the box, and
    ``delta`` as an integer threshold over the denominator ``D`` (see :func:`_scaling`).

    The box is in ``model_a``'s input codes. Where the graphs quantize inputs differently, the
    product's columns are joint cells, and the box holds every cell whose ``a`` code is in it."""
    a, b, joint = _networks(model_a, model_b, input_range, input_quants)
    factors, zps, t, d = _scaling(a, b, units, scales, delta)
    lo, hi = input_box(a, x_codes, eps, box)
    n = a.n_features
    cols = a.input_range
    if joint is not None:
        lo, hi = joint.cells(lo, hi)
        cols = (0, len(joint) - 1)
    pairing = Pairing(a, b, n, np.arange(n), np.arange(n), cols, factors, zps, joint)
    return pairing, [(lo, hi, None)], t, d


def _output_quant(net: Network, given: Any) -> tuple[float, int]:
    if given is not None:
        s, z = (given, 0) if np.ndim(given) == 0 else given
        return float(s), int(z)
    sc = sidecar_of(net)
    if sc is None:
        raise BoxError(
            f"units='real' needs the output scale of {net.source}: pass scales=((s_a, z_a), (s_b, z_b)) "
            "or load the graph from a file with its sidecar"
        )
    return float(sc.output.scale), int(sc.output.zero_point)


def _scaling(a: Network, b: Network, units: str, scales: Any, delta: Any) -> tuple[tuple, tuple, int, int]:
    """(factors, zero points, integer threshold, denominator D) for comparing ``|A - B| > delta``."""
    if units not in UNITS:
        raise ValueError(f"units must be one of {UNITS}, got {units!r}")
    try:
        fd = Fraction(delta)
    except (TypeError, ValueError):
        raise BoxError(f"delta must be a number, got {delta!r}") from None
    if fd < 0:
        raise BoxError(f"delta must be >= 0, got {delta!r}")
    if units == "codes":
        return (1, 1), (0, 0), int(np.floor(fd)), 1
    (sa, za), (sb, zb) = (
        _output_quant(n, None if scales is None else scales[i]) for i, n in enumerate((a, b))
    )
    if not (sa > 0 and sb > 0 and np.isfinite(sa) and np.isfinite(sb)):
        raise BoxError(f"output scales must be positive and finite, got {sa} and {sb}")
    fa, fb = Fraction(sa), Fraction(sb)
    d = lcm(fa.denominator, fb.denominator)
    ka, kb = int(fa * d), int(fb * d)
    return (ka, kb), (za, zb), int(fd * d), d


def verify_equivalence(
    model_a: ModelLike,
    model_b: ModelLike,
    x_codes: Any = None,
    eps: Any = None,
    *,
    box: tuple[Any, Any] | None = None,
    delta: float = 0,
    units: str = "codes",
    scales: Any = None,
    output: int | None = None,
    timeout_s: float = 60.0,
    input_range: tuple[int, int] | None = None,
    input_quants: Any = None,
    attack: bool = True,
    interval: bool = True,
    encoding: str = "optimized",
    seed: int = 0,
    solver: str = "auto",
) -> EquivalenceResult:
    """Is ``|A_j(x) - B_j(x)| <= delta`` for every output ``j`` (or ``output``) and every ``x`` in the box?

    The box is ``box=(lo, hi)``, or ``x_codes ± eps``, or the whole input code range (``input_range``,
    else ``model_a``'s sidecar or input dtype), in ``model_a``'s input codes. ``units`` is
    ``"codes"`` or ``"real"`` (see the module docs; ``scales`` = ``((s_a, z_a), (s_b, z_b))``
    overrides the sidecars). Where the graphs quantize inputs differently (their sidecars, or
    ``input_quants`` = ``((s_a, z_a[, lo_a, hi_a]), (s_b, z_b[, lo_b, hi_b]))``), every real input
    that ``model_a`` quantizes into the box is covered, each graph reading its own codes of it.

    >>> from ctnn.quant import random_integer_mlp
    >>> from ctnn.verify import verify_equivalence
    >>> a = random_integer_mlp([3, 4, 2], weight_bits=4, act_bits=4, in_bits=3, seed=0).to_onnx()
    >>> verify_equivalence(a, a, input_range=(-4, 3)).verdict
    'equivalent'
    """
    deadline = Deadline(check_timeout(timeout_s))
    stages = Stages(attack, interval, encoding, seed, solver)
    pairing, boxes, t, d = _product(
        model_a, model_b, input_range, x_codes, eps, box, units, scales, delta, input_quants
    )
    out = check_output(pairing.m, output)
    prop = pairing.gap(t, out)
    r = ascent_witness(pairing, prop, boxes, stages, deadline)
    if r is not None:
        runs = pairing.replay_pair(r.counterexample, r.counterexample_output)
    else:
        r, runs = decide_boxes(pairing, prop, boxes, stages, deadline)
    return _result(r, runs, "difference", float(delta), units, d, pairing, out, deadline)


def verify_argmax_equivalence(
    model_a: ModelLike,
    model_b: ModelLike,
    x_codes: Any = None,
    eps: Any = None,
    *,
    box: tuple[Any, Any] | None = None,
    timeout_s: float = 60.0,
    input_range: tuple[int, int] | None = None,
    input_quants: Any = None,
    attack: bool = True,
    interval: bool = True,
    encoding: str = "optimized",
    seed: int = 0,
    solver: str = "auto",
    bab: bool = True,
) -> EquivalenceResult:
    """Do both graphs predict the same class (numpy argmax, ties to the lowest index) everywhere in the box?

    Where both graphs are MLP-shaped (and the box too large to enumerate), each is first asked
    whether it keeps one class, the one ``model_a`` gives the box's centre, over the whole box:
    two robustness queries with branch and bound (``bab``), in at most
    :data:`KEEP_CLASS_SHARE` of the time. Two robust verdicts prove the graphs agree
    (``stats["kept_class"]``); otherwise the product graph of the two decides in the time left.
    The box and ``input_quants`` are as in :func:`verify_equivalence`; each graph's robustness
    query runs on its own codes of the box.

    >>> from ctnn.quant import random_integer_mlp
    >>> from ctnn.verify import verify_argmax_equivalence
    >>> a = random_integer_mlp([3, 4, 2], weight_bits=4, act_bits=4, in_bits=3, seed=0).to_onnx()
    >>> verify_argmax_equivalence(a, a, input_range=(-4, 3)).equivalent
    True
    """
    deadline = Deadline(check_timeout(timeout_s))
    stages = Stages(attack, interval, encoding, seed, solver, bab)
    pairing, boxes, _, _ = _product(
        model_a, model_b, input_range, x_codes, eps, box, input_quants=input_quants
    )
    r = _both_keep_class(pairing, *boxes[0][:2], stages, deadline)
    runs = None
    if r is None:
        r, runs = decide_boxes(pairing, ArgmaxAgreement(pairing.m), boxes, stages, deadline)
    return _result(r, runs, "argmax", 0.0, "codes", 1, pairing, None, deadline)


def _both_keep_class(
    pairing: Pairing, lo: np.ndarray, hi: np.ndarray, stages: Stages, deadline: Deadline
) -> VerificationResult | None:
    """Argmax equivalence proved as two robustness queries: where both MLPs keep the class that
    ``A`` gives the box's centre over the whole box, they agree everywhere. Each gets at most its
    half of :data:`KEEP_CLASS_SHARE` of the time, with branch and bound; a robust verdict from
    each is the proof (the robustness verdicts' own checks stand behind it).

    None (the product graph decides) for a graph that is not MLP-shaped, a box small enough to
    enumerate, or a graph that is not proved to keep the class: a robustness witness need not be
    one for equivalence, where both graphs may change class together.
    """
    if not stages.interval or not stages.bab or enumerated(lo, hi, stages):
        return None
    # each graph on its own codes of the box (with joint cells, the codes its cells quantize to)
    x0 = lo + (hi - lo) // 2
    runs = [pairing.runs(v) for v in (x0, lo, hi)]
    c = int(np.argmax(pairing.a.outputs(runs[0][0][None])[0]))
    queries = [
        _Query(net, LocalRobustness(c), *(r[k] for r in runs)) for k, net in enumerate((pairing.a, pairing.b))
    ]
    if any(layers_of(q.net, q.dtypes) is None for q in queries):
        return None
    budget = KEEP_CLASS_SHARE * deadline.left() / 2
    results = []
    for q in queries:
        r = stages.decide(q, eps=None, deadline=deadline.within(budget))
        if r.verdict != "robust":
            return None
        results.append(r)
    # the method that decided the harder of the two
    method = max((r.method for r in results), key=("interval", "bab", "cpsat", "smt").index)
    stats = {"kept_class": c, "kept_class_methods": [r.method for r in results]}
    return VerificationResult("robust", label=-1, eps=None, property=ArgmaxAgreement.name, method=method,
                              total_time_s=deadline.elapsed(), stats=stats)  # fmt: skip


def max_difference(
    model_a: ModelLike,
    model_b: ModelLike,
    x_codes: Any = None,
    eps: Any = None,
    *,
    box: tuple[Any, Any] | None = None,
    units: str = "codes",
    scales: Any = None,
    output: int | None = None,
    timeout_s: float = 60.0,
    input_range: tuple[int, int] | None = None,
    input_quants: Any = None,
    attack: bool = True,
    interval: bool = True,
    encoding: str = "optimized",
    seed: int = 0,
    solver: str = "auto",
    split: bool = True,
) -> GapResult:
    """The largest ``|A_j(x) - B_j(x)|`` over the box (a :class:`~ctnn.verify.GapResult`).

    Searched as :func:`~ctnn.verify.verify_bias` searches: input splitting (``split``), then a
    binary search of exact queries. ``timeout_s`` bounds the whole search: when it runs out,
    ``[gap, bound]`` brackets the largest difference, ``gap`` attained by the replayed witness.
    The box, ``units``, ``scales`` and ``input_quants`` are as in :func:`verify_equivalence`.

    >>> from ctnn.quant import random_integer_mlp
    >>> from ctnn.verify import max_difference
    >>> a = random_integer_mlp([3, 4, 2], weight_bits=4, act_bits=4, in_bits=3, seed=0).to_onnx()
    >>> max_difference(a, a, input_range=(-4, 3)).bound
    0
    """
    deadline = Deadline(check_timeout(timeout_s))
    stages = Stages(attack, interval, encoding, seed, solver, split=split)
    pairing, boxes, _, d = _product(
        model_a, model_b, input_range, x_codes, eps, box, units, scales, input_quants=input_quants
    )
    out = check_output(pairing.m, output)
    return max_gap(pairing, boxes, stages, deadline, kind="difference", output=out, scale=d, units=units)


def _result(
    r, runs, prop: str, delta: float, units: str, d: int, pairing: Pairing, output, deadline: Deadline
):
    kw: dict[str, Any] = {}
    if runs is not None:
        diff = int(pairing.gap(0, output).gaps(np.atleast_2d(r.counterexample_output))[0])
        xa, xb = pairing.runs(r.counterexample)
        kw = {
            "counterexample": xa.tolist(),
            "inputs": (xa.tolist(), xb.tolist()),
            "real_input": pairing.real_input(r.counterexample),
            "outputs": (runs[0].tolist(), runs[1].tolist()),
            "difference": diff / d if d != 1 else diff,
        }
    verdict = {"robust": "equivalent", "vulnerable": "different"}.get(r.verdict, "unknown")
    return EquivalenceResult(
        verdict=verdict,
        property=prop,
        delta=delta,
        method=r.method,
        units=units,
        total_time_s=deadline.elapsed(),
        reason=r.reason,
        stats=r.stats,
        **kw,
    )
