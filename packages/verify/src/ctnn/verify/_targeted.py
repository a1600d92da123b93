"""Targeted attack: an input in the box that the graph classifies as a given label, or a proof none exists."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._errors import SampleError, check_timeout
from ._network import ModelLike, as_network
from ._properties import TargetedAttack
from ._result import VerificationResult
from ._stages import Deadline, Stages
from ._verify import _Query, check_eps, check_sample


def verify_targeted(
    model: ModelLike,
    x_codes: Any,
    eps: int | Any,
    target: int,
    timeout_s: float = 60.0,
    attack: bool = True,
    *,
    input_range: tuple[int, int] | None = None,
    encoding: str = "optimized",
    interval: bool = True,
    seed: int = 0,
    solver: str = "auto",
    bab: bool = True,
) -> VerificationResult:
    """Is some input in the L∞ box of ``eps`` codes around ``x_codes`` classified as ``target``?

    The result's ``verdict`` is ``"vulnerable"`` with ``counterexample`` an input in the box
    whose prediction (numpy argmax of the integer output, ties to the lowest index) is
    ``target`` — replayed on the reference and in onnxruntime — or ``"robust"``: proved that
    no input in the box is classified as ``target``; ``"unknown"`` on timeout. ``label`` in
    the result is the target. Stages as in :func:`~ctnn.verify.verify_robustness`, except
    that on an MLP-shaped graph branch and bound (``bab``) works on one margin: the target
    cannot win where one class (the one closest to beating it everywhere, by the linear
    bounds) always beats it. An input it finds where the target wins is a witness. What it
    leaves open in its share of the time (:data:`~._verify.TARGETED_BAB_SHARE`), including a
    margin that misses only where the target still does not win, goes to the exact stage on
    the whole property for the time left.

    >>> import numpy as np
    >>> from ctnn.quant import random_integer_mlp
    >>> from ctnn.verify import verify_targeted
    >>> model = random_integer_mlp([4, 6, 3], weight_bits=4, act_bits=4, in_bits=4, seed=1).to_onnx()
    >>> verify_targeted(model, np.array([1, -2, 3, 0]), 1, target=2, input_range=(-8, 7)).verdict in (
    ...     "robust", "vulnerable")
    True
    """
    deadline = Deadline(check_timeout(timeout_s))
    stages = Stages(attack, interval, encoding, seed, solver, bab)
    net = as_network(model, input_range)
    x0 = check_sample(net, x_codes)
    e = check_eps(eps, net.n_features)
    lo, hi = net.input_range
    q = _Query(net, TargetedAttack(0), x0, np.maximum(x0 - e, lo), np.minimum(x0 + e, hi))
    n_out = len(q.y0)
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= int(target) < n_out:
        raise SampleError(
            f"target label must be an integer in [0, {n_out}) (the graph has {n_out} outputs), got {target!r}"
        )
    q.prop = TargetedAttack(int(target))
    eps_out = int(e[0]) if np.ndim(eps) == 0 else e.tolist()
    return stages.decide(q, eps=eps_out, deadline=deadline)
