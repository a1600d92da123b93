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

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch

from ._calibrate import real_range
from ._nonlin import make_activation
from ._options import QuantOptions, requant, subsample
from ._ptq import QuantizedModel
from ._recurrent import RECURRENT_FAMILIES, IntegerRecurrent
from ._semantics import check_bits, signed_range
from ._sidecar import TensorQuant

#: Families :func:`quantize_sequence_classifier` handles.
SUPPORTED_FAMILIES = (*RECURRENT_FAMILIES, "ltc", "lem", "lstm", "gru")
#: Families with a wide state accumulator option (``state_bits``).
STATE_BITS_FAMILIES = (*RECURRENT_FAMILIES, "lstm", "gru")
#: The models' solver names -> the integer step that implements them.
_SOLVERS = {"lipschitz_rnn": {"euler": "euler", "rk2": "midpoint"}, "ctrnn": {"euler": "euler", "rk4": "rk4"}}


def hold(valid: np.ndarray | None, t: int, new: np.ndarray, old: np.ndarray) -> np.ndarray:
    """The float calibration's counterpart of the graph's padded-step hold (``valid``: ``[N, T]`` or None)."""
    return new if valid is None else np.where(valid[:, t, None], new, old)


@dataclass(frozen=True)
class SequenceData:
    """Checked calibration sequences, as every sequence family's quantizer takes them."""

    x: np.ndarray  # [N, T, F], NaN read as 0 (as the float model reads it)
    valid: np.ndarray | None  # [N, T]: the real (not padded) steps; None: all of them
    input: TensorQuant  # the input's codes: flat [N, T·F], asymmetric

    @property
    def sub(self) -> slice:
        """The subsample of sequences the MSE weight-clip searches read."""
        return subsample(len(self.x))


def _float_params(model: torch.nn.Module) -> dict:
    rnn = model.rnn
    p: dict = {"family": model.family}
    solvers = _SOLVERS[model.family]
    if rnn.solver not in solvers:
        raise ValueError(
            f"{model.family}: solver {rnn.solver!r} has no integer form; supported: {sorted(solvers)}"
        )
    p["solver"] = solvers[rnn.solver]
    if model.family == "lipschitz_rnn":
        a, w = (m.detach().double().numpy() for m in rnn.matrices())
        p.update(A=a.T, W=w.T, unfolds=1, dt=rnn.eps, inv_tau=None)
    else:
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


