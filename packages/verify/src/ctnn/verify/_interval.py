"""Interval abstract interpretation of an integer graph: sound [lo, hi] for every tensor element.

One rule per ONNX op in :data:`INTERVAL_RULES`. A rule maps its inputs' bounds to the
*exact* (pre-wrap) bounds of its outputs; the walker then applies the output dtype: an
element whose exact interval leaves the dtype's range may wrap, and is bounded by the
whole range. Bounds are int64 arrays; a rule that could exceed int64 computes with
Python integers (object arrays) instead, so nothing here overflows silently.

Constant subgraphs are folded with the numpy reference itself, and a tensor whose
interval is a single point everywhere becomes a constant: that is how the pass fixes
ReLU/clip phases and removes dead branches for the encoder downstream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto

from ctnn.quant import REFERENCE_OPS, registrar

from ._errors import UnsupportedError, check_deadline

_BIG = 1 << 62


@dataclass
class Bounds:
    """Sound bounds of one tensor: every element's value lies in ``[lo, hi]`` (int64 arrays)."""

    lo: np.ndarray
    hi: np.ndarray
    value: np.ndarray | None = None  # the tensor itself, when it is constant
    pre_lo: np.ndarray | None = None  # exact (pre-wrap) bounds where they differ from lo/hi
    pre_hi: np.ndarray | None = None
    wraps: np.ndarray | None = None  # elements whose exact value may leave the dtype's range

    @classmethod
    def const(cls, value: np.ndarray) -> Bounds:
        v = np.asarray(value)
        iv = v.astype(np.int64)
        return cls(iv, iv, value=v)

    @property
    def exact_lo(self) -> np.ndarray:
        return self.lo if self.pre_lo is None else self.pre_lo

    @property
    def exact_hi(self) -> np.ndarray:
        return self.hi if self.pre_hi is None else self.pre_hi


IntervalRule = Callable[[list[Bounds | None], dict[str, Any]], list[tuple[np.ndarray, np.ndarray]]]

#: op type -> interval rule: input bounds -> exact output bounds.
INTERVAL_RULES: dict[str, IntervalRule] = {}


register_interval = registrar(INTERVAL_RULES, "interval rule")


def _mag(*arrays: np.ndarray) -> int:
    """The largest absolute value in the arrays (Python int, so it cannot overflow)."""
    m = 0
    for a in arrays:
        if a.size:
            m = max(m, -int(a.min()), int(a.max()))
    return m


def _exact(big: bool, *arrays: np.ndarray) -> list[np.ndarray]:
    """The arrays as int64, or as Python ints when a result could leave int64."""
    return [a.astype(object) if big else a.astype(np.int64) for a in arrays]


def _param(b: Bounds | None, what: str) -> np.ndarray | None:
    if b is None:
        return None
    if b.value is None:
        raise UnsupportedError(f"{what} must be a constant, not a function of the input")
    return b.value


@register_interval("Add", "Sub")
def _add_sub(ins, attrs):
    a, b = ins
    big = _mag(a.lo, a.hi) + _mag(b.lo, b.hi) >= _BIG
    alo, ahi, blo, bhi = _exact(big, a.lo, a.hi, b.lo, b.hi)
    if attrs.get("_op") == "Sub":
        return [(alo - bhi, ahi - blo)]
    return [(alo + blo, ahi + bhi)]


def _corners(alo, ahi, blo, bhi, fn):
    c = [fn(x, y) for x in (alo, ahi) for y in (blo, bhi)]
    return np.minimum.reduce(c), np.maximum.reduce(c)


@register_interval("Mul")
def _mul(ins, attrs):
    a, b = ins
    big = _mag(a.lo, a.hi) * _mag(b.lo, b.hi) >= _BIG
    alo, ahi, blo, bhi = _exact(big, a.lo, a.hi, b.lo, b.hi)
    return [_corners(alo, ahi, blo, bhi, lambda x, y: x * y)]


def _tdiv(a, b):
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q)


