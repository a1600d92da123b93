"""Tensor signatures of a deployed model and the batching rule shared by every runner.

A deployed model runs one sample at a time: the graph's symbolic batch dimension is
fixed to 1. Runners accept a whole batch ``[N, ...]`` and loop over it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

#: numpy dtype name -> C type of a graph input/output in the generated API.
C_TYPES: dict[str, str] = {
    "int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "uint16": "uint16_t",
    "int32": "int32_t", "uint32": "uint32_t", "int64": "int64_t", "uint64": "uint64_t",
    "bool": "bool", "float32": "float",
}  # fmt: skip


class Sized:
    """``size`` and ``nbytes`` of anything with a static ``shape`` and a numpy ``dtype`` name."""

    shape: tuple[int, ...]
    dtype: str

    @property
    def size(self) -> int:
        """Elements (in one sample, for a graph input or output)."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class TensorSpec(Sized):
    """One graph input or output as compiled: static ``shape`` (batch fixed to 1) and dtype.

    ``batched`` says that the ONNX graph declared the first dimension symbolic, so a
    runner accepts ``[N, *shape[1:]]`` and loops over the N samples.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    batched: bool = True

    @property
    def c_type(self) -> str:
        return C_TYPES[self.dtype]

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape), "batched": self.batched}

    @classmethod
    def from_dict(cls, d: Mapping) -> TensorSpec:
        return cls(d["name"], d["dtype"], tuple(int(v) for v in d["shape"]), bool(d["batched"]))


def _as_codes(spec: TensorSpec, value) -> np.ndarray:
    """Check that ``value`` holds integer codes that fit ``spec.dtype``; return them in that dtype."""
    a = np.asarray(value)
    if spec.dtype.startswith("float"):  # only peers' firmware (benchmarks) takes real values
        return a.astype(np.dtype(spec.dtype))
    if a.dtype == np.bool_ and spec.dtype != "bool":
        a = a.astype(np.int64)
    if not (np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_):
        raise TypeError(f"input {spec.name!r}: expected integer codes, got dtype {a.dtype}")
    if a.size and spec.dtype != "bool":
        info = np.iinfo(np.dtype(spec.dtype))
        lo, hi = int(a.min()), int(a.max())
        if lo < info.min or hi > info.max:
            raise ValueError(
                f"input {spec.name!r}: codes in [{lo}, {hi}] do not fit {spec.dtype} [{info.min}, {info.max}]"
            )
    return a.astype(np.dtype(spec.dtype), copy=False)


def split_batch(
    specs: tuple[TensorSpec, ...], feeds: np.ndarray | Mapping[str, np.ndarray]
) -> tuple[int, list[np.ndarray], bool]:
    """Normalise ``feeds`` to one ``[n, *spec.shape]`` array per input.

    Returns ``(n, arrays, stacked)``; ``stacked`` is False when a single unbatched
    sample was given without a leading sample axis (outputs then drop that axis too).
    """
    if not isinstance(feeds, Mapping):
        if len(specs) != 1:
            names = ", ".join(s.name for s in specs)
            raise TypeError(f"the model has {len(specs)} inputs ({names}); pass a dict name -> codes")
        feeds = {specs[0].name: feeds}
    missing = [s.name for s in specs if s.name not in feeds]
    extra = sorted(set(feeds) - {s.name for s in specs})
    if missing or extra:
        raise KeyError(f"inputs missing: {missing}, unknown: {extra}")
    arrays, ns, stacked = [], set(), True
    for s in specs:
        a = _as_codes(s, feeds[s.name])
        if s.batched:
            if a.shape[1:] != s.shape[1:] or a.ndim != len(s.shape):
                raise ValueError(f"input {s.name!r}: expected shape [N, {', '.join(map(str, s.shape[1:]))}], "
                                 f"got {list(a.shape)}")  # fmt: skip
            a = a.reshape((a.shape[0], 1, *s.shape[1:]))
        elif a.shape == s.shape:
            a, stacked = a[None], False
        elif a.shape[1:] != s.shape:
            raise ValueError(f"input {s.name!r}: expected shape {list(s.shape)} or [N, {list(s.shape)}], "
                             f"got {list(a.shape)}")  # fmt: skip
        arrays.append(np.ascontiguousarray(a))
        ns.add(a.shape[0])
    if len(ns) > 1:
        raise ValueError(f"inputs disagree on the number of samples: {sorted(ns)}")
    return (ns.pop() if ns else 0), arrays, stacked


def join_batch(
    specs: tuple[TensorSpec, ...], per_output: list[np.ndarray], stacked: bool
) -> np.ndarray | dict[str, np.ndarray]:
    """Inverse of :func:`split_batch` for outputs: ``[n, *spec.shape]`` -> user layout."""
    out = {}
    for s, a in zip(specs, per_output):
        if s.batched:
            a = a.reshape((a.shape[0] * s.shape[0], *s.shape[1:]))
        elif not stacked:
            a = a[0]
        out[s.name] = a
    return next(iter(out.values())) if len(out) == 1 else out
