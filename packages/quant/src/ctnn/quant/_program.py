"""One integer step, three interpretations: numpy values, sound intervals, and ONNX nodes.

A family's integer semantics is written once, as a function of an ``ops`` object
(:class:`NumpyOps`, :class:`IntervalOps` or :class:`OnnxOps`) — so the model's numpy
``forward``, its overflow check and its ONNX graph cannot drift apart. Values are
int64 arrays ``[N, n]`` (numpy), per-channel bounds ``(lo, hi)`` (intervals) or
tensor names (ONNX; the interval of each is tracked alongside).

Overflow: :class:`IntervalOps` propagates the exact worst-case range of every value
from the input codes' range; a matmul whose accumulator can leave int32 is written as
``Cast<int64>`` + ``MatMul`` (onnxruntime runs int64 MatMul exactly), one that can leave
int64 — or a product ``v·M`` plus a rounding offset that can reach 2**62 — raises
:class:`OverflowError` naming the value. Nothing wraps silently.

Matmuls: ``MatMulInteger`` for int8 × int8 codes, else ``Cast<int32>`` + ``MatMul``
when the accumulator fits int32, else ``Cast<int64>`` + ``MatMul``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
import onnx

from ._graph import GraphBuilder
from ._nonlin import Activation
from ._semantics import container_dtype, round_div
from ._sequence import INT32_MAX, INT64_SAFE

Value = object


@dataclass
class Rq:
    """``round_div(v · M, 2**s)`` with per-channel (or scalar) int64 ``M`` (signed) and ``s >= 0``."""

    multiplier: np.ndarray
    shift: np.ndarray

    def __post_init__(self) -> None:
        self.multiplier = np.asarray(self.multiplier, np.int64)
        self.shift = np.asarray(self.shift, np.int64)

    def apply(self, v: np.ndarray) -> np.ndarray:
        return round_div(np.asarray(v, np.int64) * self.multiplier, self.shift)


class NumpyOps:
    """Evaluate a program on int64 numpy arrays: input codes ``[N, T, F]``."""

    def __init__(self, x: np.ndarray, keep: bool = False):
        self.x = np.asarray(x, np.int64)
        #: with ``keep``: every value stored under a name (``store(..., name)``), as the graph names it
        self.named: dict[str, np.ndarray] | None = {} if keep else None

    def step_input(self, t: int) -> np.ndarray:
        return self.x[:, t]

    def zeros(self, n: int) -> np.ndarray:
        return np.zeros((len(self.x), n), np.int64)

    def matmul(self, a: np.ndarray, w: np.ndarray, key: str) -> np.ndarray:
        return a @ np.asarray(w, np.int64)

    def add_const(self, a: np.ndarray, c: np.ndarray, key: str) -> np.ndarray:
        return a + np.asarray(c, np.int64)

    def rd(self, a: np.ndarray, rq: Rq, key: str) -> np.ndarray:
        return rq.apply(a)

    def add(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a + b

    def sub(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a - b

    def mul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a * b

    def clip(self, a: np.ndarray, lo: int, hi: int) -> np.ndarray:
        return np.clip(a, lo, hi)

    def act(self, a: np.ndarray, f: Activation, key: str) -> np.ndarray:
        return f.apply(a)

    def cols(self, a: np.ndarray, start: int, end: int) -> np.ndarray:
        return a[:, start:end]

    def concat(self, parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts, axis=1)

    def hold(self, t: int, pad: int, new: np.ndarray, old: np.ndarray) -> np.ndarray:
        """``new`` where input step ``t`` is a real step, ``old`` where it is padding (first code == ``pad``)."""
        return np.where((self.x[:, t, 0] != pad)[:, None], new, old)

    def state(self, a: np.ndarray, lo: int, hi: int, name: str | None = None) -> np.ndarray:
        if name is not None and self.named is not None:  # QAT reads the named states
            self.named[name] = a
        return a

    def gather_sum(self, codes: np.ndarray, table: np.ndarray, lo: int, key: str) -> np.ndarray:
        """``Σ_j table[j, i, codes_j − lo]`` for a table ``[S, H, K]``: per-synapse lookups summed per target."""
        S, H, _ = table.shape
        return np.asarray(table, np.int64)[
            np.arange(S)[:, None], np.arange(H)[None, :], codes[:, :, None] - lo
        ].sum(1)


def _iv(lo, hi) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(lo, dtype=object), np.asarray(hi, dtype=object)


class IntervalOps:
    """Propagate exact per-channel bounds (Python ints, no overflow) and check every container."""

    def __init__(self, family: str, in_lo: int, in_hi: int, in_features: int):
        self.family = family
        self.in_box = _iv(np.full(in_features, in_lo), np.full(in_features, in_hi))
        self.widths: dict[str, int] = {}  # matmul key -> 32 or 64 (the accumulator it needs)

    # intervals are (lo, hi) object arrays [n]
    def step_input(self, t: int):
        return self.in_box

    def zeros(self, n: int):
        return _iv(np.zeros(n, int), np.zeros(n, int))

    def matmul(self, a, w: np.ndarray, key: str):
        w = np.asarray(w, np.int64).astype(object)
        pos, neg = np.where(w > 0, w, 0), np.where(w < 0, w, 0)
        lo = a[0] @ pos + a[1] @ neg
        hi = a[1] @ pos + a[0] @ neg
        bound = max(int(np.max(np.abs(lo), initial=0)), int(np.max(np.abs(hi), initial=0)))
        if bound >= INT64_SAFE:
            raise OverflowError(f"{self.family}: accumulator {key} can reach {bound}, beyond int64")
        need = 32 if bound <= INT32_MAX else 64
        self.widths[key] = max(self.widths.get(key, 32), need)
        return _iv(lo, hi)

    def add_const(self, a, c: np.ndarray, key: str):
        c = np.asarray(c, np.int64).astype(object)
        return self._checked(_iv(a[0] + c, a[1] + c), key)

    def _checked(self, v, what: str):
        bound = max(int(np.max(np.abs(v[0]), initial=0)), int(np.max(np.abs(v[1]), initial=0)))
        if bound >= INT64_SAFE:
            raise OverflowError(f"{self.family}: {what} can reach {bound}, beyond int64")
        return v

    def rd(self, a, rq: Rq, key: str):
        m = rq.multiplier.astype(object)
        p1, p2 = a[0] * m, a[1] * m
        lo, hi = np.minimum(p1, p2), np.maximum(p1, p2)
        half = 1 << int(np.max(rq.shift))
        self._checked(_iv(lo - half, hi + half), f"{key} (value times its multiplier)")
        s = rq.shift
        return _iv(round_div(lo.astype(np.int64), s), round_div(hi.astype(np.int64), s))

    def add(self, a, b):
        return self._checked(_iv(a[0] + b[0], a[1] + b[1]), "a sum")

    def sub(self, a, b):
        return self._checked(_iv(a[0] - b[1], a[1] - b[0]), "a difference")

    def mul(self, a, b):
        c = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]]
        lo = np.minimum(np.minimum(c[0], c[1]), np.minimum(c[2], c[3]))
        hi = np.maximum(np.maximum(c[0], c[1]), np.maximum(c[2], c[3]))
        return self._checked(_iv(lo, hi), "a product")

    def clip(self, a, lo: int, hi: int):
        return _iv(np.clip(a[0], lo, hi), np.clip(a[1], lo, hi))

    def act(self, a, f: Activation, key: str):
        lo, hi = f.out_bounds
        n = len(a[0])
        return _iv(np.full(n, lo), np.full(n, hi))

    def cols(self, a, start: int, end: int):
        return _iv(a[0][start:end], a[1][start:end])

    def concat(self, parts):
        return _iv(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))

    def state(self, a, lo: int, hi: int, name: str | None = None):
        return a

    def hold(self, t: int, pad: int, new, old):
        return _iv(np.minimum(new[0], old[0]), np.maximum(new[1], old[1]))

    def gather_sum(self, codes, table: np.ndarray, lo: int, key: str):
        t = np.asarray(table, np.int64)
        return self._checked(
            _iv(t.min(axis=2).sum(0).astype(object), t.max(axis=2).sum(0).astype(object)), key
        )


class OnnxOps:
    """Emit ONNX nodes; ``widths`` (from an :class:`IntervalOps` run) picks each matmul's accumulator."""

    def __init__(
        self, b: GraphBuilder, in_dtype: np.dtype, steps: int, in_features: int, widths: dict[str, int]
    ):
        self.b, self.steps, self.F = b, steps, in_features
        self.widths = widths
        self.dtypes: dict[str, np.dtype] = {"x": np.dtype(in_dtype)}
        self._casts: dict[tuple[str, str], str] = {}
        self._n = 0
        self._zeros: dict[int, str] = {}
        self._pads: dict[int, str] = {}

    def _name(self, what: str) -> str:
        self._n += 1
        return f"{what}/{self._n}"

    def _int64(self, a: str) -> str:
        if self.dtypes.get(a, np.dtype(np.int64)) == np.int64:
            return a
        return self.b.cast(a, np.int64, self._name("i64"))

    def step_input(self, t: int) -> str:
        if self.steps == 1:
            return "x"
        F, b = self.F, self.b
        axes = b.const("axes1", np.array([1], np.int64))
        out = b.op("Slice", ["x", b.const(f"t{t}/start", np.array([t * F], np.int64)),
                             b.const(f"t{t}/end", np.array([(t + 1) * F], np.int64)), axes], f"t{t}/x")  # fmt: skip
        self.dtypes[out] = self.dtypes["x"]
        return out

    def zeros(self, n: int) -> str:
        if n not in self._zeros:  # [N, n] zeros, shaped from the batch dimension of x
            b = self.b
            first = b.op("Slice", ["x", b.const("init/s", np.array([0], np.int64)),
                                   b.const("init/e", np.array([1], np.int64)),
                                   b.const("axes1", np.array([1], np.int64))], "init/x0")  # fmt: skip
            nb = b.op("Mul", [b.cast(first, np.int64, "init/x64"), b.scalar(0)], "init/n0")
            z = b.op("Add", [nb, b.const(f"init/zeros{n}", np.zeros(n, np.int64))], f"init/zeros{n}v")
            # int8, the narrowest container: a zero state is a valid MatMulInteger operand
            self._zeros[n] = b.cast(z, np.int8, f"init/zeros{n}_i8")
            self.dtypes[self._zeros[n]] = np.dtype(np.int8)
        return self._zeros[n]

    def hold(self, t: int, pad: int, new: str, old: str) -> str:
        """``Where(Equal(x[:, t·F], pad), old, new)``: a padded step leaves the state as it was."""
        b = self.b
        dt = self.dtypes["x"]
        if t in self._pads:  # one test per step, shared by the states (LEM: y and z; LSTM: h and c)
            return b.op("Where", [self._pads[t], self._int64(old), self._int64(new)], self._name("hold"))
        first = b.op("Slice", ["x", b.const(f"t{t}/start", np.array([t * self.F], np.int64)),
                               b.const(f"t{t}/first_end", np.array([t * self.F + 1], np.int64)),
                               b.const("axes1", np.array([1], np.int64))], f"t{t}/first")  # fmt: skip
        is_pad = b.op("Equal", [first, b.const("pad_code", np.array(pad, dt))], f"t{t}/is_pad")
        self._pads[t] = is_pad
        return b.op("Where", [is_pad, self._int64(old), self._int64(new)], self._name("hold"))

    def state(self, a: str, lo: int, hi: int, name: str | None = None) -> str:
        """Store clipped codes in their smallest container (a state or a matmul operand), as ``name`` if given."""
        dt = container_dtype(lo, hi)
        out = self.b.cast(a, dt, name or self._name("codes"))
        self.dtypes[out] = dt
        return out

    def matmul(self, a: str, w: np.ndarray, key: str) -> str:
        b = self.b
        wn, w_dt = b.weight(f"{key}/W", w)
        a_dt = self.dtypes.get(a, np.dtype(np.int64))
        out = self._name(f"{key}/mm")
        if a_dt == np.int8 and w_dt == np.int8 and self.widths.get(key, 64) <= 32:
            acc = b.op("MatMulInteger", [a, wn], out)
        else:
            acc_dt = np.int64 if self.widths.get(key, 64) > 32 else np.int32
            ck = (key, np.dtype(acc_dt).name)
            if ck not in self._casts:
                self._casts[ck] = b.cast(wn, acc_dt, f"{key}/W{np.dtype(acc_dt).itemsize * 8}")
            a_c = a if a_dt == acc_dt else b.cast(a, acc_dt, f"{out}/a")
            acc = b.op("MatMul", [a_c, self._casts[ck]], out)
        self.dtypes[acc] = np.dtype(
            np.int32
        )  # int32 or int64; _int64 casts either (a no-op Cast is harmless)
        return b.cast(acc, np.int64, f"{out}/64")

    def add_const(self, a: str, c: np.ndarray, key: str) -> str:
        return self.b.op(
            "Add", [self._int64(a), self.b.const(key, np.asarray(c, np.int64))], self._name(f"{key}/add")
        )

    def rd(self, a: str, rq: Rq, key: str) -> str:
        return self.b.round_shift(self._int64(a), rq.multiplier, rq.shift, self._name(key), key)

    def add(self, a: str, c: str) -> str:
        return self.b.op("Add", [self._int64(a), self._int64(c)], self._name("add"))

    def sub(self, a: str, c: str) -> str:
        return self.b.op("Sub", [self._int64(a), self._int64(c)], self._name("sub"))

    def mul(self, a: str, c: str) -> str:
        return self.b.op("Mul", [self._int64(a), self._int64(c)], self._name("mul"))

    def clip(self, a: str, lo: int, hi: int) -> str:
        b = self.b
        return b.op("Clip", [self._int64(a), b.scalar(lo), b.scalar(hi)], self._name("clip"))

    def act(self, a: str, f: Activation, key: str) -> str:
        return f.emit(self.b, a, key, self._name(key))

    def cols(self, a: str, start: int, end: int) -> str:
        b = self.b
        out = b.op("Slice", [a, b.const(f"cols{start}_{end}/s", np.array([start], np.int64)),
                             b.const(f"cols{start}_{end}/e", np.array([end], np.int64)),
                             b.const("axes1", np.array([1], np.int64))], self._name("cols"))  # fmt: skip
        self.dtypes[out] = self.dtypes.get(a, np.dtype(np.int64))
        return out

    def concat(self, parts: list[str]) -> str:
        return self.b.op("Concat", [self._int64(p) for p in parts], self._name("concat"), axis=1)

    def gather_sum(self, codes: str, table: np.ndarray, lo: int, key: str) -> str:
        """``ReduceSum(Gather(flat, Unsqueeze(codes, 2) + offset), axis 1)``: the flat table is one initializer."""
        b = self.b
        S, H, K = table.shape
        flat = b.const(f"{key}/table", np.asarray(table, np.int64).reshape(-1))
        off = b.const(f"{key}/offset", (np.arange(S)[:, None] * H + np.arange(H)[None, :]) * K - lo)
        u = b.op(
            "Unsqueeze",
            [self._int64(codes), b.const("axes2", np.array([2], np.int64))],
            self._name(f"{key}/u"),
        )
        g = b.op(
            "Gather", [flat, b.op("Add", [u, off], self._name(f"{key}/idx"))], self._name(f"{key}/g"), axis=0
        )
        return b.op(
            "ReduceSum", [g, b.const("axes1", np.array([1], np.int64))], self._name(f"{key}/sum"), keepdims=0
        )


