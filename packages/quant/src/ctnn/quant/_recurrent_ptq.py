"""Post-training quantization of ctnn-models sequence classifiers (needs torch).

Supported: :class:`~ctnn.models.SequenceClassifier` of family ``"lipschitz_rnn"``
(``solver="euler"``), ``"ctrnn"`` (``solver="euler"``), ``"ltc"`` (``solver="semi_implicit"``,
see :mod:`ctnn.quant._ltc_int`) or ``"lem"`` (``dt <= 1``, see :mod:`ctnn.quant._lem_int`) on
fixed-length sequences.
The result is a :class:`~ctnn.quant.QuantizedModel` whose ``net`` is an
:class:`~ctnn.quant.IntegerRecurrent`, so ``export_onnx`` writes its graph and sidecar.

Scales (all symmetric except the input): weights per tensor; the hidden state at
``max|h| / (2**(b-1) - 1)`` over every calibration step; the tanh pre-activation at
``min(max|pre|, pre_clip) / (2**(b-1) - 1)`` (tanh is flat beyond ±4, so a wider
range only wastes codes); tanh outputs at ``1 / (2**(b-1) - 1)``; the logits at their
calibrated ``max|y|``. The input is asymmetric with its zero point folded into the
input bias; the classifier's input normalisation is folded into ``U`` and ``b``.
"""

from __future__ import annotations

import numpy as np
import torch

from ._graph import IntegerDense
from ._lut import lut_table
from ._ptq import CALIBRATIONS, QuantizedModel
from ._recurrent import RECURRENT_FAMILIES, IntegerRecurrent, Requant
from ._semantics import asymmetric_scale, check_bits, container_dtype, quantize_multiplier, signed_range
from ._sidecar import TensorQuant

#: Families :func:`quantize_sequence_classifier` handles.
SUPPORTED_FAMILIES = (*RECURRENT_FAMILIES, "ltc", "lem")


def _requant(factors: np.ndarray | float, units: int) -> Requant:
    f = np.broadcast_to(np.asarray(factors, np.float64), (units,))
    m, s = zip(*(quantize_multiplier(max(float(v), 1e-30)) for v in f))
    return Requant(np.array(m, np.int64), np.array(s, np.int64))


def _absmax(a: np.ndarray, calibration: str, percentile: float) -> float:
    a = np.abs(np.asarray(a, np.float64))
    v = float(a.max(initial=0.0)) if calibration == "minmax" else float(np.percentile(a, percentile))
    return max(v, 1e-8)


def _qweight(w: np.ndarray, bits: int) -> tuple[np.ndarray, float]:
    wmax = (1 << (bits - 1)) - 1
    amax = float(np.abs(w).max(initial=0.0))
    s = amax / wmax if amax > 0 else 1.0
    return np.clip(np.round(w / s), -wmax, wmax).astype(np.int64), s


def _qweight_mse(w: np.ndarray, bits: int, inputs: np.ndarray | None) -> tuple[np.ndarray, float]:
    """Per-tensor symmetric codes whose clipping threshold minimises ``‖x @ (Wq·s) − x @ W‖²``.

    Candidates are ``max|W|`` times 1, 0.95, …, 0.2; ``inputs`` (float rows the layer
    sees during calibration) weight the error. A few outlier weights (e.g. from the
    input normalisation of a near-constant feature) would otherwise take the whole
    code range.
    """
    if inputs is None or not len(inputs):
        return _qweight(w, bits)
    wmax = (1 << (bits - 1)) - 1
    amax = float(np.abs(w).max(initial=0.0))
    if amax == 0:
        return _qweight(w, bits)
    ref = inputs @ w
    best = None
    for r in np.linspace(1.0, 0.2, 17):
        s = amax * r / wmax
        q = np.clip(np.round(w / s), -wmax, wmax)
        err = float(np.square(inputs @ (q * s) - ref).sum())
        if best is None or err < best[0]:
            best = (err, q.astype(np.int64), s)
    assert best is not None
    return best[1], best[2]


