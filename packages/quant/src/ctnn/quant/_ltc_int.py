"""The integer LTC (fused semi-implicit step), unrolled over T × ode_unfolds (torch-free).

Float step (Hasani et al.), per unfold, for every neuron i::

    v_i ← (cm_t_i v_i + cnum_i + Σ_j w_ji σ(σ_ji (v_j − μ_ji)) E_ji)
          / (cm_t_i + cden_i + Σ_j w_ji σ(σ_ji (v_j − μ_ji)) + ε)

with the sensory terms ``cnum``/``cden`` (same form over the inputs x_k, plus
``gleak·vleak`` / ``gleak``) constant during an input step.

Integer form. Every synapse's conductance term is a lookup table over the source's
code (the state's ``act_bits`` codes for recurrent synapses, the input's ``in_bits``
codes for sensory ones): ``TN[j,i,q] = round(w_ji σ(σ_ji (s_v q − μ_ji)) E_ji / s_num)``
and ``TD[j,i,q] = round(w_ji σ(…) / s_den)`` — the sigmoid LUT fused with its synapse
weight, so each term is rounded once. The tables are stored flat and indexed with
``Gather(T, (j·H + i)·2**b + q − lo)``; ``ReduceSum`` over the sources gives the sums.
Then, all in int64::

    num = CN ⊙ v + Σ_j TN[j, i, v_j] + Σ_k SN[k, i, x_k] + GN       (scale s_num; CN_i = round(cm_t_i s_v / s_num))
    den = CD      + Σ_j TD[j, i, v_j] + Σ_k SD[k, i, x_k]            (scale s_den; CD_i = round((cm_t_i + gleak_i + ε) / s_den) ≥ 1)
    P   = num · M ;  Q = den · 2**s                                   (M / 2**s ≈ s_num / (s_den s_v))
    v   = clip(Div(Where(Less(P, 0), 2P − Q, 2P + Q), 2Q), lo, hi)

Because every TD/SD entry is ≥ 0 and CD ≥ 1, the denominator is positive, and the
truncating ``Div`` of the pre-scaled numerator ``2P ± Q`` by ``2Q`` is exactly
``round_half_away_from_zero(P / Q)`` — the dialect's one rounding rule, for a
rational instead of a power of two. The logits are a dense layer on the first
``motor`` state codes (the output mapping folded into it). Input ``x``: flat
``[N, T·F]`` as for the other recurrent families.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from ._graph import GraphBuilder, IntegerDense
from ._program import (
    check_program,
    dense,
    hold_state,
    overflow_checks_on,
    pad_name,
    program_onnx,
    run_numpy,
    store,
)
from ._semantics import container_dtype, requantize, trunc_div
from ._sequence import INT32_MAX, INT64_SAFE, IntegerSequenceModel

MAX_TABLE_ENTRIES = 1 << 24
#: ``semi_implicit``: the fused step below; ``explicit_euler`` / ``rk4``: ``v + dt/cm·(num − den·v)`` per stage,
#: written as an integer program (``rd(num·Mn) − rd(den·v·Md)``, one rounding per term) on the same tables.
LTC_SOLVERS = ("semi_implicit", "explicit_euler", "rk4")


def ltc_round_div(num: np.ndarray, den: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """``round_half_away(num · M / (den · 2**shift))`` for ``den > 0`` via one truncating division."""
    p = np.asarray(num, np.int64) * np.int64(multiplier)
    q = np.asarray(den, np.int64) << np.int64(shift)
    return trunc_div(np.where(p < 0, 2 * p - q, 2 * p + q), 2 * q)


@dataclass
class IntegerLTC(IntegerSequenceModel):
    """An integer LTC classifier (fused semi-implicit solver, or explicit Euler / RK4)."""

    steps: int
    in_features: int
    unfolds: int
    in_bits: int
    weight_bits: int
    act_bits: int
    rec_num: np.ndarray  # [H, H, 2**act_bits] int64 (source j, target i, code - lo)
    rec_den: np.ndarray  # [H, H, 2**act_bits] int64, >= 0
    sen_num: np.ndarray  # [F, H, 2**in_bits] int64
    sen_den: np.ndarray  # [F, H, 2**in_bits] int64, >= 0
    cn: np.ndarray  # [H] int64: cm_t in the numerator's scale per state code
    gn: np.ndarray  # [H] int64: gleak·vleak
    cd: np.ndarray  # [H] int64 >= 1: cm_t + gleak + eps
    multiplier: int
    shift: int
    motor: int
    head: IntegerDense
    family: str = "ltc"
    meta: dict = field(default_factory=dict)
    solver: str = "semi_implicit"
    gd: np.ndarray | None = None  # explicit solvers: [H] int64, gleak in the denominator's scale
    rq_explicit: dict = field(default_factory=dict)  # "num_dt", "den_dt", "num_half", ... (explicit solvers)
    pad_code: int | None = None  # variable-length input: a step whose first code is this is padding

    def __post_init__(self) -> None:
        if self.solver not in LTC_SOLVERS:
            raise ValueError(f"unknown integer LTC solver {self.solver!r}; known: {LTC_SOLVERS}")
        if self.solver != "semi_implicit" and self.gd is None:
            raise ValueError(f"the {self.solver} LTC needs gd (gleak in the denominator's scale)")
        if self.rec_den.min(initial=0) < 0 or self.sen_den.min(initial=0) < 0 or self.cd.min(initial=1) < 1:
            raise ValueError("the LTC denominator tables must be non-negative and its constant positive")
        self.check_overflow()

    @property
    def units(self) -> int:
        return int(self.cn.shape[0])

    def bounds(self) -> tuple[int, int]:
        """Worst-case |num| and den over all codes."""
        alo, ahi = self.act_range
        num = (np.abs(self.cn) * max(-alo, ahi) + np.abs(self.rec_num).max(axis=2).sum(0)
               + np.abs(self.sen_num).max(axis=2).sum(0) + np.abs(self.gn))  # fmt: skip
        den = self.cd + self.rec_den.max(axis=2).sum(0) + self.sen_den.max(axis=2).sum(0)
        return int(num.max()), int(den.max())

    def head_bound(self) -> int:
        """Worst-case |motor @ W + b| of the head (above int32 the graph accumulates in int64)."""
        alo, ahi = self.act_range
        w = self.head.weight.astype(np.int64)
        return int((np.abs(w).sum(0) * max(-alo, ahi) + np.abs(self.head.bias)).max())

    # --- the explicit solvers, as an integer program -------------------------------------
    def program(self, ops):
        """Explicit Euler / RK4 on the synapse tables: ``v ← clip(v + rd(num·Mn) − rd(den·v·Md))`` per stage."""
        lo, hi = self.act_range
        ilo, _ = self.in_range
        H = self.units
        v = ops.zeros(H)

        def terms(u, snum, sden):
            num = ops.add(ops.add_const(ops.gather_sum(u, self.rec_num, lo, "rec_num"), self.gn, "gn"), snum)
            den = ops.add(ops.add_const(ops.gather_sum(u, self.rec_den, lo, "rec_den"), self.gd, "gd"), sden)
            return num, ops.mul(den, u)

        def step(u, num, dv, c, name=None):
            inc = ops.sub(ops.rd(num, self.rq_explicit[f"num_{c}"], f"rq_num_{c}"),
                          ops.rd(dv, self.rq_explicit[f"den_{c}"], f"rq_den_{c}"))  # fmt: skip
            return store(ops, ops.add(u, inc), lo, hi, name)

        for t in range(self.steps):
            v_prev = v
            xt = ops.step_input(t)
            snum = ops.gather_sum(xt, self.sen_num, ilo, "sen_num")
            sden = ops.gather_sum(xt, self.sen_den, ilo, "sen_den")
            for k in range(self.unfolds):
                name = f"t{t}u{k}/v"  # as the fused graph names it (QAT reads it)
                if k == self.unfolds - 1:
                    name = pad_name(self, name)
                n1, d1 = terms(v, snum, sden)
                if self.solver == "explicit_euler":
                    v = step(v, n1, d1, "dt", name)
                    continue
                n2, d2 = terms(step(v, n1, d1, "half"), snum, sden)
                n3, d3 = terms(step(v, n2, d2, "half"), snum, sden)
                n4, d4 = terms(step(v, n3, d3, "dt"), snum, sden)
                num = ops.add(ops.add(n1, n4), ops.add(ops.add(n2, n2), ops.add(n3, n3)))
                dv = ops.add(ops.add(d1, d4), ops.add(ops.add(d2, d2), ops.add(d3, d3)))
                v = step(v, num, dv, "sixth", name)
            v = hold_state(self, ops, t, v_prev, v, lo, hi, f"t{t}u{self.unfolds - 1}/v")
        motor = ops.state(ops.cols(v, 0, self.motor), lo, hi)
        return dense(ops, motor, self.head, "head")

    def check_overflow(self) -> None:
        """Raise :class:`OverflowError` unless ``2·num·M + den·2**s`` and the head fit their types."""
        if not overflow_checks_on():
            return
        if self.solver != "semi_implicit":
            lo, hi = self.in_range
            check_program(self.program, "ltc", lo, hi, self.in_features)
            return
        num, den = self.bounds()
        if 2 * num * self.multiplier + 2 * (den << self.shift) >= INT64_SAFE:
            raise OverflowError(
                f"ltc: the fused step's numerator/denominator can overflow int64 ({num}, {den})"
            )
        acc = self.head_bound()
        if acc * int(np.max(self.head.multiplier)) + (1 << int(np.max(self.head.shift))) >= INT64_SAFE:
            raise OverflowError(f"ltc: the head accumulator ({acc}) times its multiplier overflows int64")
        for t in (self.rec_num, self.sen_num):
            if t.size > MAX_TABLE_ENTRIES:
                raise ValueError(f"ltc: a synapse table would hold {t.size} entries (> {MAX_TABLE_ENTRIES})")

    # --- numpy semantics -------------------------------------------------------------
    def forward(self, codes: np.ndarray, return_states: bool = False):
        """Direct numpy evaluation of the integer semantics (independent of the graph)."""
        x = self._as_steps(codes)
        if self.solver != "semi_implicit":
            if return_states:
                raise ValueError("return_states is only available for the fused semi-implicit LTC")
            return run_numpy(self.program, x)
        ilo, _ = self.in_range
        alo, ahi = self.act_range
        H, F = self.units, self.in_features
        v = np.zeros((len(x), H), np.int64)
        fi, hi_ = np.arange(F)[:, None], np.arange(H)[None, :]
        jj, ii = np.arange(H)[:, None], np.arange(H)[None, :]
        states = []
        for t in range(self.steps):
            v_prev = v
            xi = x[:, t][:, :, None] - ilo  # [N, F, 1]
            snum = self.sen_num[fi, hi_, xi].sum(1)
            sden = self.sen_den[fi, hi_, xi].sum(1)
            for _ in range(self.unfolds):
                vi = v[:, :, None] - alo  # [N, H(src), 1]
                num = self.cn * v + self.rec_num[jj, ii, vi].sum(1) + snum + self.gn
                den = self.cd + self.rec_den[jj, ii, vi].sum(1) + sden
                v = np.clip(ltc_round_div(num, den, self.multiplier, self.shift), alo, ahi)
            if self.pad_code is not None:  # a padded step leaves the state as it was
                v = np.where((x[:, t, 0] != self.pad_code)[:, None], v, v_prev)
            states.append(v)
        hd = self.head
        y = requantize(v[:, : self.motor] @ hd.weight.astype(np.int64) + hd.bias.astype(np.int64),
                       hd.multiplier, hd.shift, hd.lo, hd.hi)  # fmt: skip
        return (y, np.stack(states, 1)) if return_states else y

    # --- the ONNX graph ----------------------------------------------------------------
    def to_onnx(self, name: str = "ctnn_ltc") -> onnx.ModelProto:
        """The unrolled integer graph: input ``x [N, T·F]``, output ``y [N, classes]``."""
        if self.solver != "semi_implicit":
            ilo, ihi = self.in_range
            return program_onnx(self.program, name, "ltc", ilo, ihi, self.steps, self.in_features, self.head.lo,
                                self.head.hi, int(self.head.weight.shape[1]),
                                doc=f"ctnn ltc ({self.solver}): T={self.steps}, F={self.in_features}")  # fmt: skip
        self.check_overflow()
        b = GraphBuilder(name)
        ilo, ihi = self.in_range
        alo, ahi = self.act_range
        x_dtype, v_dtype = container_dtype(ilo, ihi), container_dtype(alo, ahi)
        T, F, H = self.steps, self.in_features, self.units
        na, ni = 1 << self.act_bits, 1 << self.in_bits
        rn = b.const("rec/num", self.rec_num.reshape(-1).astype(np.int64))
        rdn = b.const("rec/den", self.rec_den.reshape(-1).astype(np.int64))
        sn = b.const("sen/num", self.sen_num.reshape(-1).astype(np.int64))
        sdn = b.const("sen/den", self.sen_den.reshape(-1).astype(np.int64))
        rec_off = b.const("rec/offset", (np.arange(H)[:, None] * H + np.arange(H)[None, :]) * na - alo)
        sen_off = b.const("sen/offset", (np.arange(F)[:, None] * H + np.arange(H)[None, :]) * ni - ilo)
        cn, gn, cd = b.const("cn", self.cn.astype(np.int64)), b.const("gn", self.gn.astype(np.int64)), b.const(
            "cd", self.cd.astype(np.int64))  # fmt: skip
        m, two = b.scalar(self.multiplier), b.scalar(2)
        q_scale = b.scalar(1 << self.shift)
        axes1, axes2 = b.const("axes1", np.array([1], np.int64)), b.const("axes2", np.array([2], np.int64))
        lo_c, hi_c, zero = b.scalar(alo), b.scalar(ahi), b.scalar(0)

        def gather_sum(codes64: str, table: str, offset: str, p: str) -> str:
            idx = b.op("Add", [b.op("Unsqueeze", [codes64, axes2], f"{p}/u"), offset], f"{p}/idx")
            g = b.op("Gather", [table, idx], f"{p}/g", axis=0)
            return b.op("ReduceSum", [g, axes1], f"{p}/sum", keepdims=0)

        v64: str | None = None
        v = None
        for t in range(T):
            p = f"t{t}"
            v_prev = v64
            xt = b.op("Slice", ["x", b.const(f"{p}/start", np.array([t * F], np.int64)),
                                b.const(f"{p}/end", np.array([(t + 1) * F], np.int64)), axes1], f"{p}/x")  # fmt: skip
            x64 = b.cast(xt, np.int64, f"{p}/x64")
            snum = b.op("Add", [gather_sum(x64, sn, sen_off, f"{p}/snum"), gn], f"{p}/cnum")
            sden = b.op("Add", [gather_sum(x64, sdn, sen_off, f"{p}/sden"), cd], f"{p}/cden")
            for k in range(self.unfolds):
                q = f"{p}u{k}"
                if v64 is None:  # the initial state 0, shaped [N, H] from the batch dimension
                    nb = b.op("ReduceSum", [x64, axes1], f"{q}/xsum", keepdims=1)
                    v64 = b.op("Add", [b.op("Mul", [nb, zero], f"{q}/n0"), b.const("v0", np.zeros(H, np.int64))],
                               f"{q}/v_init")  # fmt: skip
                    v_prev = v64
                num = b.op("Add", [b.op("Mul", [cn, v64], f"{q}/cmv"), snum], f"{q}/num0")
                num = b.op("Add", [num, gather_sum(v64, rn, rec_off, f"{q}/rnum")], f"{q}/num")
                den = b.op("Add", [sden, gather_sum(v64, rdn, rec_off, f"{q}/rden")], f"{q}/den")
                pp = b.op("Mul", [num, m], f"{q}/P")
                qq = b.op("Mul", [den, q_scale], f"{q}/Q")
                p2 = b.op("Mul", [pp, two], f"{q}/2P")
                r = b.op("Where", [b.op("Less", [pp, zero], f"{q}/neg"), b.op("Sub", [p2, qq], f"{q}/2PmQ"),
                                   b.op("Add", [p2, qq], f"{q}/2PpQ")], f"{q}/rounded")  # fmt: skip
                d = b.op("Div", [r, b.op("Mul", [qq, two], f"{q}/2Q")], f"{q}/div")
                v64 = b.op("Clip", [d, lo_c, hi_c], f"{q}/v64")
                held = self.pad_code is not None and k == self.unfolds - 1
                v = b.cast(v64, v_dtype, f"{q}/v_step" if held else f"{q}/v")
            if self.pad_code is not None:  # a padded step leaves the state as it was
                first = b.op("Slice", ["x", b.const(f"{p}/start", np.array([t * F], np.int64)),
                                       b.const(f"{p}/first_end", np.array([t * F + 1], np.int64)), axes1],
                             f"{p}/first")  # fmt: skip
                is_pad = b.op(
                    "Equal", [first, b.const("pad_code", np.array(self.pad_code, x_dtype))], f"{p}/is_pad"
                )
                v64 = b.op("Where", [is_pad, v_prev, v64], f"{p}/v_held")
                v = b.cast(v64, v_dtype, f"{p}u{self.unfolds - 1}/v")
        assert v is not None
        hd = self.head
        motor = b.op("Slice", [v, b.const("motor/start", np.array([0], np.int64)),
                               b.const("motor/end", np.array([self.motor], np.int64)), axes1], "motor")  # fmt: skip
        w_dt = container_dtype(int(hd.weight.min(initial=0)), int(hd.weight.max(initial=0)))
        wo = b.const("head/W", hd.weight.astype(w_dt))
        acc_dt = (
            np.int32 if self.head_bound() <= INT32_MAX else np.int64
        )  # int64 only when int32 could overflow
        if v_dtype == np.int8 and w_dt == np.int8:
            mm = b.op("MatMulInteger", [motor, wo], "head/matmul")
        else:
            mm = b.op(
                "MatMul", [b.cast(motor, acc_dt, "head/a32"), b.cast(wo, acc_dt, "head/w32")], "head/matmul"
            )
        acc = b.op("Add", [mm, b.const("head/b", hd.bias.astype(acc_dt))], "head/acc")
        r = b.requant(acc, hd.multiplier, hd.shift, hd.lo, hd.hi, "head/rq")
        y_dtype = container_dtype(hd.lo, hd.hi)
        y = b.op("Identity", [b.cast(r, y_dtype, "head/out")], "y")
        return b.model([("x", x_dtype, ["N", T * F])], [(y, y_dtype, ["N", int(hd.weight.shape[1])])],
                       doc=f"ctnn ltc: T={T}, F={F}, unfolds={self.unfolds}, flat time-major input")  # fmt: skip
