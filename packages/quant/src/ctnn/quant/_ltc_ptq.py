"""Post-training quantization of LTC sequence classifiers (fused semi-implicit solver; needs torch).

Scales: the state ``v`` symmetric at ``max|v| / (2**(b-1) - 1)`` over the calibration
run; the synapse tables' entries are products of a ``weight_bits`` weight and an
``act_bits`` sigmoid, so the numerator's scale is ``max|w·E| / (wmax · amax)`` and the
denominator's ``max w / (wmax · amax)`` (recurrent and sensory synapses together);
the input as in :func:`~ctnn.quant.quantize_mlp` (asymmetric, data minimum at the
lowest code) with the classifier's input normalisation and the cell's input mapping
folded into the sensory tables; the output mapping folded into the head.
"""

from __future__ import annotations

import numpy as np
import torch

from ._ltc_int import LTC_SOLVERS, IntegerLTC
from ._lut import LUT_FUNCTIONS, round_half_away
from ._options import QuantOptions, requant
from ._ptq import QuantizedModel
from ._recurrent_ptq import SequenceData, hold
from ._semantics import quantize_multiplier, signed_range

_sigmoid = LUT_FUNCTIONS["sigmoid"]


def _ltc_params(model: torch.nn.Module) -> dict:
    cell = model.cell
    if cell.solver not in LTC_SOLVERS:
        raise ValueError(f"ltc: solver {cell.solver!r} has no integer form; supported: {list(LTC_SOLVERS)}")
    with torch.no_grad():
        p = {k: v.detach().double().numpy() for k, v in cell.effective_parameters().items()}
        F = cell.in_features
        a, c = np.ones(F), np.zeros(F)  # the input as the cell sees it: a * x + c
        if model.input_norm:
            scale = model.input_scale.detach().double().numpy()
            a, c = a / scale, -model.input_shift.detach().double().numpy() / scale
        if cell.input_mapping in ("affine", "linear"):
            iw = cell.input_w.detach().double().numpy()
            a, c = a * iw, c * iw
        if cell.input_mapping == "affine":
            c = c + cell.input_b.detach().double().numpy()
        motor = cell.motor_size
        ow = (
            cell.output_w.detach().double().numpy()
            if cell.output_mapping in ("affine", "linear")
            else np.ones(motor)
        )
        ob = cell.output_b.detach().double().numpy() if cell.output_mapping == "affine" else np.zeros(motor)
        wh = model.head.weight.detach().double().numpy().T  # [motor, C]
        bh = model.head.bias.detach().double().numpy()
    p.update(in_a=a, in_c=c, motor=motor, Wo=ow[:, None] * wh, bo=ob @ wh + bh, cm_t=p["cm"] * cell.ode_unfolds,
             eps=cell.epsilon, unfolds=cell.ode_unfolds, solver=cell.solver)  # fmt: skip
    return p


def _simulate(p: dict, x: np.ndarray, valid: np.ndarray | None = None) -> dict:
    xm = x * p["in_a"] + p["in_c"]
    s_act = p["sensory_w"] * _sigmoid(p["sensory_sigma"] * (xm[..., None] - p["sensory_mu"]))  # [N, T, F, H]
    cnum = (s_act * p["sensory_erev"]).sum(2) + p["gleak"] * p["vleak"]
    cden = s_act.sum(2) + p["gleak"]
    v = np.zeros((len(x), len(p["gleak"])))
    vs = []
    solver = p.get("solver", "semi_implicit")

    def rate(u, t):  # dv/dt = (num − den·v) / cm, with dt/cm = 1/cm_t
        s = p["w"] * _sigmoid(p["sigma"] * (u[:, :, None] - p["mu"]))
        return (cnum[:, t] + (s * p["erev"]).sum(1) - (cden[:, t] + s.sum(1)) * u) / p["cm_t"]

    def keep(u):
        vs.append(u)
        return u

    for t in range(x.shape[1]):
        v_prev = v
        for _ in range(p["unfolds"]):
            if solver == "explicit_euler":
                v = keep(v + rate(v, t))
            elif solver == "rk4":
                k1 = rate(v, t)
                k2 = rate(keep(v + 0.5 * k1), t)
                k3 = rate(keep(v + 0.5 * k2), t)
                k4 = rate(keep(v + k3), t)
                v = keep(v + (k1 + 2 * k2 + 2 * k3 + k4) / 6)
            else:
                s = p["w"] * _sigmoid(p["sigma"] * (v[:, :, None] - p["mu"]))
                v = keep((p["cm_t"] * v + cnum[:, t] + (s * p["erev"]).sum(1)) / (
                    p["cm_t"] + cden[:, t] + s.sum(1) + p["eps"]))  # fmt: skip
        v = hold(valid, t, v, v_prev)
    motor = v[:, : p["motor"]]
    return {"v": np.stack(vs), "motor": motor, "y": motor @ p["Wo"] + p["bo"]}