@register_interval("Div")
def _div(ins, attrs):
    a, b = ins
    alo, ahi, blo, bhi = (v.astype(object) for v in np.broadcast_arrays(a.lo, a.hi, b.lo, b.hi))
    lo = np.full(alo.shape, np.inf, object)
    hi = np.full(alo.shape, -np.inf, object)
    # trunc(a / b) is monotone in a, and in b on each sign of b: the corners of
    # [alo, ahi] x ([blo, -1] u [1, bhi]) hold the extremes (b = 0 raises in the reference)
    for d, ok in (
        (blo, blo != 0),
        (bhi, bhi != 0),
        (-1, (blo <= -1) & (bhi >= -1)),
        (1, (blo <= 1) & (bhi >= 1)),
    ):
        d = np.where(ok, d, 1)
        for x in (alo, ahi):
            q = _tdiv(x, d)
            lo = np.where(ok & (q < lo), q, lo)
            hi = np.where(ok & (q > hi), q, hi)
    if np.any(lo == np.inf):
        raise UnsupportedError("a divisor is always zero (the reference raises there)")
    return [(lo, hi)]


def _matmul_bounds(alo, ahi, blo, bhi):
    k = alo.shape[-1]
    big = _mag(alo, ahi) * _mag(blo, bhi) * max(k, 1) >= _BIG
    alo, ahi, blo, bhi = _exact(big, alo, ahi, blo, bhi)
    if np.array_equal(blo, bhi):  # constant weights: split them by sign
        pos, neg = np.maximum(blo, 0), np.minimum(blo, 0)
        return alo @ pos + ahi @ neg, ahi @ pos + alo @ neg
    if np.array_equal(alo, ahi):
        pos, neg = np.maximum(alo, 0), np.minimum(alo, 0)
        return pos @ blo + neg @ bhi, pos @ bhi + neg @ blo
    a1, b1 = alo.ndim == 1, blo.ndim == 1  # numpy's matmul promotes 1-D operands, then drops the dim
    if a1:
        alo, ahi = alo[None, :], ahi[None, :]
    if b1:
        blo, bhi = blo[:, None], bhi[:, None]
    prod = (alo[..., :, :, None], ahi[..., :, :, None], blo[..., None, :, :], bhi[..., None, :, :])
    lo, hi = (v.sum(-2) for v in _corners(*prod, lambda x, y: x * y))
    if b1:
        lo, hi = lo[..., 0], hi[..., 0]
    if a1:
        lo, hi = (lo[..., 0], hi[..., 0]) if b1 else (lo[..., 0, :], hi[..., 0, :])
    return lo, hi


@register_interval("MatMul")
def _matmul(ins, attrs):
    a, b = ins
    return [_matmul_bounds(a.lo, a.hi, b.lo, b.hi)]


@register_interval("MatMulInteger")
def _matmulinteger(ins, attrs):
    a, b = ins[0], ins[1]
    alo, ahi, blo, bhi = a.lo, a.hi, b.lo, b.hi
    if len(ins) > 2 and ins[2] is not None:  # the reference subtracts zero points by broadcasting
        alo, ahi = alo - ins[2].hi, ahi - ins[2].lo
    if len(ins) > 3 and ins[3] is not None:
        blo, bhi = blo - ins[3].hi, bhi - ins[3].lo
    return [_matmul_bounds(alo, ahi, blo, bhi)]


@register_interval("Clip")
def _clip(ins, attrs):
    x = ins[0]
    lo, hi = x.lo, x.hi
    if len(ins) > 1 and ins[1] is not None:
        lo, hi = np.maximum(lo, ins[1].lo), np.maximum(hi, ins[1].hi)
    if len(ins) > 2 and ins[2] is not None:
        lo, hi = np.minimum(lo, ins[2].lo), np.minimum(hi, ins[2].hi)
    return [(lo, hi)]


@register_interval("Min", "Max")
def _minmax(ins, attrs):
    f = np.minimum if attrs.get("_op") == "Min" else np.maximum
    return [
        (
            f.reduce(np.broadcast_arrays(*[b.lo for b in ins])),
            f.reduce(np.broadcast_arrays(*[b.hi for b in ins])),
        )
    ]