def _float_params(model: torch.nn.Module) -> dict:
    rnn = model.rnn
    p: dict = {"family": model.family}
    if model.family == "lipschitz_rnn":
        if rnn.solver != "euler":
            raise ValueError(f"only the Euler Lipschitz RNN is supported, got solver {rnn.solver!r}")
        a, w = (m.detach().double().numpy() for m in rnn.matrices())
        p.update(A=a.T, W=w.T, unfolds=1, dt=rnn.eps, inv_tau=None)
    else:
        if rnn.solver != "euler":
            raise ValueError(f"only the Euler CT-RNN is supported, got solver {rnn.solver!r}")
        p.update(A=None, W=rnn.W.weight.detach().double().numpy().T, unfolds=rnn.ode_unfolds,
                 dt=1.0 / rnn.ode_unfolds, inv_tau=1.0 / rnn.tau().detach().double().numpy())  # fmt: skip
    U = rnn.U.weight.detach().double().numpy().T  # [F, H]
    bias = rnn.U.bias.detach().double().numpy()
    if model.input_norm:  # (x - shift) / scale, folded into U and b
        shift = model.input_shift.detach().double().numpy()
        scale = model.input_scale.detach().double().numpy()
        U = U / scale[:, None]
        bias = bias - shift @ U
    p.update(U=U, b=bias, Wo=model.head.weight.detach().double().numpy().T,
             bo=model.head.bias.detach().double().numpy())  # fmt: skip
    return p


def _simulate(p: dict, x: np.ndarray) -> dict:
    """The float model, step by step (float64), recording the ranges the scales need."""
    h = np.zeros((len(x), p["W"].shape[0]))
    pres, hs = [], []
    for t in range(x.shape[1]):
        z = x[:, t] @ p["U"] + p["b"]
        for _ in range(p["unfolds"]):
            pre = h @ p["W"] + z
            th = np.tanh(pre)
            if p["A"] is not None:
                h = h + p["dt"] * (h @ p["A"] + th)
            else:
                h = h + p["dt"] * (th - h) * p["inv_tau"]
            pres.append(pre)
            hs.append(h)
    return {"pre": np.stack(pres), "h": np.stack(hs), "y": h @ p["Wo"] + p["bo"], "h_last": h}