def quantize_ltc(model: torch.nn.Module, d: SequenceData, o: QuantOptions) -> QuantizedModel:
    """The LTC branch of :func:`~ctnn.quant.quantize_sequence_classifier`."""
    x, inq = d.x, d.input
    p = _ltc_params(model)
    sim = _simulate(p, x, d.valid)
    T, F = x.shape[1], x.shape[2]
    H = len(p["gleak"])
    s_x, z_x = inq.scale, inq.zero_point
    ilo, ihi = inq.lo, inq.hi
    alo, ahi = o.act_range
    wmax = signed_range(o.weight_bits)[1]
    s_v = o.scale(sim["v"])
    big = float(wmax * ahi)
    we_max = max(
        float(np.abs(p["w"] * p["erev"]).max(initial=0)),
        float(np.abs(p["sensory_w"] * p["sensory_erev"]).max(initial=0)),
    )
    wd_max = max(float(p["w"].max(initial=0)), float(p["sensory_w"].max(initial=0)))
    s_num = max(we_max, 1e-12) / big
    s_den = max(wd_max, 1e-12) / big

    vq = np.arange(alo, ahi + 1) * s_v  # real state for each code
    sig = p["w"][:, :, None] * _sigmoid(p["sigma"][:, :, None] * (vq[None, None, :] - p["mu"][:, :, None]))
    rec_num = round_half_away(sig * p["erev"][:, :, None] / s_num).astype(np.int64)
    rec_den = round_half_away(sig / s_den).astype(np.int64)
    xq = (np.arange(ilo, ihi + 1) - z_x) * s_x  # real input for each code
    xm = xq[None, :] * p["in_a"][:, None] + p["in_c"][:, None]  # [F, codes]
    ssig = p["sensory_w"][:, :, None] * _sigmoid(
        p["sensory_sigma"][:, :, None] * (xm[:, None, :] - p["sensory_mu"][:, :, None]))  # fmt: skip
    sen_num = round_half_away(ssig * p["sensory_erev"][:, :, None] / s_num).astype(np.int64)
    sen_den = round_half_away(ssig / s_den).astype(np.int64)
    cn = round_half_away(p["cm_t"] * s_v / s_num).astype(np.int64)
    gn = round_half_away(p["gleak"] * p["vleak"] / s_num).astype(np.int64)
    cd = np.maximum(round_half_away((p["cm_t"] + p["gleak"] + p["eps"]) / s_den), 1).astype(np.int64)
    mult, shift = quantize_multiplier(s_num / (s_den * s_v))
    explicit: dict = {}
    if p["solver"] != "semi_implicit":  # v + (dt/cm)·(num − den·v): dt/cm = 1/cm_t
        explicit["gd"] = round_half_away(p["gleak"] / s_den).astype(np.int64)
        explicit["rq_explicit"] = {
            f"{part}_{c}": requant(f / p["cm_t"] * scale, H)
            for c, f in (("dt", 1.0), ("half", 0.5), ("sixth", 1 / 6))
            for part, scale in (("num", s_num / s_v), ("den", s_den))
        }

    Woq, s_wo = o.weight(p["Wo"], sim["motor"][d.sub])
    s_y = o.scale(sim["y"])
    head = o.head(Woq, s_wo, p["bo"], s_v, s_y)
    net = IntegerLTC(
        steps=T, in_features=F, unfolds=p["unfolds"], in_bits=o.in_bits, weight_bits=o.weight_bits,
        act_bits=o.act_bits, rec_num=rec_num, rec_den=rec_den, sen_num=sen_num, sen_den=sen_den, cn=cn, gn=gn, cd=cd,
        multiplier=mult, shift=shift, motor=p["motor"], head=head, solver=p["solver"], **explicit,
    )  # fmt: skip
    hp = {
        "steps": T, "in_features": F, "units": H, "unfolds": p["unfolds"], "motor": p["motor"],
        **o.hyperparameters(nonlinearity=False), "input_layout": "flat time-major [N, T*F]",
        "solver": p["solver"], "scales": {"state": s_v, "numerator": s_num, "denominator": s_den},
        "rounding": "fused step: Div(2*num*M +- den*2^s, 2*den*2^s), round half away from zero",
    }  # fmt: skip
    outq = o.output_quant(Woq.shape[1], s_y)
    return QuantizedModel(net=net, input=inq, output=outq, family="ltc", hyperparameters=hp)