@register_interval("Cast")
def _cast(ins, attrs):
    x = ins[0]
    if attrs["to"] == TensorProto.BOOL:  # nonzero -> True
        never_zero = (x.lo > 0) | (x.hi < 0)
        always_zero = (x.lo == 0) & (x.hi == 0)
        return [(never_zero.astype(np.int64), (~always_zero).astype(np.int64))]
    return [(x.lo, x.hi)]


@register_interval("Less", "Greater", "Equal")
def _compare(ins, attrs):
    a, b = ins
    op = attrs["_op"]
    if op == "Greater":
        a, b = b, a
    if op in ("Less", "Greater"):  # a < b
        return [((a.hi < b.lo).astype(np.int64), (a.lo < b.hi).astype(np.int64))]
    surely = (a.lo == a.hi) & (b.lo == b.hi) & (a.lo == b.lo)
    maybe = (a.lo <= b.hi) & (b.lo <= a.hi)
    return [(surely.astype(np.int64), maybe.astype(np.int64))]


@register_interval("Where")
def _where(ins, attrs):
    c, a, b = ins
    clo, chi, alo, ahi, blo, bhi = np.broadcast_arrays(c.lo, c.hi, a.lo, a.hi, b.lo, b.hi)
    lo = np.where(clo == 1, alo, np.where(chi == 0, blo, np.minimum(alo, blo)))
    hi = np.where(clo == 1, ahi, np.where(chi == 0, bhi, np.maximum(ahi, bhi)))
    return [(lo, hi)]


@register_interval("Gather")
def _gather(ins, attrs):
    data, idx = ins
    axis = attrs.get("axis", 0)
    axis = axis + data.lo.ndim if axis < 0 else axis
    if idx.value is not None:
        return [(REFERENCE_OPS["Gather"]([data.lo, idx.value], attrs)[0],
                 REFERENCE_OPS["Gather"]([data.hi, idx.value], attrs)[0])]  # fmt: skip
    n = data.lo.shape[axis]
    lo = np.empty(idx.lo.shape + data.lo.shape[:axis] + data.lo.shape[axis + 1 :], np.int64)
    hi = np.empty_like(lo)
    for j in np.ndindex(idx.lo.shape):  # every index it may take; out-of-range ones raise
        pos = np.arange(max(int(idx.lo[j]), -n), min(int(idx.hi[j]), n - 1) + 1)
        if not len(pos):
            raise UnsupportedError(f"a Gather index is always out of range for an axis of size {n}")
        pos = np.unique(np.where(pos < 0, pos + n, pos))
        lo[j] = np.take(data.lo, pos, axis=axis).min(axis=axis)
        hi[j] = np.take(data.hi, pos, axis=axis).max(axis=axis)
    # np.take puts the index dims at `axis`: move them there
    k = idx.lo.ndim
    order = list(range(k, k + axis)) + list(range(k)) + list(range(k + axis, lo.ndim))
    return [(lo.transpose(order), hi.transpose(order))]


@register_interval("Concat", "Slice", "Squeeze", "Unsqueeze", "Reshape", "Identity", "Split")
def _structural(ins, attrs):
    """Ops that only move elements: apply the reference to lo and to hi."""
    op = attrs["_op"]
    if op == "Concat":
        return list(
            zip(REFERENCE_OPS[op]([b.lo for b in ins], attrs), REFERENCE_OPS[op]([b.hi for b in ins], attrs))
        )
    params = [_param(b, f"{op}'s input {i + 1}") for i, b in enumerate(ins[1:])]
    lo = REFERENCE_OPS[op]([ins[0].lo, *params], attrs)
    hi = REFERENCE_OPS[op]([ins[0].hi, *params], attrs)
    return list(zip(lo, hi))


def reduce_axes(attrs: Mapping[str, Any], axes: np.ndarray | None, ndim: int) -> tuple[int, ...] | None:
    """ReduceSum's axes (None: no reduction at all), normalised to non-negative ints."""
    if axes is not None and len(axes):
        return tuple(sorted(int(a) % ndim for a in np.asarray(axes).ravel()))
    if attrs.get("noop_with_empty_axes", 0):
        return None
    return tuple(range(ndim))


