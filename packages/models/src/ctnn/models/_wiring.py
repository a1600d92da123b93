"""Wirings: which neuron connects to which, and with what polarity, apart from any cell.

A wiring is pure structure (numpy matrices, no torch), so every cell, exporter and
analysis can share it. ``adjacency_matrix[src, dst]`` and
``sensory_adjacency_matrix[input, dst]`` hold +1 (excitatory), -1 (inhibitory) or 0
(no synapse); cells use the absolute value as a sparsity mask and the sign to
initialise reversal potentials. The first ``output_dim`` neurons are the motor
neurons a cell reads its output from. :class:`FullyConnected`, and the sparse
:class:`NCP` / :class:`AutoNCP` circuits, are registered in :data:`WIRINGS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np


class Wiring:
    """An explicit wiring: ``units`` neurons, a recurrent and a sensory adjacency matrix.

    Subclasses generate their matrices from a few hyper-parameters; this base class
    can hold any matrices, so ``Wiring.from_config`` round-trips every wiring exactly.

    Example:
        >>> w = Wiring(3, output_dim=1)
        >>> w.add_synapse(0, 1, -1)
        >>> w.build(2)
        >>> w.add_sensory_synapse(1, 0, 1)
        >>> int(w.synapse_count), int(w.sensory_synapse_count)
        (1, 1)
    """

    kind: ClassVar[str] = "wiring"

    def __init__(self, units: int, output_dim: int | None = None) -> None:
        if units < 1:
            raise ValueError(f"a wiring needs at least one unit, got units={units}")
        output_dim = units if output_dim is None else output_dim
        if not 1 <= output_dim <= units:
            raise ValueError(f"output_dim must be in [1, units={units}], got {output_dim}")
        self.units = units
        self.output_dim = output_dim
        self.input_dim: int | None = None
        self.adjacency_matrix = np.zeros((units, units), dtype=np.int8)
        self.sensory_adjacency_matrix: np.ndarray | None = None

    # --- structure -----------------------------------------------------------------
    def is_built(self) -> bool:
        """Whether the number of inputs (sensory neurons) is known."""
        return self.input_dim is not None

    def build(self, input_dim: int) -> None:
        """Fix the number of inputs; a second call must agree with the first."""
        if self.input_dim is not None:
            if self.input_dim != input_dim:
                raise ValueError(
                    f"wiring was built for {self.input_dim} inputs, cannot rebuild for {input_dim}"
                )
            return
        if input_dim < 1:
            raise ValueError(f"input_dim must be >= 1, got {input_dim}")
        self.input_dim = input_dim
        self.sensory_adjacency_matrix = np.zeros((input_dim, self.units), dtype=np.int8)
        self._connect_sensory()

    def _connect_sensory(self) -> None:
        """Hook for subclasses: add the sensory synapses once ``input_dim`` is known."""

    def add_synapse(self, src: int, dst: int, polarity: int) -> None:
        """Connect neuron ``src`` to neuron ``dst`` with polarity +1 or -1."""
        _check_index("src", src, self.units)
        _check_index("dst", dst, self.units)
        _check_polarity(polarity)
        self.adjacency_matrix[src, dst] = polarity

    def add_sensory_synapse(self, src: int, dst: int, polarity: int) -> None:
        """Connect input ``src`` to neuron ``dst`` with polarity +1 or -1 (after :meth:`build`)."""
        if self.sensory_adjacency_matrix is None or self.input_dim is None:
            raise ValueError("call build(input_dim) before adding sensory synapses")
        _check_index("src", src, self.input_dim)
        _check_index("dst", dst, self.units)
        _check_polarity(polarity)
        self.sensory_adjacency_matrix[src, dst] = polarity

    @property
    def synapse_count(self) -> int:
        """Number of neuron-to-neuron synapses."""
        return int(np.count_nonzero(self.adjacency_matrix))

    @property
    def sensory_synapse_count(self) -> int:
        """Number of input-to-neuron synapses (0 before :meth:`build`)."""
        m = self.sensory_adjacency_matrix
        return 0 if m is None else int(np.count_nonzero(m))

    # --- serialisation -------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """A JSON-serialisable description; :func:`wiring_from_config` inverts it."""
        sensory = self.sensory_adjacency_matrix
        return {
            "kind": self.kind,
            "units": self.units,
            "output_dim": self.output_dim,
            "input_dim": self.input_dim,
            "adjacency_matrix": self.adjacency_matrix.tolist(),
            "sensory_adjacency_matrix": None if sensory is None else sensory.tolist(),
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Wiring:
        """Rebuild a wiring written by :meth:`get_config`."""
        cfg = {k: v for k, v in config.items() if k != "kind"}
        wiring = Wiring(int(cfg["units"]), cfg.get("output_dim"))
        wiring.adjacency_matrix = _polarity_matrix(cfg["adjacency_matrix"], (wiring.units, wiring.units))
        if cfg.get("input_dim") is not None:
            wiring.input_dim = int(cfg["input_dim"])
            wiring.sensory_adjacency_matrix = _polarity_matrix(
                cfg["sensory_adjacency_matrix"], (wiring.input_dim, wiring.units)
            )
        return wiring

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(units={self.units}, output_dim={self.output_dim}, "
            f"input_dim={self.input_dim}, synapses={self.synapse_count}, "
            f"sensory_synapses={self.sensory_synapse_count})"
        )


class FullyConnected(Wiring):
    """Every input and every neuron feeds every neuron; polarities drawn at random.

    As in ncps, each synapse is inhibitory with probability 1/3 and excitatory with
    probability 2/3, drawn from ``numpy.random.default_rng(erev_init_seed)`` so the
    same config always gives the same wiring.

    Example:
        >>> w = FullyConnected(4, output_dim=2)
        >>> w.build(3)
        >>> w.synapse_count, w.sensory_synapse_count
        (16, 12)
    """

    kind: ClassVar[str] = "fully_connected"

    def __init__(
        self,
        units: int,
        output_dim: int | None = None,
        erev_init_seed: int = 1111,
        self_connections: bool = True,
    ) -> None:
        super().__init__(units, output_dim)
        self.erev_init_seed = erev_init_seed
        self.self_connections = self_connections
        self._rng = np.random.default_rng(erev_init_seed)
        polarity = self._draw_polarity((units, units))
        if not self_connections:
            np.fill_diagonal(polarity, 0)
        self.adjacency_matrix = polarity

    def _draw_polarity(self, shape: tuple[int, int]) -> np.ndarray:
        return self._rng.choice(np.array([-1, 1, 1], dtype=np.int8), size=shape)

    def _connect_sensory(self) -> None:
        assert self.input_dim is not None
        self.sensory_adjacency_matrix = self._draw_polarity((self.input_dim, self.units))

    def get_config(self) -> dict[str, Any]:
        """The generating hyper-parameters (the matrices follow from them)."""
        return {
            "kind": self.kind,
            "units": self.units,
            "output_dim": self.output_dim,
            "input_dim": self.input_dim,
            "erev_init_seed": self.erev_init_seed,
            "self_connections": self.self_connections,
        }

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> FullyConnected:
        """Regenerate the wiring from its hyper-parameters (and build it if it was built)."""
        wiring = cls(
            int(config["units"]),
            config.get("output_dim"),
            erev_init_seed=int(config.get("erev_init_seed", 1111)),
            self_connections=bool(config.get("self_connections", True)),
        )
        if config.get("input_dim") is not None:
            wiring.build(int(config["input_dim"]))
        return wiring


class NCP(Wiring):
    """A sparse neural circuit policy wiring (Lechner et al.): sensory → inter → command → motor.

    Neurons are numbered motor ``[0, motor)``, command, then inter. Each input connects
    to ``sensory_fanout`` inter neurons, each inter neuron to ``inter_fanout`` command
    neurons, ``recurrent_command_synapses`` random command → command synapses, and each
    motor neuron receives ``motor_fanin`` command neurons; neurons left unreached get a
    few synapses so every layer is connected. Polarities are ±1 with equal odds. The
    draws follow the ncps package's ``NCP`` wiring with ``numpy.random.RandomState(seed)``
    in the same order, so the same hyper-parameters and seed give the same matrices.

    Example:
        >>> w = NCP(inter_neurons=6, command_neurons=4, motor_neurons=2, sensory_fanout=3,
        ...         inter_fanout=2, recurrent_command_synapses=3, motor_fanin=2)
        >>> w.build(5)
        >>> w.units, w.output_dim, int(w.sensory_adjacency_matrix[:, :6].any())
        (12, 2, 0)
    """

    kind: ClassVar[str] = "ncp"

    def __init__(
        self,
        inter_neurons: int,
        command_neurons: int,
        motor_neurons: int,
        sensory_fanout: int,
        inter_fanout: int,
        recurrent_command_synapses: int,
        motor_fanin: int,
        seed: int = 22222,
    ) -> None:
        super().__init__(inter_neurons + command_neurons + motor_neurons, output_dim=motor_neurons)
        if motor_fanin > command_neurons:
            raise ValueError(f"motor_fanin={motor_fanin} exceeds the {command_neurons} command neurons")
        if sensory_fanout > inter_neurons:
            raise ValueError(f"sensory_fanout={sensory_fanout} exceeds the {inter_neurons} inter neurons")
        if inter_fanout > command_neurons:
            raise ValueError(f"inter_fanout={inter_fanout} exceeds the {command_neurons} command neurons")
        self.hyper = {
            "inter_neurons": inter_neurons, "command_neurons": command_neurons,
            "motor_neurons": motor_neurons, "sensory_fanout": sensory_fanout,
            "inter_fanout": inter_fanout, "recurrent_command_synapses": recurrent_command_synapses,
            "motor_fanin": motor_fanin, "seed": seed,
        }  # fmt: skip
        self.motor = list(range(motor_neurons))
        self.command = list(range(motor_neurons, motor_neurons + command_neurons))
        self.inter = list(range(motor_neurons + command_neurons, self.units))

    def neuron_type(self, i: int) -> str:
        """``"motor"``, ``"command"`` or ``"inter"``."""
        return "motor" if i in self.motor else "command" if i in self.command else "inter"

    def _connect_sensory(self) -> None:
        # All synapses are drawn here, once the input count is known (as ncps does in build()).
        assert self.input_dim is not None
        h = self.hyper
        rng = np.random.RandomState(h["seed"])
        sensory = list(range(self.input_dim))

        def polarity() -> int:
            return int(rng.choice([-1, 1]))

        def fan(sources, targets, fanout, add, fanin_cap):
            unreached = list(targets)
            for src in sources:
                for dst in rng.choice(targets, size=fanout, replace=False):
                    if dst in unreached:
                        unreached.remove(dst)
                    add(int(src), int(dst), polarity())
            mean_fanin = int(np.clip(int(len(sources) * fanout / len(targets)), 1, fanin_cap))
            for dst in unreached:
                for src in rng.choice(sources, size=mean_fanin, replace=False):
                    add(int(src), int(dst), polarity())

        fan(sensory, self.inter, h["sensory_fanout"], self.add_sensory_synapse, len(sensory))
        fan(self.inter, self.command, h["inter_fanout"], self.add_synapse, len(self.command))
        for _ in range(h["recurrent_command_synapses"]):
            src, dst = rng.choice(self.command), rng.choice(self.command)
            self.add_synapse(int(src), int(dst), polarity())
        # command -> motor: every motor neuron draws its fan-in; unreached command neurons fan out
        unreached = list(self.command)
        for dst in self.motor:
            for src in rng.choice(self.command, size=h["motor_fanin"], replace=False):
                if src in unreached:
                    unreached.remove(src)
                self.add_synapse(int(src), dst, polarity())
        mean_fanout = int(
            np.clip(int(len(self.motor) * h["motor_fanin"] / len(self.command)), 1, len(self.motor))
        )
        for src in unreached:
            for dst in rng.choice(self.motor, size=mean_fanout, replace=False):
                self.add_synapse(src, int(dst), polarity())

    def get_config(self) -> dict[str, Any]:
        """The generating hyper-parameters (the matrices follow from them)."""
        return {"kind": self.kind, **self.hyper, "input_dim": self.input_dim}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> NCP:
        """Regenerate the wiring (and build it if it was built)."""
        wiring = cls(**{k: int(config[k]) for k in (
            "inter_neurons", "command_neurons", "motor_neurons", "sensory_fanout", "inter_fanout",
            "recurrent_command_synapses", "motor_fanin", "seed")})  # fmt: skip
        if config.get("input_dim") is not None:
            wiring.build(int(config["input_dim"]))
        return wiring


class AutoNCP(NCP):
    """An :class:`NCP` from a neuron count, an output count and a sparsity level (as ncps's ``AutoNCP``).

    40% of the non-motor neurons are command neurons, the rest inter neurons; fan-outs
    and fan-ins are the layer sizes times ``1 − sparsity_level`` (at least 1).

    Example:
        >>> w = AutoNCP(16, 4, sparsity_level=0.5)
        >>> w.build(3)
        >>> w.units, w.output_dim
        (16, 4)
    """

    kind: ClassVar[str] = "auto_ncp"

    def __init__(self, units: int, output_size: int, sparsity_level: float = 0.5, seed: int = 22222) -> None:
        if output_size >= units - 2:
            raise ValueError(
                f"output_size must be less than units - 2 (got {units} units, {output_size} outputs)"
            )
        if not 0.1 <= sparsity_level <= 1.0:
            raise ValueError(f"sparsity_level must be in [0.1, 1.0], got {sparsity_level}")
        density = 1.0 - sparsity_level
        inter_and_command = units - output_size
        command = max(int(0.4 * inter_and_command), 1)
        inter = inter_and_command - command
        super().__init__(
            inter, command, output_size,
            sensory_fanout=max(int(inter * density), 1),
            inter_fanout=max(int(command * density), 1),
            recurrent_command_synapses=max(int(command * density * 2), 1),
            motor_fanin=max(int(command * density), 1),
            seed=seed,
        )  # fmt: skip
        self.auto = {
            "units": units,
            "output_size": output_size,
            "sparsity_level": sparsity_level,
            "seed": seed,
        }

    def get_config(self) -> dict[str, Any]:
        """The generating hyper-parameters."""
        return {"kind": self.kind, **self.auto, "input_dim": self.input_dim}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> AutoNCP:
        """Regenerate the wiring (and build it if it was built)."""
        wiring = cls(
            int(config["units"]), int(config["output_size"]), float(config.get("sparsity_level", 0.5)),
            int(config.get("seed", 22222)),
        )  # fmt: skip
        if config.get("input_dim") is not None:
            wiring.build(int(config["input_dim"]))
        return wiring


#: Wiring classes by the ``kind`` written in their config.
WIRINGS: dict[str, type[Wiring]] = {
    Wiring.kind: Wiring,
    FullyConnected.kind: FullyConnected,
    NCP.kind: NCP,
    AutoNCP.kind: AutoNCP,
}


def wiring_from_config(config: Mapping[str, Any]) -> Wiring:
    """Rebuild any registered wiring from ``get_config()`` output.

    Example:
        >>> w = FullyConnected(3)
        >>> w.build(2)
        >>> w2 = wiring_from_config(w.get_config())
        >>> bool((w2.sensory_adjacency_matrix == w.sensory_adjacency_matrix).all())
        True
    """
    kind = config.get("kind", Wiring.kind)
    if kind not in WIRINGS:
        raise ValueError(f"unknown wiring kind {kind!r}; known: {sorted(WIRINGS)}")
    return WIRINGS[kind].from_config(config)


def _check_index(what: str, i: int, n: int) -> None:
    if not 0 <= i < n:
        raise ValueError(f"{what}={i} is out of range for {n} neurons")


def _check_polarity(polarity: int) -> None:
    if polarity not in (-1, 1):
        raise ValueError(f"polarity must be -1 or +1, got {polarity}")


def _polarity_matrix(values: Any, shape: tuple[int, int]) -> np.ndarray:
    m = np.asarray(values, dtype=np.int8)
    if m.shape != shape:
        raise ValueError(f"wiring matrix has shape {m.shape}, expected {shape}")
    if not np.isin(m, (-1, 0, 1)).all():
        raise ValueError("wiring matrices may only hold -1, 0 and +1")
    return m
