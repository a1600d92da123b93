"""Every counterexample is replayed before it is reported: on the numpy reference and in onnxruntime."""

from __future__ import annotations

import numpy as np

from ._errors import WitnessError
from ._network import Network
from ._properties import Property


def replay(
    net: Network,
    prop: Property,
    x: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    expected: np.ndarray | None = None,
) -> np.ndarray:
    """Check a witness: in the box, same output in the reference and onnxruntime, a real violation.

    ``expected`` is the output the witness's producer (the z3 or CP-SAT model) claims. Returns the
    reference output (flat); raises :class:`WitnessError` on any disagreement.
    """
    x = np.asarray(x, np.int64).ravel()
    if x.shape != lo.shape or np.any(x < lo) or np.any(x > hi):
        bad = np.flatnonzero((x < lo) | (x > hi)) if x.shape == lo.shape else []
        raise WitnessError(f"witness outside the box (features {list(bad[:5])}): a bug in ctnn-verify")
    y_ref = np.asarray(net.reference(x)[net.output_name])
    y_ort = np.asarray(net.onnxruntime(x))
    if y_ref.dtype != y_ort.dtype or not np.array_equal(y_ref.ravel(), y_ort.ravel()):
        raise WitnessError(
            f"the reference and onnxruntime disagree on a witness: {y_ref.ravel().tolist()} vs "
            f"{y_ort.ravel().tolist()} (x = {x.tolist()})"
        )
    y = y_ref.ravel().astype(np.int64)
    if expected is not None and not np.array_equal(np.asarray(expected, np.int64), y):
        raise WitnessError(
            f"the solver model's output {np.asarray(expected).tolist()} differs from the reference's "
            f"{y.tolist()} on its own witness (x = {x.tolist()}): an encoding bug"
        )
    if not prop.violated(y)[0]:
        raise WitnessError(f"witness does not violate {prop.name} {prop.params()}: output {y.tolist()}")
    return y
