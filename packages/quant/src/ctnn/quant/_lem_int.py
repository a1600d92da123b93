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

from ._graph import GraphBuilder, IntegerDense
from ._lut import apply_lut, emit_lut_shared
from ._recurrent import Requant, _max_abs_matmul
from ._semantics import container_dtype, requantize, round_div
from ._sequence import IntegerSequenceModel, check_accumulators


@dataclass
class IntegerLEM(IntegerSequenceModel):
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

    def __post_init__(self) -> None:
        for k in ("sig1", "sig2", "tanh_z", "tanh_y"):
            if len(self.tables[k]) != 1 << self.act_bits:
                raise ValueError(f"table {k} needs {1 << self.act_bits} entries")
        self.check_overflow()

    @property
    def units(self) -> int:
        return int(self.Wz.shape[0])

    def check_overflow(self) -> None:
        """Raise :class:`OverflowError` unless every int32 accumulator and int64 product fits."""
        ilo, ihi = self.in_range
        alo, ahi = self.act_range
        a = max(-alo, ahi)
        checks = [
            ("x @ V + bv", _max_abs_matmul(self.V, ilo, ihi, self.bv), int(self.rq_v.multiplier.max()), int(self.rq_v.shift.max())),
            ("y @ Wh", _max_abs_matmul(self.Wh, alo, ahi), int(self.rq_h.multiplier.max()), int(self.rq_h.shift.max())),
            ("z @ Wz", _max_abs_matmul(self.Wz, alo, ahi), int(self.rq_z.multiplier.max()), int(self.rq_z.shift.max())),
            ("gate product", a * 2 * a, self.gate_multiplier, self.gate_shift),
            ("head", _max_abs_matmul(self.head.weight, alo, ahi, self.head.bias), int(np.max(self.head.multiplier)),
             int(np.max(self.head.shift))),
        ]  # fmt: skip
        check_accumulators("lem", checks)

    def forward(self, codes: np.ndarray) -> np.ndarray:
        """Direct numpy evaluation of the integer semantics (independent of the graph)."""
        x = self._as_steps(codes)
        lo, hi = self.act_range
        H = self.units
        y = np.zeros((len(x), H), np.int64)
        z = np.zeros((len(x), H), np.int64)
        V, Wh, Wz = (a.astype(np.int64) for a in (self.V, self.Wh, self.Wz))
        tb = self.tables
        for t in range(self.steps):
            zx = self.rq_v.apply(x[:, t] @ V + self.bv.astype(np.int64))
            zy = self.rq_h.apply(y @ Wh)
            g1 = apply_lut(np.clip(zx[:, :H] + zy[:, :H], lo, hi), tb["sig1"], lo)
            g2 = apply_lut(np.clip(zx[:, H : 2 * H] + zy[:, H : 2 * H], lo, hi), tb["sig2"], lo)
            tz = apply_lut(np.clip(zx[:, 3 * H :] + zy[:, 2 * H :], lo, hi), tb["tanh_z"], lo)
            z = np.clip(z + round_div(g2 * (tz - z) * self.gate_multiplier, self.gate_shift), lo, hi)
            ty = apply_lut(np.clip(zx[:, 2 * H : 3 * H] + self.rq_z.apply(z @ Wz), lo, hi), tb["tanh_y"], lo)
            y = np.clip(y + round_div(g1 * (ty - y) * self.gate_multiplier, self.gate_shift), lo, hi)
        hd = self.head
        return requantize(y @ hd.weight.astype(np.int64) + hd.bias.astype(np.int64), hd.multiplier, hd.shift,
                          hd.lo, hd.hi)  # fmt: skip

    def to_onnx(self, name: str = "ctnn_lem") -> onnx.ModelProto:
        """The unrolled integer graph: input ``x [N, T·F]``, output ``y [N, classes]``."""
        self.check_overflow()
        b = GraphBuilder(name)
        ilo, ihi = self.in_range
        alo, ahi = self.act_range
        x_dtype, h_dtype = container_dtype(ilo, ihi), container_dtype(alo, ahi)
        T, F, H = self.steps, self.in_features, self.units

        def rd(x64: str, m: np.ndarray | int, s: np.ndarray | int, key: str, prefix: str) -> str:
            return b.round_shift(x64, m, s, prefix, key)

        axes1 = b.const("axes1", np.array([1], np.int64))

        def cols(x: str, a: int, e: int, out: str) -> str:
            return b.op("Slice", [x, b.const(f"cols{a}_{e}/s", np.array([a], np.int64)),
                                  b.const(f"cols{a}_{e}/e", np.array([e], np.int64)), axes1], out)  # fmt: skip

        V, v_dt = b.weight("V", self.V)
        bv = b.const("bv", self.bv.astype(np.int32))
        Wh, wh_dt = b.weight("Wh", self.Wh)
        Wz, wz_dt = b.weight("Wz", self.Wz)
        tabs = {k: b.const(f"{k}/table", np.asarray(v, np.int64)) for k, v in self.tables.items()}
        lo_c, hi_c, zero = b.scalar(alo), b.scalar(ahi), b.scalar(0)
        gm, gs = self.gate_multiplier, self.gate_shift

        y = z = None
        for t in range(T):
            p = f"t{t}"
            xt = b.op("Slice", ["x", b.const(f"{p}/start", np.array([t * F], np.int64)),
                                b.const(f"{p}/end", np.array([(t + 1) * F], np.int64)), axes1], f"{p}/x")  # fmt: skip
            if y is None:  # zero initial states [N, H], shaped from the batch
                nb = b.op("ReduceSum", [b.cast(xt, np.int64, "init/x64"), axes1], "init/xsum", keepdims=1)
                z0 = b.op("Add", [b.op("Mul", [nb, zero], "init/n0"), b.const("init/zeros", np.zeros(H, np.int64))],
                          "init/zeros64")  # fmt: skip
                y = z = b.cast(z0, h_dtype, "init/state")
            accx = b.op("Add", [b.matmul(xt, x_dtype, V, v_dt, f"{p}/xV"), bv], f"{p}/accx")
            zx = rd(
                b.cast(accx, np.int64, f"{p}/accx64"),
                self.rq_v.multiplier,
                self.rq_v.shift,
                "rq_v",
                f"{p}/zx",
            )
            zy = rd(b.cast(b.matmul(y, h_dtype, Wh, wh_dt, f"{p}/yW"), np.int64, f"{p}/yW64"), self.rq_h.multiplier,
                    self.rq_h.shift, "rq_h", f"{p}/zy")  # fmt: skip

            def lut(a: str, c: str, table: str, q: str) -> str:
                pre = b.op("Clip", [b.op("Add", [a, c], f"{q}/sum"), lo_c, hi_c], f"{q}/pre")
                return emit_lut_shared(b, pre, tabs[table], alo, f"{q}/lut")

            g1 = lut(cols(zx, 0, H, f"{p}/zx1"), cols(zy, 0, H, f"{p}/zy1"), "sig1", f"{p}/g1")
            g2 = lut(cols(zx, H, 2 * H, f"{p}/zx2"), cols(zy, H, 2 * H, f"{p}/zy2"), "sig2", f"{p}/g2")
            tz = lut(
                cols(zx, 3 * H, 4 * H, f"{p}/zx4"), cols(zy, 2 * H, 3 * H, f"{p}/zy3"), "tanh_z", f"{p}/tz"
            )
            z64 = b.cast(z, np.int64, f"{p}/z64")
            dz = b.op("Mul", [g2, b.op("Sub", [tz, z64], f"{p}/tz_minus_z")], f"{p}/gz")
            z64 = b.op("Clip", [b.op("Add", [z64, rd(dz, gm, gs, "gate", f"{p}/dz")], f"{p}/znew"), lo_c, hi_c],
                       f"{p}/zclip")  # fmt: skip
            z = b.cast(z64, h_dtype, f"{p}/z")
            zz = rd(b.cast(b.matmul(z, h_dtype, Wz, wz_dt, f"{p}/zW"), np.int64, f"{p}/zW64"), self.rq_z.multiplier,
                    self.rq_z.shift, "rq_z", f"{p}/zz")  # fmt: skip
            ty = lut(cols(zx, 2 * H, 3 * H, f"{p}/zx3"), zz, "tanh_y", f"{p}/ty")
            y64 = b.cast(y, np.int64, f"{p}/y64")
            dy = b.op("Mul", [g1, b.op("Sub", [ty, y64], f"{p}/ty_minus_y")], f"{p}/gy")
            y64 = b.op("Clip", [b.op("Add", [y64, rd(dy, gm, gs, "gate", f"{p}/dy")], f"{p}/ynew"), lo_c, hi_c],
                       f"{p}/yclip")  # fmt: skip
            y = b.cast(y64, h_dtype, f"{p}/y")
        hd = self.head
        Wo, wo_dt = b.weight("head/W", hd.weight)
        acc = b.op("Add", [b.matmul(y, h_dtype, Wo, wo_dt, "head/matmul"), b.const("head/b", hd.bias.astype(np.int32))],
                   "head/acc")  # fmt: skip
        r = b.requant(acc, hd.multiplier, hd.shift, hd.lo, hd.hi, "head/rq")
        y_dtype = container_dtype(hd.lo, hd.hi)
        out = b.op("Identity", [b.cast(r, y_dtype, "head/out")], "y")
        return b.model([("x", x_dtype, ["N", T * F])], [(out, y_dtype, ["N", int(hd.weight.shape[1])])],
                       doc=f"ctnn lem: T={T}, F={F}, flat time-major input")  # fmt: skip
