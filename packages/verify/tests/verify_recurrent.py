"""Tiny random integer recurrent models (Lipschitz RNN, LTC, LEM) built from quant's torch-free classes.

ctnn-quant builds these only by post-training quantization (torch); verify's tests and
benchmarks need them without torch, with random parameters in plausible ranges.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ctnn.quant import (
    IntegerDense,
    IntegerLEM,
    IntegerLTC,
    IntegerRecurrent,
    Requant,
    lut_table,
    signed_range,
)


def _rq(rng, n: int, lo: float = 0.2, hi: float = 0.6, shift: int = 6) -> Requant:
    m = np.round(rng.uniform(lo, hi, n) * (1 << shift)).astype(np.int64)
    return Requant(np.maximum(m, 1), np.full(n, shift, np.int64))


@dataclass(frozen=True)
class Dims:
    """A model's sizes and bit widths (the builders' shared keyword arguments)."""

    steps: int
    features: int
    units: int
    classes: int
    in_bits: int
    act_bits: int

    def lut(self, kind: str, signed: bool = True) -> np.ndarray:
        """A ``tanh``/``sigmoid`` table over the activation codes (outputs from 0 when not ``signed``)."""
        alo, ahi = signed_range(self.act_bits)
        return lut_table(kind, 2.0 / ahi, self.act_bits, 1.0 / ahi, alo if signed else 0, ahi)

    def head(self, rng) -> IntegerDense:
        lo, hi = signed_range(self.act_bits)
        w = rng.integers(-3, 4, size=(self.units, self.classes))
        return IntegerDense(
            weight=w,
            bias=rng.integers(-2, 3, self.classes).astype(np.int32),
            multiplier=np.full(self.classes, 3),
            shift=np.full(self.classes, 2),
            lo=lo,
            hi=hi,
            name="head",
        )


def _family(cls: type, **fixed: Any) -> Callable:
    """A builder with the shared signature around ``params(rng, dims)``: the family's own parameters,
    drawn in order from one generator seeded by ``seed``."""

    def wrap(params: Callable[[np.random.Generator, Dims], dict[str, Any]]) -> Callable:
        def build(
            steps: int,
            features: int = 2,
            units: int = 2,
            classes: int = 2,
            in_bits: int = 3,
            act_bits: int = 3,
            seed: int = 0,
        ):
            d = Dims(steps, features, units, classes, in_bits, act_bits)
            own = params(np.random.default_rng(seed), d)
            return cls(steps=steps, in_features=features, in_bits=in_bits, weight_bits=3, act_bits=act_bits,
                       **fixed, **own)  # fmt: skip

        build.__name__, build.__doc__ = params.__name__, params.__doc__
        return build

    return wrap


@_family(IntegerRecurrent, family="lipschitz_rnn", unfolds=1)
def random_lipschitz(rng, d: Dims) -> dict[str, Any]:
    """A random integer Lipschitz RNN."""
    u = d.units
    return dict(
        U=rng.integers(-3, 4, (d.features, u)),
        bu=rng.integers(-2, 3, u).astype(np.int32),
        rq_u=_rq(rng, u),
        W=rng.integers(-3, 4, (u, u)),
        rq_w=_rq(rng, u),
        rq_t=_rq(rng, u, 0.3, 0.7),
        tanh_table=d.lut("tanh"),
        head=d.head(rng),
        A=rng.integers(-3, 4, (u, u)),
        rq_a=_rq(rng, u, 0.05, 0.2),
    )


@_family(IntegerLTC, unfolds=1, multiplier=3, shift=2)
def random_ltc(rng, d: Dims) -> dict[str, Any]:
    """A random integer LTC cell."""
    u, f = d.units, d.features
    na, ni = 1 << d.act_bits, 1 << d.in_bits
    # sigmoid-shaped synapses: conductance rises with the presynaptic code, reversal potential +-
    ramp_a = np.clip(np.arange(na) - na // 2 + rng.integers(-1, 2), 0, None)[None, None, :]
    ramp_i = np.clip(np.arange(ni) - ni // 2 + rng.integers(-1, 2), 0, None)[None, None, :]
    rev_h = rng.choice([-1, 1], (u, u))[:, :, None]
    rev_f = rng.choice([-1, 1], (f, u))[:, :, None]
    g_h = rng.integers(1, 3, (u, u))[:, :, None]
    g_f = rng.integers(1, 3, (f, u))[:, :, None]
    return dict(
        rec_num=g_h * ramp_a * rev_h * 2,
        rec_den=g_h * ramp_a,
        sen_num=g_f * ramp_i * rev_f * 2,
        sen_den=g_f * ramp_i,
        cn=rng.integers(1, 4, u),
        gn=rng.integers(-2, 3, u),
        cd=rng.integers(2, 5, u),
        motor=u,
        head=d.head(rng),
    )


@_family(IntegerLEM, gate_multiplier=1)
def random_lem(rng, d: Dims) -> dict[str, Any]:
    """A random integer LEM cell."""
    u = d.units
    tables = {"sig1": d.lut("sigmoid", signed=False), "sig2": d.lut("sigmoid", signed=False),
              "tanh_z": d.lut("tanh"), "tanh_y": d.lut("tanh")}  # fmt: skip
    return dict(
        V=rng.integers(-3, 4, (d.features, 4 * u)),
        bv=rng.integers(-2, 3, 4 * u).astype(np.int32),
        rq_v=_rq(rng, 4 * u),
        Wh=rng.integers(-3, 4, (u, 3 * u)),
        rq_h=_rq(rng, 3 * u),
        Wz=rng.integers(-3, 4, (u, u)),
        rq_z=_rq(rng, u),
        tables=tables,
        gate_shift=d.act_bits - 1,
        head=d.head(rng),
    )


BUILDERS = {"lipschitz_rnn": random_lipschitz, "ltc": random_ltc, "lem": random_lem}
