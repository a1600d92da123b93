"""Post-training quantization of ctnn-models networks to the integer dialect (needs torch).

Scales are symmetric for weights (per tensor or per output channel) and for the
output logits; hidden activations follow a ReLU, so their codes use [0, 2**(b-1) - 1];
the input is asymmetric (a zero point maps the data's minimum to the lowest code)
and that zero point is folded into the first layer's bias, so the graph itself
never subtracts it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from ._calibrate import frozen, real_range
from ._graph import IntegerDense, IntegerMLP
from ._options import QuantOptions
from ._semantics import quantize_multiplier
from ._sidecar import Sidecar, TensorQuant, write_sidecar


@dataclass
class QuantizedModel:
    """An integer model plus the real-number meaning of its input and output codes."""

    net: IntegerMLP
    input: TensorQuant
    output: TensorQuant
    family: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Real inputs (the data's own units) -> input codes.

        A model with a pad code (variable-length sequences) takes right-NaN-padded
        sequences as ctnn-models stores them: every step from a sequence's first all-NaN
        step on becomes the pad code, other NaN values become 0 (as the float model reads them).
        """
        pad = self.hyperparameters.get("pad_code")
        if pad is None:
            return self.input.quantize(x)
        x = np.asarray(x, np.float64)
        T, F = int(self.hyperparameters["steps"]), int(self.hyperparameters["in_features"])
        steps = x.reshape(len(x), T, F)
        padded = np.cumsum(np.isnan(steps).all(axis=2), axis=1) > 0  # [N, T]: at or after the first pad step
        codes = self.input.quantize(np.nan_to_num(steps, nan=0.0))
        codes[padded] = pad
        return codes.reshape(x.shape)

    def forward_codes(self, codes: np.ndarray) -> np.ndarray:
        """Integer forward pass on input codes (numpy, exact)."""
        return self.net.forward(codes)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class predictions of the integer model on real inputs (ties go to the lowest index)."""
        return np.argmax(self.forward_codes(self.quantize_input(x)), axis=-1)

    def to_onnx(self) -> onnx.ModelProto:
        """The integer ONNX graph."""
        return self.net.to_onnx(name=f"ctnn_{self.family}")

    def sidecar(
        self, dataset: str = "", classes: list[str] | None = None, metrics: dict | None = None
    ) -> Sidecar:
        """The JSON sidecar describing this model."""
        return Sidecar(
            family=self.family,
            input=self.input,
            output=self.output,
            weight_bits=self.net.weight_bits,
            act_bits=self.net.act_bits,
            dataset=dataset,
            classes=list(classes or []),
            hyperparameters=dict(self.hyperparameters),
            metrics=dict(metrics or {}),
        )


def _range(a: np.ndarray, calibration: str, percentile: float, bits: int = 8) -> tuple[float, float]:
    if calibration == "minmax":
        return frozen("real_range", lambda: (float(a.min()), float(a.max())))
    return real_range(a, calibration, bits, percentile)


def quantize_mlp(
    model: torch.nn.Module,
    calib_x: np.ndarray,
    weight_bits: int = 8,
    act_bits: int = 8,
    in_bits: int = 8,
    per_channel: bool = False,
    calibration: str = "minmax",
    percentile: float = 99.99,
    input_range: tuple[float, float] | None = None,
    weight_clip: str = "minmax",
) -> QuantizedModel:
    """Quantize a ``ctnn.models.MLP`` (Linear → ReLU → … → Linear) to an integer-only MLP.

    ``calib_x`` holds real inputs ``[N, F]`` in the data's own units; they fix the
    activation ranges (``calibration``: ``"minmax"``, ``"percentile"`` or ``"mse"``);
    ``weight_clip`` picks the weight ranges the same ways (``"mse"``: the least output
    error on ``calib_x``). ``input_range`` overrides the input's calibrated range (e.g.
    ``(0, 16)`` for digits pixels).

    >>> q = quantize_mlp(mlp, X_train, weight_bits=6, act_bits=8)   # doctest: +SKIP
    >>> q.predict(X_test)                                            # doctest: +SKIP
    """
    o = QuantOptions.checked(weight_bits, act_bits, in_bits, calibration, weight_clip,
                             percentile=percentile, per_channel=per_channel)  # fmt: skip
    linears = [m for m in getattr(model, "layers", []) if isinstance(m, torch.nn.Linear)]
    if not linears or len(linears) != len(model.layers):
        raise TypeError(
            f"quantize_mlp expects a ctnn.models.MLP (model.layers = Linear layers), got {type(model).__name__}"
        )
    calib_x = np.asarray(calib_x, np.float64)
    n_in = linears[0].in_features
    if calib_x.ndim != 2 or calib_x.shape[1] != n_in or len(calib_x) == 0:
        raise ValueError(f"calibration data must have shape [N, {n_in}], got {list(calib_x.shape)}")
    ws = [lin.weight.detach().double().numpy().T for lin in linears]  # [in, out]
    bs = [lin.bias.detach().double().numpy() for lin in linears]

    # input: asymmetric, lowest code <- data minimum
    xr = input_range if input_range is not None else _range(calib_x, calibration, percentile, o.in_bits)
    inq = o.input_quant(xr, n_in)
    s_in, z_in = inq.scale, inq.zero_point

    # float activations for calibration
    acts, ins = [], []
    a = calib_x
    for i, (w, b) in enumerate(zip(ws, bs)):
        ins.append(a)
        a = a @ w + b
        if i < len(ws) - 1:
            a = np.maximum(a, 0)
        acts.append(a)

    alo, ahi = o.act_range
    layers = []
    s_prev = s_in
    for i, (w, b) in enumerate(zip(ws, bs)):
        last = i == len(ws) - 1
        wq, s_w = o.weight(w, ins[i])
        if last or calibration == "mse":  # ReLU outputs under "mse": the threshold of the non-negative values
            amax = o.absmax(acts[i])
        else:
            amax = max(_range(acts[i], calibration, percentile)[1], 1e-12)
        s_out = max(amax, 1e-12) / ahi
        acc_scale = s_prev * s_w
        bq = np.round(b / acc_scale).astype(np.int64)
        if i == 0 and z_in:
            bq = bq - z_in * wq.sum(axis=0)  # fold the input zero point: (q - z) @ W = q @ W - z * colsum
        mults, shifts = zip(*(quantize_multiplier(float(f)) for f in acc_scale / s_out))
        bound = np.int64(2**31 - 1)
        if np.abs(bq).max(initial=0) > bound:
            raise OverflowError(f"layer fc{i + 1}: quantized bias overflows int32")
        layers.append(
            IntegerDense(
                weight=wq, bias=bq.astype(np.int32), multiplier=np.array(mults), shift=np.array(shifts),
                lo=alo if last else 0, hi=ahi, name=f"fc{i + 1}",
            )
        )  # fmt: skip
        s_prev = s_out
    net = IntegerMLP(layers, in_bits=o.in_bits, weight_bits=o.weight_bits, act_bits=o.act_bits)
    outq = o.output_quant(linears[-1].out_features, s_prev)
    hp = {
        "sizes": [n_in] + [lin.out_features for lin in linears],
        "per_channel": per_channel,
        "calibration": calibration,
        "weight_clip": weight_clip,
        "in_bits": o.in_bits,
    }
    return QuantizedModel(net=net, input=inq, output=outq, family="mlp", hyperparameters=hp)


def export_onnx(
    qmodel: QuantizedModel,
    path: str | os.PathLike[str],
    dataset: str = "",
    classes: list[str] | None = None,
    metrics: dict | None = None,
) -> Path:
    """Write ``path`` (the integer ONNX graph) and its JSON sidecar; return the .onnx path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(qmodel.to_onnx(), str(path))
    write_sidecar(path, qmodel.sidecar(dataset=dataset, classes=classes, metrics=metrics))
    return path
