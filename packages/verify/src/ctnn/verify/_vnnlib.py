"""VNNLIB (the VNN-COMP property format): the box-input / linear-output subset.

A VNNLIB file declares the network's inputs ``X_i`` and outputs ``Y_j`` as reals and
asserts what a *counterexample* looks like; the property holds iff the assertions are
unsatisfiable. The subset read here:

* ``(declare-const X_i Real)`` / ``(declare-const Y_j Real)``;
* ``(assert (<= X_i c))``, ``(assert (>= X_i c))`` (either side): one lower and one upper
  bound per input, a box;
* assertions over the outputs: linear (in)equalities ``(<= t t)``, ``(>= t t)``, ``(< t t)``,
  ``(> t t)`` of terms built from ``Y_j``, numbers, ``+``, ``-`` and ``*`` by a number,
  combined by ``and`` and ``or`` (VNN-COMP's ``(or (and ...) (and ...))``).

Anything else is an error naming the feature and its line. Numbers are exact rationals;
the sidecar's scales map the real box to input codes and the output constraints to exact
integer constraints on output codes (``Y_j = scale * (code_j - zero_point)``); with no
sidecar (or ``units="codes"``) X and Y are codes themselves.

Input rounding (``rounding``): ``"quantize"`` (default) takes the codes that real inputs in
the box are quantized to (the sidecar's own round-half-away-from-zero and clip of each
bound; the quantizer is monotone, so the endpoints suffice): the verdict then covers every
real input in the box as the integer network sees it. ``"inward"`` takes only the codes
whose dequantized value lies in the box (``ceil`` of the lower, ``floor`` of the upper).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import z3

from ._bv import bv, is_sym, scaled, width
from ._errors import VerifyError, check_timeout
from ._properties import Property, register_property

ROUNDINGS = ("quantize", "inward")
_CMP = ("<=", ">=", "<", ">")


class VnnlibError(VerifyError):
    """A VNNLIB file outside the supported subset, or one that does not fit the network."""


# -- reading -------------------------------------------------------------------------------------
@dataclass
class _Tok:
    text: str
    line: int


def _tokens(text: str) -> list[_Tok]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split(";", 1)[0]
        for t in re.findall(r"\(|\)|[^\s()]+", line):
            out.append(_Tok(t, n))
    return out


def _sexprs(toks: list[_Tok], src: str) -> list[Any]:
    """Nested lists of tokens; each list remembers its opening line as ``(line, [items])``."""
    stack: list[tuple[int, list]] = []
    top: list[Any] = []
    for t in toks:
        if t.text == "(":
            stack.append((t.line, []))
        elif t.text == ")":
            if not stack:
                raise VnnlibError(f"{src}:{t.line}: unbalanced ')'")
            line, items = stack.pop()
            node = (line, items)
            (stack[-1][1] if stack else top).append(node)
        else:
            (stack[-1][1] if stack else top).append(t)
    if stack:
        raise VnnlibError(f"{src}:{stack[-1][0]}: unclosed '('")
    return top


def _num(t: _Tok) -> Fraction | None:
    try:
        return Fraction(t.text)
    except ValueError:
        return None


Linear = tuple[dict[int, Fraction], Fraction]  # sum(coef[j] * Y_j) + const


@dataclass
class VnnlibSpec:
    """A parsed VNNLIB property: the real input box and the counterexample condition on outputs.

    ``condition`` is a disjunction (list) of conjunctions (lists) of atoms ``(coefs, const, op)``
    meaning ``sum(coefs[j] * Y_j) + const op 0`` with ``op`` one of ``<=``, ``<``.
    """

    n_inputs: int
    n_outputs: int
    lo: list[Fraction]
    hi: list[Fraction]
    condition: list[list[tuple[dict[int, Fraction], Fraction, str]]]
    source: str = "<vnnlib>"


def read_vnnlib(spec: str | os.PathLike[str]) -> VnnlibSpec:
    """Parse a VNNLIB file (a path, or the text itself if it contains a ``(``)."""
    if isinstance(spec, str) and "(" in spec:
        text, src = spec, "<vnnlib>"
    else:
        p = Path(spec)
        if not p.is_file():
            raise VnnlibError(f"{p}: no such VNNLIB file")
        text, src = p.read_text(), str(p)
    xs: dict[int, int] = {}
    ys: dict[int, int] = {}
    lo: dict[int, Fraction] = {}
    hi: dict[int, Fraction] = {}
    disj: list[list] = [[]]  # the conjunction of all output assertions, as a DNF

    def err(line: int, what: str) -> VnnlibError:
        return VnnlibError(f"{src}:{line}: {what} (outside the supported VNNLIB subset: box inputs, "
                           "linear output constraints with and/or)")  # fmt: skip

    def var(t: Any) -> tuple[str, int] | None:
        if isinstance(t, _Tok):
            m = re.fullmatch(r"([XY])_(\d+)", t.text)
            if m:
                return m.group(1), int(m.group(2))
        return None

    def linear(t: Any, line: int) -> tuple[dict[int, Fraction], Fraction, bool]:
        """(coefs over Y, const, mentions X?) of a term."""
        if isinstance(t, _Tok):
            v = var(t)
            if v is not None:
                kind, i = v
                if kind == "X":
                    if i not in xs:
                        raise err(t.line, f"undeclared input {t.text}")
                    return {}, Fraction(0), True
                if i not in ys:
                    raise err(t.line, f"undeclared output {t.text}")
                return {i: Fraction(1)}, Fraction(0), False
            c = _num(t)
            if c is None:
                raise err(t.line, f"unknown symbol {t.text!r}")
            return {}, c, False
        line, items = t
        if not items or not isinstance(items[0], _Tok):
            raise err(line, "an empty or nested application")
        op, args = items[0].text, items[1:]
        parts = [linear(a, line) for a in args]
        if any(p[2] for p in parts):
            return {}, Fraction(0), True
        if op in ("+", "-") and parts:
            sign = (
                [1] + [(-1 if op == "-" else 1)] * (len(parts) - 1)
                if len(parts) > 1
                else [-1 if op == "-" else 1]
            )
            coefs: dict[int, Fraction] = {}
            const = Fraction(0)
            for s, (c, k, _) in zip(sign, parts):
                for j, a in c.items():
                    coefs[j] = coefs.get(j, Fraction(0)) + s * a
                const += s * k
            return coefs, const, False
        if op == "*" and len(parts) == 2:
            (c1, k1, _), (c2, k2, _) = parts
            if c1 and c2:
                raise err(line, "a product of two outputs (not linear)")
            if c2:
                (c1, k1), (c2, k2) = (c2, k2), (c1, k1)
            return {j: a * k2 for j, a in c1.items()}, k1 * k2, False
        raise err(line, f"operator {op!r} with {len(args)} argument(s)")

    def atom(t: Any) -> list[list]:
        """A formula over outputs as a DNF: list of conjunctions of atoms."""
        if isinstance(t, _Tok):
            raise err(t.line, f"a bare symbol {t.text!r} as a formula")
        line, items = t
        if not items or not isinstance(items[0], _Tok):
            raise err(line, "an empty formula")
        op = items[0].text
        if op == "and":
            acc: list[list] = [[]]
            for a in items[1:]:
                acc = [c + d for c in acc for d in atom(a)]
            return acc
        if op == "or":
            return [c for a in items[1:] for c in atom(a)]
        if op in _CMP and len(items) == 3:
            (ca, ka, xa), (cb, kb, xb) = linear(items[1], line), linear(items[2], line)
            if xa or xb:
                raise err(line, "an input constraint that is not a bound of one input by a number, "
                                "or inputs and outputs mixed")  # fmt: skip
            # a op b  ->  (a - b) op 0, flipped to <= / <
            coefs = {j: ca.get(j, 0) - cb.get(j, 0) for j in set(ca) | set(cb)}
            const = ka - kb
            if op in (">=", ">"):
                coefs, const = {j: -a for j, a in coefs.items()}, -const
            return [
                [({j: a for j, a in coefs.items() if a != 0}, const, "<=" if op in ("<=", ">=") else "<")]
            ]
        raise err(line, f"{op!r}")

    for node in _sexprs(_tokens(text), src):
        if isinstance(node, _Tok):
            raise err(node.line, f"a bare symbol {node.text!r} at top level")
        line, items = node
        head = items[0].text if items and isinstance(items[0], _Tok) else None
        if head == "declare-const":
            v = var(items[1]) if len(items) == 3 else None
            if v is None or not isinstance(items[2], _Tok) or items[2].text != "Real":
                raise err(
                    line, "a declaration other than (declare-const X_i Real) / (declare-const Y_j Real)"
                )
            (xs if v[0] == "X" else ys)[v[1]] = line
            continue
        if head != "assert" or len(items) != 2:
            raise err(line, f"the command {head or '?'!r}" if head else "a malformed command")
        body = items[1]
        # an input bound: (<= X_i c), (>= X_i c), (<= c X_i), (>= c X_i)
        if isinstance(body, tuple) and len(body[1]) == 3 and isinstance(body[1][0], _Tok) \
                and body[1][0].text in ("<=", ">=", "<", ">"):  # fmt: skip
            a, b = body[1][1], body[1][2]
            va, vb = var(a), var(b)
            xv = (va, b, False) if va and va[0] == "X" else (vb, a, True) if vb and vb[0] == "X" else None
            if xv is not None:
                (kind, i), other, flipped = xv
                c = _num(other) if isinstance(other, _Tok) else None
                if c is None:
                    raise err(line, "an input constraint that is not a bound of one input by a number")
                op = body[1][0].text
                if op in ("<", ">"):
                    raise err(line, f"a strict input bound {op!r} (use <= / >=)")
                if i not in xs:
                    raise err(line, f"undeclared input X_{i}")
                upper = (op == "<=") != flipped
                if upper:
                    hi[i] = min(hi.get(i, c), c)
                else:
                    lo[i] = max(lo.get(i, c), c)
                continue
        disj = [c + d for c in disj for d in atom(body)]
    n_in, n_out = len(xs), len(ys)
    for kind, d in (("X", xs), ("Y", ys)):
        if sorted(d) != list(range(len(d))):
            missing = sorted(set(range(max(d) + 1)) - set(d)) if d else [0]
            raise VnnlibError(
                f"{src}: {kind}_{missing[0]} is not declared ({kind} must be {kind}_0..{kind}_n)"
            )
    for i in range(n_in):
        if i not in lo or i not in hi:
            raise VnnlibError(f"{src}: input X_{i} (declared on line {xs[i]}) needs both a lower and an upper "
                              "bound (the subset reads box inputs)")  # fmt: skip
        if lo[i] > hi[i]:
            raise VnnlibError(f"{src}: input X_{i} has an empty range [{lo[i]}, {hi[i]}]")
    if disj == [[]]:
        raise VnnlibError(f"{src}: no assertion on the outputs (nothing to verify)")
    return VnnlibSpec(n_in, n_out, [lo[i] for i in range(n_in)], [hi[i] for i in range(n_in)], disj, src)


# -- mapping to codes ------------------------------------------------------------------------------
def _q_round(v: Fraction) -> int:
    """Round half away from zero, exactly (the sidecar's quantizer)."""
    a = abs(v)
    r = math.floor(a + Fraction(1, 2))
    return r if v >= 0 else -r


def input_codes(spec: VnnlibSpec, scale: float, zero: int, code_lo: int, code_hi: int,
                rounding: str = "quantize") -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The real input box -> a box of input codes ``[lo, hi]`` (see the module doc for ``rounding``)."""
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    s = Fraction(scale)
    lo, hi = [], []
    for i, (a, b) in enumerate(zip(spec.lo, spec.hi)):
        if rounding == "quantize":
            ql, qh = _q_round(a / s) + zero, _q_round(b / s) + zero
        else:
            ql, qh = math.ceil(a / s) + zero, math.floor(b / s) + zero
        ql, qh = max(ql, code_lo), min(qh, code_hi)
        if ql > qh:
            raise VnnlibError(f"{spec.source}: input X_{i} in [{float(a)}, {float(b)}] holds no input code "
                              f"(scale {scale}, zero point {zero}, codes [{code_lo}, {code_hi}], rounding "
                              f"{rounding!r})")  # fmt: skip
        lo.append(ql)
        hi.append(qh)
    return np.array(lo, np.int64), np.array(hi, np.int64)


def integer_condition(spec: VnnlibSpec, scale: float, zero: int) -> list[list[tuple[np.ndarray, int]]]:
    """The output condition on codes: DNF of atoms ``A·code <= B`` with integer ``A``, ``B`` (exact)."""
    s = Fraction(scale)
    out = []
    for conj in spec.condition:
        atoms = []
        for coefs, const, op in conj:
            # sum a_j * s * (q_j - z) + const (op) 0   <=>   sum (a_j s) q_j (op) z s sum a_j - const
            rat = {j: a * s for j, a in coefs.items()}
            rhs = zero * s * sum(coefs.values(), Fraction(0)) - const
            den = math.lcm(*(v.denominator for v in [*rat.values(), rhs]))
            A = np.zeros(spec.n_outputs, dtype=object)
            for j, v in rat.items():
                A[j] = int(v * den)
            B = rhs * den
            # integer left side: <= B  <=>  <= floor(B);  < B  <=>  <= ceil(B) - 1
            Bi = math.floor(B) if op == "<=" else math.ceil(B) - 1
            atoms.append((A.astype(np.int64) if all(abs(int(v)) < 2**62 for v in A) else A, int(Bi)))
        out.append(atoms)
    return out


# -- the property --------------------------------------------------------------------------------
@register_property("vnnlib")
class LinearCondition(Property):
    """A counterexample is an output meeting one of several conjunctions of ``A·y <= B`` (integers)."""

    def __init__(self, dnf: list[list[tuple[np.ndarray, int]]], source: str = ""):
        self.dnf = dnf
        self.source = source

    @staticmethod
    def _range(A: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[int, int]:
        A = [int(a) for a in A]
        mn = sum(a * (int(p) if a > 0 else int(q)) for a, p, q in zip(A, lo, hi))
        mx = sum(a * (int(q) if a > 0 else int(p)) for a, p, q in zip(A, lo, hi))
        return mn, mx

    def proved_by_bounds(self, lo, hi):
        return all(any(self._range(A, lo, hi)[0] > B for A, B in conj) for conj in self.dnf)

    def proved_by_forms(self, forms, xlo, xhi):
        from ._linear import max_of

        for conj in self.dnf:
            ok = False
            for A, B in conj:
                a = np.asarray(A, float)
                pos, neg = np.maximum(a, 0), np.minimum(a, 0)
                # the least A·y can be: lower forms where a > 0, upper where a < 0
                LA = pos @ forms.LA + neg @ forms.UA
                Lc = float(pos @ forms.Lc + neg @ forms.Uc)
                if -max_of(-LA, -Lc, xlo, xhi) > B:
                    ok = True
                    break
            if not ok:
                return False
        return True

    def split_weights(self, forms, xlo, xhi):
        A = np.asarray(self.dnf[0][0][0], float)
        return np.abs(np.maximum(A, 0) @ forms.LA + np.minimum(A, 0) @ forms.UA)

    def score(self, y):
        y = np.asarray(y, np.int64)
        best = np.full(len(y), np.iinfo(np.int64).min // 2)
        for conj in self.dnf:
            m = np.full(len(y), np.iinfo(np.int64).max // 2)
            for A, B in conj:
                m = np.minimum(m, B - y @ np.asarray(A, np.int64) + 1)
            best = np.maximum(best, m)
        return best

    def violation(self, y, lo, hi):
        disj = []
        for conj in self.dnf:
            atoms = []
            for A, B in conj:
                mn, mx = self._range(A, lo, hi)
                if mn > B:
                    atoms = None
                    break
                if mx <= B:
                    continue
                w = width(min(mn, B), max(mx, B)) + 1
                terms = [scaled(bv(e, w), int(a)) if is_sym(e) else z3.BitVecVal(int(a) * int(e), w)
                         for a, e in zip(A, y) if int(a) != 0]  # fmt: skip
                while len(terms) > 1:  # a balanced adder tree
                    terms = [a + b for a, b in zip(terms[::2], terms[1::2])] + (
                        [terms[-1]] if len(terms) % 2 else []
                    )
                atoms.append(terms[0] <= z3.BitVecVal(B, w))
            if atoms is None:
                continue
            if not atoms:
                return True
            disj.append(atoms[0] if len(atoms) == 1 else z3.And(atoms))
        if not disj:
            return False
        return disj[0] if len(disj) == 1 else z3.Or(disj)

    def cp_violation(self, g, y):
        return g.any(g.all(g.le(zip(A, y), B) for A, B in conj) for conj in self.dnf)

    def params(self):
        return {"source": self.source, "disjuncts": len(self.dnf)}


# -- the query ------------------------------------------------------------------------------------
def _scales(net: Any, units: str) -> tuple[tuple[float, int], tuple[float, int]]:
    """((input scale, zero point), (output scale, zero point)): the sidecar's, or codes (1, 0)."""
    if units not in ("real", "codes"):
        raise ValueError(f"units must be 'real' or 'codes', got {units!r}")
    if units == "codes":
        return (1.0, 0), (1.0, 0)
    from ctnn.quant import read_sidecar, sidecar_path

    if net.source == "<model>" or not sidecar_path(net.source).is_file():
        raise VnnlibError(f"{net.source}: VNNLIB bounds are real numbers and need the model's sidecar "
                          "(its input/output scales); pass units='codes' to read X and Y as codes")  # fmt: skip
    sc = read_sidecar(Path(net.source))
    return (float(sc.input.scale), int(sc.input.zero_point)), (
        float(sc.output.scale),
        int(sc.output.zero_point),
    )


def vnnlib_query(model: Any, spec: Any, *, units: str = "real", rounding: str = "quantize",
                 input_range: tuple[int, int] | None = None) -> Any:  # fmt: skip
    """The VNNLIB property ``spec`` on ``model`` as a query (input box in codes, integer condition)."""
    from ._network import as_network
    from ._verify import _Query

    net = as_network(model, input_range)
    s = spec if isinstance(spec, VnnlibSpec) else read_vnnlib(spec)
    if s.n_inputs != net.n_features:
        raise VnnlibError(
            f"{s.source}: declares {s.n_inputs} inputs X_i but {net.source} takes {net.n_features}"
        )
    (si, zi), (so, zo) = _scales(net, units)
    lo, hi = input_codes(s, si, zi, *net.input_range, rounding=rounding)
    x0 = (lo + hi) // 2
    q = _Query(net, LinearCondition([], s.source), x0, lo, hi)
    if s.n_outputs != len(q.y0):
        raise VnnlibError(f"{s.source}: declares {s.n_outputs} outputs Y_j but {net.source} has {len(q.y0)}")
    q.prop = LinearCondition(integer_condition(s, so, zo), s.source)
    return q


def verify_vnnlib(
    model: Any,
    spec: str | os.PathLike[str],
    timeout_s: float = 60.0,
    *,
    units: str = "real",
    rounding: str = "quantize",
    input_range: tuple[int, int] | None = None,
    encoding: str = "optimized",
    solver: str = "auto",
    attack: bool = True,
    interval: bool = True,
    seed: int = 0,
) -> Any:
    """Decide a VNNLIB property on an integer graph: ``"robust"`` if no input in the box meets the
    asserted output condition (VNN-COMP's *unsat*: the property holds), ``"vulnerable"`` with a
    replayed counterexample (*sat*), or ``"unknown"`` on timeout.

    ``units="real"`` maps X and Y through the sidecar's scales (``rounding`` says how a real input
    bound becomes a code: see the module doc); ``units="codes"`` reads them as codes. ``attack``
    and ``interval`` switch those stages off (then the solver decides), as in
    :func:`~ctnn.verify.verify_robustness`.

    >>> from ctnn.quant import random_integer_mlp
    >>> from ctnn.verify import verify_vnnlib
    >>> m = random_integer_mlp([2, 3, 2], weight_bits=4, act_bits=4, in_bits=4, seed=0).to_onnx()
    >>> prop = '''(declare-const X_0 Real)(declare-const X_1 Real)(declare-const Y_0 Real)
    ... (declare-const Y_1 Real)(assert (>= X_0 -1))(assert (<= X_0 1))(assert (>= X_1 0))
    ... (assert (<= X_1 2))(assert (> Y_0 100))'''
    >>> verify_vnnlib(m, prop, units="codes", input_range=(-8, 7)).verdict
    'robust'
    """
    import time

    from ._verify import _decide

    t0 = time.perf_counter()
    timeout_s = check_timeout(timeout_s)
    q = vnnlib_query(model, spec, units=units, rounding=rounding, input_range=input_range)
    return _decide(q, eps=0, timeout_s=timeout_s, attack=attack, interval=interval, encoding=encoding, seed=seed,
                   t0=t0, solver=solver)  # fmt: skip
