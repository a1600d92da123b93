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

With ``state_bits > act_bits`` the state ``h`` is a wider fixed-point accumulator
(``state_bits`` codes, clipped to their range after every update) and the matmuls and
the head read its ``act_bits`` view ``hv = clip(rd(h, state_bits − act_bits), lo, hi)``
(a rounding shift, so ``W``, ``A`` and the head stay int8 × int8 at 8 bits); the CT-RNN
leak reads ``h`` itself. Why: an explicit Euler step with a small ``dt`` (the Lipschitz
RNN's ε = 0.03) moves the state by about half an 8-bit code per step, so an 8-bit state
rounds most increments to zero and loses the dynamics over a long sequence; a 16-bit
accumulator keeps them.

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

from ._graph import IntegerDense
from ._nonlin import Activation, LutActivation
from ._program import NumpyOps, ProgramModel, dense, hold_state, narrow, pad_name, store
from ._semantics import round_div, signed_range
from ._sequence import IntegerSequenceModel

RECURRENT_FAMILIES = ("lipschitz_rnn", "ctrnn")
#: Solvers of the integer Lipschitz RNN / CT-RNN step (``midpoint`` is the Lipschitz RNN's RK2).
RECURRENT_SOLVERS = ("euler", "midpoint", "rk4")


@dataclass
class Requant:
    """A per-channel factor ``M / 2**s`` (``M``, ``s``: int64 arrays ``[units]``)."""

    multiplier: np.ndarray
    shift: np.ndarray

    def apply(self, acc: np.ndarray) -> np.ndarray:
        """``round_div(acc * M, 2**s)`` without clipping (int64)."""
        return round_div(np.asarray(acc, np.int64) * self.multiplier.astype(np.int64), self.shift)


@dataclass
class IntegerRecurrent(ProgramModel, IntegerSequenceModel):
    """An integer tanh recurrent classifier (Lipschitz RNN or CT-RNN; Euler, midpoint or RK4 steps)."""

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
    solver: str = "euler"
    rq_stage: dict = field(default_factory=dict)  # midpoint/rk4: "t_half", "a_half", "d_half", "t_sixth", ...
    tanh: Activation | None = None  # default: the table ``tanh_table``
    state_bits: int | None = None  # the state accumulator's width (default: act_bits)
    pad_code: int | None = None  # variable-length input: a step whose first code is this is padding

    def __post_init__(self) -> None:
        if self.state_bits is None:
            self.state_bits = self.act_bits
        if not self.act_bits <= self.state_bits <= 16:
            raise ValueError(f"state_bits must lie in [act_bits={self.act_bits}, 16], got {self.state_bits}")
        if self.family not in RECURRENT_FAMILIES:
            raise ValueError(f"unknown integer recurrent family {self.family!r}; known: {RECURRENT_FAMILIES}")
        if (self.A is None) != (self.rq_a is None):
            raise ValueError("A and rq_a come together")
        if len(self.tanh_table) != 1 << self.act_bits:
            raise ValueError(f"the tanh table needs {1 << self.act_bits} entries, got {len(self.tanh_table)}")
        if self.solver not in RECURRENT_SOLVERS:
            raise ValueError(f"unknown integer recurrent solver {self.solver!r}; known: {RECURRENT_SOLVERS}")
        self.check_overflow()

    @property
    def activation(self) -> Activation:
        """The tanh as applied: a PWL function if given, else the table."""
        return self.tanh if self.tanh is not None else LutActivation(self.tanh_table, self.act_range[0])

    @property
    def units(self) -> int:
        return int(self.W.shape[0])

    @property
    def state_range(self) -> tuple[int, int]:
        return signed_range(int(self.state_bits or self.act_bits))

    def _view(self, ops, h):
        """The ``act_bits`` view of the state that the matmuls read (the state itself without a wider one)."""
        return narrow(ops, h, int(self.state_bits or self.act_bits) - self.act_bits, *self.act_range, "view")

    # --- the integer program (numpy forward, overflow check and ONNX graph) ---------------------
    def _terms(self, ops, v, zx):
        lo, hi = self.act_range
        hv = self._view(ops, v)
        pre = ops.clip(ops.add(zx, ops.rd(ops.matmul(hv, self.W, "W"), self.rq_w, "rq_w")), lo, hi)
        th = ops.act(pre, self.activation, "tanh")
        lin = ops.matmul(hv, self.A, "A") if self.A is not None else v
        return th, lin

    def _increment(self, ops, th, lin, c: str):
        """``rd(th·Mt) + rd(lin·Ma)`` (Lipschitz RNN) or ``rd(th·Mt) − rd(h·Md)`` (CT-RNN), scaled for ``c``."""
        rq = {"dt": (self.rq_t, self.rq_a, self.rq_d)}.get(c) or tuple(
            self.rq_stage.get(f"{k}_{c}") for k in ("t", "a", "d"))  # fmt: skip
        inc = ops.rd(th, rq[0], f"rq_t_{c}")
        if self.A is not None:
            inc = ops.add(inc, ops.rd(lin, rq[1], f"rq_a_{c}"))
        if self.rq_d is not None:
            inc = ops.sub(inc, ops.rd(lin, rq[2], f"rq_d_{c}"))
        return inc

    def program(self, ops):
        lo, hi = self.state_range
        h = ops.zeros(self.units)
        for t in range(self.steps):
            h_prev = h
            zx = ops.rd(
                ops.add_const(ops.matmul(ops.step_input(t), self.U, "U"), self.bu, "bu"), self.rq_u, "rq_u"
            )
            for k in range(self.unfolds):
                name = f"t{t}u{k}/h"  # the state after each unfold, named as QAT reads it
                if k == self.unfolds - 1:
                    name = pad_name(self, name)
                th1, l1 = self._terms(ops, h, zx)
                if self.solver == "euler":
                    h = store(ops, ops.add(h, self._increment(ops, th1, l1, "dt")), lo, hi, name)
                elif self.solver == "midpoint":
                    hm = store(ops, ops.add(h, self._increment(ops, th1, l1, "half")), lo, hi)
                    th2, l2 = self._terms(ops, hm, zx)
                    h = store(ops, ops.add(h, self._increment(ops, th2, l2, "dt")), lo, hi, name)
                else:  # rk4
                    th2, l2 = self._terms(
                        ops, store(ops, ops.add(h, self._increment(ops, th1, l1, "half")), lo, hi), zx
                    )
                    th3, l3 = self._terms(
                        ops, store(ops, ops.add(h, self._increment(ops, th2, l2, "half")), lo, hi), zx
                    )
                    th4, l4 = self._terms(
                        ops, store(ops, ops.add(h, self._increment(ops, th3, l3, "dt")), lo, hi), zx
                    )
                    th = ops.add(ops.add(th1, th4), ops.add(ops.add(th2, th2), ops.add(th3, th3)))
                    lin = ops.add(ops.add(l1, l4), ops.add(ops.add(l2, l2), ops.add(l3, l3)))
                    h = store(ops, ops.add(h, self._increment(ops, th, lin, "sixth")), lo, hi, name)
            h = hold_state(self, ops, t, h_prev, h, lo, hi, f"t{t}u{self.unfolds - 1}/h")
            if hasattr(ops, "states"):
                ops.states.append(h)
        return dense(ops, self._view(ops, h), self.head, "head")

    def forward(self, codes: np.ndarray, return_states: bool = False):
        """Direct numpy evaluation of the integer semantics (the program the graph is written from)."""
        ops = NumpyOps(self._as_steps(codes))
        ops.states = []
        y = self.program(ops)
        return (y, np.stack(ops.states, 1)) if return_states else y

    def to_onnx(self, name: str = "ctnn_recurrent") -> onnx.ModelProto:
        """The unrolled integer graph: input ``x [N, T·F]``, output ``y [N, classes]``."""
        return ProgramModel.to_onnx(self, name)
