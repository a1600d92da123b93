"""Tiny random integer recurrent models (Lipschitz RNN, LTC, LEM) built from quant's torch-free classes.

ctnn-quant builds these only by post-training quantization (torch); verify's tests and
benchmarks need them without torch, with random parameters in plausible ranges.
"""

from __future__ import annotations

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


def _head(rng, h: int, classes: int, act_bits: int) -> IntegerDense:
    lo, hi = signed_range(act_bits)
    w = rng.integers(-3, 4, size=(h, classes))
    return IntegerDense(
        weight=w,
        bias=rng.integers(-2, 3, classes).astype(np.int32),
        multiplier=np.full(classes, 3),
        shift=np.full(classes, 2),
        lo=lo,
        hi=hi,
        name="head",
    )


def random_lipschitz(
    steps: int,
    features: int = 2,
    units: int = 2,
    classes: int = 2,
    in_bits: int = 3,
    act_bits: int = 3,
    seed: int = 0,
) -> IntegerRecurrent:
    rng = np.random.default_rng(seed)
    alo, ahi = signed_range(act_bits)
    tanh = lut_table("tanh", 2.0 / ahi, act_bits, 1.0 / ahi, alo, ahi)
    return IntegerRecurrent(
        family="lipschitz_rnn",
        steps=steps,
        in_features=features,
        unfolds=1,
        in_bits=in_bits,
        weight_bits=3,
        act_bits=act_bits,
        U=rng.integers(-3, 4, (features, units)),
        bu=rng.integers(-2, 3, units).astype(np.int32),
        rq_u=_rq(rng, units),
        W=rng.integers(-3, 4, (units, units)),
        rq_w=_rq(rng, units),
        rq_t=_rq(rng, units, 0.3, 0.7),
        tanh_table=tanh,
        head=_head(rng, units, classes, act_bits),
        A=rng.integers(-3, 4, (units, units)),
        rq_a=_rq(rng, units, 0.05, 0.2),
    )


def random_ltc(
    steps: int,
    features: int = 2,
    units: int = 2,
    classes: int = 2,
    in_bits: int = 3,
    act_bits: int = 3,
    seed: int = 0,
) -> IntegerLTC:
    rng = np.random.default_rng(seed)
    na, ni = 1 << act_bits, 1 << in_bits
    # sigmoid-shaped synapses: conductance rises with the presynaptic code, reversal potential +-
    ramp_a = np.clip(np.arange(na) - na // 2 + rng.integers(-1, 2), 0, None)[None, None, :]
    ramp_i = np.clip(np.arange(ni) - ni // 2 + rng.integers(-1, 2), 0, None)[None, None, :]
    rev_h = rng.choice([-1, 1], (units, units))[:, :, None]
    rev_f = rng.choice([-1, 1], (features, units))[:, :, None]
    g_h = rng.integers(1, 3, (units, units))[:, :, None]
    g_f = rng.integers(1, 3, (features, units))[:, :, None]
    return IntegerLTC(
        steps=steps,
        in_features=features,
        unfolds=1,
        in_bits=in_bits,
        weight_bits=3,
        act_bits=act_bits,
        rec_num=g_h * ramp_a * rev_h * 2,
        rec_den=g_h * ramp_a,
        sen_num=g_f * ramp_i * rev_f * 2,
        sen_den=g_f * ramp_i,
        cn=rng.integers(1, 4, units),
        gn=rng.integers(-2, 3, units),
        cd=rng.integers(2, 5, units),
        multiplier=3,
        shift=2,
        motor=units,
        head=_head(rng, units, classes, act_bits),
    )


def random_lem(
    steps: int,
    features: int = 2,
    units: int = 2,
    classes: int = 2,
    in_bits: int = 3,
    act_bits: int = 3,
    seed: int = 0,
) -> IntegerLEM:
    rng = np.random.default_rng(seed)
    alo, ahi = signed_range(act_bits)
    tables = {
        "sig1": lut_table("sigmoid", 2.0 / ahi, act_bits, 1.0 / ahi, 0, ahi),
        "sig2": lut_table("sigmoid", 2.0 / ahi, act_bits, 1.0 / ahi, 0, ahi),
        "tanh_z": lut_table("tanh", 2.0 / ahi, act_bits, 1.0 / ahi, alo, ahi),
        "tanh_y": lut_table("tanh", 2.0 / ahi, act_bits, 1.0 / ahi, alo, ahi),
    }
    return IntegerLEM(
        steps=steps,
        in_features=features,
        in_bits=in_bits,
        weight_bits=3,
        act_bits=act_bits,
        V=rng.integers(-3, 4, (features, 4 * units)),
        bv=rng.integers(-2, 3, 4 * units).astype(np.int32),
        rq_v=_rq(rng, 4 * units),
        Wh=rng.integers(-3, 4, (units, 3 * units)),
        rq_h=_rq(rng, 3 * units),
        Wz=rng.integers(-3, 4, (units, units)),
        rq_z=_rq(rng, units),
        tables=tables,
        gate_multiplier=1,
        gate_shift=act_bits - 1,
        head=_head(rng, units, classes, act_bits),
    )


BUILDERS = {"lipschitz_rnn": random_lipschitz, "ltc": random_ltc, "lem": random_lem}
