"""Post-training quantization of LEM sequence classifiers (needs torch); see :mod:`ctnn.quant._lem_int`."""

from __future__ import annotations

import numpy as np
import torch

from ._lem_int import IntegerLEM
from ._lut import LUT_FUNCTIONS
from ._nonlin import make_activation
from ._options import QuantOptions, requant
from ._ptq import QuantizedModel
from ._recurrent_ptq import SequenceData, hold
from ._semantics import quantize_multiplier

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


def quantize_lem(model: torch.nn.Module, d: SequenceData, o: QuantOptions) -> QuantizedModel:
    """The LEM branch of :func:`~ctnn.quant.quantize_sequence_classifier`."""
    x, inq = d.x, d.input
    p = _lem_params(model)
    sim = _simulate(p, x, d.valid)
    T, F, H = x.shape[1], x.shape[2], p["H"]
    s_x, z_x = inq.scale, inq.zero_point
    alo, ahi = o.act_range
    s_state = 1.0 / ahi
    s_pre = {k: o.scale(v, o.pre_clip) for k, v in sim["pre"].items()}
    sub = d.sub
    Vq, s_v = o.weight(p["V"], x[sub])
    bv = np.round(p["bv"] / (s_x * s_v)).astype(np.int64) - z_x * Vq.sum(axis=0)
    if np.abs(bv).max(initial=0) > 2**31 - 1:
        raise OverflowError("the quantized input bias overflows int32")
    Whq, s_wh = o.weight(p["Wh"], sim["y_states"][:, sub])
    Wzq, s_wz = o.weight(p["Wz"], sim["z_states"][:, sub])
    group_v = np.concatenate([np.full(H, s_pre[k]) for k in ("dt1", "dt2", "yc", "zc")])
    group_h = np.concatenate([np.full(H, s_pre[k]) for k in ("dt1", "dt2", "zc")])

    def act(fn, key, lo):
        return make_activation(fn, s_pre[key], o.act_bits, s_state, lo, ahi, o.nonlinearity)

    acts = {"sig1": act("sigmoid", "dt1", 0), "sig2": act("sigmoid", "dt2", 0),
            "tanh_z": act("tanh", "zc", alo), "tanh_y": act("tanh", "yc", alo)}  # fmt: skip
    tables = {k: a.apply(np.arange(alo, ahi + 1)) for k, a in acts.items()}
    gm, gs = quantize_multiplier(p["dt"] * s_state)  # g·(t − z) codes: dt·(g/ahi)·(t − z) state codes
    Woq, s_wo = o.weight(p["Wo"], sim["y"][sub])
    s_y = o.scale(sim["logits"])
    head = o.head(Woq, s_wo, p["bo"], s_state, s_y)
    net = IntegerLEM(
        steps=T, in_features=F, in_bits=o.in_bits, weight_bits=o.weight_bits, act_bits=o.act_bits, V=Vq,
        bv=bv.astype(np.int32), rq_v=requant(s_x * s_v / group_v, 4 * H), Wh=Whq,
        rq_h=requant(s_state * s_wh / group_h, 3 * H), Wz=Wzq, rq_z=requant(s_state * s_wz / s_pre["yc"], H),
        tables=tables, gate_multiplier=gm, gate_shift=gs, head=head,
        acts=acts if o.nonlinearity == "pwl" else None,
    )  # fmt: skip
    hp = {
        "steps": T, "in_features": F, "units": H, **o.hyperparameters(), "input_layout": "flat time-major [N, T*F]",
        "scales": {"state": s_state, **{f"pre_{k}": v for k, v in s_pre.items()}},
        "rounding": "round half away from zero via truncating Div, per term",
    }  # fmt: skip
    outq = o.output_quant(Woq.shape[1], s_y)
    return QuantizedModel(net=net, input=inq, output=outq, family="lem", hyperparameters=hp)
