"""Integer recurrent classifiers unrolled over a fixed sequence length (torch-free).

Covers the explicit-Euler tanh families of ctnn-models — the Lipschitz RNN
(``h ← h + ε(A h + tanh(W h + U x + b))``) and the CT-RNN
(``h ← h + (dt/τ)(tanh(W h + U x + b) − h)``, ``ode_unfolds`` substeps per input
step) — followed by a linear head on the last step's state. Every quantity is an
integer code; one step (and one unfold) is, with ``rd(p, s) = round_div(p, 2**s)``
(round half away from zero via truncating ``Div``)::

    zx  = rd((x_t @ U + bu) * Mu, su)                  # input term, once per input step
    pre = clip(zx + rd((h @ W) * Mw, sw), lo, hi)     # requantized pre-activation code
    th  = TANH[pre - lo]                               # Gather: 2**act_bits-entry table
    h   = clip(h + rd((h @ A) * Ma, sa)                # Lipschitz RNN only
                 − rd(h * Md, sd)                      # CT-RNN only: the leak dt/τ
                 + rd(th * Mt, st), lo, hi)
    ...
    y   = clip(rd((h_T @ Wo + bo) * Mo, so), lo, hi)   # logits codes

The multipliers are per hidden channel (``[units]``), the rounding is applied to
each term separately (so the state update equals the sum of independently rounded
increments), and each partial sum is exact int64 arithmetic. The graph's input
``x`` is **flat** ``[N, T·F]`` (time-major, as ctnn-models stores sequences) in the
input's signed container; step t is ``Slice(x, t·F, (t+1)·F, axis=1)``. The output
``y [N, classes]`` holds logit codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from ._graph import GraphBuilder, IntegerDense
from ._lut import apply_lut, emit_lut_shared
from ._semantics import container_dtype, requantize, round_div
from ._sequence import IntegerSequenceModel, check_accumulators

RECURRENT_FAMILIES = ("lipschitz_rnn", "ctrnn")


def _max_abs_matmul(w: np.ndarray, in_lo: int, in_hi: int, bias: np.ndarray | None = None) -> int:
    """Largest |x @ w (+ bias)| over x with entries in [in_lo, in_hi]."""
    w = np.asarray(w, np.int64)
    pos, neg = np.clip(w, 0, None).sum(0), np.clip(w, None, 0).sum(0)
    b = np.zeros(w.shape[1], np.int64) if bias is None else np.asarray(bias, np.int64)
    hi = pos * in_hi + neg * in_lo + b
    lo = pos * in_lo + neg * in_hi + b
    return int(max(np.abs(hi).max(initial=0), np.abs(lo).max(initial=0)))


@dataclass
class Requant:
    """A per-channel factor ``M / 2**s`` (``M``, ``s``: int64 arrays ``[units]``)."""

    multiplier: np.ndarray
    shift: np.ndarray

    def apply(self, acc: np.ndarray) -> np.ndarray:
        """``round_div(acc * M, 2**s)`` without clipping (int64)."""
        return round_div(np.asarray(acc, np.int64) * self.multiplier.astype(np.int64), self.shift)


@dataclass
class IntegerRecurrent(IntegerSequenceModel):
    """An integer tanh recurrent classifier (Lipschitz RNN or CT-RNN, explicit Euler)."""

    family: str
    steps: int  # T
    in_features: int  # F
    unfolds: int
    in_bits: int
    weight_bits: int
    act_bits: int
    U: np.ndarray  # [F, H] codes
    bu: np.ndarray  # [H] int32, accumulator scale of x @ U (input zero point folded in)
    rq_u: Requant  # x @ U + bu -> pre-activation codes
    W: np.ndarray  # [H, H] codes (row vectors: h @ W)
    rq_w: Requant
    rq_t: Requant  # tanh codes -> state increment codes
    tanh_table: np.ndarray  # [2**act_bits] int64, index pre - lo
    head: IntegerDense
    A: np.ndarray | None = None  # [H, H] codes (Lipschitz RNN)
    rq_a: Requant | None = None
    rq_d: Requant | None = None  # the CT-RNN leak, subtracted
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.family not in RECURRENT_FAMILIES:
            raise ValueError(f"unknown integer recurrent family {self.family!r}; known: {RECURRENT_FAMILIES}")
        if (self.A is None) != (self.rq_a is None):
            raise ValueError("A and rq_a come together")
        if len(self.tanh_table) != 1 << self.act_bits:
            raise ValueError(f"the tanh table needs {1 << self.act_bits} entries, got {len(self.tanh_table)}")
        self.check_overflow()

    @property
    def units(self) -> int:
        return int(self.W.shape[0])

    # --- overflow ---------------------------------------------------------------------
    def check_overflow(self) -> None:
        """Raise :class:`OverflowError` unless every int32 accumulator and int64 product fits."""
        ilo, ihi = self.in_range
        alo, ahi = self.act_range
        tmax = int(np.abs(self.tanh_table).max(initial=0))
        checks = [
            ("x @ U + bu", _max_abs_matmul(self.U, ilo, ihi, self.bu), self.rq_u),
            ("h @ W", _max_abs_matmul(self.W, alo, ahi), self.rq_w),
            ("tanh term", tmax, self.rq_t),
            ("head", _max_abs_matmul(self.head.weight, alo, ahi, self.head.bias), None),
        ]
        if self.A is not None:
            checks.append(("h @ A", _max_abs_matmul(self.A, alo, ahi), self.rq_a))
        if self.rq_d is not None:
            checks.append(("leak", max(-alo, ahi), self.rq_d))
        check_accumulators(
            self.family,
            [(what, bound, *((self.head.multiplier, self.head.shift) if rq is None else (rq.multiplier, rq.shift)))
             for what, bound, rq in checks],
        )  # fmt: skip

    # --- numpy semantics ----------------------------------------------------------------
    def forward(self, codes: np.ndarray, return_states: bool = False):
        """Direct numpy evaluation of the integer semantics (independent of the graph)."""
        x = self._as_steps(codes)
        lo, hi = self.act_range
        h = np.zeros((len(x), self.units), np.int64)
        U, W = self.U.astype(np.int64), self.W.astype(np.int64)
        A = None if self.A is None else self.A.astype(np.int64)
        states = []
        for t in range(self.steps):
            zx = self.rq_u.apply(x[:, t] @ U + self.bu.astype(np.int64))
            for _ in range(self.unfolds):
                pre = np.clip(zx + self.rq_w.apply(h @ W), lo, hi)
                th = apply_lut(pre, self.tanh_table, lo)
                new = h + self.rq_t.apply(th)
                if A is not None:
                    new = new + self.rq_a.apply(h @ A)
                if self.rq_d is not None:
                    new = new - self.rq_d.apply(h)
                h = np.clip(new, lo, hi)
            states.append(h)
        hd = self.head
        y = requantize(h @ hd.weight.astype(np.int64) + hd.bias.astype(np.int64), hd.multiplier, hd.shift,
                       hd.lo, hd.hi)  # fmt: skip
        return (y, np.stack(states, 1)) if return_states else y

    # --- the ONNX graph -------------------------------------------------------------------
    def to_onnx(self, name: str = "ctnn_recurrent") -> onnx.ModelProto:
        """The unrolled integer graph: input ``x [N, T·F]``, output ``y [N, classes]``."""
        self.check_overflow()
        b = GraphBuilder(name)
        ilo, ihi = self.in_range
        alo, ahi = self.act_range
        x_dtype = container_dtype(ilo, ihi)
        h_dtype = container_dtype(alo, ahi)
        T, F = self.steps, self.in_features

        def rd(x64: str, rq: Requant, key: str, prefix: str) -> str:
            return b.round_shift(x64, rq.multiplier, rq.shift, prefix, key)

        U, u_dt = b.weight("U", self.U)
        bu = b.const("bu", self.bu.astype(np.int32))
        W, w_dt = b.weight("W", self.W)
        A, a_dt = b.weight("A", self.A) if self.A is not None else (None, None)
        table = b.const("tanh/table", self.tanh_table.astype(np.int64))
        lo_c, hi_c = b.scalar(alo), b.scalar(ahi)
        axes1 = b.const("axes1", np.array([1], np.int64))

        h: str | None = None  # int8/int16 state codes; None = all zeros
        for t in range(T):
            p = f"t{t}"
            xt = b.op("Slice", ["x", b.const(f"{p}/start", np.array([t * F], np.int64)),
                                b.const(f"{p}/end", np.array([(t + 1) * F], np.int64)), axes1], f"{p}/x")  # fmt: skip
            accx = b.op("Add", [b.matmul(xt, x_dtype, U, u_dt, f"{p}/xU"), bu], f"{p}/accx")
            zx = rd(b.cast(accx, np.int64, f"{p}/accx64"), self.rq_u, "rq_u", f"{p}/zx")
            for k in range(self.unfolds):
                q = f"{p}u{k}"
                if h is None:
                    pre_sum = zx
                    h64 = None
                else:
                    h64 = b.cast(h, np.int64, f"{q}/h64")
                    hw = b.cast(b.matmul(h, h_dtype, W, w_dt, f"{q}/hW"), np.int64, f"{q}/hW64")
                    pre_sum = b.op("Add", [zx, rd(hw, self.rq_w, "rq_w", f"{q}/zh")], f"{q}/presum")
                pre = b.op("Clip", [pre_sum, lo_c, hi_c], f"{q}/pre")
                th = emit_lut_shared(b, pre, table, alo, f"{q}/tanh")
                new = rd(th, self.rq_t, "rq_t", f"{q}/dt")
                if h64 is not None:
                    new = b.op("Add", [h64, new], f"{q}/plus_h")
                    if A is not None:
                        ha = b.cast(b.matmul(h, h_dtype, A, a_dt, f"{q}/hA"), np.int64, f"{q}/hA64")
                        new = b.op("Add", [new, rd(ha, self.rq_a, "rq_a", f"{q}/da")], f"{q}/plus_a")
                    if self.rq_d is not None:
                        new = b.op("Sub", [new, rd(h64, self.rq_d, "rq_d", f"{q}/leak")], f"{q}/minus_leak")
                h = b.cast(b.op("Clip", [new, lo_c, hi_c], f"{q}/hclip"), h_dtype, f"{q}/h")
        assert h is not None
        hd = self.head
        Wo, wo_dt = b.weight("head/W", hd.weight)
        acc = b.op("Add", [b.matmul(h, h_dtype, Wo, wo_dt, "head/matmul"), b.const("head/b", hd.bias.astype(np.int32))],
                   "head/acc")  # fmt: skip
        r = b.requant(acc, hd.multiplier, hd.shift, hd.lo, hd.hi, "head/rq")
        y_dtype = container_dtype(hd.lo, hd.hi)
        y = b.op("Identity", [b.cast(r, y_dtype, "head/out")], "y")
        return b.model([("x", x_dtype, ["N", T * F])], [(y, y_dtype, ["N", int(hd.weight.shape[1])])],
                       doc=f"ctnn {self.family}: T={T}, F={F}, unfolds={self.unfolds}, flat time-major input")  # fmt: skip
