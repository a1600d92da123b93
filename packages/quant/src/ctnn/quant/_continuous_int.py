"""The integer ContinuousNet: residual stages integrated in depth, unrolled over the scheme's steps (torch-free).

A stage integrates ``dh/dt = act(W₂(t) act(W₁(t) h + b₁(t)) + b₂(t))`` over depth
``[0, 1]`` in ``n_steps`` steps. One rate evaluation at depth point ``e`` (its own
integer weights, since θ(t) varies with depth) is, on state codes ``h``::

    p1 = clip(rd((h @ W1_e + b1_e) · M1_e, s1_e), lo, hi);   u = ACT1[p1]     (table or PWL)
    p2 = clip(rd((u @ W2_e + b2_e) · M2_e, s2_e), lo, hi);   k = ACT2[p2]

and a step of size dt combines rate codes ``k`` (one scale per stage) with one
rounding per term, ``rd(v, c) = round_div(v · M_c, 2**s_c)`` for ``M_c / 2**s_c ≈ c·s_k/s_h``::

    euler     h ← clip(h + rd(k1, dt))
    midpoint  h ← clip(h + rd(k2, dt)),              k2 at clip(h + rd(k1, dt/2))
    rk4       h ← clip(h + rd(k1 + 2k2 + 2k3 + k4, dt/6)),
              k2 at clip(h + rd(k1, dt/2)), k3 at clip(h + rd(k2, dt/2)), k4 at clip(h + rd(k3, dt))

Encoder, stitches between stages and the head are integer dense layers. The input
``x [N, F]`` holds ``in_bits`` codes (its zero point folded into the encoder's bias).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._graph import IntegerDense
from ._nonlin import Activation
from ._program import ProgramModel, Rq, dense, store
from ._sequence import IntegerSequenceModel

#: Depth schemes the integer stage implements, with the rate evaluations of one step.
INTEGER_SCHEMES = {"euler": 1, "midpoint": 2, "rk4": 4}


@dataclass
class IntegerStage:
    """One continuous-in-depth stage: weights per depth point, two activations, the step's factors."""

    scheme: str
    schedule: list[list[str]]  # per step, the depth-point key of each rate evaluation
    layers: dict[str, tuple[IntegerDense, IntegerDense]]  # depth-point key -> (W1 layer, W2 layer)
    act1: Activation
    act2: Activation
    rq: dict[str, Rq]  # "dt", "half" (dt/2), "sixth" (dt/6): rate codes -> state codes
    lo: int
    hi: int

    def __post_init__(self) -> None:
        if self.scheme not in INTEGER_SCHEMES:
            raise ValueError(f"unknown depth scheme {self.scheme!r}; known: {sorted(INTEGER_SCHEMES)}")
        for step in self.schedule:
            if len(step) != INTEGER_SCHEMES[self.scheme]:
                raise ValueError(
                    f"a {self.scheme} step takes {INTEGER_SCHEMES[self.scheme]} rate evaluations"
                )

    def run(self, ops, h, name: str):
        def rate(v, key):
            l1, l2 = self.layers[key]
            u = ops.act(dense(ops, v, l1, f"{name}/{key}/l1"), self.act1, f"{name}/act1")
            u = ops.state(u, *self.act1.out_bounds)
            return ops.act(dense(ops, u, l2, f"{name}/{key}/l2"), self.act2, f"{name}/act2")

        def step(v, k, c):
            return store(ops, ops.add(v, ops.rd(k, self.rq[c], f"{name}/rq_{c}")), self.lo, self.hi)

        for keys in self.schedule:
            if self.scheme == "euler":
                h = step(h, rate(h, keys[0]), "dt")
            elif self.scheme == "midpoint":
                h = step(h, rate(step(h, rate(h, keys[0]), "half"), keys[1]), "dt")
            else:
                k1 = rate(h, keys[0])
                k2 = rate(step(h, k1, "half"), keys[1])
                k3 = rate(step(h, k2, "half"), keys[2])
                k4 = rate(step(h, k3, "dt"), keys[3])
                total = ops.add(ops.add(k1, k4), ops.add(ops.add(k2, k2), ops.add(k3, k3)))
                h = step(h, total, "sixth")
        return h


@dataclass
class IntegerContinuousNet(ProgramModel, IntegerSequenceModel):
    """An integer ContinuousNet classifier: encoder → stages (with stitches) → head; input ``[N, F]``."""

    in_features: int
    in_bits: int
    weight_bits: int
    act_bits: int
    encoder: IntegerDense
    stages: list[IntegerStage]
    stitches: list[IntegerDense]
    head: IntegerDense
    family: str = "continuous_net"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.stitches) != len(self.stages) - 1:
            raise ValueError(
                f"{len(self.stages)} stages need {len(self.stages) - 1} stitches, got {len(self.stitches)}"
            )
        self.check_overflow()

    @property
    def steps(self) -> int:
        return 1

    def program(self, ops):
        h = store(ops, dense(ops, ops.step_input(0), self.encoder, "encoder"), *self.act_range)
        for k, stage in enumerate(self.stages):
            if k:
                h = store(ops, dense(ops, h, self.stitches[k - 1], f"stitch{k}"), *self.act_range)
            h = stage.run(ops, h, f"stage{k}")
        return dense(ops, h, self.head, "head")
