"""Post-training quantization of a ``ctnn.models.ContinuousNet`` (needs torch); see :mod:`._continuous_int`.

The float network is replayed in numpy float64 with the same depth points as the
chosen scheme (θ(t) read from each stage), recording every state, pre-activation
and rate so that each gets a calibrated scale: the state per stage (symmetric),
the two pre-activations per stage (tanh ones clipped at ``pre_clip``), rates at
``1 / (2**(b-1) − 1)`` for tanh and at the pre-activation's scale for ReLU. Weights
are quantized per depth point (per tensor or per output channel).
"""

from __future__ import annotations

import numpy as np
import torch

from ._calibrate import real_range
from ._continuous_int import INTEGER_SCHEMES, IntegerContinuousNet, IntegerStage
from ._graph import IntegerDense
from ._nonlin import make_activation
from ._options import QuantOptions, requant
from ._ptq import QuantizedModel


def _points(scheme: str, n_steps: int) -> list[list[tuple[float, bool]]]:
    dt = 1.0 / n_steps
    out = []
    for k in range(n_steps):
        t0 = k * dt
        out.append({"euler": [(t0, False)], "midpoint": [(t0, False), (t0 + dt / 2, False)],
                    "rk4": [(t0, False), (t0 + dt / 2, False), (t0 + dt / 2, False), (t0 + dt, True)]}[scheme])  # fmt: skip
    return out


def _act(name: str):
    return np.tanh if name == "tanh" else (lambda v: np.maximum(v, 0.0))


def _stage_float(stage: torch.nn.Module, scheme: str) -> tuple[list[list[str]], dict[str, tuple]]:
    """The schedule (depth-point keys) and θ at each distinct point, as float64 ``[in, out]`` matrices."""
    from ctnn.models._continuous import BASES

    schedule, thetas = [], {}
    for pts in _points(scheme, stage.n_steps):
        keys = []
        for t, left in pts:
            ws = BASES[stage.basis].weights(stage.n_basis, t, left)
            key = "p" + "_".join(f"{a}x{w:.6g}" for a, w in ws if w != 0.0).replace(".", "d").replace(
                "-", "m"
            )
            if key not in thetas:
                with torch.no_grad():
                    w1, b1, w2, b2 = (p.detach().double().numpy() for p in stage.theta(t, left))
                thetas[key] = (w1.T, b1, w2.T, b2)
            keys.append(key)
        schedule.append(keys)
    return schedule, thetas


def _simulate_stage(h: np.ndarray, scheme: str, schedule, thetas, act) -> tuple[np.ndarray, dict]:
    rec: dict[str, list] = {"h": [h], "p1": [], "p2": [], "k": [], "u": {}, "hin": {}}
    dt = 1.0 / len(schedule)

    def rate(v, key):
        w1, b1, w2, b2 = thetas[key]
        p1 = v @ w1 + b1
        u = act(p1)
        p2 = u @ w2 + b2
        k = act(p2)
        rec["p1"].append(p1), rec["p2"].append(p2), rec["k"].append(k)
        rec["hin"].setdefault(key, []).append(v)
        rec["u"].setdefault(key, []).append(u)
        return k

    def keep(v):
        rec["h"].append(v)
        return v

    for keys in schedule:
        if scheme == "euler":
            h = keep(h + dt * rate(h, keys[0]))
        elif scheme == "midpoint":
            hm = keep(h + 0.5 * dt * rate(h, keys[0]))
            h = keep(h + dt * rate(hm, keys[1]))
        else:
            k1 = rate(h, keys[0])
            k2 = rate(keep(h + 0.5 * dt * k1), keys[1])
            k3 = rate(keep(h + 0.5 * dt * k2), keys[2])
            k4 = rate(keep(h + dt * k3), keys[3])
            h = keep(h + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4))
    return h, rec


def _dense(o: QuantOptions, w, b, s_in, s_out, inputs, name, z_in=0) -> IntegerDense:
    """One dense layer (symmetric ``act_bits`` outputs); ``inputs``: its float inputs for an MSE weight clip."""
    wq, s_w = o.weight(w, inputs)
    bq = np.round(b / (s_in * s_w)).astype(np.int64) - z_in * wq.sum(axis=0)
    if np.abs(bq).max(initial=0) > 2**31 - 1:
        raise OverflowError(f"continuous_net: the quantized bias of {name} overflows int32")
    rq = requant(s_in * s_w / s_out, w.shape[1])
    lo, hi = o.act_range
    return IntegerDense(weight=wq, bias=bq.astype(np.int32), multiplier=rq.multiplier, shift=rq.shift,
                        lo=lo, hi=hi, name=name)  # fmt: skip


