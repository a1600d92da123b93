"""Properties a query can ask of a graph's output, keyed by name in :data:`PROPERTIES`.

A property states what a counterexample is, four ways that must agree: on interval
bounds (can the pre-pass prove there is none?), on concrete outputs (for the attack and
for replaying witnesses), as an attack score, and as a z3 condition for the solver.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
import z3

from ._bv import compare
from ._errors import UnsupportedError
from ._linear import max_of

#: property name -> class
PROPERTIES: dict[str, type[Property]] = {}


def register_property(name: str) -> Callable[[type[Property]], type[Property]]:
    """Register a property class under ``name``."""

    def deco(cls: type[Property]) -> type[Property]:
        cls.name = name
        PROPERTIES[name] = cls
        return cls

    return deco


def reach(forms: Any, u: int, d: int, xlo: np.ndarray, xhi: np.ndarray) -> float:
    """The most ``y[u] - y[d]`` can be over the box, by the outputs' affine forms (shared inputs cancel)."""
    return max_of(forms.UA[u] - forms.LA[d], forms.Uc[u] - forms.Lc[d], xlo, xhi)


def any_of(conds: Iterable[z3.BoolRef | bool]) -> z3.BoolRef | bool:
    """``Or`` of conditions some of which folded to Python bools: the first True decides, False drops out."""
    return fold(conds, True, z3.Or)


def all_of(conds: Iterable[z3.BoolRef | bool]) -> z3.BoolRef | bool:
    """``And`` of conditions some of which folded to Python bools: the first False decides, True drops out."""
    return fold(conds, False, z3.And)


def fold(conds: Iterable[Any], decisive: bool, combine: Callable[[list[Any]], Any]) -> Any:
    """``or`` (``decisive=True``) or ``and`` of conditions some of which are Python bools: the first
    ``decisive`` one decides, the others drop out, and ``combine`` joins what is left (z3's ``Or``,
    or a CP-SAT literal)."""
    rest = []
    for c in conds:  # lazily: nothing after a decisive condition is built
        if c is decisive:
            return decisive
        if c is not (not decisive):
            rest.append(c)
    if not rest:
        return not decisive
    if len(rest) == 1:
        return rest[0]
    return combine(rest)