def hold_state(model, ops, t: int, old, new, lo: int, hi: int, name: str | None = None):
    """The state after input step ``t``: ``new``, or ``old`` where the step is padding (``model.pad_code``).

    Without a pad code (fixed-length models) this is ``new`` itself, and the caller has
    already stored it under ``name``; with one, the held value is stored under ``name``
    (so the caller passes ``pad_name(model, name)`` — None — to its own store).
    """
    if getattr(model, "pad_code", None) is None:
        return new
    return store(ops, ops.hold(t, model.pad_code, new, old), lo, hi, name)


def pad_name(model, name: str | None) -> str | None:
    """The name a step's last store takes: ``name``, unless :func:`hold_state` will store the held value."""
    return name if getattr(model, "pad_code", None) is None else None


def narrow(ops, v, shift: int, lo: int, hi: int, key: str):
    """The ``[lo, hi]`` view of a wide state: ``clip(round_div(v, 2**shift))`` in its container (``v`` if no shift)."""
    if not shift:
        return v
    return store(ops, ops.rd(v, Rq(np.int64(1), np.int64(shift)), key), lo, hi)


def store(ops, v, lo: int, hi: int, name: str | None = None):
    """Clip ``v`` to ``[lo, hi]`` and (in ONNX) store it in its container, as tensor ``name`` if given.

    The recurrent families name each input step's state (``t{t}u{k}/h``, ``t{t}/y``, ``t{t}/z``):
    QAT reads those tensors from the reference's intermediates.
    """
    return ops.state(ops.clip(v, lo, hi), lo, hi, name)