@register_interval("ReduceSum")
def _reducesum(ins, attrs):
    x = ins[0]
    axes = reduce_axes(attrs, _param(ins[1], "ReduceSum's axes") if len(ins) > 1 else None, x.lo.ndim)
    if axes is None:
        return [(x.lo, x.hi)]
    count = int(np.prod([x.lo.shape[a] for a in axes]))
    big = _mag(x.lo, x.hi) * max(count, 1) >= _BIG
    lo, hi = _exact(big, x.lo, x.hi)
    keep = bool(attrs.get("keepdims", 1))
    return [(lo.sum(axis=axes, keepdims=keep), hi.sum(axis=axes, keepdims=keep))]


def _finish(plo: np.ndarray, phi: np.ndarray, dtype: np.dtype) -> Bounds:
    """Apply the output dtype to exact bounds: wrap-around widens to the whole range."""
    plo, phi = np.asarray(plo), np.asarray(phi)
    if dtype == np.bool_:
        lo, hi = plo.astype(np.int64), phi.astype(np.int64)
        b = Bounds(lo, hi)
    else:
        info = np.iinfo(dtype)
        wraps = (plo < int(info.min)) | (phi > int(info.max))
        if np.any(wraps):
            lo = np.where(wraps, int(info.min), plo).astype(np.int64)
            hi = np.where(wraps, int(info.max), phi).astype(np.int64)
            b = Bounds(lo, hi, pre_lo=plo, pre_hi=phi, wraps=np.asarray(wraps))
        else:
            b = Bounds(plo.astype(np.int64), phi.astype(np.int64))
    if np.array_equal(b.lo, b.hi):  # a point everywhere: a constant from here on
        b.value = b.lo.astype(dtype)
    return b


def interval_pass(
    nodes: Iterable[tuple[onnx.NodeProto, dict[str, Any]]],
    constants: Mapping[str, np.ndarray],
    dtypes: Mapping[str, np.dtype],
    inputs: Mapping[str, tuple[np.ndarray, np.ndarray]],
    linear: bool = False,
    deadline: float | None = None,
) -> tuple[dict[str, Bounds], Any]:
    """Bounds of every tensor given a box for the (one) input, shaped as the input.

    With ``linear``, affine forms (:mod:`._linear`) tighten the bounds as the walk goes;
    the second result is then the :class:`~._linear.LinearRefiner` holding them, else None.
    Past ``deadline`` (a ``time.perf_counter()`` value) it raises :class:`~._errors.OutOfTime`.
    """
    env: dict[str, Bounds] = {n: Bounds.const(v) for n, v in constants.items()}
    for name, (lo, hi) in inputs.items():
        lo, hi = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
        env[name] = _finish(lo, hi, dtypes[name])
    refiner = None
    if linear:
        from ._linear import LinearRefiner

        (name,) = inputs
        refiner = LinearRefiner(env, dict(dtypes), name)
    for node, attrs in nodes:
        check_deadline(deadline, node.name)
        ins = [env[i] if i else None for i in node.input]
        if all(b is None or b.value is not None for b in ins):
            outs = REFERENCE_OPS[node.op_type]([b.value if b is not None else None for b in ins], attrs)
            env.update({name: Bounds.const(v) for name, v in zip(node.output, outs)})
            continue
        rule = INTERVAL_RULES.get(node.op_type)
        if rule is None:
            raise UnsupportedError(f"node {node.name!r}: no interval rule for op {node.op_type!r}")
        if refiner is not None:
            refiner.before(node, attrs)
            ins = [env[i] if i else None for i in node.input]
        try:
            res = rule(ins, {**attrs, "_op": node.op_type})
        except UnsupportedError as exc:
            raise UnsupportedError(f"node {node.name!r} ({node.op_type}): {exc}") from None
        for name, (plo, phi) in zip(node.output, res):
            env[name] = _finish(plo, phi, dtypes[name])
        if refiner is not None:
            refiner.after(node, attrs)
    return env, refiner