class Property(ABC):
    """What counts as a counterexample, given the (flat) output of one sample."""

    name: ClassVar[str] = ""

    @abstractmethod
    def proved_by_bounds(self, lo: np.ndarray, hi: np.ndarray) -> bool:
        """True if no output inside the bounds [lo, hi] is a counterexample."""

    def proved_by_forms(self, forms: Any, xlo: np.ndarray, xhi: np.ndarray) -> bool:
        """True if the outputs' affine forms (:class:`~._linear.Forms`, flat) rule out a counterexample."""
        return False

    def split_weights(self, forms: Any, xlo: np.ndarray, xhi: np.ndarray) -> np.ndarray | None:
        """Per input, how much it moves the bound that is furthest from proving the property."""
        return None

    @abstractmethod
    def score(self, y: np.ndarray) -> np.ndarray:
        """Per row of ``y`` [B, n_out]: an integer that is > 0 exactly on counterexamples."""

    @abstractmethod
    def violation(self, y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> z3.BoolRef | bool:
        """The z3 condition for a counterexample, on the output elements ``y`` within [lo, hi]."""

    def cp_violation(self, g: Any, y: np.ndarray) -> Any:
        """The same condition as a CP-SAT literal of the :class:`~._cpgraph.GraphModel` ``g``, on
        its output elements ``y`` (a bool where the bounds decide it). A property without one is
        decided by the SMT solver."""
        raise UnsupportedError(f"property {self.name!r} has no CP-SAT condition")

    def violated(self, y: np.ndarray) -> np.ndarray:
        return self.score(np.atleast_2d(y)) > 0

    def params(self) -> dict[str, Any]:
        return {}


@register_property("robustness")
class LocalRobustness(Property):
    """The prediction stays ``label``: ``argmax(y) == label`` with numpy's ties-to-lowest-index rule.

    So the output at index ``j`` beats the label if ``y[j] > y[label]``, or ``y[j] == y[label]``
    and ``j < label``. A counterexample is an output where some ``j`` beats the label.
    """

    def __init__(self, label: int):
        self.label = int(label)

    def _margins(self, n: int) -> np.ndarray:
        """What y[j] - y[label] must exceed for j to win: -1 below the label (ties win), 0 above."""
        return np.where(np.arange(n) < self.label, -1, 0)

    def proved_by_bounds(self, lo, hi):
        lo, hi = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
        best = hi - lo[self.label] - self._margins(len(lo))  # > 0: j might win
        best[self.label] = 0
        return bool(np.all(best <= 0))

    def proved_by_forms(self, forms, xlo, xhi):
        L = self.label
        margins = self._margins(len(forms.Lc))
        return all(
            np.floor(reach(forms, j, L, xlo, xhi)) <= margins[j] for j in range(len(forms.Lc)) if j != L
        )

    def split_weights(self, forms, xlo, xhi):
        L = self.label
        j = max((reach(forms, j, L, xlo, xhi), j) for j in range(len(forms.Lc)) if j != L)[1]
        return np.abs(forms.UA[j] - forms.LA[L])

    def score(self, y):
        y = np.asarray(y, np.int64)
        s = y - y[:, [self.label]] - self._margins(y.shape[1])[None, :]
        s[:, self.label] = np.iinfo(np.int64).min // 2
        return s.max(axis=1)

    def violation(self, y, lo, hi):
        L = self.label
        return any_of(
            compare(">=" if j < L else ">", y[j], int(lo[j]), int(hi[j]), y[L], int(lo[L]), int(hi[L]))
            for j in range(len(y))
            if j != L
        )

    def cp_violation(self, g, y):
        L, margins = self.label, self._margins(len(y))
        return g.any(g.gt(y[j], y[L], int(margins[j])) for j in range(len(y)) if j != L)

    def params(self):
        return {"label": self.label}


def _beats(j: int, c: int) -> int:
    """How much ``y[j] - y[c]`` must exceed for ``j`` to beat ``c``: -1 below ``c`` (ties win), else 0."""
    return -1 if j < c else 0


@register_property("targeted")
class TargetedAttack(Property):
    """A counterexample is an output classified as ``target`` (numpy argmax, ties to the lowest index).

    No counterexample in the box proves that no input there is classified as ``target``.
    """

    def __init__(self, target: int):
        self.label = int(target)

    def proved_by_bounds(self, lo, hi):
        lo, hi = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
        t = self.label
        # some j beats the target everywhere in the box
        return any(lo[j] - hi[t] > _beats(j, t) for j in range(len(lo)) if j != t)

    def proved_by_forms(self, forms, xlo, xhi):
        t = self.label
        # the least y[j] - y[t] can be is -(the most y[t] - y[j] can be)
        return any(
            -np.floor(reach(forms, t, j, xlo, xhi)) > _beats(j, t) for j in range(len(forms.Lc)) if j != t
        )

    def opponent(self, forms: Any, xlo: np.ndarray, xhi: np.ndarray) -> int:
        """The class closest to beating the target everywhere in the box: the least most that
        ``y[target] - y[j]`` can be, by the outputs' affine forms."""
        t = self.label
        return min((reach(forms, t, j, xlo, xhi), j) for j in range(len(forms.Lc)) if j != t)[1]

    def split_weights(self, forms, xlo, xhi):
        return np.abs(forms.UA[self.label] - forms.LA[self.opponent(forms, xlo, xhi)])

    def score(self, y):
        y = np.asarray(y, np.int64)
        t = self.label
        # the target wins iff no j beats it: y[j] - y[t] <= beats(j, t), i.e. y[t] - y[j] + beats + 1 > 0
        s = y[:, [t]] - y + np.array([_beats(j, t) + 1 for j in range(y.shape[1])])[None, :]
        s[:, t] = np.iinfo(np.int64).max // 2
        return s.min(axis=1)

    def violation(self, y, lo, hi):
        t = self.label
        # the target beats every j
        return all_of(
            compare(">" if j < t else ">=", y[t], int(lo[t]), int(hi[t]), y[j], int(lo[j]), int(hi[j]))
            for j in range(len(y))
            if j != t
        )

    def cp_violation(self, g, y):
        t = self.label
        # the target beats j: y[t] - y[j] > -1 - beats(j, t) (strictly above a lower j, ties above)
        return g.all(g.gt(y[t], y[j], -1 - _beats(j, t)) for j in range(len(y)) if j != t)

    def params(self):
        return {"target": self.label}


class _Paired(Property):
    """A property of a product graph's output ``[a_0..a_{m-1}, b_0..b_{m-1}]`` (see :mod:`._product`)."""

    label = -1

    def __init__(self, m: int):
        self.m = int(m)


def weighed_dtype(weight: int, magnitude: int) -> type:
    """int64 where ``weight`` times values of at most ``magnitude`` cannot overflow it (nor their
    difference), else Python ints (``object``)."""
    return object if weight * magnitude >= 2**62 else np.int64


#: a weighted comparison is encoded as steps over one output's values (see
#: :meth:`OutputGap.steps`) when that output takes at most this many values; beyond, as a product
STEP_VALUES = 1 << 12
#: the largest denominator of the small ratio in a weighted comparison's cut for CP-SAT
CUT_DENOMINATOR = 1 << 10


@register_property("gap")
class OutputGap(_Paired):
    """A counterexample has ``|k_a·a_j - k_b·b_j| > threshold`` for some output ``j`` (or for
    ``output`` only). The weights ``(k_a, k_b)`` (positive, default 1) compare outputs on two
    scales exactly: in real units they are the scales over a common denominator, often near 2^52.
    The solvers then never multiply by them: for output codes in small ranges, the comparison is
    a handful of steps with small constants (:meth:`steps`)."""

    def __init__(self, m: int, threshold: int, output: int | None = None, weights: tuple[int, int] = (1, 1)):
        super().__init__(m)
        self.threshold = int(threshold)
        self.output = None if output is None else int(output)
        self.weights = (int(weights[0]), int(weights[1]))
        if min(self.weights) <= 0:
            raise ValueError(f"output gap weights must be positive, got {weights!r}")

    def _outputs(self) -> range | list[int]:
        return range(self.m) if self.output is None else [self.output]

    def _pairs(self):
        """(upper, lower, k_upper, k_lower): a counterexample has ``k_upper·y[upper] -
        k_lower·y[lower] > threshold`` for one."""
        ka, kb = self.weights
        for j in self._outputs():
            yield j, self.m + j, ka, kb
            yield self.m + j, j, kb, ka

    def most(self, forms: Any, u: int, d: int, ku: int, kd: int, xlo: np.ndarray, xhi: np.ndarray) -> float:
        """The most ``ku·y[u] - kd·y[d]`` can be over the box, by the outputs' affine forms; weighted,
        a sound float bound (computed as ``kd·max((ku/kd)·y[u] - y[d])``, widened outward)."""
        if ku == kd == 1:
            return reach(forms, u, d, xlo, xhi)
        r = ku / kd
        v = max_of(r * forms.UA[u] - forms.LA[d], r * forms.Uc[u] - forms.Lc[d], xlo, xhi)
        return kd * (v + 1e-9 * (1.0 + abs(v)))

    def proved_by_bounds(self, lo, hi):
        lo, hi = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
        return all(ku * int(hi[u]) - kd * int(lo[d]) <= self.threshold for u, d, ku, kd in self._pairs())

    def proved_by_forms(self, forms, xlo, xhi):
        return all(np.floor(self.most(forms, *p, xlo, xhi)) <= self.threshold for p in self._pairs())

    def split_weights(self, forms, xlo, xhi):
        u, d, ku, kd = max(self._pairs(), key=lambda p: self.most(forms, *p, xlo, xhi))
        return np.abs((ku / kd) * forms.UA[u] - forms.LA[d])

    def gaps(self, y: np.ndarray) -> np.ndarray:
        """Per row of a product output ``y`` [B, 2m]: the largest ``|k_a·a_j - k_b·b_j|`` over the outputs asked."""
        return self.gap_per_output(y).max(axis=1)

    def gap_per_output(self, y: np.ndarray) -> np.ndarray:
        """``|k_a·a_j - k_b·b_j|`` per row of ``y`` and output asked: int64, or Python ints where
        the weighed outputs could overflow it."""
        ka, kb = self.weights
        y = np.asarray(y, np.int64)
        y = y.astype(weighed_dtype(max(ka, kb), int(np.abs(y).max(initial=0)) + 1))
        j = list(self._outputs())
        return np.abs(ka * y[:, j] - kb * y[:, [self.m + i for i in j]])

    def score(self, y):
        g = self.gaps(np.atleast_2d(y))
        if abs(self.threshold) >= 2**62:
            g = g.astype(object)
        return g - self.threshold

    def steps(self, ku: int, kd: int, ulo: int, uhi: int, dlo: int, dhi: int) -> list[tuple[int, int]] | None:
        """``ku·y[u] - kd·y[d] > threshold`` for ``y[u]`` in [ulo, uhi] and ``y[d]`` in [dlo, dhi]
        as ``or`` of ``y[u] >= v and y[d] <= c`` over the returned ``(v, c)`` (no steps: never).

        It holds iff ``y[d] <= T(y[u])`` with ``T(v) = floor((ku·v - threshold - 1) / kd)``, which
        never falls; one step per value of ``T`` inside [dlo, dhi]. None where ``y[u]`` takes more than
        :data:`STEP_VALUES` values."""
        if uhi - ulo >= STEP_VALUES:
            return None
        out: list[tuple[int, int]] = []
        for v in range(ulo, uhi + 1):
            c = min((ku * v - self.threshold - 1) // kd, dhi)
            if c >= dlo and (not out or c != out[-1][1]):
                out.append((v, c))
        return out

    def violation(self, y, lo, hi):
        from ._bv import Sym, bv, is_sym, width

        t = self.threshold

        def exceeds(u: int, d: int, ku: int, kd: int) -> z3.BoolRef | bool:
            ulo, uhi, dlo, dhi = int(lo[u]), int(hi[u]), int(lo[d]), int(hi[d])
            if ku == kd == 1:
                # y[u] > y[d] + t, with the constant folded into the offset of y[d]
                yd = Sym(y[d].off + t, y[d].term) if is_sym(y[d]) else int(y[d]) + t
                return compare(">", y[u], ulo, uhi, yd, dlo + t, dhi + t)
            steps = self.steps(ku, kd, ulo, uhi, dlo, dhi)
            if steps is not None:
                return any_of(
                    all_of((compare(">=", y[u], ulo, uhi, v, v, v), compare("<=", y[d], dlo, dhi, c, c, c)))
                    for v, c in steps
                )
            # a wide output: the products themselves, in bit-vectors wide enough for every term
            ends = [ku * ulo, ku * uhi, kd * dlo, kd * dhi, t]
            w = width(min(ends) - max(ends), max(ends) - min(ends)) + 1
            return bv(y[u], w) * ku - bv(y[d], w) * kd > t

        return any_of(exceeds(*p) for p in self._pairs())

    def cp_violation(self, g, y):
        def exceeds(u: int, d: int, ku: int, kd: int) -> Any:
            if ku == kd == 1:
                return g.gt(y[u], y[d], self.threshold)
            (ulo, uhi), (dlo, dhi) = g.domain(y[u]), g.domain(y[d])
            steps = self.steps(ku, kd, ulo, uhi, dlo, dhi)
            if steps is None:
                return g.neg(g.le([(ku, y[u]), (-kd, y[d])], self.threshold))
            lit = g.any(g.all((g.neg(g.le([(1, y[u])], v - 1)), g.le([(1, y[d])], c))) for v, c in steps)
            if not isinstance(lit, bool):
                # the steps alone relax to a weak LP; a line with small coefficients p/q near ku/kd,
                # valid on every step's corner (the least p·y[u] - q·y[d] of a step's points), is
                # the same cut as the one linear comparison the factors make too large to state
                r = Fraction(ku, kd).limit_denominator(CUT_DENOMINATOR)
                p, q = r.numerator, r.denominator
                least = min(p * v - q * c for v, c in steps)
                g.model.add(p * y[u] - q * y[d] >= least).only_enforce_if(lit)
            return lit

        return g.any(exceeds(*p) for p in self._pairs())

    def params(self):
        return {"threshold": self.threshold, "output": self.output, "weights": list(self.weights)}


@register_property("argmax-agreement")
class ArgmaxAgreement(_Paired):
    """A counterexample has ``argmax(a) != argmax(b)`` (numpy argmax per half, ties to the lowest index)."""

    def proved_by_bounds(self, lo, hi):
        lo, hi = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
        m = self.m
        for c in range(m):
            # c can be a's argmax unless some j beats it everywhere ...
            if any(lo[j] - hi[c] > _beats(j, c) for j in range(m) if j != c):
                continue
            # ... and then it must stay b's argmax everywhere
            if not LocalRobustness(c).proved_by_bounds(lo[m:], hi[m:]):
                return False
        return True

    def score(self, y):
        y = np.asarray(np.atleast_2d(y), np.int64)
        m = self.m
        a, b = np.argmax(y[:, :m], axis=1), np.argmax(y[:, m:], axis=1)
        out = np.empty(len(y), np.int64)
        for i in range(len(y)):
            # > 0 iff b's argmax beats a's in b, or a's beats b's in a: iff they differ
            out[i] = max(LocalRobustness(int(a[i])).score(y[i : i + 1, m:])[0],
                         LocalRobustness(int(b[i])).score(y[i : i + 1, :m])[0])  # fmt: skip
        return out

    def violation(self, y, lo, hi):
        m = self.m

        def differs(c: int) -> z3.BoolRef | bool:
            """c is a's argmax but not b's."""
            loses_a = LocalRobustness(c).violation(y[:m], lo[:m], hi[:m])  # c is not a's argmax
            if loses_a is True:
                return False
            loses_b = LocalRobustness(c).violation(y[m:], lo[m:], hi[m:])  # c is not b's argmax
            return all_of([True if loses_a is False else z3.Not(loses_a), loses_b])

        return any_of(differs(c) for c in range(m))

    def cp_violation(self, g, y):
        m = self.m
        # c is a's argmax but not b's
        return g.any(g.all([g.neg(LocalRobustness(c).cp_violation(g, y[:m])), LocalRobustness(c).cp_violation(g, y[m:])])
                     for c in range(m))  # fmt: skip
