"""The digits MLP 64-32-10 (scikit-learn's bundled 8x8 digits), float and 8-bit integer.

The float network is scikit-learn's MLPClassifier; the integer one is its post-training
quantization written with ctnn-quant's torch-free core (per-tensor symmetric int8 weights,
int32 biases, 8-bit activations, requantization clip(round_div(acc * M, 2^s))): the graph
ctnn-deploy compiles and emlearn's peer is generated from the same float network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctnn.quant import IntegerDense, IntegerMLP, quantize_multiplier


@dataclass
class Digits:
    float_model: object  # sklearn MLPClassifier
    int_model: IntegerMLP
    x_train: np.ndarray  # features in [0, 1]
    x_test: np.ndarray
    y_test: np.ndarray
    codes_test: np.ndarray  # int8 input codes of x_test
    in_scale: float


def train(seed: int = 0) -> Digits:
    import warnings

    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    x, y = load_digits(return_X_y=True)
    x = x / 16.0
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp = MLPClassifier(hidden_layer_sizes=(32,), max_iter=600, random_state=seed).fit(x_tr, y_tr)
    in_scale = 1.0 / 127
    layers = []
    scale, h = in_scale, x_tr
    for i, (w, b) in enumerate(zip(mlp.coefs_, mlp.intercepts_)):
        last = i == len(mlp.coefs_) - 1
        sw = np.abs(w).max() / 127
        wq = np.round(w / sw).astype(np.int64)
        acc_scale = scale * sw
        bq = np.round(b / acc_scale).astype(np.int32)
        h = h @ w + b
        if not last:
            h = np.maximum(h, 0)
        out_scale = np.abs(h).max() / 127
        m, s = quantize_multiplier(acc_scale / out_scale)
        layers.append(
            IntegerDense(wq, bq, np.array(m), np.array(s), -128 if last else 0, 127, name=f"fc{i + 1}")
        )
        scale = out_scale
    model = IntegerMLP(layers, in_bits=8, weight_bits=8, act_bits=8, meta={"dataset": "sklearn digits"})
    codes = np.clip(np.round(x_te / in_scale), -128, 127).astype(np.int8)
    return Digits(mlp, model, x_tr, x_te, y_te, codes, in_scale)


def accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.asarray(pred).reshape(-1) == y))
