"""One integer graph prepared for queries: its input, output, code range and executors."""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np
import onnx

from ctnn.quant import ReferenceInterpreter, as_model, input_code_range

from ._errors import SampleError, UnsupportedError

ModelLike = onnx.ModelProto | str | os.PathLike[str]


class Network:
    """A checked integer graph with one input and one output, plus its reference and ORT executors.

    The input code range is, in order: ``input_range`` if given, the sidecar next to the
    ``.onnx`` file (``input.lo``/``input.hi``), the input's ONNX dtype.
    """

    def __init__(self, model: ModelLike, input_range: tuple[int, int] | None = None):
        self.source = "<model>" if isinstance(model, onnx.ModelProto) else str(model)
        self.model = as_model(model)
        self.ref = ReferenceInterpreter(self.model)
        if len(self.ref.input_names) != 1 or len(self.ref.output_names) != 1:
            raise UnsupportedError(
                f"{self.source}: ctnn-verify needs a graph with one input and one output, got inputs "
                f"{self.ref.input_names} and outputs {self.ref.output_names}"
            )
        self.input_name = self.ref.input_names[0]
        self.output_name = self.ref.output_names[0]
        self.input_dtype = self.ref.input_dtypes[self.input_name]
        if self.input_dtype == np.bool_:
            raise UnsupportedError(f"{self.source}: a boolean graph input is not supported")
        vi = next(i for i in self.model.graph.input if i.name == self.input_name)
        dims = [d.dim_value if d.dim_value > 0 else None for d in vi.type.tensor_type.shape.dim]
        # symbolic dims are the batch: one sample has size 1 there
        self.sample_shape = tuple(1 if d is None else d for d in dims)
        self.batched = bool(dims) and dims[0] is None
        self.n_features = int(np.prod(self.sample_shape)) if self.sample_shape else 1
        self._ort: Any = None
        if input_range is None:
            input_range = input_code_range(
                None if self.source == "<model>" else self.source, self.input_dtype
            )
        self.input_range = _check_range(input_range, self.input_dtype)

    # -- execution ---------------------------------------------------------------------------
    def as_input(self, x: np.ndarray) -> np.ndarray:
        """One flat sample of codes -> the graph input's shape and dtype."""
        return np.asarray(x, np.int64).reshape(self.sample_shape).astype(self.input_dtype)

    def reference(self, x: np.ndarray, keep: bool = False) -> dict[str, np.ndarray]:
        """Run the numpy reference on one flat sample."""
        return self.ref.run({self.input_name: self.as_input(x)}, keep=keep)

    def outputs(self, xs: np.ndarray) -> np.ndarray:
        """Reference outputs, flattened per sample, for a batch ``[B, F]`` of flat samples."""
        xs = np.asarray(xs, np.int64)
        if self.batched and len(self.sample_shape) >= 1:
            feed = xs.reshape((len(xs), *self.sample_shape[1:])).astype(self.input_dtype)
            y = self.ref.run({self.input_name: feed})[self.output_name]
            return np.asarray(y, np.int64).reshape(len(xs), -1)
        return np.stack([np.asarray(self.reference(x)[self.output_name], np.int64).ravel() for x in xs])

    def onnxruntime(self, x: np.ndarray) -> np.ndarray:
        """Run one flat sample in onnxruntime (the session is built on first use)."""
        if self._ort is None:
            import onnxruntime as ort

            self._ort = ort.InferenceSession(
                self.model.SerializeToString(), providers=["CPUExecutionProvider"]
            )
        return self._ort.run([self.output_name], {self.input_name: self.as_input(x)})[0]


def as_network(model: ModelLike | Network, input_range: tuple[int, int] | None = None) -> Network:
    """A :class:`Network` for ``model``; an existing one is reused (copied if the range changes)."""
    if not isinstance(model, Network):
        return Network(model, input_range)
    if input_range is None:
        return model
    net = copy.copy(model)
    net.input_range = _check_range(input_range, net.input_dtype)
    return net


def _dtype_range(dtype: np.dtype) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _check_range(rng: tuple[int, int], dtype: np.dtype) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in rng)
    except (TypeError, ValueError):
        raise SampleError(f"input range must be two integers (lo, hi), got {rng!r}") from None
    dlo, dhi = _dtype_range(dtype)
    if not dlo <= lo <= hi <= dhi:
        raise SampleError(
            f"input range [{lo}, {hi}] is empty or outside the input dtype {dtype} [{dlo}, {dhi}]"
        )
    return lo, hi