def quantize_continuous_net(
    model: torch.nn.Module,
    calib_x: np.ndarray,
    weight_bits: int = 8,
    act_bits: int = 8,
    in_bits: int = 8,
    per_channel: bool = False,
    calibration: str = "minmax",
    weight_clip: str = "mse",
    percentile: float = 99.99,
    input_range: tuple[float, float] | None = None,
    nonlinearity: str = "lut",
    pre_clip: float = 4.0,
    scheme: str | None = None,
    n_steps: int | None = None,
) -> QuantizedModel:
    """Quantize a ``ContinuousNet`` (any basis; scheme euler, midpoint or rk4) to an integer graph.

    ``scheme`` / ``n_steps`` override the model's discretisation for the integer graph
    (the ODE in depth is the model; the discretisation is a choice at inference).

    >>> q = quantize_continuous_net(net, data.X_train, 8, 8, input_range=data.value_range)   # doctest: +SKIP
    """
    o = QuantOptions.checked(weight_bits, act_bits, in_bits, calibration, weight_clip, nonlinearity,
                             percentile=percentile, per_channel=per_channel, pre_clip=pre_clip)  # fmt: skip
    if not (hasattr(model, "stages") and hasattr(model, "encoder") and hasattr(model, "stitches")):
        raise TypeError(
            f"quantize_continuous_net expects a ctnn.models.ContinuousNet, got {type(model).__name__}"
        )
    scheme = scheme or model.scheme
    if scheme not in INTEGER_SCHEMES:
        raise ValueError(
            f"unknown depth scheme {scheme!r}; the integer ContinuousNet has {sorted(INTEGER_SCHEMES)}"
        )
    n_steps = int(n_steps or model.n_steps)
    F = int(model.in_features)
    x = np.asarray(calib_x, np.float64)
    if x.ndim != 2 or x.shape[1] != F or len(x) == 0:
        raise ValueError(f"calibration data must have shape [N, {F}], got {list(np.shape(calib_x))}")
    act = _act(model.activation)
    alo, ahi = o.act_range
    xr = input_range if input_range is not None else real_range(x, calibration, o.in_bits, percentile)
    inq = o.input_quant(xr, F)

    def p(m):
        return m.weight.detach().double().numpy().T, m.bias.detach().double().numpy()

    # float replay
    we, be = p(model.encoder)
    we = we / model.input_scale
    h = x @ we + be
    stage_info, hs_in, stage_out = [], [], []
    for k, st in enumerate(model.stages):
        if k:
            ws, bs = p(model.stitches[k - 1])
            hs_in.append(h)
            h = h @ ws + bs
        schedule, thetas = _with_steps(st, scheme, n_steps)
        h, rec = _simulate_stage(h, scheme, schedule, thetas, act)
        stage_info.append((schedule, thetas, rec))
        stage_out.append(h)
    logits = h @ p(model.head)[0] + p(model.head)[1]

    tanh = model.activation == "tanh"
    s_y = o.scale(logits)
    states = [o.scale(np.concatenate([r.ravel() for r in rec["h"]])) for _, _, rec in stage_info]
    encoder = _dense(o, we, be, inq.scale, states[0], x, "encoder", inq.zero_point)
    stitches = []
    for k in range(1, len(model.stages)):
        ws, bs = p(model.stitches[k - 1])
        stitches.append(_dense(o, ws, bs, states[k - 1], states[k], hs_in[k - 1], f"stitch{k}"))
    stages = []
    for k, (schedule, thetas, rec) in enumerate(stage_info):
        s_h = states[k]
        clip = o.pre_clip if tanh else None  # tanh is flat beyond pre_clip; ReLU is not
        s_p1 = o.scale(np.concatenate([a.ravel() for a in rec["p1"]]), clip)
        s_p2 = o.scale(np.concatenate([a.ravel() for a in rec["p2"]]), clip)
        kind, lo = ("tanh", alo) if tanh else ("relu", 0)
        s_u, s_k = (1.0 / ahi, 1.0 / ahi) if tanh else (s_p1, s_p2)
        act1 = make_activation(kind, s_p1, o.act_bits, s_u, lo, ahi, nonlinearity)
        act2 = make_activation(kind, s_p2, o.act_bits, s_k, lo, ahi, nonlinearity)
        layers = {}
        for key, (w1, b1, w2, b2) in thetas.items():
            hin = np.concatenate(rec["hin"][key]) if o.mse else None
            uin = np.concatenate(rec["u"][key]) if o.mse else None
            layers[key] = (_dense(o, w1, b1, s_h, s_p1, hin, f"s{k}{key}l1"),
                           _dense(o, w2, b2, s_u, s_p2, uin, f"s{k}{key}l2"))  # fmt: skip
        dt, width = 1.0 / n_steps, int(model.widths[k])
        rq = {c: requant(f * s_k / s_h, width) for c, f in (("dt", dt), ("half", dt / 2), ("sixth", dt / 6))}
        stages.append(IntegerStage(scheme, schedule, layers, act1, act2, rq, alo, ahi))
    wh, bh = p(model.head)
    head = _dense(o, wh, bh, states[-1], s_y, stage_out[-1], "head")
    net = IntegerContinuousNet(in_features=F, in_bits=o.in_bits, weight_bits=o.weight_bits, act_bits=o.act_bits,
                               encoder=encoder, stages=stages, stitches=stitches, head=head)  # fmt: skip
    outq = o.output_quant(head.weight.shape[1], s_y)
    hp = {
        "widths": list(model.widths), "scheme": scheme, "n_steps": n_steps, "basis": model.basis,
        "n_basis": model.n_basis, "activation": model.activation, "in_bits": o.in_bits, "per_channel": per_channel,
        "calibration": calibration, "weight_clip": weight_clip, "nonlinearity": nonlinearity,
        "scales": {"states": states},
        "rounding": "round half away from zero via truncating Div, per term",
    }  # fmt: skip
    return QuantizedModel(net=net, input=inq, output=outq, family="continuous_net", hyperparameters=hp)


def _with_steps(stage: torch.nn.Module, scheme: str, n_steps: int):
    old = stage.n_steps
    stage.n_steps = n_steps
    try:
        return _stage_float(stage, scheme)
    finally:
        stage.n_steps = old
