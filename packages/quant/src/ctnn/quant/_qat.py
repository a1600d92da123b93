"""Quantization-aware training whose forward pass *is* the exported integer graph (needs torch).

:class:`QATModel` wraps a float ctnn-models classifier. Its forward pass

1. quantizes the current float weights with the same post-training quantizer that
   export uses (:func:`~ctnn.quant.quantize_model`, scales re-calibrated on a fixed
   calibration set, so the result is a function of the weights alone);
2. runs that model's integer ONNX graph on the numpy int64 reference interpreter —
   the ground truth that onnxruntime, verify and deploy are tested against — keeping
   every intermediate code;
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

from ._ptq import QuantizedModel
from ._quantize import model_family, quantize_model
from ._reference import ReferenceInterpreter

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
    if model.input_norm:
        x = (x - model.input_shift) / model.input_scale
    h: Any = None
    out = None
    for t in range(T):
        out, h = model.rnn(x[:, t : t + 1], hx=h)
        names = _state_names(q.family, t, unfolds)
        if isinstance(h, tuple):
            h = tuple(_ste(v, env[n], s_state) for v, n in zip(h, names, strict=True))
        else:
            h = _ste(h, env[names[0]], s_state)
    assert out is not None
    return model.head(out[:, -1])


#: Float surrogates with per-layer / per-step straight-through estimators, by family.
#: A family without one trains with a single estimator on the logits.
SURROGATES: dict[str, Surrogate] = {
    "mlp": _mlp_surrogate,
    "lipschitz_rnn": _sequence_surrogate,
    "ctrnn": _sequence_surrogate,
    "ltc": _sequence_surrogate,
    "lem": _sequence_surrogate,
}


class QATModel(nn.Module):
    """A float classifier trained through the exact integer forward pass of its quantized graph.

    ``calib_x`` (real inputs) fixes the quantizer's ranges; ``quant_options`` are
    :func:`~ctnn.quant.quantize_model`'s (``weight_bits``, ``act_bits``, ``in_bits``,
    ``input_range``, …). :meth:`forward` takes real inputs and returns the integer
    model's logits in real units; :meth:`quantized` is what :func:`~ctnn.quant.export_onnx` writes.
    """

    def __init__(self, model: nn.Module, calib_x: np.ndarray, **quant_options: Any) -> None:
        super().__init__()
        self.model = model
        self.family = model_family(model)
        self.calib_x = np.asarray(calib_x, np.float64)
        self.quant_options = quant_options
        self._cache: tuple[tuple, QuantizedModel, ReferenceInterpreter] | None = None
        self._current()  # fail early on an unsupported family or bad options

    def _version(self) -> tuple:
        return tuple(p._version for p in self.model.parameters())  # bumped by every in-place update

    def _current(self) -> tuple[QuantizedModel, ReferenceInterpreter]:
        v = self._version()
        if self._cache is None or self._cache[0] != v:
            q = quantize_model(self.model, self.calib_x, **self.quant_options)
            self._cache = (v, q, ReferenceInterpreter(q.to_onnx()))
        return self._cache[1], self._cache[2]

    def quantized(self) -> QuantizedModel:
        """The integer model of the current weights (what export writes)."""
        return self._current()[0]

    def _run(self, x: np.ndarray) -> tuple[QuantizedModel, np.ndarray, dict[str, np.ndarray]]:
        q, ref = self._current()
        codes = q.quantize_input(np.asarray(x, np.float64).reshape(len(x), -1))
        return q, codes, ref.run({"x": codes}, keep=True)

    def codes(self, x: np.ndarray | Tensor) -> np.ndarray:
        """Output codes of the integer graph on real inputs ``x``."""
        x = x.detach().cpu().numpy() if isinstance(x, Tensor) else x
        return self._run(x)[2]["y"]

    def forward(self, x: Tensor | np.ndarray) -> Tensor:
        """Logits in real units: ``output_scale * codes`` exactly, with surrogate gradients."""
        xn = x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)
        q, codes, env = self._run(xn)
        dtype = next(self.model.parameters()).dtype
        x_deq = torch.as_tensor((codes.astype(np.float64) - q.input.zero_point) * q.input.scale, dtype=dtype)
        surrogate = SURROGATES.get(self.family)
        logits = surrogate(self, q, x_deq, env) if surrogate else self.model(x_deq)
        return _ste(logits, env["y"], q.output.scale)


def _int_accuracy(qat: QATModel, X: np.ndarray, y: np.ndarray, batch: int = 512) -> float:
    pred = np.concatenate([np.argmax(qat.codes(X[i : i + batch]), axis=-1) for i in range(0, len(X), batch)])
    return float((pred == np.asarray(y)).mean())


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
    **quant_options: Any,
) -> QuantizedModel:
    """Fine-tune ``model`` (in place) through its exact integer forward pass; return the quantized model.

    ``data`` is a :class:`ctnn.models.Dataset` (fixed-length samples): the first
    ``calib_size`` training samples calibrate the quantizer (as PTQ would), training
    runs on the training split, and the weights whose *integer* model scores best on
    the validation split are kept — the PTQ start included. The result's
    ``hyperparameters["qat"]`` records the per-epoch validation accuracies.

    >>> q = qat_finetune(model, load_dataset("digits"), bits=4, act_bits=8, epochs=3)   # doctest: +SKIP
    >>> export_onnx(q, "model.onnx")                                                  # doctest: +SKIP
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    X, y = np.asarray(data.X_train, np.float64), np.asarray(data.y_train)
    Xv, yv = np.asarray(data.X_val, np.float64), np.asarray(data.y_val)
    if np.isnan(X).any() or np.isnan(Xv).any():
        raise ValueError(f"data set {data.name!r} has variable-length (NaN-padded) samples; the integer export "
                         "needs fixed-length sequences")  # fmt: skip
    quant_options.setdefault("input_range", tuple(data.value_range) if model_family(model) == "mlp" else None)
    qat = QATModel(
        model, X[:calib_size], weight_bits=bits, act_bits=act_bits, in_bits=in_bits, **quant_options
    )
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    best = (_int_accuracy(qat, Xv, yv), 0, copy.deepcopy(model.state_dict()))
    history = [best[0]]
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
        acc = _int_accuracy(qat, Xv, yv)
        history.append(acc)
        if acc > best[0]:
            best = (acc, epoch, copy.deepcopy(model.state_dict()))
    model.load_state_dict(best[2])
    model.eval()
    q = qat.quantized()
    q.hyperparameters["qat"] = {"epochs": epochs, "lr": lr, "best_epoch": best[1], "val_accuracy": history,
                                "calib_size": min(calib_size, len(X))}  # fmt: skip
    return q
