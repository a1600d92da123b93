"""Post-training quantization of LSTM and GRU sequence classifiers (needs torch); see :mod:`._gated_int`.

Scales: each gate group's pre-activation symmetric at its calibrated range (clipped at
``pre_clip``: sigmoid and tanh are flat beyond it), gate outputs at ``1/(2**(b-1)−1)``,
the LSTM cell state and hidden state at their calibrated ranges, the GRU hidden
state at ``1/(2**(b-1)−1)`` (|h| ≤ 1); the classifier's input normalisation folded
into ``Wx`` and ``bx``, the input's zero point into ``bx``.
"""

from __future__ import annotations

import numpy as np
import torch

from ._gated_int import IntegerGated
from ._lut import LUT_FUNCTIONS
from ._nonlin import make_activation
from ._options import QuantOptions, requant
from ._ptq import QuantizedModel
from ._recurrent_ptq import SequenceData, hold
from ._semantics import signed_range

_sigmoid = LUT_FUNCTIONS["sigmoid"]


def _params(model: torch.nn.Module) -> dict:
    rnn = model.rnn
    with torch.no_grad():
        Wx = rnn.weight_ih.double().numpy().T  # [F, G·H]
        bx = rnn.bias_ih.double().numpy().copy()
        Wh = rnn.weight_hh.double().numpy().T
        bh = rnn.bias_hh.double().numpy().copy()
        if model.input_norm:
            scale = model.input_scale.double().numpy()
            Wx = Wx / scale[:, None]
            bx = bx - model.input_shift.double().numpy() @ Wx
        if model.family == "lstm":  # both biases act on the pre-activation
            bx, bh = bx + bh, np.zeros_like(bh)
        Wo = model.head.weight.double().numpy().T
        bo = model.head.bias.double().numpy()
    return {"Wx": Wx, "bx": bx, "Wh": Wh, "bh": bh, "Wo": Wo, "bo": bo, "H": Wh.shape[0]}


def _simulate(family: str, p: dict, x: np.ndarray, valid: np.ndarray | None = None) -> dict:
    H = p["H"]
    h = np.zeros((len(x), H))
    c = np.zeros((len(x), H))
    rec: dict[str, list] = {k: [] for k in ("pre", "c", "h", "hn", "hin")}
    for t in range(x.shape[1]):
        h_prev, c_prev = h, c
        rec["hin"].append(h)
        gi = x[:, t] @ p["Wx"] + p["bx"]
        gh = h @ p["Wh"] + p["bh"]
        if family == "lstm":
            pre = gi + gh
            i, f, g, o = _sigmoid(pre[:, :H]), _sigmoid(pre[:, H : 2 * H]), np.tanh(pre[:, 2 * H : 3 * H]), _sigmoid(
                pre[:, 3 * H :])  # fmt: skip
            c = f * c + i * g
            h = o * np.tanh(c)
            rec["c"].append(c)
        else:
            r = _sigmoid(gi[:, :H] + gh[:, :H])
            z = _sigmoid(gi[:, H : 2 * H] + gh[:, H : 2 * H])
            pn = gi[:, 2 * H :] + r * gh[:, 2 * H :]
            pre = np.concatenate([gi[:, : 2 * H] + gh[:, : 2 * H], pn], axis=1)
            h = (1 - z) * np.tanh(pn) + z * h
            rec["hn"].append(gh[:, 2 * H :])
        h, c = hold(valid, t, h, h_prev), hold(valid, t, c, c_prev)
        rec["pre"].append(pre)
        rec["h"].append(h)
    return {**{k: np.stack(v) for k, v in rec.items() if v}, "h_last": h, "y": h @ p["Wo"] + p["bo"]}


