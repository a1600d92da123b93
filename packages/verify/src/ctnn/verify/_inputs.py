"""Two graphs that quantize the same real input differently (8-bit against 6-bit, say).

Comparing them code for code would feed one graph codes it never sees. Instead, the real line is
cut at both quantizers' decision points: each piece is a *joint cell*, one pair ``(q_a, q_b)`` of
codes that some real input quantizes to. Both quantizers are monotone, so the cells form a chain,
ordered by the real input, along which both codes only rise. A relational query then ranges over
cell indices: one product-graph input per feature, which a constant table turns into each graph's
code (a ``Gather``). The query covers every real input exactly as both graphs see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ctnn.quant import Sidecar, TensorQuant, input_code_range, read_sidecar, sidecar_path

from ._errors import BoxError, UnsupportedError, WitnessError
from ._network import Network

#: float64 neighbours tried on each side of a computed decision point: the quantizer's own float
#: arithmetic may put the switch an ulp or two away from the exact point
_ULPS = 4


@dataclass(frozen=True)
class JointCodes:
    """The chain of joint cells of the quantizers ``qa`` and ``qb``: ``a[k]`` and ``b[k]`` are the
    codes of cell ``k`` (both non-decreasing in ``k``) and ``real[k]`` a float64 real that quantizes
    to both."""

    a: np.ndarray
    b: np.ndarray
    real: np.ndarray
    qa: TensorQuant
    qb: TensorQuant

    def __len__(self) -> int:
        return len(self.a)

    def cells(self, lo_a: np.ndarray, hi_a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The cell-index box of the A-code box ``[lo_a, hi_a]``: every cell whose A code is in it."""
        return (
            np.searchsorted(self.a, lo_a, side="left").astype(np.int64),
            np.searchsorted(self.a, hi_a, side="right").astype(np.int64) - 1,
        )

    def real_input(self, cells: np.ndarray) -> list[float]:
        """The real input of a witness (one real per feature), checked: each quantizer gives its codes."""
        cells = np.asarray(cells, np.int64)
        real = self.real[cells]
        if not (np.array_equal(self.qa.quantize(real), self.a[cells])
                and np.array_equal(self.qb.quantize(real), self.b[cells])):  # fmt: skip
            raise WitnessError(
                f"the real input {real.tolist()} does not quantize to the witness codes "
                f"{self.a[cells].tolist()} and {self.b[cells].tolist()}: a bug in ctnn-verify"
            )
        return real.tolist()


def _decision_points(q: TensorQuant) -> np.ndarray:
    """Where ``q`` steps from code ``c`` to ``c + 1`` (``round`` half away from zero)."""
    c = np.arange(q.lo, q.hi, dtype=np.float64)
    return (c - q.zero_point + 0.5) * q.scale


def _neighbours(x: np.ndarray, k: int) -> np.ndarray:
    out, up, down = [x], x, x
    for _ in range(k):
        up, down = np.nextafter(up, np.inf), np.nextafter(down, -np.inf)
        out += [up, down]
    return np.concatenate(out)


def joint_codes(qa: TensorQuant, qb: TensorQuant) -> JointCodes:
    """Every pair of codes that one real input quantizes to under ``qa`` and ``qb`` (in order).

    The candidates are each quantizer's decision points with a few float64 neighbours on each side,
    the midpoints between consecutive points, and one real beyond each end; both quantizers run on
    them (:meth:`TensorQuant.quantize`, the sidecar's own rounding), so every pair is attained.
    """
    pts = np.unique(np.concatenate([_decision_points(qa), _decision_points(qb)]))
    if not len(pts):  # both quantizers have one code each
        pts = np.zeros(1)
    span = max(qa.scale, qb.scale)
    xs = np.unique(np.concatenate([
        _neighbours(pts, _ULPS), (pts[:-1] + pts[1:]) / 2, [pts[0] - span, pts[-1] + span],
    ]))  # fmt: skip
    ca = qa.quantize(xs).astype(np.int64)
    cb = qb.quantize(xs).astype(np.int64)
    if np.any(np.diff(ca) < 0) or np.any(np.diff(cb) < 0):
        raise AssertionError("a quantizer is not monotone: a ctnn-verify bug")
    new = np.flatnonzero(np.r_[True, (np.diff(ca) != 0) | (np.diff(cb) != 0)])
    # each cell's representative: halfway between its first and last candidates, away from both
    # of its ends (else its middle candidate, where float rounding puts halfway outside the cell)
    last = np.r_[new[1:], len(xs)] - 1
    real = (xs[new] + xs[last]) / 2
    off = (qa.quantize(real) != ca[new]) | (qb.quantize(real) != cb[new])
    real[off] = xs[((new + last) // 2)[off]]
    return JointCodes(ca[new], cb[new], real, qa, qb)


def input_quant(net: Network, given: Any = None) -> TensorQuant | None:
    """``net``'s input quantizer: ``given`` as ``(scale, zero_point)`` or ``(scale, zero_point, lo,
    hi)`` (a bare number is the scale), else its sidecar's, else None (unknown). The codes clip to
    ``[lo, hi]``: given, else the sidecar's, else the input dtype's."""
    if given is not None:
        g = (given,) if np.ndim(given) == 0 else tuple(given)
        if len(g) not in (1, 2, 4):
            raise BoxError(
                f"an input quantization is scale, (scale, zero_point) or (scale, zero_point, lo, hi), got {given!r}"
            )
        s, z = float(g[0]), int(g[1]) if len(g) > 1 else 0
        if not (s > 0 and np.isfinite(s)):
            raise BoxError(f"an input scale must be positive and finite, got {s}")
        lo, hi = (int(g[2]), int(g[3])) if len(g) == 4 else input_code_range(_path(net), net.input_dtype)
        if lo > hi:
            raise BoxError(f"an input quantization's code range is empty: [{lo}, {hi}]")
        return TensorQuant("input", [], 0, lo, hi, s, z, "int64")
    sc = sidecar_of(net)
    if sc is None:
        return None
    q = sc.input
    if np.ndim(q.scale) != 0:
        raise UnsupportedError(f"{net.source}: an input scale per channel is not supported in a comparison")
    return TensorQuant(
        q.name, q.shape, q.bits, int(q.lo), int(q.hi), float(q.scale), int(q.zero_point), "int64"
    )


def _path(net: Network) -> str | None:
    return None if net.source == "<model>" else net.source


def sidecar_of(net: Network) -> Sidecar | None:
    """The sidecar next to ``net``'s ``.onnx`` file (None: a graph given in memory, or none there)."""
    path = _path(net)
    return read_sidecar(Path(path)) if path is not None and sidecar_path(path).is_file() else None


def same_codes(qa: TensorQuant | None, qb: TensorQuant | None) -> bool:
    """Whether both graphs read one real input as the same code (or either quantizer is unknown)."""
    if qa is None or qb is None:
        return True
    return (qa.scale, qa.zero_point, qa.lo, qa.hi) == (qb.scale, qb.zero_point, qb.lo, qb.hi)
