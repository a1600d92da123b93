"""Post-training quantization of LEM sequence classifiers (needs torch); see :mod:`ctnn.quant._lem_int`."""

from __future__ import annotations

import numpy as np
import torch

from ._calibrate import quantize_weight
from ._graph import IntegerDense
from ._lem_int import IntegerLEM
from ._lut import LUT_FUNCTIONS
from ._nonlin import make_activation
from ._ptq import QuantizedModel
from ._recurrent_ptq import _absmax, _requant, hold
from ._semantics import asymmetric_scale, container_dtype, quantize_multiplier, signed_range
from ._sidecar import TensorQuant

_sigmoid = LUT_FUNCTIONS["sigmoid"]


def _lem_params(model: torch.nn.Module) -> dict:
    rnn = model.rnn
    if rnn.dt > 1.0:
        raise ValueError(f"integer LEM needs dt <= 1 (states stay in [-1, 1]), got dt={rnn.dt}")
    with torch.no_grad():
        V = rnn.inp2hid.weight.double().numpy().T  # [F, 4H]
        bv = rnn.inp2hid.bias.double().numpy().copy()
        Wh = rnn.hid2hid.weight.double().numpy().T  # [H, 3H]
        bh = rnn.hid2hid.bias.double().numpy()
        Wz = rnn.transform_z.weight.double().numpy().T
        bz = rnn.transform_z.bias.double().numpy()
        if model.input_norm:
            scale = model.input_scale.double().numpy()
            V = V / scale[:, None]
            bv = bv - model.input_shift.double().numpy() @ V
        H = Wz.shape[0]
        # fold the hidden biases into the input groups they are added to
        bv[:H] += bh[:H]  # dt1
        bv[H : 2 * H] += bh[H : 2 * H]  # dt2
        bv[2 * H : 3 * H] += bz  # i_z + transform_z(z)
        bv[3 * H :] += bh[2 * H :]  # i_y + h_y
        Wo = model.head.weight.double().numpy().T
        bo = model.head.bias.double().numpy()
    return {"V": V, "bv": bv, "Wh": Wh, "Wz": Wz, "Wo": Wo, "bo": bo, "dt": rnn.dt, "H": H}


def _simulate(p: dict, x: np.ndarray, valid: np.ndarray | None = None) -> dict:
    H = p["H"]
    y = np.zeros((len(x), H))
    z = np.zeros((len(x), H))
    pres = {k: [] for k in ("dt1", "dt2", "zc", "yc")}
    ys, zs = [], []
    for t in range(x.shape[1]):
        y_prev, z_prev = y, z
        ti = x[:, t] @ p["V"] + p["bv"]
        hy = y @ p["Wh"]
        a1, a2, azc = (
            ti[:, :H] + hy[:, :H],
            ti[:, H : 2 * H] + hy[:, H : 2 * H],
            ti[:, 3 * H :] + hy[:, 2 * H :],
        )
        z = z + p["dt"] * _sigmoid(a2) * (np.tanh(azc) - z)
        ayc = ti[:, 2 * H : 3 * H] + z @ p["Wz"]
        y = y + p["dt"] * _sigmoid(a1) * (np.tanh(ayc) - y)
        y, z = hold(valid, t, y, y_prev), hold(valid, t, z, z_prev)
        for k, v in zip(pres, (a1, a2, azc, ayc)):
            pres[k].append(v)
        ys.append(y)
        zs.append(z)
    return {"pre": {k: np.stack(v) for k, v in pres.items()}, "y_states": np.stack(ys), "z_states": np.stack(zs),
            "y": y, "logits": y @ p["Wo"] + p["bo"]}  # fmt: skip