def quantize_gated(model: torch.nn.Module, d: SequenceData, o: QuantOptions) -> QuantizedModel:
    """The LSTM/GRU branch of :func:`~ctnn.quant.quantize_sequence_classifier`."""
    family, x, inq = model.family, d.x, d.input
    p = _params(model)
    sim = _simulate(family, p, x, d.valid)
    T, F, H = x.shape[1], x.shape[2], p["H"]
    G = 4 if family == "lstm" else 3
    alo, ahi = o.act_range
    s_x, z_x = inq.scale, inq.zero_point
    s_gate = 1.0 / ahi
    pre = sim["pre"]
    s_pre = np.array([o.scale(pre[..., k * H : (k + 1) * H], o.pre_clip) for k in range(G)])
    group = np.repeat(s_pre, H)
    sub = d.sub
    Wxq, s_wx = o.weight(p["Wx"], x[sub])
    bx = np.round(p["bx"] / (s_x * s_wx)).astype(np.int64) - z_x * Wxq.sum(axis=0)
    sb = o.state_width
    wide = 1 << (sb - o.act_bits)  # the wide state's codes per act_bits code of its view
    if family == "lstm":
        s_c = o.absmax(sim["c"], sb) / signed_range(sb)[1]  # the cell state (sb bits)
        s_h = o.scale(sim["h"])
    else:
        s_h = 1.0 / ahi  # the view's scale; the wide h has s_h / wide
    Whq, s_wh = o.weight(p["Wh"], sim["hin"][:, sub])
    bh = np.round(p["bh"] / (s_h * s_wh)).astype(np.int64)
    for name, b in (("input bias", bx), ("hidden bias", bh)):
        if np.abs(b).max(initial=0) > 2**31 - 1:
            raise OverflowError(f"{family}: the quantized {name} overflows int32")

    def act(fn, s_in, lo):
        return make_activation(fn, s_in, o.act_bits, s_gate, lo, ahi, o.nonlinearity)

    if family == "lstm":
        acts = {"sig_i": act("sigmoid", s_pre[0], 0), "sig_f": act("sigmoid", s_pre[1], 0),
                "tanh_g": act("tanh", s_pre[2], alo), "sig_o": act("sigmoid", s_pre[3], 0),
                "tanh_c": act("tanh", s_c * wide, alo)}  # fmt: skip
        rq = {
            "fc": requant(s_gate, H),
            "ig": requant(s_gate * s_gate / s_c, H),
            "oh": requant(s_gate * s_gate / s_h, H),
        }
        rq_h = requant(s_h * s_wh / group, G * H)
    else:
        s_hn = o.scale(sim["hn"])
        acts = {"sig_r": act("sigmoid", s_pre[0], 0), "sig_z": act("sigmoid", s_pre[1], 0),
                "tanh_n": act("tanh", s_pre[2], alo)}  # fmt: skip
        rq = {"rn": requant(s_gate * s_hn / s_pre[2], H), "zh": requant(s_gate, H)}
        rq_h = requant(s_h * s_wh / np.concatenate([group[: 2 * H], np.full(H, s_hn)]), G * H)
    Woq, s_wo = o.weight(p["Wo"], sim["h_last"][sub])
    s_y = o.scale(sim["y"])
    head = o.head(Woq, s_wo, p["bo"], s_h, s_y)
    net = IntegerGated(
        family=family, steps=T, in_features=F, in_bits=o.in_bits, weight_bits=o.weight_bits, act_bits=o.act_bits,
        Wx=Wxq, bx=bx, rq_x=requant(s_x * s_wx / group, G * H), Wh=Whq, bh=bh, rq_h=rq_h, acts=acts, rq=rq, head=head,
        state_bits=sb,
    )  # fmt: skip
    hp = {
        "steps": T, "in_features": F, "units": H, **o.hyperparameters(),
        "input_layout": "flat time-major [N, T*F]", "state_bits": sb,
        "scales": {"state": s_h, "pre_activation": s_pre.tolist(), **({"cell": s_c} if family == "lstm" else {})},
        "rounding": "round half away from zero via truncating Div, per term",
    }  # fmt: skip
    outq = o.output_quant(Woq.shape[1], s_y)
    return QuantizedModel(net=net, input=inq, output=outq, family=family, hyperparameters=hp)