def quantize_sequence_classifier(
    model: torch.nn.Module,
    calib_x: np.ndarray,
    weight_bits: int = 8,
    act_bits: int = 8,
    in_bits: int = 8,
    steps: int | None = None,
    calibration: str = "minmax",
    percentile: float = 99.99,
    input_range: tuple[float, float] | None = None,
    pre_clip: float = 4.0,
    weight_clip: str = "mse",
) -> QuantizedModel:
    """Quantize a Lipschitz-RNN, CT-RNN, LTC or LEM ``SequenceClassifier`` to an unrolled integer graph.

    ``calib_x`` holds real, fixed-length inputs ``[N, T·F]`` or ``[N, T, F]`` (no NaN
    padding); T (the unrolled length) comes from it, or from ``steps`` for flat data.
    Activations (state, tanh pre-activation, tanh output) use ``act_bits``; the graph's
    input ``x`` is flat ``[N, T·F]`` with ``in_bits`` codes. ``weight_clip``: ``"minmax"``
    (scale = max|W|) or ``"mse"`` (the clipping threshold that minimises each matmul's
    error on the calibration data).

    >>> q = quantize_sequence_classifier(clf, data.X_train, 8, 8, input_range=data.value_range)  # doctest: +SKIP
    >>> export_onnx(q, "rnn.onnx", dataset="digits")                                             # doctest: +SKIP
    """
    weight_bits = check_bits(weight_bits, "weight bit-width")
    act_bits = check_bits(act_bits, "activation bit-width")
    in_bits = check_bits(in_bits, "input bit-width")
    if calibration not in CALIBRATIONS:
        raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {calibration!r}")
    if weight_clip not in ("minmax", "mse"):
        raise ValueError(f"weight_clip must be 'minmax' or 'mse', got {weight_clip!r}")
    family = getattr(model, "family", None)
    if not hasattr(model, "rnn") or family not in SUPPORTED_FAMILIES:
        raise TypeError(
            f"quantize_sequence_classifier expects a ctnn.models.SequenceClassifier of family "
            f"{', '.join(SUPPORTED_FAMILIES)}, got {type(model).__name__}"
            + (f" of family {family!r}" if family else "")
        )
    F = int(model.in_features)
    x = np.asarray(calib_x, np.float64)
    if (
        x.ndim == 2
        and len(x)
        and x.shape[1] % F == 0
        and x.shape[1]
        and (steps is None or x.shape[1] == steps * F)
    ):
        x = x.reshape(len(x), -1, F)
    if (
        x.ndim != 3
        or x.shape[2] != F
        or len(x) == 0
        or x.shape[1] == 0
        or (steps is not None and x.shape[1] != steps)
    ):
        want = f"[N, {steps * F}] or [N, {steps}, {F}]" if steps else f"[N, T·{F}] or [N, T, {F}]"
        raise ValueError(f"calibration data must have shape {want}, got {list(np.shape(calib_x))}")
    if np.isnan(x).any():
        raise ValueError("calibration data holds NaN padding; integer export needs fixed-length sequences")
    T = x.shape[1]
    if family in ("ltc", "lem"):
        if input_range is not None:
            xr = input_range
        elif calibration == "minmax":
            xr = (float(x.min()), float(x.max()))
        else:
            xr = (float(np.percentile(x, 100 - percentile)), float(np.percentile(x, percentile)))
        if family == "lem":
            from ._lem_ptq import quantize_lem

            return quantize_lem(model, x, weight_bits, act_bits, in_bits, xr, calibration, percentile, weight_clip,
                                pre_clip)  # fmt: skip
        from ._ltc_ptq import quantize_ltc

        return quantize_ltc(
            model, x, weight_bits, act_bits, in_bits, xr, calibration, percentile, weight_clip
        )
    p = _float_params(model)
    H = p["W"].shape[0]
    sim = _simulate(p, x)

    # input: asymmetric, lowest code <- data minimum (as quantize_mlp)
    ilo, ihi = signed_range(in_bits)
    if input_range is not None:
        xmin, xmax = input_range
    elif calibration == "minmax":
        xmin, xmax = float(x.min()), float(x.max())
    else:
        xmin, xmax = float(np.percentile(x, 100 - percentile)), float(np.percentile(x, percentile))
    s_x, z_x = asymmetric_scale(xmin, xmax, in_bits)

    alo, ahi = signed_range(act_bits)
    s_h = _absmax(sim["h"], calibration, percentile) / ahi
    s_z = min(_absmax(sim["pre"], calibration, percentile), pre_clip) / ahi
    s_t = 1.0 / ahi
    s_y = _absmax(sim["y"], calibration, percentile) / ahi

    mse = weight_clip == "mse"
    sub = slice(None, None, max(1, len(x) // 512))  # a subsample is plenty for the clip search
    h_in = sim["h"][:, sub].reshape(-1, H)
    Uq, s_u = _qweight_mse(p["U"], weight_bits, x[sub].reshape(-1, F) if mse else None)
    bu = np.round(p["b"] / (s_x * s_u)).astype(np.int64) - z_x * Uq.sum(axis=0)
    if np.abs(bu).max(initial=0) > 2**31 - 1:
        raise OverflowError("the quantized input bias overflows int32")
    Wq, s_w = _qweight_mse(p["W"], weight_bits, h_in if mse else None)
    table = lut_table("tanh", s_z, act_bits, s_t, alo, ahi)
    kw: dict = {}
    if p["A"] is not None:
        Aq, s_a = _qweight_mse(p["A"], weight_bits, h_in if mse else None)
        kw.update(A=Aq, rq_a=_requant(p["dt"] * s_a, H))
        rq_t = _requant(p["dt"] * s_t / s_h, H)
    else:
        kw.update(rq_d=_requant(p["dt"] * p["inv_tau"], H))
        rq_t = _requant(p["dt"] * p["inv_tau"] * s_t / s_h, H)
    Woq, s_wo = _qweight_mse(p["Wo"], weight_bits, sim["h_last"][sub] if mse else None)
    bo = np.round(p["bo"] / (s_h * s_wo)).astype(np.int64)
    hm, hs = quantize_multiplier(s_h * s_wo / s_y)
    C = Woq.shape[1]
    head = IntegerDense(weight=Woq, bias=bo.astype(np.int32), multiplier=np.full(C, hm), shift=np.full(C, hs),
                        lo=alo, hi=ahi, name="head")  # fmt: skip
    net = IntegerRecurrent(
        family=family, steps=T, in_features=F, unfolds=p["unfolds"], in_bits=in_bits, weight_bits=weight_bits,
        act_bits=act_bits, U=Uq, bu=bu.astype(np.int32), rq_u=_requant(s_x * s_u / s_z, H), W=Wq,
        rq_w=_requant(s_h * s_w / s_z, H), rq_t=rq_t, tanh_table=table, head=head, **kw,
    )  # fmt: skip
    inq = TensorQuant("x", [None, T * F], in_bits, ilo, ihi, s_x, z_x, str(container_dtype(ilo, ihi)))
    outq = TensorQuant("y", [None, C], act_bits, alo, ahi, s_y, 0, str(container_dtype(alo, ahi)))
    hp = {
        "steps": T, "in_features": F, "units": H, "unfolds": p["unfolds"], "in_bits": in_bits,
        "calibration": calibration, "weight_clip": weight_clip, "input_layout": "flat time-major [N, T*F]",
        "scales": {"state": s_h, "pre_activation": s_z, "tanh": s_t},
        "rounding": "round half away from zero via truncating Div, per term",
    }  # fmt: skip
    return QuantizedModel(net=net, input=inq, output=outq, family=family, hyperparameters=hp)