def _simulate(p: dict, x: np.ndarray, valid: np.ndarray | None = None) -> dict:
    """The float model, step by step (float64), recording the ranges the scales need.

    ``valid`` ``[N, T]`` (variable-length data): a padded step leaves the state as it was.
    """
    h = np.zeros((len(x), p["W"].shape[0]))
    pres, hs = [], []
    solver = p.get("solver", "euler")

    def rate(v, z):
        pre = v @ p["W"] + z
        pres.append(pre)
        if p["A"] is not None:
            return v @ p["A"] + np.tanh(pre)
        return (np.tanh(pre) - v) * p["inv_tau"]

    def keep(v):
        hs.append(v)
        return v

    dt = p["dt"]
    for t in range(x.shape[1]):
        h_prev = h
        z = x[:, t] @ p["U"] + p["b"]
        for _ in range(p["unfolds"]):
            if solver == "euler":
                h = keep(h + dt * rate(h, z))
            elif solver == "midpoint":
                h = keep(h + dt * rate(keep(h + 0.5 * dt * rate(h, z)), z))
            else:
                k1 = rate(h, z)
                k2 = rate(keep(h + 0.5 * dt * k1), z)
                k3 = rate(keep(h + 0.5 * dt * k2), z)
                k4 = rate(keep(h + dt * k3), z)
                h = keep(h + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4))
        h = hold(valid, t, h, h_prev)
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
    per_channel: bool = False,
    nonlinearity: str = "lut",
    state_bits: int | None = None,
) -> QuantizedModel:
    """Quantize a ``SequenceClassifier`` of any family to an unrolled integer graph.

    Families: Lipschitz RNN (Euler or RK2), CT-RNN (Euler or RK4), LTC (fused
    semi-implicit), LEM (dt ≤ 1), LSTM and GRU. ``calib_x`` holds real, fixed-length
    inputs ``[N, T·F]`` or ``[N, T, F]``; T (the unrolled length)
    comes from it, or from ``steps`` for flat data. Activations (states,
    pre-activations, gate outputs) use ``act_bits``, weights ``weight_bits`` (per tensor,
    or per output channel with ``per_channel``); the graph's input ``x`` is flat
    ``[N, T·F]`` with ``in_bits`` codes. ``calibration`` (activation ranges) and
    ``weight_clip`` (weight ranges): ``"minmax"``, ``"percentile"`` or ``"mse"``.
    ``nonlinearity``: sigmoid/tanh as lookup tables (``"lut"``) or piecewise-linear
    (``"pwl"``; not for the LTC, whose sigmoids are fused with their synapse weights).
    Right-NaN-padded (variable-length) sequences are supported: the graph is unrolled
    over the longest, and the lowest input code marks a padded step, which leaves the
    state unchanged (``Equal`` + ``Where``), so the head reads each sequence's state at its
    last valid step, as the float model does (``hyperparameters["pad_code"]``).
    ``state_bits`` (Lipschitz RNN, CT-RNN, LSTM, GRU; default ``act_bits``): the width of
    the state accumulator (the LSTM's cell state), whose ``act_bits`` view the matmuls and
    lookup tables read — 16 keeps the small per-step changes that an ``act_bits`` state
    rounds away (see :mod:`ctnn.quant._recurrent` and :mod:`ctnn.quant._gated_int`).

    >>> q = quantize_sequence_classifier(clf, data.X_train, 8, 8, input_range=data.value_range)  # doctest: +SKIP
    >>> export_onnx(q, "rnn.onnx", dataset="digits")                                             # doctest: +SKIP
    """
    o = QuantOptions.checked(weight_bits, act_bits, in_bits, calibration, weight_clip, nonlinearity,
                             percentile=percentile, per_channel=per_channel, pre_clip=pre_clip)  # fmt: skip
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
    variable = bool(np.isnan(x).any())
    valid = None
    if variable:  # right-NaN-padded sequences: NaN -> 0 (as the float model reads them), padded steps held
        valid = np.cumsum(np.isnan(x).all(axis=2), axis=1) == 0  # [N, T]: before the first all-NaN step
        if not valid[:, 0].all():
            raise ValueError("calibration data: a sequence has no valid step (its first step is all NaN)")
        x = np.nan_to_num(x, nan=0.0)
    if state_bits is not None:
        if family not in STATE_BITS_FAMILIES:
            raise ValueError(
                f"state_bits applies to the {', '.join(STATE_BITS_FAMILIES)} families, not {family!r}"
            )
        state_bits = check_bits(state_bits, "state bit-width")
        if state_bits < o.act_bits:
            raise ValueError(f"state_bits ({state_bits}) must be >= act_bits ({o.act_bits})")
        o = dataclasses.replace(o, state_bits=state_bits)
    xr = input_range if input_range is not None else real_range(x, calibration, o.in_bits, percentile)
    # input: asymmetric, lowest code <- data minimum (as quantize_mlp)
    q = _quantize_family(model, SequenceData(x, valid, o.input_quant(xr, x.shape[1] * F)), o)
    if variable:
        _with_padding(q)
    return q


def _with_padding(q: QuantizedModel) -> None:
    """Reserve the lowest input code for padding: a step that starts with it leaves the state unchanged.

    Real inputs then use the codes above it (a value at the calibrated minimum moves up by one code).
    """
    pad = q.input.lo
    q.net.pad_code = pad
    q.input = dataclasses.replace(q.input, lo=pad + 1)
    q.hyperparameters.update(pad_code=pad, variable_length=True)


def _quantize_family(model: torch.nn.Module, d: SequenceData, o: QuantOptions) -> QuantizedModel:
    """Dispatch to the family's quantizer; each takes ``(model, data, options)``."""
    family = model.family
    if family in ("lstm", "gru"):
        from ._gated_ptq import quantize_gated as quantize
    elif family == "lem":
        from ._lem_ptq import quantize_lem as quantize
    elif family == "ltc":
        if o.nonlinearity != "lut":
            raise ValueError(
                "ltc: the synapse sigmoids are fused with their weights into per-synapse lookup tables; "
                f"nonlinearity={o.nonlinearity!r} is not available for the LTC (use 'lut')"
            )
        from ._ltc_ptq import quantize_ltc as quantize
    else:
        quantize = quantize_rnn
    return quantize(model, d, o)


