"""The digits split: raw 0..16 pixels, stratified, disjoint, deterministic; clear errors."""

import sys

import numpy as np
import pytest
from ctnn.models import DATASETS, Dataset, load_dataset, load_digits


def test_digits_split(digits):
    d = digits
    assert isinstance(d, Dataset)
    n = len(d.y_train) + len(d.y_val) + len(d.y_test)
    assert n == 1797
    for X, y in [(d.X_train, d.y_train), (d.X_val, d.y_val), (d.X_test, d.y_test)]:
        assert X.dtype == np.float32 and y.dtype == np.int64
        assert X.shape == (len(y), 64)
        assert X.min() == 0.0 and X.max() == 16.0  # raw pixel values, not normalised
        assert np.array_equal(X, np.round(X))
        assert set(np.unique(y)) == set(range(10))  # stratified: every class in every split
    assert d.value_range == (0.0, 16.0)
    assert d.sample_shape == (8, 8) and d.n_features == 64 and d.n_classes == 10
    assert abs(len(d.y_test) / n - 0.2) < 0.01 and abs(len(d.y_val) / n - 0.1) < 0.01


def test_split_is_disjoint_and_deterministic():
    from sklearn.datasets import load_digits as sk

    X, _ = sk(return_X_y=True)
    a, b, c = load_digits(seed=3), load_digits(seed=3), load_digits(seed=4)
    assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.X_test, c.X_test)
    # every original sample lands in exactly one split
    rows = np.concatenate([a.X_train, a.X_val, a.X_test])
    assert np.array_equal(np.unique(rows, axis=0), np.unique(X.astype(np.float32), axis=0))
    assert len(rows) == len(X)


def test_fractions_are_checked():
    with pytest.raises(ValueError, match="val_fraction"):
        load_digits(val_fraction=0.5, test_fraction=0.5)


def test_registry():
    assert DATASETS["digits"] is load_digits
    assert load_dataset("digits", seed=0).name == "digits"
    with pytest.raises(ValueError, match=r"unknown data set 'nope'; known: \['digits'\]"):
        load_dataset("nope")


def test_missing_sklearn_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes the import fail
    with pytest.raises(ModuleNotFoundError, match="pip install scikit-learn"):
        load_digits()