Program = Callable[[object], object]


def run_numpy(program: Program, x: np.ndarray) -> np.ndarray:
    """Evaluate ``program`` on input codes ``[N, T, F]``."""
    return program(NumpyOps(x))


def check_program(program: Program, family: str, in_lo: int, in_hi: int, in_features: int) -> dict[str, int]:
    """Run the interval pass; return each matmul's accumulator width (raises :class:`OverflowError`)."""
    iv = IntervalOps(family, in_lo, in_hi, in_features)
    program(iv)
    return iv.widths


def program_onnx(
    program: Program,
    name: str,
    family: str,
    in_lo: int,
    in_hi: int,
    steps: int,
    in_features: int,
    out_lo: int,
    out_hi: int,
    n_out: int,
    doc: str = "",
) -> onnx.ModelProto:
    """The ONNX graph of ``program``: input ``x [N, T·F]`` (signed codes), output ``y [N, n_out]``."""
    widths = check_program(program, family, in_lo, in_hi, in_features)
    b = GraphBuilder(name)
    in_dt = container_dtype(in_lo, in_hi)
    ops = OnnxOps(b, in_dt, steps, in_features, widths)
    out = program(ops)
    y_dt = container_dtype(out_lo, out_hi)
    y = b.op("Identity", [b.cast(out, y_dt, "y/cast")], "y")
    return b.model([("x", in_dt, ["N", steps * in_features])], [(y, y_dt, ["N", n_out])], doc=doc)


