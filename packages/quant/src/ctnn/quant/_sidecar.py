"""The JSON sidecar next to each integer ``.onnx``: scales, bit-widths and provenance.

Verify uses it to speak in real units, deploy to pick C types, analysis to label
plots. ``model.onnx`` pairs with ``model.json``; the sidecar records the sha256 of
the graph it describes so a stale pair is caught.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SIDECAR_FORMAT = 1


@dataclass
class TensorQuant:
    """How one graph input or output maps codes to real numbers: ``real = scale * (q - zero_point)``."""

    name: str
    shape: list[int | None]
    bits: int
    lo: int
    hi: int
    scale: float
    zero_point: int = 0
    dtype: str = "int8"

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Real values -> codes: ``clip(round(x / scale) + zero_point, lo, hi)`` (half away from zero)."""
        q = np.sign(x) * np.floor(np.abs(np.asarray(x, np.float64)) / self.scale + 0.5)
        return np.clip(q.astype(np.int64) + self.zero_point, self.lo, self.hi).astype(self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Codes -> real values."""
        return self.scale * (np.asarray(q, np.float64) - self.zero_point)


@dataclass
class Sidecar:
    """Everything a consumer needs to know about an integer graph beyond the graph."""

    family: str
    input: TensorQuant
    output: TensorQuant
    weight_bits: int
    act_bits: int
    onnx_sha256: str = ""
    task: str = "classification"
    classes: list[str] = field(default_factory=list)
    dataset: str = ""
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    producer: str = "ctnn-quant"
    format: int = SIDECAR_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Sidecar:
        d = dict(d)
        try:
            d["input"] = TensorQuant(**d["input"])
            d["output"] = TensorQuant(**d["output"])
            return cls(**d)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed sidecar: {exc}") from None


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sidecar_path(onnx_path: str | os.PathLike[str]) -> Path:
    """``model.onnx`` -> ``model.json``."""
    return Path(onnx_path).with_suffix(".json")


def write_sidecar(onnx_path: str | os.PathLike[str], sidecar: Sidecar) -> Path:
    """Write ``sidecar`` next to ``onnx_path``, stamping the graph's sha256."""
    sidecar.onnx_sha256 = sha256_file(onnx_path)
    out = sidecar_path(onnx_path)
    out.write_text(json.dumps(sidecar.to_dict(), indent=2) + "\n")
    return out


def read_sidecar(onnx_path: str | os.PathLike[str], check_hash: bool = True) -> Sidecar:
    """Read the sidecar of ``onnx_path``; with ``check_hash``, refuse one for another graph."""
    p = sidecar_path(onnx_path)
    if not p.is_file():
        raise FileNotFoundError(f"{onnx_path}: no sidecar {p.name} next to it")
    try:
        sc = Sidecar.from_dict(json.loads(p.read_text()))
    except (json.JSONDecodeError, ValueError) as exc:
        raise ValueError(f"{p}: {exc}") from None
    if check_hash and sc.onnx_sha256 and sc.onnx_sha256 != sha256_file(onnx_path):
        raise ValueError(f"{p}: sha256 does not match {onnx_path} (the sidecar is for another graph)")
    return sc


def input_code_range(onnx_path: str | os.PathLike[str] | None, dtype: np.dtype | type) -> tuple[int, int]:
    """The codes a graph's input takes: the input range of the sidecar next to ``onnx_path`` if
    there is one, else the whole range of the input's ``dtype`` (the box ctnn-verify assumes and
    ctnn-pipeline samples for a graph without a sidecar)."""
    if onnx_path is not None and sidecar_path(onnx_path).is_file():
        sc = read_sidecar(onnx_path).input
        return int(sc.lo), int(sc.hi)
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)
