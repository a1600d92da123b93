"""The integer LSTM and GRU baselines, unrolled over T (torch-free).

Gate nonlinearities are tables or PWL functions (:mod:`._nonlin`) on requantized
pre-activation codes; gate outputs have scale ``1 / (2**(b-1) − 1)``. With
``rd(v, M, s) = round_div(v · M, 2**s)`` (half away from zero) and every clip to the
activation range, per step::

    LSTM  pre = clip(rd(x @ Wx + bx) + rd(h @ Wh))                   [i | f | g | o]
          i, f, o = SIG[pre_·];  g = TANH[pre_g]
          c = clip(rd(f · c) + rd(i · g));  h = clip(rd(o · TANH_C[c]))
    GRU   zx = rd(x @ Wx + bx);  hh = h @ Wh + bh                     [r | z | n]
          r = SIG_R[clip(zx_r + rd(hh_r))];  z = SIG_Z[clip(zx_z + rd(hh_z))]
          hn = clip(rd(hh_n));  n = TANH_N[clip(zx_n + rd(r · hn))]
          h = clip(n + rd(z · (h − n)))                                (h and n share the scale 1/(2**(b-1)−1))

The logits are a dense layer on the last h. Input ``x``: flat ``[N, T·F]``.

``state_bits > act_bits`` widens the state that accumulates small changes over long
sequences — the LSTM's ``c`` (``TANH_C`` reads its ``act_bits`` view, a rounding shift)
and the GRU's ``h`` (``Wh`` and the head read its view; ``n`` is scaled up into its
units by ``2**(state_bits − act_bits)``): with ``f ≈ 1`` or ``z ≈ 1`` a step changes the
state by less than one ``act_bits`` code, which rounding would drop.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._graph import IntegerDense
from ._nonlin import Activation
from ._program import ProgramModel, Rq, dense, hold_state, narrow, store
from ._semantics import signed_range
from ._sequence import IntegerSequenceModel

GATED_FAMILIES = ("lstm", "gru")


@dataclass
class IntegerGated(ProgramModel, IntegerSequenceModel):
    """An integer LSTM (``acts``: sig_i, sig_f, tanh_g, sig_o, tanh_c) or GRU (sig_r, sig_z, tanh_n)."""

    family: str
    steps: int
    in_features: int
    in_bits: int
    weight_bits: int
    act_bits: int
    Wx: np.ndarray  # [F, G·H] codes
    bx: np.ndarray  # [G·H] accumulator scale of x @ Wx (input zero point folded in)
    rq_x: Rq  # [G·H] -> pre-activation codes
    Wh: np.ndarray  # [H, G·H] codes
    bh: np.ndarray  # [G·H] (GRU: accumulator scale of h @ Wh; LSTM: zeros)
    rq_h: Rq  # [G·H]
    acts: dict[str, Activation]
    rq: dict[str, Rq]  # LSTM: "fc", "ig", "oh"; GRU: "rn", "zh"
    head: IntegerDense
    meta: dict = field(default_factory=dict)
    pad_code: int | None = None  # variable-length input: a step whose first code is this is padding
    state_bits: int | None = None  # LSTM: the cell state's width; GRU: the hidden state's (default: act_bits)

    def __post_init__(self) -> None:
        if self.family not in GATED_FAMILIES:
            raise ValueError(f"unknown gated family {self.family!r}; known: {GATED_FAMILIES}")
        if self.state_bits is None:
            self.state_bits = self.act_bits
        if not self.act_bits <= self.state_bits <= 16:
            raise ValueError(f"state_bits must lie in [act_bits={self.act_bits}, 16], got {self.state_bits}")
        self.check_overflow()

    @property
    def units(self) -> int:
        return int(self.Wh.shape[0])

    @property
    def _wide(self) -> int:
        """``state_bits − act_bits``: the shift between the wide state and its ``act_bits`` view."""
        return int(self.state_bits or self.act_bits) - self.act_bits

    def _view(self, ops, v, key: str):
        """The ``act_bits`` view of a wide state (a rounding shift), or the state itself."""
        return narrow(ops, v, self._wide, *self.act_range, key)

    def program(self, ops):
        lo, hi = self.act_range
        slo, shi = signed_range(int(self.state_bits or self.act_bits))
        H = self.units
        h = c = ops.zeros(H)
        for t in range(self.steps):
            h_prev, c_prev = h, c
            zx = ops.rd(
                ops.add_const(ops.matmul(ops.step_input(t), self.Wx, "Wx"), self.bx, "bx"), self.rq_x, "rq_x"
            )
            hv = self._view(ops, h, "h_view") if self.family == "gru" else h
            hh = ops.add_const(ops.matmul(hv, self.Wh, "Wh"), self.bh, "bh")
            a = self.acts
            if self.family == "lstm":
                pre = ops.clip(ops.add(zx, ops.rd(hh, self.rq_h, "rq_h")), lo, hi)
                i, f, g, o = (ops.act(ops.cols(pre, k * H, (k + 1) * H), a[n], n)
                              for k, n in enumerate(("sig_i", "sig_f", "tanh_g", "sig_o")))  # fmt: skip
                cf = ops.rd(ops.mul(f, c), self.rq["fc"], "rq_fc")
                c = store(ops, ops.add(cf, ops.rd(ops.mul(i, g), self.rq["ig"], "rq_ig")), slo, shi)
                tc = ops.act(self._view(ops, c, "c_view"), a["tanh_c"], "tanh_c")
                h = store(ops, ops.rd(ops.mul(o, tc), self.rq["oh"], "rq_oh"), lo, hi)
            else:
                rzh = ops.rd(ops.cols(hh, 0, 2 * H), Rq(self.rq_h.multiplier[: 2 * H], self.rq_h.shift[: 2 * H]),
                             "rq_h_rz")  # fmt: skip
                rz = ops.clip(ops.add(ops.cols(zx, 0, 2 * H), rzh), lo, hi)
                r = ops.act(ops.cols(rz, 0, H), a["sig_r"], "sig_r")
                z = ops.act(ops.cols(rz, H, 2 * H), a["sig_z"], "sig_z")
                hn = ops.clip(ops.rd(ops.cols(hh, 2 * H, 3 * H), Rq(self.rq_h.multiplier[2 * H :],
                                                                     self.rq_h.shift[2 * H :]), "rq_h_n"), lo, hi)  # fmt: skip
                pre_n = ops.clip(ops.add(ops.cols(zx, 2 * H, 3 * H), ops.rd(ops.mul(r, hn), self.rq["rn"], "rq_rn")),
                                 lo, hi)  # fmt: skip
                n = ops.act(pre_n, a["tanh_n"], "tanh_n")
                if self._wide:  # tanh codes into the wide state's units: times 2**(state_bits - act_bits)
                    n = ops.rd(n, Rq(np.int64(1 << self._wide), np.int64(0)), "n_wide")
                h = store(
                    ops, ops.add(n, ops.rd(ops.mul(z, ops.sub(h, n)), self.rq["zh"], "rq_zh")), slo, shi
                )
            if self.family == "lstm":
                c = hold_state(self, ops, t, c_prev, c, slo, shi)
                h = hold_state(self, ops, t, h_prev, h, lo, hi)
            else:
                h = hold_state(self, ops, t, h_prev, h, slo, shi)
        return dense(ops, self._view(ops, h, "h_view") if self.family == "gru" else h, self.head, "head")
