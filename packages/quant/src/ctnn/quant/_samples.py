"""Sample files: a graph's input codes (and their labels) as ``.npy`` or ``.npz``.

``ctnn-quant codes`` writes them; ctnn-verify's CLI, ``ctnn-deploy run`` and campaign sample
files read them, so one reader decides which array holds the codes. numpy only: the hardware
side reads these without torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: the array of an ``.npz`` sample file that holds the input codes
CODES = "codes"


class SampleFileError(ValueError):
    """A sample file that cannot be read, or that lacks the array asked for (the message names
    the file and the arrays it holds)."""


def read_arrays(path: str | Path, what: str = "input codes") -> dict[str, np.ndarray]:
    """Every array of ``path``: an ``.npz``'s by name, a ``.npy``'s as ``{"codes": array}``.
    Pickled objects are refused. ``what`` names the contents in errors."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise SampleFileError(f"{path}: cannot read a .npy or .npz of {what} ({exc})") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            return {k: loaded[k] for k in loaded.files}
    return {CODES: loaded}


def read_codes(path: str | Path, what: str = "input codes", name: str | None = None) -> np.ndarray:
    """The codes array of ``path``: a ``.npy``, or the ``.npz`` array ``name`` (an input's name,
    if given), else its ``codes``, else its only array."""
    arrays = read_arrays(path, what)
    for key in (name, CODES):
        if key in arrays:
            return arrays[key]
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    wanted = f"{name!r} or {CODES!r}" if name else repr(CODES)
    raise SampleFileError(f"{path}: an .npz of {what} needs an array named {wanted}; it holds {list(arrays)}")


def check_sample_path(path: str | Path) -> Path:
    """``path`` as a :class:`~pathlib.Path`, if it names a ``.npy`` or ``.npz`` sample file."""
    path = Path(path)
    if path.suffix not in (".npy", ".npz"):
        raise SampleFileError(f"{path}: expected a .npy (codes) or .npz (codes and labels) path")
    return path


def write_samples(
    path: str | Path,
    codes: np.ndarray,
    labels: np.ndarray | None = None,
    indices: np.ndarray | None = None,
) -> Path:
    """Write ``codes`` to ``path``: a ``.npy`` holds the codes alone, an ``.npz`` the codes under
    ``codes`` with ``labels`` and the data set's row ``indices`` where given."""
    path = check_sample_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, codes)
        return path
    extra = {k: np.asarray(v) for k, v in (("labels", labels), ("indices", indices)) if v is not None}
    np.savez(path, **{CODES: codes}, **extra)
    return path
