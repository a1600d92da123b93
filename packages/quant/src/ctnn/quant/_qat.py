"""Quantization-aware training whose forward pass *is* the exported integer graph (needs torch).

:class:`QATModel` wraps a float ctnn-models classifier. Its forward pass

1. quantizes the current float weights with the same post-training quantizer that
   export uses (:func:`~ctnn.quant.quantize_model`). With ``freeze_ranges`` (the
   default) the ranges are calibrated once, at construction, and replayed afterwards
   (:class:`~ctnn.quant.FrozenRanges`): every activation scale and every weight scale
   stays fixed, a step only re-rounds the weights, so the result is a function of the
   weights alone and a step costs no calibration search;
2. runs that model's integer program in numpy int64 (``net.program`` on
   :class:`~ctnn.quant.NumpyOps`: the program the ONNX graph is written from, tested
   equal to the reference interpreter and onnxruntime bit for bit), keeping the named
   intermediate codes (the states per input step, the MLP's layer outputs);
3. runs the float model as a *surrogate* on the dequantized values and replaces each
   value by its integer counterpart with a straight-through estimator::

       a = a_float + (scale * code - a_float).detach()

   per layer for the MLP, per input step (the hidden state) for the recurrent
   families, and on the logits for every family. Forward values are the integer
   codes times their scales exactly; gradients flow through the float surrogate,
   evaluated at the integer model's own states.

So ``QATModel.codes(x)`` equals onnxruntime on the exported graph bit for bit, by
construction and by test. :func:`qat_finetune` trains from the PTQ start, keeps the
weights with the best integer validation accuracy (the PTQ start included, so it never
ends worse than PTQ on the validation split) and returns the exportable
:class:`~ctnn.quant.QuantizedModel`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ctnn.models import apply_constraints  # the projection train_classifier applies after each step

from ._calibrate import FrozenRanges
from ._graph import IntegerMLP
from ._ltc_int import IntegerLTC
from ._program import NumpyOps, ProgramModel, overflow_check_deferred
from ._ptq import QuantizedModel
from ._quantize import model_family, quantize_model
from ._reference import ReferenceInterpreter
from ._semantics import requantize

Surrogate = Callable[["QATModel", QuantizedModel, Tensor, dict[str, np.ndarray]], Tensor]


def _ste(value: Tensor, codes: np.ndarray, scale: float | np.ndarray) -> Tensor:
    """``value`` in the backward pass, ``scale * codes`` in the forward pass."""
    exact = torch.as_tensor(np.asarray(codes, np.float64) * np.asarray(scale, np.float64), dtype=value.dtype)
    return value + (exact - value).detach()


def _mlp_surrogate(qat: QATModel, q: QuantizedModel, x: Tensor, env: dict[str, np.ndarray]) -> Tensor:
    linears = list(qat.model.layers)
    s_prev = float(q.input.scale)
    a = x
    for i, (lin, layer) in enumerate(zip(linears, q.net.layers)):
        z = lin(a)
        if i == len(linears) - 1:
            return z
        z = torch.relu(z)
        # the layer's output scale, from its requantization factor M / 2**s = s_prev * s_w / s_out
        # (s_w: the least-squares scale of the weight codes, whatever clipping rule chose them)
        w, wq = lin.weight.detach().double().numpy().T, np.asarray(layer.weight, np.float64)
        den = np.square(wq).sum(axis=0)
        s_w = np.where(den > 0, (w * wq).sum(axis=0) / np.maximum(den, 1e-300), 1.0)
        factor = np.asarray(layer.multiplier, np.float64) / np.exp2(np.asarray(layer.shift, np.float64))
        s_out = float(np.mean(s_prev * s_w / factor))
        a = _ste(z, env[f"{layer.name}/out"], s_out)
        s_prev = s_out
    raise AssertionError("unreachable")


def _state_names(family: str, t: int, unfolds: int) -> list[str]:
    if family == "lem":
        return [f"t{t}/y", f"t{t}/z"]
    return [f"t{t}u{unfolds - 1}/{'v' if family == 'ltc' else 'h'}"]


def _sequence_surrogate(qat: QATModel, q: QuantizedModel, x: Tensor, env: dict[str, np.ndarray]) -> Tensor:
    model = qat.model
    T, F = int(q.hyperparameters["steps"]), int(q.hyperparameters["in_features"])
    unfolds = int(q.hyperparameters.get("unfolds", 1))
    s_state = float(q.hyperparameters["scales"]["state"])
    x = x.reshape(len(x), T, F)
    valid = ~torch.isnan(x).all(dim=2)  # [N, T]: padded steps (NaN rows) leave the state unchanged
    x = torch.nan_to_num(x, nan=0.0)
    if model.input_norm:
        x = (x - model.input_shift) / model.input_scale
    h: Any = None
    last: Any = None
    for t in range(T):
        out, h_new = model.rnn(x[:, t : t + 1], hx=h)
        # hold: the state (and the output the head reads) of a padded step is the previous one
        if h is not None:
            keep = valid[:, t : t + 1]
            if isinstance(h_new, tuple):
                h_new = tuple(torch.where(keep, a, b) for a, b in zip(h_new, h, strict=True))
            else:
                h_new = torch.where(keep, h_new, h)
            out = torch.where(valid[:, t : t + 1, None], out, last)
        names = _state_names(q.family, t, unfolds)
        if isinstance(h_new, tuple):
            h = tuple(_ste(v, env[n], s_state) for v, n in zip(h_new, names, strict=True))
        else:
            h = _ste(h_new, env[names[0]], s_state)
        last = out
    assert last is not None
    return model.head(last[:, -1])


#: Float surrogates with per-layer / per-step straight-through estimators, by family.
#: A family without one trains with a single estimator on the logits.
SURROGATES: dict[str, Surrogate] = {
    "mlp": _mlp_surrogate,
    "lipschitz_rnn": _sequence_surrogate,
    "ctrnn": _sequence_surrogate,
    "ltc": _sequence_surrogate,
    "lem": _sequence_surrogate,
}


def integer_forward(q: QuantizedModel, codes: np.ndarray) -> dict[str, np.ndarray]:
    """The integer model's output codes (``"y"``) and named intermediates, as the exported graph names them.

    Evaluates the model's own numpy semantics (for every family the program its graph is
    written from); a model without one runs its graph on the reference interpreter.
    """
    net = q.net
    if isinstance(net, IntegerMLP):
        env, x = {}, np.asarray(codes, np.int64)
        for layer in net.layers:
            x = requantize(x @ layer.weight.astype(np.int64) + layer.bias.astype(np.int64),
                           layer.multiplier, layer.shift, layer.lo, layer.hi)  # fmt: skip
            env[f"{layer.name}/out"] = x
        env["y"] = x
        return env
    if isinstance(net, IntegerLTC) and net.solver == "semi_implicit":
        y, states = net.forward(codes, return_states=True)
        env = {f"t{t}u{net.unfolds - 1}/v": states[:, t] for t in range(net.steps)}
        env["y"] = y
        return env
    if isinstance(net, (ProgramModel, IntegerLTC)):
        ops = NumpyOps(net._as_steps(codes), keep=True)
        y = net.program(ops)
        assert ops.named is not None
        return {**ops.named, "y": y}
    return ReferenceInterpreter(q.to_onnx()).run({"x": codes}, keep=True)


class QATModel(nn.Module):
    """A float classifier trained through the exact integer forward pass of its quantized graph.

    ``calib_x`` (real inputs) fixes the quantizer's ranges; ``quant_options`` are
    :func:`~ctnn.quant.quantize_model`'s (``weight_bits``, ``act_bits``, ``in_bits``,
    ``input_range``, …). With ``freeze_ranges`` (default) the ranges are calibrated once,
    on the weights given here, and kept for every later quantization (``ranges``: a
    :class:`~ctnn.quant.FrozenRanges` recorded before, to rebuild the same quantizer);
    without it every weight update re-calibrates. :meth:`forward` takes real inputs and
    returns the integer model's logits in real units; :meth:`quantized` is what
    :func:`~ctnn.quant.export_onnx` writes.
    """

    def __init__(
        self,
        model: nn.Module,
        calib_x: np.ndarray,
        freeze_ranges: bool = True,
        ranges: FrozenRanges | None = None,
        **quant_options: Any,
    ) -> None:
        super().__init__()
        self.model = model
        self.family = model_family(model)
        self.calib_x = np.asarray(calib_x, np.float64)
        self.quant_options = quant_options
        self.ranges = (ranges or FrozenRanges()) if freeze_ranges else None
        self._cache: tuple[tuple, QuantizedModel] | None = None
        self._current()  # fail early on an unsupported family or bad options

    def _version(self) -> tuple:
        return tuple(p._version for p in self.model.parameters())  # bumped by every in-place update

    def _quantize(self) -> QuantizedModel:
        if self.ranges is None:
            return quantize_model(self.model, self.calib_x, **self.quant_options)
        if not self.ranges.values:
            with self.ranges.record():
                return quantize_model(self.model, self.calib_x, **self.quant_options)
        # every range is replayed (two samples give the shapes); the interval pass waits for quantized()
        with self.ranges.replay(), overflow_check_deferred():
            return quantize_model(self.model, self.calib_x[:2], **self.quant_options)

    def _current(self) -> QuantizedModel:
        v = self._version()
        if self._cache is None or self._cache[0] != v:
            self._cache = (v, self._quantize())
        return self._cache[1]

    def quantized_scale(self) -> float:
        """The output scale of the current integer model (logits = scale × codes)."""
        return float(self._current().output.scale)

    def quantized(self) -> QuantizedModel:
        """The integer model of the current weights (what export writes), checked for overflow."""
        q = self._current()
        check = getattr(q.net, "check_overflow", None)
        if check is not None:
            check()
        return q

    def _run(self, x: np.ndarray) -> tuple[QuantizedModel, np.ndarray, dict[str, np.ndarray]]:
        q = self._current()
        codes = q.quantize_input(np.asarray(x, np.float64).reshape(len(x), -1))
        return q, codes, integer_forward(q, codes)

    def codes(self, x: np.ndarray | Tensor) -> np.ndarray:
        """Output codes of the integer graph on real inputs ``x``."""
        x = x.detach().cpu().numpy() if isinstance(x, Tensor) else x
        return self._run(x)[2]["y"]

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        """Logits in real units: ``output_scale * codes`` exactly, with surrogate gradients."""
        xn = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
        q, codes, env = self._run(xn)
        dtype = next(self.model.parameters()).dtype
        x_real = (codes.astype(np.float64) - q.input.zero_point) * q.input.scale
        pad = q.hyperparameters.get("pad_code")
        if pad is not None:  # padded steps back to NaN rows: the float model reads each sequence's length
            T, F = int(q.hyperparameters["steps"]), int(q.hyperparameters["in_features"])
            steps = x_real.reshape(len(x_real), T, F)
            steps[codes.reshape(len(codes), T, F)[:, :, 0] == pad] = np.nan
        x_deq = torch.as_tensor(x_real, dtype=dtype)
        surrogate = SURROGATES.get(self.family)
        logits = surrogate(self, q, x_deq, env) if surrogate else self.model(x_deq)
        return _ste(logits, env["y"], q.output.scale)


def _int_scores(qat: QATModel, X: np.ndarray, y: np.ndarray, batch: int = 512) -> tuple[float, float]:
    """(accuracy, cross-entropy) of the integer model's logits (output scale × codes) on ``X``."""
    codes = np.concatenate([qat.codes(X[i : i + batch]) for i in range(0, len(X), batch)])
    logits = torch.as_tensor(codes.astype(np.float64) * qat.quantized_scale())
    y = np.asarray(y)
    loss = float(nn.functional.cross_entropy(logits, torch.as_tensor(y, dtype=torch.int64)))
    return float((np.argmax(codes, axis=-1) == y).mean()), loss


