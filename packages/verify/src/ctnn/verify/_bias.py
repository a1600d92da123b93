"""Bias: the largest output change when only a sensitive input changes.

The two runs of one graph share every input but the sensitive one(s); the product graph
(:mod:`._product`) reads the shared inputs once and each run's sensitive value from its own
column, and :func:`~._relational.max_gap` searches the largest ``|y_j(x, s) - y_j(x, s')|``
(input splitting, then a binary search of exact queries).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ._errors import BoxError, check_timeout
from ._network import ModelLike, Network, as_network
from ._product import n_outputs
from ._relational import Pairing, check_output, input_box, max_gap
from ._result import GapResult
from ._stages import Deadline, Stages


def _sensitive(net: Network, sensitive: Any) -> list[int]:
    items = [sensitive] if np.ndim(sensitive) == 0 else list(np.asarray(sensitive).ravel())
    if not items:
        raise BoxError("name at least one sensitive feature")
    out = []
    for s in items:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)):
            raise BoxError(f"a sensitive feature must be an integer index, got {s!r}")
        if not 0 <= int(s) < net.n_features:
            raise BoxError(
                f"sensitive feature {int(s)} is out of range: the input has {net.n_features} features "
                f"(flat indices 0..{net.n_features - 1})"
            )
        out.append(int(s))
    if len(set(out)) != len(out):
        raise BoxError(f"sensitive features repeat: {out}")
    return out


def _values(net: Network, values: Any, rng: Any) -> tuple[list[int] | None, tuple[int, int]]:
    lo, hi = net.input_range
    if values is not None and rng is not None:
        raise BoxError("give sensitive_values or sensitive_range, not both")
    if values is not None:
        vals = sorted({int(v) for v in np.asarray(values).ravel()})
        if len(vals) < 2:
            raise BoxError(f"the sensitive attribute needs at least two values, got {vals}")
        bad = [v for v in vals if not lo <= v <= hi]
        if bad:
            raise BoxError(f"sensitive value {bad[0]} is outside the input code range [{lo}, {hi}]")
        return vals, (vals[0], vals[-1])
    if rng is None:
        return None, (lo, hi)
    a, b = (int(v) for v in rng)
    if not lo <= a <= b <= hi:
        raise BoxError(f"sensitive range [{a}, {b}] is empty or outside the input code range [{lo}, {hi}]")
    return None, (a, b)


def verify_bias(
    model: ModelLike,
    sensitive: int | list[int],
    x_codes: Any = None,
    eps: Any = None,
    *,
    box: tuple[Any, Any] | None = None,
    sensitive_values: Any = None,
    sensitive_range: tuple[int, int] | None = None,
    output: int | None = None,
    timeout_s: float = 60.0,
    input_range: tuple[int, int] | None = None,
    attack: bool = True,
    interval: bool = True,
    encoding: str = "optimized",
    seed: int = 0,
    solver: str = "auto",
    split: bool = True,
) -> GapResult:
    """The largest change of an output code when only the sensitive input(s) change.

    ``sensitive`` is a flat input index (or several, which then move together: one attribute
    repeated, e.g. at every time step of a sequence). The other inputs range over ``box``
    (``(lo, hi)`` code arrays), or the L∞ ball ``x_codes ± eps``, or by default the whole input
    code range; the sensitive attribute takes every pair of ``sensitive_values`` (e.g. the two
    codes of a binary attribute), or any two codes in ``sensitive_range`` (default: the input
    code range). The gap is ``max |y_j(x, s) - y_j(x, s')|`` over outputs ``j`` (or ``output``
    only), in output codes: for a regressor (one output), the largest change of the prediction.

    The search has two stages. With ``split`` (and the interval pass) on, branch and bound over
    the inputs first, for half the time: the box with the highest proved bound on the gap is cut
    in two, boxes whose bound the best pair found already meets are dropped, and small boxes are
    run point by point. On a few inputs (a tabular model) this alone is usually exact
    (``GapResult.split`` says how far it got). Then a binary search on the gap between the best
    pair found and the proved bound, each step one exact query (``gap > t``?) by the usual stages.

    Returns a :class:`~ctnn.verify.GapResult`: ``gap`` (attained by ``witness``, two inputs
    replayed on the reference and in onnxruntime) and ``bound`` (proved), equal when ``exact``.
    ``timeout_s`` bounds the whole search, each query taking part of what is left: when it runs
    out, ``[gap, bound]`` brackets the largest change (``exact`` False, ``reason`` says so).

    >>> from ctnn.quant import random_integer_mlp
    >>> from ctnn.verify import verify_bias
    >>> reg = random_integer_mlp([3, 4, 1], weight_bits=4, act_bits=4, in_bits=3, seed=0).to_onnx()
    >>> r = verify_bias(reg, sensitive=0, sensitive_values=[0, 1], input_range=(-4, 3))
    >>> r.exact and r.gap == abs(r.witness_outputs[0][0] - r.witness_outputs[1][0])
    True
    """
    deadline = Deadline(check_timeout(timeout_s))
    stages = Stages(attack, interval, encoding, seed, solver, split=split)
    net = as_network(model, input_range)
    sens = _sensitive(net, sensitive)
    values, (slo, shi) = _values(net, sensitive_values, sensitive_range)
    lo, hi = input_box(net, x_codes, eps, box)
    n = net.n_features
    output = check_output(n_outputs(net), output)
    index_a, index_b = np.arange(n), np.arange(n)
    index_a[sens], index_b[sens] = n, n + 1
    base_lo, base_hi = lo.copy(), hi.copy()
    base_hi[sens] = base_lo[sens]  # the sensitive columns of the shared input are unused: fix them
    pairing = Pairing(net, net, n + 2, index_a, index_b, net.input_range)
    pairs = itertools.combinations(values, 2) if values is not None else [(slo, shi)]
    boxes = []
    for v1, v2 in pairs:
        blo, bhi = (
            np.append(base_lo, [v1 if values else slo, v2 if values else slo]),
            np.append(base_hi, [v1 if values else shi, v2 if values else shi]),
        )
        x0 = np.append((base_lo + base_hi) // 2, [blo[n], bhi[n + 1]])
        boxes.append((blo, bhi, x0))
    params = {
        "sensitive": sens,
        "sensitive_values": values,
        "sensitive_range": None if values else [slo, shi],
    }
    return max_gap(pairing, boxes, stages, deadline, kind="bias", output=output, params=params)
