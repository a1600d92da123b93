"""Float models next to their integer versions: a float ReLU MLP and a sound bound on the float–int gap.

The float side is a real-number function, so it is over-approximated, not solved: interval
bound propagation in float64 with *outward rounding* — each affine layer's float64 result is
widened by the standard a-priori bound on a dot product's rounding error
(``|fl(Σ aᵢbᵢ) - Σ aᵢbᵢ| <= γₙ Σ|aᵢbᵢ|``, ``γₙ = n·u / (1 - n·u)``, ``u = 2⁻⁵³``) and then one ulp
outward, so the computed interval contains the exact real-number value of every input in the
box. The integer side is exact (ctnn-verify's interval pass on the integer graph, dequantized
with outward rounding). The gap bound is refined by splitting the input box (both sides are
bounded on the same sub-box, which is how the correlation between them is kept: the spirit
of DiffRNN, with intervals instead of its linear relaxations).

What is sound: ``bound`` is at least ``|f_j(x) - s·(q_j(x) - z)|`` for every input code vector
``x`` in the box, every output ``j``, with ``f`` evaluated in exact real arithmetic on the
dequantized input ``s_in·(x - z_in)``. A float32 or float64 *execution* of ``f`` differs from the
exact value by its own rounding, which the bound does not include. ``observed`` is a gap met at
a concrete input (the float side there evaluated in float64), so the true largest gap lies in
``[observed - rounding, bound]``.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ._errors import BoxError, UnsupportedError, WitnessError, check_timeout
from ._network import ModelLike, as_network
from ._relational import input_box
from ._verify import _Query

_U = 2.0**-53


def _down(x: np.ndarray) -> np.ndarray:
    return np.nextafter(x, -np.inf)


def _up(x: np.ndarray) -> np.ndarray:
    return np.nextafter(x, np.inf)


@dataclass
class FloatMLP:
    """A float ReLU MLP: ``y = W_L^T relu(... relu(W_1^T x + b_1) ...) + b_L`` (weights ``[in, out]``)."""

    weights: list[np.ndarray]
    biases: list[np.ndarray]

    def __post_init__(self) -> None:
        self.weights = [np.asarray(w, np.float64) for w in self.weights]
        self.biases = [np.asarray(b, np.float64).ravel() for b in self.biases]
        if not self.weights or len(self.weights) != len(self.biases):
            raise UnsupportedError("a FloatMLP needs one bias per weight matrix and at least one layer")
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            if w.ndim != 2 or b.shape != (w.shape[1],):
                raise UnsupportedError(
                    f"layer {i}: weight {list(w.shape)} and bias {list(b.shape)} do not match"
                )
            if i and w.shape[0] != self.weights[i - 1].shape[1]:
                raise UnsupportedError(
                    f"layer {i} takes {w.shape[0]} inputs, layer {i - 1} gives {self.weights[i - 1].shape[1]}"
                )
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
                raise UnsupportedError(f"layer {i} has non-finite weights")

    @classmethod
    def from_onnx(cls, model: onnx.ModelProto | str | Path) -> FloatMLP:
        """Read a float MLP graph: a chain of MatMul (+ Add), or Gemm, with Relu between layers."""
        m = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
        inits = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in m.graph.initializer}
        ws: list[np.ndarray] = []
        bs: list[np.ndarray] = []
        for node in m.graph.node:
            op = node.op_type
            if op == "MatMul":
                ws.append(inits[node.input[1]])
                bs.append(np.zeros(ws[-1].shape[1]))
            elif op == "Gemm":
                attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
                if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
                    raise UnsupportedError(
                        f"node {node.name!r}: only Gemm with transA=0, alpha=beta=1 is read"
                    )
                w = inits[node.input[1]]
                ws.append(w.T if attrs.get("transB", 0) else w)
                bs.append(inits[node.input[2]].ravel() if len(node.input) > 2 else np.zeros(ws[-1].shape[1]))
            elif op == "Add" and ws and any(i in inits for i in node.input):
                bs[-1] = bs[-1] + next(inits[i] for i in node.input if i in inits).ravel()
            elif op in ("Relu", "Identity", "Flatten"):
                continue
            else:
                raise UnsupportedError(f"node {node.name!r}: op {op!r} is not part of a float MLP graph")
        return cls(ws, bs)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Float64 evaluation on ``x`` [B, in]."""
        a = np.asarray(x, np.float64)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            a = a @ w + b
            if i < len(self.weights) - 1:
                a = np.maximum(a, 0)
        return a

    def bounds(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sound bounds of the exact real-number outputs over the box ``[lo, hi]`` (outward rounding)."""
        lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            wp, wn = np.maximum(w, 0), np.minimum(w, 0)
            ylo = lo @ wp + hi @ wn + b
            yhi = hi @ wp + lo @ wn + b
            n = w.shape[0] + 1
            gamma = n * _U / (1 - n * _U)
            mag = np.maximum(np.abs(lo), np.abs(hi)) @ np.abs(w) + np.abs(b)
            err = _up(gamma * mag * (1 + 4 * _U)) + 1e-300
            lo, hi = _down(ylo - err), _up(yhi + err)
            if i < len(self.weights) - 1:
                lo, hi = np.maximum(lo, 0), np.maximum(hi, 0)
        return lo, hi

    def gradient(self, x: np.ndarray, c: np.ndarray) -> np.ndarray:
        """The gradient of ``y(x) · c`` with respect to ``x`` (rows of ``x`` [B, in], ``c`` [B, out])."""
        a = np.asarray(x, np.float64)
        masks = []
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            a = a @ w + b
            if i < len(self.weights) - 1:
                masks.append(a > 0)
                a = np.maximum(a, 0)
        g = np.asarray(c, np.float64)
        for i in range(len(self.weights) - 1, -1, -1):
            g = g @ self.weights[i].T
            if i:
                g = g * masks[i - 1]
        return g


def as_float_mlp(model: Any) -> FloatMLP:
    """A :class:`FloatMLP` from itself, a float ONNX graph (or its path), or ``[(W, b), ...]``."""
    if isinstance(model, FloatMLP):
        return model
    if isinstance(model, (onnx.ModelProto, str, Path)):
        return FloatMLP.from_onnx(model)
    try:
        ws, bs = zip(*model)
    except (TypeError, ValueError):
        raise UnsupportedError(
            "the float model must be a FloatMLP, a float ONNX MLP, or [(weight [in, out], bias), ...]"
        ) from None
    return FloatMLP(list(ws), list(bs))


@dataclass
class FloatGapResult:
    """A sound bound on the gap between a float model and its integer version (see :mod:`._float`)."""

    bound: float
    observed: float
    witness: list[int] | None
    witness_output: int | None
    float_output: list[float] | None
    int_output: list[int] | None
    boxes: int
    total_time_s: float
    per_output_bound: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _scales(net: Any, input_quant: Any, output_quant: Any) -> tuple[float, int, float, int]:
    from ctnn.quant import read_sidecar, sidecar_path

    sc = None
    if (
        (input_quant is None or output_quant is None)
        and net.source != "<model>"
        and sidecar_path(net.source).is_file()
    ):
        sc = read_sidecar(Path(net.source))
    out = []
    for given, which in ((input_quant, "input"), (output_quant, "output")):
        if given is None:
            if sc is None:
                raise BoxError(
                    f"the {which} scale is needed: pass {which}_quant=(scale, zero_point) or a graph "
                    "file with its sidecar"
                )
            tq = getattr(sc, which)
            given = (tq.scale, tq.zero_point)
        s, z = (given, 0) if np.ndim(given) == 0 else given
        if not (np.isfinite(s) and s > 0):
            raise BoxError(f"the {which} scale must be positive and finite, got {s!r}")
        out += [float(s), int(z)]
    return out[0], out[1], out[2], out[3]


def float_int_gap(
    float_model: Any,
    model: ModelLike,
    x_codes: Any = None,
    eps: Any = None,
    *,
    box: tuple[Any, Any] | None = None,
    input_quant: tuple[float, int] | None = None,
    output_quant: tuple[float, int] | None = None,
    input_range: tuple[int, int] | None = None,
    max_boxes: int = 2000,
    timeout_s: float = 30.0,
    tolerance: float = 0.0,
) -> FloatGapResult:
    """A sound upper bound on ``max_j |f_j(x) - s_out·(q_j(x) - z_out)|`` over the input codes of a box.

    ``float_model`` is the float network (a :class:`FloatMLP`, a float ONNX MLP, or ``[(W, b), ...]``
    with ``W`` as ``[in, out]``) taking real inputs ``s_in·(x - z_in)``; ``model`` its integer
    version. Scales and zero points come from ``model``'s sidecar unless given as ``(scale, zero_point)``.
    The box is split (worst bound first) until the bound is within ``tolerance`` of the gap observed at
    a concrete input, or ``max_boxes``/``timeout_s`` run out.

    >>> import numpy as np
    >>> from ctnn.quant import random_integer_mlp
    >>> from ctnn.verify import float_int_gap
    >>> net = random_integer_mlp([2, 3, 2], weight_bits=4, act_bits=4, in_bits=3, seed=0)
    >>> fm = [(l.weight * 1.0, np.zeros(l.weight.shape[1])) for l in net.layers]
    >>> r = float_int_gap(fm, net.to_onnx(), input_quant=(1.0, 0), output_quant=(1.0, 0), input_range=(-4, 3))
    >>> r.observed <= r.bound
    True
    """
    t0 = time.perf_counter()
    check_timeout(timeout_s)
    fm = as_float_mlp(float_model)
    net = as_network(model, input_range)
    s_in, z_in, s_out, z_out = _scales(net, input_quant, output_quant)
    if fm.weights[0].shape[0] != net.n_features:
        raise BoxError(
            f"the float model takes {fm.weights[0].shape[0]} inputs, the integer graph {net.n_features}"
        )
    lo, hi = input_box(net, x_codes, eps, box)
    x0 = (lo + hi) // 2
    q0 = _Query(net, None, x0, lo, hi)  # type: ignore[arg-type]  # bounds only: no property
    if fm.weights[-1].shape[1] != len(q0.y0):
        raise BoxError(
            f"the float model has {fm.weights[-1].shape[1]} outputs, the integer graph {len(q0.y0)}"
        )

    def real(codes: np.ndarray, rnd) -> np.ndarray:
        return rnd(s_in * (codes.astype(np.float64) - z_in))

    def local(blo: np.ndarray, bhi: np.ndarray) -> np.ndarray:
        flo, fhi = fm.bounds(real(blo, _down), real(bhi, _up))
        b = q0.sub(blo, bhi).bounds[net.output_name]
        qlo, qhi = b.lo.ravel().astype(np.float64), b.hi.ravel().astype(np.float64)
        ilo, ihi = _down(s_out * (qlo - z_out)), _up(s_out * (qhi - z_out))
        return np.maximum(_up(fhi - ilo), _up(ihi - flo))

    best = {"gap": -1.0}

    def observe(x: np.ndarray) -> None:
        q = net.outputs(x[None])[0]
        f = fm.forward(s_in * (x[None].astype(np.float64) - z_in))[0]
        gaps = np.abs(f - s_out * (q - z_out))
        j = int(np.argmax(gaps))
        if gaps[j] > best["gap"]:
            best.update(gap=float(gaps[j]), x=x.copy(), j=j, f=f.tolist(), q=q.tolist())

    observe(x0)
    v = local(lo, hi)
    heap = [(-float(v.max()), 0, lo, hi, v)]
    n = 1
    while heap and n < max_boxes and time.perf_counter() - t0 < timeout_s:
        neg, _, blo, bhi, _ = heap[0]
        if -neg <= best["gap"] + tolerance or np.all(blo == bhi):
            break
        heapq.heappop(heap)
        d = int(np.argmax(bhi - blo))
        mid = (int(blo[d]) + int(bhi[d])) // 2
        left_hi, right_lo = bhi.copy(), blo.copy()
        left_hi[d], right_lo[d] = mid, mid + 1
        for a, b in ((blo, left_hi), (right_lo, bhi)):
            n += 1
            observe((a + b) // 2)
            v = local(a, b)
            heapq.heappush(heap, (-float(v.max()), n, a, b, v))
    per_output = np.max([h[4] for h in heap], axis=0)
    bound = max(-h[0] for h in heap)
    # replay the witness in onnxruntime too: the observed gap is an integer-side fact
    ort = np.asarray(net.onnxruntime(best["x"])).ravel().astype(np.int64).tolist()
    if ort != best["q"]:
        raise WitnessError(
            f"the reference and onnxruntime disagree at {best['x'].tolist()}: {best['q']} vs {ort}"
        )
    return FloatGapResult(
        bound=float(bound),
        observed=best["gap"],
        witness=best["x"].tolist(),
        witness_output=best["j"],
        float_output=best["f"],
        int_output=best["q"],
        boxes=n,
        total_time_s=time.perf_counter() - t0,
        per_output_bound=per_output.tolist(),
    )
