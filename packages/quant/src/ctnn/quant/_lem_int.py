"""The integer LEM (Long Expressive Memory), unrolled over T steps (torch-free).

Float step (``dt`` the base step; the public code's naming)::

    g1 = σ(i_dt1 + h_dt1)   g2 = σ(i_dt2 + h_dt2)        (ms_dt_bar = dt·g1, ms_dt = dt·g2)
    z ← z + dt·g2·(tanh(i_y + h_y) − z)
    y ← y + dt·g1·(tanh(W_y z + i_z) − y)

Integer form: the states y, z and every tanh/σ output are act_bits codes at scale
``1 / (2**(b-1) − 1)`` (LEM's states are convex combinations of tanh values for
``dt ≤ 1``, so they stay in [−1, 1]); each of the four pre-activations is requantized
to its own act_bits grid and looked up in its own table (``Gather``)::

    zx  = rd((x_t @ V + bv) · Mv, sv)            [N, 4H]: dt1 | dt2 | z-input | y-input
    zy  = rd((y @ Wh) · Mh, sh)                  [N, 3H]: dt1 | dt2 | y-candidate
    g1  = SIG1[clip(zx₁ + zy₁) − lo]             g2 = SIG2[clip(zx₂ + zy₂) − lo]
    tz  = TANH_Z[clip(zx₄ + zy₃) − lo]
    z   = clip(z + rd(g2 · (tz − z) · Mg, sg), lo, hi)          Mg / 2**sg ≈ dt / (2**(b-1) − 1)
    ty  = TANH_Y[clip(zx₃ + rd((z @ Wz) · Mz, sz)) − lo]
    y   = clip(y + rd(g1 · (ty − y) · Mg, sg), lo, hi)

``rd(p, s) = round_div(p, 2**s)``, half away from zero. The hidden biases are folded
into ``bv``. Logits: a dense layer on the last ``y``. Input ``x``: flat ``[N, T·F]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from ._graph import IntegerDense
from ._nonlin import Activation, LutActivation
from ._program import ProgramModel, Rq, dense, hold_state, pad_name, store
from ._recurrent import Requant
from ._sequence import IntegerSequenceModel


@dataclass
class IntegerLEM(ProgramModel, IntegerSequenceModel):
    """An integer LEM classifier."""

    steps: int
    in_features: int
    in_bits: int
    weight_bits: int
    act_bits: int
    V: np.ndarray  # [F, 4H]
    bv: np.ndarray  # [4H] int32
    rq_v: Requant  # [4H]
    Wh: np.ndarray  # [H, 3H]
    rq_h: Requant  # [3H]
    Wz: np.ndarray  # [H, H]
    rq_z: Requant  # [H]
    tables: dict  # "sig1", "sig2", "tanh_z", "tanh_y": int64 [2**act_bits]
    gate_multiplier: int
    gate_shift: int
    head: IntegerDense
    family: str = "lem"
    meta: dict = field(default_factory=dict)
    acts: dict | None = None  # optional PWL functions replacing the tables (same keys)
    pad_code: int | None = None  # variable-length input: a step whose first code is this is padding

    def __post_init__(self) -> None:
        for k in ("sig1", "sig2", "tanh_z", "tanh_y"):
            if len(self.tables[k]) != 1 << self.act_bits:
                raise ValueError(f"table {k} needs {1 << self.act_bits} entries")
        self.check_overflow()

    @property
    def units(self) -> int:
        return int(self.Wz.shape[0])

    def activation(self, name: str) -> Activation:
        """The nonlinearity ``name`` as applied: a PWL function from ``acts`` if given, else its table."""
        if self.acts and name in self.acts:
            return self.acts[name]
        return LutActivation(self.tables[name], self.act_range[0])

    def program(self, ops):
        lo, hi = self.act_range
        H = self.units
        y = z = ops.zeros(H)
        gate = Rq(self.gate_multiplier, self.gate_shift)

        def lut(a, c, name):
            return ops.act(ops.clip(ops.add(a, c), lo, hi), self.activation(name), name)

        for t in range(self.steps):
            y_prev, z_prev = y, z
            zx = ops.rd(
                ops.add_const(ops.matmul(ops.step_input(t), self.V, "V"), self.bv, "bv"), self.rq_v, "rq_v"
            )
            zy = ops.rd(ops.matmul(y, self.Wh, "Wh"), self.rq_h, "rq_h")
            g1 = lut(ops.cols(zx, 0, H), ops.cols(zy, 0, H), "sig1")
            g2 = lut(ops.cols(zx, H, 2 * H), ops.cols(zy, H, 2 * H), "sig2")
            tz = lut(ops.cols(zx, 3 * H, 4 * H), ops.cols(zy, 2 * H, 3 * H), "tanh_z")
            z = store(ops, ops.add(z, ops.rd(ops.mul(g2, ops.sub(tz, z)), gate, "gate")), lo, hi,
                      pad_name(self, f"t{t}/z"))  # fmt: skip
            ty = lut(
                ops.cols(zx, 2 * H, 3 * H), ops.rd(ops.matmul(z, self.Wz, "Wz"), self.rq_z, "rq_z"), "tanh_y"
            )
            y = store(ops, ops.add(y, ops.rd(ops.mul(g1, ops.sub(ty, y)), gate, "gate")), lo, hi,
                      pad_name(self, f"t{t}/y"))  # fmt: skip
            z = hold_state(self, ops, t, z_prev, z, lo, hi, f"t{t}/z")
            y = hold_state(self, ops, t, y_prev, y, lo, hi, f"t{t}/y")
        return dense(ops, y, self.head, "head")

    def to_onnx(self, name: str = "ctnn_lem") -> onnx.ModelProto:
        """The unrolled integer graph: input ``x [N, T·F]``, output ``y [N, classes]``."""
        return ProgramModel.to_onnx(self, name)
