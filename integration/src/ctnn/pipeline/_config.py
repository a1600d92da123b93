"""The pipeline's configuration: defaults in code, overrides from a TOML file."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class PipelineConfig:
    """Everything ``ctnn pipeline`` does, with defaults that finish in minutes on 2 cores."""

    dataset: str = "digits"
    seed: int = 0
    mlp_sizes: list[int] = field(default_factory=lambda: [64, 32, 10])
    epochs: int = 60
    ltc_units: int = 16
    ltc_epochs: int = 20
    ltc_ode_unfolds: int = 6
    weight_bits: list[int] = field(default_factory=lambda: [4, 6, 8])
    act_bits: int | None = None  # None: the same as the weight bit-width
    in_bits: int = 8
    eps: list[int] = field(default_factory=lambda: [1, 2])
    samples: int = 10
    timeout_s: float = 30.0
    deploy_inputs: int = 1000
    deploy_targets: list[str] = field(default_factory=lambda: ["llvm", "c"])

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
        cfg = cls(**data)
        cfg.validate(source)
        return cfg

    def validate(self, source: str = "<config>") -> None:
        from ctnn.quant import check_bits

        for b in self.weight_bits:
            check_bits(b, f"{source}: weight bit-width")
        if self.act_bits is not None:
            check_bits(self.act_bits, f"{source}: activation bit-width")
        check_bits(self.in_bits, f"{source}: input bit-width")
        for e in self.eps:
            if not isinstance(e, int) or e < 0:
                raise ValueError(f"{source}: eps must be non-negative integers (input codes), got {e!r}")
        if self.samples < 1 or self.timeout_s <= 0:
            raise ValueError(f"{source}: samples must be >= 1 and timeout_s > 0")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def acts_for(self, weight_bits: int) -> int:
        return self.act_bits if self.act_bits is not None else weight_bits