def dense(ops, v, layer, key: str):
    """``clip(round_div((v @ W + b) · M, 2**s), lo, hi)`` for an :class:`~ctnn.quant.IntegerDense` (int64)."""
    acc = ops.add_const(ops.matmul(v, layer.weight, key), layer.bias, f"{key}/b")
    return ops.clip(ops.rd(acc, Rq(layer.multiplier, layer.shift), f"{key}/rq"), layer.lo, layer.hi)


_DEFERRED: ContextVar[bool] = ContextVar("ctnn_quant_overflow_deferred", default=False)


@contextmanager
def overflow_check_deferred() -> Iterator[None]:
    """Skip the constructors' interval pass (``check_overflow``) inside this block.

    QAT builds one integer model per training step and runs it in int64 numpy; the pass
    costs more than the step. The model QAT returns is checked, and ``to_onnx`` always
    runs the pass (it picks the accumulator widths from it).
    """
    token = _DEFERRED.set(True)
    try:
        yield
    finally:
        _DEFERRED.reset(token)


def overflow_checks_on() -> bool:
    """False inside :func:`overflow_check_deferred`."""
    return not _DEFERRED.get()


class ProgramModel:
    """Mixin for integer models written as one program (:meth:`program`): numpy forward, overflow check, ONNX.

    Needs ``family``, ``steps``, ``in_features``, ``in_bits`` and the :class:`IntegerSequenceModel` helpers,
    plus :attr:`out_range` and :attr:`n_out`.
    """

    def program(self, ops):  # pragma: no cover - every family overrides it
        raise NotImplementedError

    @property
    def out_range(self) -> tuple[int, int]:
        return int(self.head.lo), int(self.head.hi)

    @property
    def n_out(self) -> int:
        return int(np.asarray(self.head.weight).shape[1])

    def check_overflow(self) -> dict[str, int]:
        """Raise :class:`OverflowError` unless every value fits its container; return matmul widths."""
        if not overflow_checks_on():
            return {}
        lo, hi = self.in_range
        return check_program(self.program, self.family, lo, hi, self.in_features)

    def forward(self, codes: np.ndarray) -> np.ndarray:
        """Direct numpy evaluation of the integer semantics (the same program the graph is written from)."""
        return run_numpy(self.program, self._as_steps(codes))

    def to_onnx(self, name: str | None = None) -> onnx.ModelProto:
        """The integer graph: input ``x [N, T·F]``, output ``y [N, classes]``."""
        lo, hi = self.in_range
        olo, ohi = self.out_range
        return program_onnx(
            self.program, name or f"ctnn_{self.family}", self.family, lo, hi, self.steps, self.in_features,
            olo, ohi, self.n_out, doc=f"ctnn {self.family}: T={self.steps}, F={self.in_features}, flat time-major input",
        )  # fmt: skip