def qat_finetune(
    model: nn.Module,
    data: Any,
    bits: int = 8,
    act_bits: int = 8,
    in_bits: int = 8,
    epochs: int = 3,
    lr: float = 1e-3,
    batch_size: int = 64,
    calib_size: int = 256,
    seed: int = 0,
    freeze_ranges: bool = True,
    select_on: str = "val",
    select_by: str = "accuracy",
    **quant_options: Any,
) -> QuantizedModel:
    """Fine-tune ``model`` (in place) through its exact integer forward pass; return the quantized model.

    ``data`` is a :class:`ctnn.models.Dataset` (fixed-length samples): the first
    ``calib_size`` training samples calibrate the quantizer (as PTQ would), training
    runs on the training split, and the weights whose *integer* model scores best on
    the validation split are kept — the PTQ start included. The result's
    ``hyperparameters["qat"]`` records the per-epoch validation accuracies.
    ``freeze_ranges`` (default): the ranges of the PTQ start are kept throughout (see :class:`QATModel`).
    ``select_on="train+val"`` picks the weights on the training and validation splits together
    — for data sets whose validation split is a handful of samples (GunPoint: 10, BasicMotions: 8),
    where one sample decides; the test split is never looked at either way. ``select_by="loss"``
    keeps the weights of the lowest integer cross-entropy there instead of the best accuracy
    (finer-grained on a handful of samples, as float early stopping does).

    >>> q = qat_finetune(model, load_dataset("digits"), bits=4, act_bits=8, epochs=3)   # doctest: +SKIP
    >>> export_onnx(q, "model.onnx")                                                  # doctest: +SKIP
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if not lr > 0:  # also NaN; torch's own message names neither the option nor where it came from
        raise ValueError(f"the QAT learning rate must be > 0, got {lr}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if select_on not in ("val", "train+val"):
        raise ValueError(f"select_on must be 'val' or 'train+val', got {select_on!r}")
    if select_by not in ("accuracy", "loss"):
        raise ValueError(f"select_by must be 'accuracy' or 'loss', got {select_by!r}")
    X, y = np.asarray(data.X_train, np.float64), np.asarray(data.y_train)
    Xv, yv = np.asarray(data.X_val, np.float64), np.asarray(data.y_val)
    if model_family(model) in ("mlp", "continuous_net") and (np.isnan(X).any() or np.isnan(Xv).any()):
        raise ValueError(f"data set {data.name!r} has variable-length (NaN-padded) samples; the integer export "
                         "needs fixed-length sequences")  # fmt: skip
    quant_options.setdefault("input_range", tuple(data.value_range) if model_family(model) == "mlp" else None)
    qat = QATModel(model, X[:calib_size], freeze_ranges=freeze_ranges, weight_bits=bits, act_bits=act_bits,
                   in_bits=in_bits, **quant_options)  # fmt: skip
    if select_on == "train+val":
        Xv, yv = np.concatenate([X, Xv]), np.concatenate([y, yv])
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)

    def score(acc_loss: tuple[float, float]) -> float:  # higher is better
        return acc_loss[0] if select_by == "accuracy" else -acc_loss[1]

    start = _int_scores(qat, Xv, yv)
    best = (score(start), 0, copy.deepcopy(model.state_dict()))
    history, losses = [start[0]], [start[1]]
    yt = torch.as_tensor(y, dtype=torch.int64)
    for epoch in range(1, epochs + 1):
        model.train()
        for idx in torch.randperm(len(X), generator=gen).split(batch_size):
            loss = nn.functional.cross_entropy(qat(X[idx.numpy()]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            apply_constraints(model)
        model.eval()
        scores = _int_scores(qat, Xv, yv)
        history.append(scores[0])
        losses.append(scores[1])
        if score(scores) > best[0]:
            best = (score(scores), epoch, copy.deepcopy(model.state_dict()))
    model.load_state_dict(best[2])
    model.eval()
    q = qat.quantized()
    q.hyperparameters["qat"] = {"epochs": epochs, "lr": lr, "best_epoch": best[1], "val_accuracy": history,
                                "calib_size": min(calib_size, len(X)), "freeze_ranges": freeze_ranges,
                                "select_on": select_on, "select_by": select_by, "val_loss": losses}  # fmt: skip
    return q
