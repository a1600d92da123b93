"""ContinuousNet (Queiruga et al., "Continuous-in-Depth Neural Networks"): residual stages as ODEs in depth.

A stage integrates ``dh/dt = R(θ(t), h)`` over depth ``t ∈ [0, 1]`` with a scheme from
:data:`DEPTH_SCHEMES` in ``n_steps`` steps. Its weights are a function of depth,
``θ(t) = Σ_a φ_a(t) θ_a``, over a basis from :data:`BASES`. With forward Euler, a
piecewise-constant basis and ``n_steps == n_basis`` a stage is exactly a ResNet of
``n_basis`` residual blocks (step ``1/n_basis``). Because the model is the ODE, not the
discretisation, a trained network can be evaluated with another scheme and step count
(:attr:`ContinuousNet.scheme`, :attr:`ContinuousNet.n_steps`), refined
(:meth:`ContinuousNet.refine`: twice the basis nodes, the same θ(t), twice the steps),
and compressed by L2-projecting θ(t) onto a smaller basis (:meth:`ContinuousNet.compress`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

# ----------------------------------------------------------------------------- bases
# A basis is described by (node count checks, evaluation weights). ``weights(n, t, left)``
# returns [(node index, weight)] such that θ(t) = Σ weight · θ[index]. ``left=True`` asks
# for the limit from the left (evaluations at the end of a step stay in that step's cell,
# as in the public code's open-interval convention).


def _cell(n_cells: int, t: float, left: bool) -> tuple[int, float]:
    """Cell index and local coordinate in [0, 1] of depth ``t`` on ``n_cells`` equal cells."""
    x = t * n_cells
    k = int(np.ceil(x - 1e-9)) - 1 if left else int(np.floor(x + 1e-9))
    k = min(max(k, 0), n_cells - 1)
    return k, min(max(x - k, 0.0), 1.0)


def _pc_weights(n: int, t: float, left: bool) -> list[tuple[int, float]]:
    k, _ = _cell(n, t, left)
    return [(k, 1.0)]


def _dg_weights(n: int, t: float, left: bool) -> list[tuple[int, float]]:
    k, phi = _cell(n // 2, t, left)
    return [(2 * k, 1.0 - phi), (2 * k + 1, phi)]


def _fem_weights(n: int, t: float, left: bool) -> list[tuple[int, float]]:
    if n == 1:
        return [(0, 1.0)]
    k, phi = _cell(n - 1, t, left)
    return [(k, 1.0 - phi), (k + 1, phi)]


def _pc_refine(nodes: Tensor) -> Tensor:
    return nodes.repeat_interleave(2, dim=0)


def _dg_refine(nodes: Tensor) -> Tensor:
    a, b = nodes[0::2], nodes[1::2]
    mid = 0.5 * (a + b)
    return torch.stack([a, mid, mid, b], dim=1).reshape(2 * nodes.shape[0], *nodes.shape[1:])


def _fem_refine(nodes: Tensor) -> Tensor:
    if nodes.shape[0] == 1:
        return nodes.repeat(2, *([1] * (nodes.dim() - 1)))
    mids = 0.5 * (nodes[:-1] + nodes[1:])
    out = torch.stack([nodes[:-1], mids], dim=1).reshape(-1, *nodes.shape[1:])
    return torch.cat([out, nodes[-1:]], dim=0)


class Basis:
    """A family of basis functions in depth: evaluation weights, node-count rule, exact refinement."""

    def __init__(
        self,
        name: str,
        weights: Callable[[int, float, bool], list[tuple[int, float]]],
        refine: Callable[[Tensor], Tensor],
        breakpoints: Callable[[int], np.ndarray],
        valid: Callable[[int], bool],
        rule: str,
    ) -> None:
        self.name, self.weights, self.refine_nodes = name, weights, refine
        self.breakpoints, self.valid, self.rule = breakpoints, valid, rule

    def check(self, n: int) -> None:
        """Raise unless ``n`` nodes are valid for this basis."""
        if not self.valid(n):
            raise ValueError(f"basis {self.name!r} needs {self.rule}, got n_basis={n}")

    def matrix(self, n: int, ts: np.ndarray) -> np.ndarray:
        """``Φ[k, a] = φ_a(ts[k])`` (right limits)."""
        phi = np.zeros((len(ts), n))
        for k, t in enumerate(ts):
            for a, w in self.weights(n, float(t), False):
                phi[k, a] += w
        return phi


#: Bases of θ(t) by name. Piecewise-linear is discontinuous (two nodes per cell, as the
#: public code's "piecewise_linear"); "fem_linear" is the continuous hat-function basis.
BASES: dict[str, Basis] = {
    "piecewise_constant": Basis(
        "piecewise_constant", _pc_weights, _pc_refine, lambda n: np.linspace(0, 1, n + 1),
        lambda n: n >= 1, "n_basis >= 1",
    ),
    "piecewise_linear": Basis(
        "piecewise_linear", _dg_weights, _dg_refine, lambda n: np.linspace(0, 1, n // 2 + 1),
        lambda n: n >= 2 and n % 2 == 0, "an even n_basis >= 2 (two nodes per cell)",
    ),
    "fem_linear": Basis(
        "fem_linear", _fem_weights, _fem_refine, lambda n: np.linspace(0, 1, max(n, 2)),
        lambda n: n >= 1, "n_basis >= 1",
    ),
}  # fmt: skip


# ----------------------------------------------------------------------------- schemes
# A scheme advances h by one step [t0, t0 + dt] given rate(t, h, left).

Rate = Callable[[float, Tensor, bool], Tensor]


def _euler(rate: Rate, h: Tensor, t0: float, dt: float) -> Tensor:
    return h + dt * rate(t0, h, False)


def _midpoint(rate: Rate, h: Tensor, t0: float, dt: float) -> Tensor:
    k1 = rate(t0, h, False)
    return h + dt * rate(t0 + 0.5 * dt, h + 0.5 * dt * k1, False)


def _rk4(rate: Rate, h: Tensor, t0: float, dt: float) -> Tensor:
    k1 = rate(t0, h, False)
    k2 = rate(t0 + 0.5 * dt, h + 0.5 * dt * k1, False)
    k3 = rate(t0 + 0.5 * dt, h + 0.5 * dt * k2, False)
    k4 = rate(t0 + dt, h + dt * k3, True)  # the end of the step, from inside it
    return h + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


#: Integration schemes in depth by name (orders 1, 2 and 4).
DEPTH_SCHEMES: dict[str, Callable[[Rate, Tensor, float, float], Tensor]] = {
    "euler": _euler,
    "midpoint": _midpoint,
    "rk4": _rk4,
}

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"tanh": torch.tanh, "relu": torch.relu}


class ContinuousBlock(nn.Module):
    """One stage: ``dh/dt = act(W₂(t) act(W₁(t) h + b₁(t)) + b₂(t))`` on ``t ∈ [0, 1]``.

    ``W1 [n_basis, hidden, width]``, ``b1 [n_basis, hidden]``, ``W2 [n_basis, width, hidden]``,
    ``b2 [n_basis, width]`` hold the basis coefficients θ_a.
    """

    def __init__(
        self, width: int, hidden: int, n_basis: int, basis: str, n_steps: int, scheme: str, activation: str
    ) -> None:
        super().__init__()
        if basis not in BASES:
            raise ValueError(f"unknown basis {basis!r}; known: {sorted(BASES)}")
        BASES[basis].check(n_basis)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.width, self.hidden, self.basis, self.activation = width, hidden, basis, activation
        self.n_steps, self.scheme = n_steps, scheme
        bound1, bound2 = 1.0 / np.sqrt(width), 1.0 / np.sqrt(hidden)
        self.W1 = nn.Parameter(torch.empty(n_basis, hidden, width).uniform_(-bound1, bound1))
        self.b1 = nn.Parameter(torch.empty(n_basis, hidden).uniform_(-bound1, bound1))
        self.W2 = nn.Parameter(torch.empty(n_basis, width, hidden).uniform_(-bound2, bound2))
        self.b2 = nn.Parameter(torch.empty(n_basis, width).uniform_(-bound2, bound2))

    @property
    def n_basis(self) -> int:
        """Number of basis coefficients per weight tensor."""
        return self.W1.shape[0]

    def theta(self, t: float, left: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(W1, b1, W2, b2)`` at depth ``t``."""
        out = []
        for p in (self.W1, self.b1, self.W2, self.b2):
            terms = [w * p[a] for a, w in BASES[self.basis].weights(self.n_basis, t, left) if w != 0.0]
            out.append(p[0] * 0.0 if not terms else sum(terms[1:], terms[0]))
        return out[0], out[1], out[2], out[3]

    def rate(self, t: float, h: Tensor, left: bool = False) -> Tensor:
        """``dh/dt`` at depth ``t``."""
        act = ACTIVATIONS[self.activation]
        w1, b1, w2, b2 = self.theta(t, left)
        return act(nn.functional.linear(act(nn.functional.linear(h, w1, b1)), w2, b2))

    def forward(self, h: Tensor) -> Tensor:
        """Integrate from depth 0 to 1."""
        step, dt = DEPTH_SCHEMES[self.scheme], 1.0 / self.n_steps
        for k in range(self.n_steps):
            h = step(self.rate, h, k * dt, dt)
        return h