def quantize_rnn(model: torch.nn.Module, d: SequenceData, o: QuantOptions) -> QuantizedModel:
    """The Lipschitz RNN / CT-RNN branch of :func:`quantize_sequence_classifier`."""
    family, x, inq = model.family, d.x, d.input
    F, T = x.shape[2], x.shape[1]
    p = _float_params(model)
    H = p["W"].shape[0]
    sim = _simulate(p, x, d.valid)
    s_x, z_x = inq.scale, inq.zero_point

    alo, ahi = o.act_range
    sb = o.state_width
    s_h = o.absmax(sim["h"], sb) / signed_range(sb)[1]  # the state accumulator
    s_v = s_h * 2 ** (sb - o.act_bits)  # its act_bits view: a rounding shift by sb - act_bits
    s_z = o.scale(sim["pre"], o.pre_clip)
    s_t = 1.0 / ahi
    s_y = o.scale(sim["y"])

    sub = d.sub
    h_in = sim["h"][:, sub]

    Uq, s_u = o.weight(p["U"], x[sub])
    bu = np.round(p["b"] / (s_x * s_u)).astype(np.int64) - z_x * Uq.sum(axis=0)
    if np.abs(bu).max(initial=0) > 2**31 - 1:
        raise OverflowError("the quantized input bias overflows int32")
    Wq, s_w = o.weight(p["W"], h_in)
    tanh = make_activation("tanh", s_z, o.act_bits, s_t, alo, ahi, o.nonlinearity)
    table = tanh.apply(np.arange(alo, ahi + 1))
    kw: dict = {}
    fac = {"dt": p["dt"], "half": p["dt"] / 2, "sixth": p["dt"] / 6}
    stage: dict = {}
    if p["A"] is not None:
        Aq, s_a = o.weight(p["A"], h_in)
        kw.update(A=Aq, rq_a=requant(p["dt"] * s_a * s_v / s_h, H))
        rq_t = requant(p["dt"] * s_t / s_h, H)
        for c in ("half", "sixth"):
            stage.update({f"t_{c}": requant(fac[c] * s_t / s_h, H),
                          f"a_{c}": requant(fac[c] * s_a * s_v / s_h, H)})  # fmt: skip
    else:
        kw.update(rq_d=requant(p["dt"] * p["inv_tau"], H))
        rq_t = requant(p["dt"] * p["inv_tau"] * s_t / s_h, H)
        for c in ("half", "sixth"):
            stage.update({f"t_{c}": requant(fac[c] * p["inv_tau"] * s_t / s_h, H),
                          f"d_{c}": requant(fac[c] * p["inv_tau"], H)})  # fmt: skip
    head = o.head(*o.weight(p["Wo"], sim["h_last"][sub]), p["bo"], s_v, s_y)
    net = IntegerRecurrent(
        family=family, steps=T, in_features=F, unfolds=p["unfolds"], in_bits=o.in_bits, weight_bits=o.weight_bits,
        act_bits=o.act_bits, U=Uq, bu=bu.astype(np.int32), rq_u=requant(s_x * s_u / s_z, H), W=Wq,
        rq_w=requant(s_v * s_w / s_z, H), rq_t=rq_t, state_bits=sb, tanh_table=table, head=head, solver=p["solver"],
        rq_stage=stage if p["solver"] != "euler" else {}, tanh=tanh if o.nonlinearity == "pwl" else None, **kw,
    )  # fmt: skip
    hp = {
        "steps": T, "in_features": F, "units": H, "unfolds": p["unfolds"], "in_bits": o.in_bits,
        "solver": p["solver"], "calibration": o.calibration, "weight_clip": o.weight_clip,
        "per_channel": o.per_channel, "nonlinearity": o.nonlinearity, "input_layout": "flat time-major [N, T*F]",
        "state_bits": sb, "scales": {"state": s_h, "state_view": s_v, "pre_activation": s_z, "tanh": s_t},
        "rounding": "round half away from zero via truncating Div, per term",
    }  # fmt: skip
    outq = o.output_quant(head.weight.shape[1], s_y)
    return QuantizedModel(net=net, input=inq, output=outq, family=family, hyperparameters=hp)
