"""The pipeline's configuration: defaults in code, overrides from a TOML file."""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Every family ctnn-models can build and ctnn-quant can quantize.
ALL_FAMILIES = ("mlp", "continuous_net", "ltc", "ctrnn", "lstm", "gru", "lipschitz_rnn", "lem")
SIM_TARGETS = ("cortex-m3", "cortex-m4")  # checked on ``sim_inputs`` inputs only (``fpga``: ``fpga_inputs``)
#: Families whose quantizer can keep the state in a wider accumulator (ctnn-quant's ``state_bits``).
WIDE_STATE_FAMILIES = ("lipschitz_rnn", "ctrnn", "lstm", "gru")


def _is(value: Any, tp: Any) -> bool:
    """Whether a TOML value fits a field's type (``int``, ``float``, ``str``, ``bool``, ``list[...]``, ``X | None``)."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) is list:
        return isinstance(value, list) and all(_is(v, args[0]) for v in value)
    if args:  # a union: X | None
        return any(_is(value, a) for a in args)
    if tp is type(None):
        return value is None
    if isinstance(value, bool):  # a TOML true is not a number
        return tp is bool
    return isinstance(value, (int, float)) if tp is float else isinstance(value, tp)


def _name(tp: Any) -> str:
    return str(tp).replace("NoneType", "None") if typing.get_args(tp) else tp.__name__


@dataclass
class PipelineConfig:
    """Everything ``ctnn pipeline`` does, with defaults that finish in minutes on 2 cores."""

    dataset: str = "digits"  # the feed-forward families (MLP, ContinuousNet) and the robustness campaign
    seq_dataset: str = "italy_power_demand"  # the recurrent families (digits rows when it is unavailable)
    seed: int = 0
    families: list[str] = field(default_factory=lambda: list(ALL_FAMILIES))
    mlp_sizes: list[int] = field(default_factory=lambda: [64, 32, 10])
    epochs: int = 60  # MLP
    # > 0: the MLP trains for verification (interval bounds over an L∞ box of this radius, in the
    # data's units; ctnn.models.train_classifier's interval_eps), which leaves the campaign less to search
    mlp_interval_eps: float = 0.0
    continuous_epochs: int = 10
    ltc_units: int = 8  # units of every recurrent family
    ltc_epochs: int = 150  # most epochs of every recurrent family (early stopping: ``seq_patience``)
    ltc_ode_unfolds: int = 6
    # ItalyPowerDemand has 53 training sequences: batches of 64 would make one Adam step an epoch
    seq_batch_size: int = 16
    seq_patience: int = 30  # epochs without a better validation loss before a recurrent family stops
    # the Lipschitz RNN's Euler step: the paper's 0.03 suits 784-step pixel MNIST; over ItalyPowerDemand's
    # 24 steps it integrates 0.72 time units and the state hardly moves (65.9% → ~90% with 0.3)
    lipschitz_eps: float = 0.3
    # the recurrent state in a ``state_bits`` accumulator read through its act-bit view: an 8-bit state
    # rounds the small Euler/gate increments to zero (docs/results/quant.md); [] keeps every state narrow
    wide_state_families: list[str] = field(default_factory=lambda: list(WIDE_STATE_FAMILIES))
    state_bits: int = 16
    weight_bits: list[int] = field(default_factory=lambda: [4, 6, 8])  # every family is quantized at these
    act_bits: int | None = None  # None: the same as the weight bit-width
    in_bits: int = 8
    robustness_bits: list[int] = field(default_factory=lambda: [2, 3, 4, 5, 6, 7, 8, 16])  # MLP campaign
    eps: list[int] = field(default_factory=lambda: [1, 2])
    samples: int = 4
    timeout_s: float = 20.0
    bias_bits: list[int] = field(default_factory=lambda: [4, 6, 8])  # [] skips the exam-scores bias study
    bias_samples: int = 2
    bias_eps: int = 1
    float_baselines: bool = True  # IBP/PGD on the float MLP: the float-vs-integer disagreements
    deploy_inputs: int = 200
    deploy_targets: list[str] = field(default_factory=lambda: ["llvm", "c", "cortex-m4", "fpga"])
    # exam: the regressor; lipschitz_rnn: a wide-state (16-bit) recurrent graph
    deploy_families: list[str] = field(default_factory=lambda: ["mlp", "ltc", "lipschitz_rnn", "exam"])
    deploy_bits: int = 8
    sim_inputs: int = 4  # inputs run under qemu (Cortex-M targets)
    fpga_inputs: int = 1  # inputs run in the HDL simulator
    # the fpga target builds only these (simulating the 8-bit LTC, ~60k cycles an input, takes minutes)
    fpga_families: list[str] = field(default_factory=lambda: ["mlp", "lipschitz_rnn", "exam"])
    # yosys synthesis: minutes for the digits MLP or the LTC on 2 cores, seconds for the exam regressor
    synth_families: list[str] = field(default_factory=lambda: ["exam"])
    synth_family: str = "ice40"  # the FPGA family yosys maps to (ctnn.deploy: ice40, ecp5, xilinx)
    analyses: bool = True

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> PipelineConfig:
        """Read a TOML file whose keys are this class's fields (unknown keys are an error)."""
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{p}: no such config file") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{p}: not valid TOML ({exc})") from None
        return cls.from_dict(data.get("pipeline", data), source=str(p))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<config>") -> PipelineConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{source}: unknown config keys {unknown}; known keys: {sorted(names)}")
        hints = typing.get_type_hints(cls)
        for key, value in data.items():
            if not _is(value, hints[key]):
                raise ValueError(
                    f"{source}: {key} = {value!r} has the wrong type; expected {_name(hints[key])}"
                )
        cfg = cls(**data)
        cfg.validate(source)
        return cfg

    def validate(self, source: str = "<config>") -> None:
        from ctnn.quant import check_bits

        for b in [*self.weight_bits, *self.robustness_bits, *self.bias_bits, self.deploy_bits]:
            check_bits(b, f"{source}: weight bit-width")
        for f in self.families:
            if f not in ALL_FAMILIES:
                raise ValueError(f"{source}: unknown family {f!r}; known: {list(ALL_FAMILIES)}")
        for f in [*self.deploy_families, *self.synth_families, *self.fpga_families]:
            if f not in (*ALL_FAMILIES, "exam"):
                raise ValueError(f"{source}: cannot deploy {f!r}; known: {[*ALL_FAMILIES, 'exam']}")
        for f in self.wide_state_families:
            if f not in WIDE_STATE_FAMILIES:
                raise ValueError(f"{source}: wide_state_families: {f!r} has no wide state option; "
                                 f"known: {list(WIDE_STATE_FAMILIES)}")  # fmt: skip
        check_bits(self.state_bits, f"{source}: state bit-width")
        if self.lipschitz_eps <= 0 or self.seq_batch_size < 1 or self.seq_patience < 1:
            raise ValueError(f"{source}: lipschitz_eps must be > 0, seq_batch_size and seq_patience >= 1")
        if "mlp" not in self.families:
            raise ValueError(f"{source}: families must include 'mlp' (the robustness campaign verifies it)")
        if self.act_bits is not None:
            check_bits(self.act_bits, f"{source}: activation bit-width")
        check_bits(self.in_bits, f"{source}: input bit-width")
        for e in self.eps:
            if not isinstance(e, int) or e < 0:
                raise ValueError(f"{source}: eps must be non-negative integers (input codes), got {e!r}")
        if not self.mlp_interval_eps >= 0:
            raise ValueError(f"{source}: mlp_interval_eps must be >= 0 (in the data's units), "
                             f"got {self.mlp_interval_eps!r}")  # fmt: skip
        if self.samples < 1 or self.timeout_s <= 0 or self.bias_samples < 1 or self.bias_eps < 0:
            raise ValueError(f"{source}: samples, bias_samples must be >= 1, bias_eps >= 0, timeout_s > 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def acts_for(self, weight_bits: int) -> int:
        return self.act_bits if self.act_bits is not None else weight_bits

    def state_bits_for(self, family: str, weight_bits: int) -> int | None:
        """The state accumulator's width for ``family`` (None: the quantizer's default, the activations')."""
        if family not in self.wide_state_families:
            return None
        return max(self.state_bits, self.acts_for(weight_bits))  # never narrower than the activations