class ContinuousNet(nn.Module):
    """A fully connected continuous-in-depth classifier.

    ``x → Linear → stage₀ → Linear → stage₁ → … → Linear → logits``: each stage a
    :class:`ContinuousBlock` of its width, Linear "stitch" layers between stages of
    different widths. Inputs are scaled by ``1 / input_scale`` first (e.g. 16 for the
    digits' pixel values 0..16).

    Args:
        in_features, n_classes: input width, number of classes.
        widths: width of each stage (one stage per entry).
        hidden: width of the hidden layer inside each rate function (default: the stage's width).
        n_basis: basis coefficients per stage; basis: a name in :data:`BASES`.
        n_steps: integration steps per stage; scheme: a name in :data:`DEPTH_SCHEMES`.
        activation: ``"tanh"`` (as the public code's ShallowNet) or ``"relu"``.

    Example:
        >>> import torch
        >>> net = ContinuousNet(64, 10, widths=[16], n_basis=2, n_steps=2)
        >>> x = torch.rand(3, 64)
        >>> fine = net.refine()            # twice the nodes and steps, the same θ(t)
        >>> fine.n_steps, fine.stages[0].n_basis
        (4, 4)
        >>> net.scheme = "rk4"; net.n_steps = 8   # another discretisation of the same ODE
        >>> tuple(net(x).shape)
        (3, 10)
    """

    def __init__(
        self,
        in_features: int,
        n_classes: int,
        widths: Sequence[int] = (32,),
        hidden: int | None = None,
        n_basis: int = 4,
        basis: str = "piecewise_constant",
        n_steps: int = 4,
        scheme: str = "euler",
        activation: str = "tanh",
        input_scale: float = 1.0,
    ) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1:
            raise ValueError(f"widths must be a non-empty list of positive sizes, got {widths}")
        self.in_features, self.n_classes, self.widths = int(in_features), int(n_classes), widths
        self.hidden, self.activation, self.input_scale = hidden, activation, float(input_scale)
        self.encoder = nn.Linear(in_features, widths[0])
        self.stages = nn.ModuleList(
            ContinuousBlock(w, hidden or w, n_basis, basis, n_steps, scheme, activation) for w in widths
        )
        self.stitches = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.head = nn.Linear(widths[-1], n_classes)
        self.scheme, self.n_steps = scheme, n_steps

    # --- discretisation, changeable after training ---------------------------------
    @property
    def scheme(self) -> str:
        """Integration scheme in depth (a name in :data:`DEPTH_SCHEMES`), for every stage."""
        return self.stages[0].scheme

    @scheme.setter
    def scheme(self, name: str) -> None:
        if name not in DEPTH_SCHEMES:
            raise ValueError(f"unknown scheme {name!r}; known: {sorted(DEPTH_SCHEMES)}")
        for s in self.stages:
            s.scheme = name

    @property
    def n_steps(self) -> int:
        """Integration steps per stage."""
        return self.stages[0].n_steps

    @n_steps.setter
    def n_steps(self, n: int) -> None:
        if int(n) != n or n < 1:
            raise ValueError(f"n_steps must be a positive integer, got {n}")
        for s in self.stages:
            s.n_steps = int(n)

    @property
    def basis(self) -> str:
        """Basis of θ(t) (a name in :data:`BASES`)."""
        return self.stages[0].basis

    @property
    def n_basis(self) -> int:
        """Basis coefficients per weight tensor."""
        return self.stages[0].n_basis

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-serialisable values."""
        return {
            "in_features": self.in_features, "n_classes": self.n_classes, "widths": list(self.widths),
            "hidden": self.hidden, "n_basis": self.n_basis, "basis": self.basis,
            "n_steps": self.n_steps, "scheme": self.scheme, "activation": self.activation,
            "input_scale": self.input_scale,
        }  # fmt: skip

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, n_classes]`` for ``x [N, in_features]`` (any trailing shape is flattened)."""
        h = self.encoder(x.reshape(x.shape[0], -1) / self.input_scale)
        for k, stage in enumerate(self.stages):
            if k:
                h = self.stitches[k - 1](h)
            h = stage(h)
        return self.head(h)

    # --- refinement and compression ------------------------------------------------
    def _with_nodes(self, basis: str, nodes: list[dict[str, Tensor]], n_steps: int) -> ContinuousNet:
        cfg = self.get_config() | {"basis": basis, "n_basis": nodes[0]["W1"].shape[0], "n_steps": n_steps}
        ref = self.head.weight
        new = type(self)(**cfg).to(dtype=ref.dtype, device=ref.device)
        state = copy.deepcopy(self.state_dict())
        for k, stage_nodes in enumerate(nodes):
            for name, value in stage_nodes.items():
                state[f"stages.{k}.{name}"] = value.detach().clone()
        new.load_state_dict(state)
        new.train(self.training)
        return new

    def refine(self) -> ContinuousNet:
        """A new model with twice the basis nodes (the same θ(t), exactly) and twice the steps.

        The public code's ``refine``: training can continue on the finer model. For a
        piecewise-constant basis with Euler and ``n_steps == n_basis`` (a ResNet), the
        refined model is the ResNet with every block split in two half steps.
        """
        nodes = [
            {n: BASES[s.basis].refine_nodes(getattr(s, n)) for n in ("W1", "b1", "W2", "b2")}
            for s in self.stages
        ]
        return self._with_nodes(self.basis, nodes, 2 * self.n_steps)

    @torch.no_grad()
    def compress(self, basis: str, n_basis: int, n_steps: int | None = None) -> ContinuousNet:
        """A new model whose θ(t) is the L2 projection of this one's onto ``n_basis`` functions of ``basis``.

        The projection minimises ∫₀¹ ‖θ_new(t) − θ(t)‖² dt exactly (Gauss–Legendre
        quadrature on every cell of both meshes, exact for these piecewise polynomials).
        ``n_steps`` defaults to the current step count. Fewer coefficients mean fewer
        distinct weight sets to store and quantize; measure the accuracy change with
        :func:`~ctnn.models.accuracy` (``ctnn-models compress`` prints it).
        """
        if basis not in BASES:
            raise ValueError(f"unknown basis {basis!r}; known: {sorted(BASES)}")
        target, source = BASES[basis], BASES[self.basis]
        target.check(n_basis)
        cuts = np.union1d(target.breakpoints(n_basis), source.breakpoints(self.n_basis))
        gz, gw = np.polynomial.legendre.leggauss(4)
        ts, ws = [], []
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            ts.extend(a + (b - a) * (gz + 1) / 2)
            ws.extend((b - a) / 2 * gw)
        ts_a, ws_a = np.asarray(ts), np.asarray(ws)
        phi_t = target.matrix(n_basis, ts_a)  # [Q, n_new]
        phi_s = source.matrix(self.n_basis, ts_a)  # [Q, n_old]
        mass = phi_t.T @ (ws_a[:, None] * phi_t)  # [n_new, n_new]
        proj = np.linalg.solve(mass, phi_t.T @ (ws_a[:, None] * phi_s))  # new nodes = proj @ old nodes
        nodes = []
        for s in self.stages:
            stage = {}
            for name in ("W1", "b1", "W2", "b2"):
                p = getattr(s, name)
                mat = torch.as_tensor(proj, dtype=torch.float64)
                stage[name] = (
                    (mat @ p.detach().double().reshape(p.shape[0], -1))
                    .reshape(n_basis, *p.shape[1:])
                    .to(p.dtype)
                )
            nodes.append(stage)
        return self._with_nodes(basis, nodes, self.n_steps if n_steps is None else n_steps)