def quantize_lem(
    model: torch.nn.Module,
    x: np.ndarray,
    weight_bits: int,
    act_bits: int,
    in_bits: int,
    xrange: tuple[float, float],
    calibration: str,
    percentile: float,
    weight_clip: str,
    pre_clip: float,
    per_channel: bool = False,
    nonlinearity: str = "lut",
    valid: np.ndarray | None = None,
) -> QuantizedModel:
    """The LEM branch of :func:`~ctnn.quant.quantize_sequence_classifier` (``x``: checked ``[N, T, F]``)."""
    p = _lem_params(model)
    sim = _simulate(p, x, valid)
    T, F, H = x.shape[1], x.shape[2], p["H"]
    ilo, ihi = signed_range(in_bits)
    xmin, xmax = xrange
    s_x, z_x = asymmetric_scale(xmin, xmax, in_bits)
    alo, ahi = signed_range(act_bits)
    s_state = 1.0 / ahi
    s_pre = {
        k: min(_absmax(v, calibration, percentile, act_bits), pre_clip) / ahi for k, v in sim["pre"].items()
    }
    mse = weight_clip == "mse"
    sub = slice(None, None, max(1, len(x) // 512))

    def qw(w, bits, inputs):
        return quantize_weight(w, bits, per_channel, weight_clip, inputs, percentile)

    Vq, s_v = qw(p["V"], weight_bits, x[sub].reshape(-1, F) if mse else None)
    bv = np.round(p["bv"] / (s_x * s_v)).astype(np.int64) - z_x * Vq.sum(axis=0)
    if np.abs(bv).max(initial=0) > 2**31 - 1:
        raise OverflowError("the quantized input bias overflows int32")
    Whq, s_wh = qw(p["Wh"], weight_bits, sim["y_states"][:, sub].reshape(-1, H) if mse else None)
    Wzq, s_wz = qw(p["Wz"], weight_bits, sim["z_states"][:, sub].reshape(-1, H) if mse else None)
    group_v = np.concatenate([np.full(H, s_pre[k]) for k in ("dt1", "dt2", "yc", "zc")])
    group_h = np.concatenate([np.full(H, s_pre[k]) for k in ("dt1", "dt2", "zc")])
    acts = {
        "sig1": make_activation("sigmoid", s_pre["dt1"], act_bits, s_state, 0, ahi, nonlinearity),
        "sig2": make_activation("sigmoid", s_pre["dt2"], act_bits, s_state, 0, ahi, nonlinearity),
        "tanh_z": make_activation("tanh", s_pre["zc"], act_bits, s_state, alo, ahi, nonlinearity),
        "tanh_y": make_activation("tanh", s_pre["yc"], act_bits, s_state, alo, ahi, nonlinearity),
    }
    tables = {k: a.apply(np.arange(alo, ahi + 1)) for k, a in acts.items()}
    gm, gs = quantize_multiplier(p["dt"] * s_state)  # g·(t − z) codes: dt·(g/ahi)·(t − z) state codes
    Woq, s_wo = qw(p["Wo"], weight_bits, sim["y"][sub] if mse else None)
    s_y = _absmax(sim["logits"], calibration, percentile, act_bits) / ahi
    bo = np.round(p["bo"] / (s_state * s_wo)).astype(np.int64)
    C = Woq.shape[1]
    hrq = _requant(s_state * s_wo / s_y, C)
    head = IntegerDense(weight=Woq, bias=bo.astype(np.int32), multiplier=hrq.multiplier, shift=hrq.shift,
                        lo=alo, hi=ahi, name="head")  # fmt: skip
    net = IntegerLEM(
        steps=T, in_features=F, in_bits=in_bits, weight_bits=weight_bits, act_bits=act_bits, V=Vq,
        bv=bv.astype(np.int32), rq_v=_requant(s_x * s_v / group_v, 4 * H), Wh=Whq,
        rq_h=_requant(s_state * s_wh / group_h, 3 * H), Wz=Wzq, rq_z=_requant(s_state * s_wz / s_pre["yc"], H),
        tables=tables, gate_multiplier=gm, gate_shift=gs, head=head,
        acts=acts if nonlinearity == "pwl" else None,
    )  # fmt: skip
    inq = TensorQuant("x", [None, T * F], in_bits, ilo, ihi, s_x, z_x, str(container_dtype(ilo, ihi)))
    outq = TensorQuant("y", [None, C], act_bits, alo, ahi, s_y, 0, str(container_dtype(alo, ahi)))
    hp = {
        "steps": T, "in_features": F, "units": H, "in_bits": in_bits, "calibration": calibration,
        "weight_clip": weight_clip, "per_channel": per_channel, "nonlinearity": nonlinearity, "input_layout": "flat time-major [N, T*F]",
        "scales": {"state": s_state, **{f"pre_{k}": v for k, v in s_pre.items()}},
        "rounding": "round half away from zero via truncating Div, per term",
    }  # fmt: skip
    return QuantizedModel(net=net, input=inq, output=outq, family="lem", hyperparameters=hp)
