"""ODE solvers for conductance-based cells, registered by name in :data:`SOLVERS`.

Every cell in this family (the LTC neuron and its relatives) has the form

    cm · dv/dt = num(v) − den(v) · v

where ``num`` and ``den`` are sums of non-negative conductances times reversal
potentials, and the conductances themselves. A cell hands a solver a function
``terms(v) -> (num, den)`` and the capacitance ``cm``; the solver advances ``v`` by
one step ``dt``. Keeping (num, den) apart, rather than only dv/dt, is what lets the
fused semi-implicit step exist. Adding a solver is one function and one line in
:data:`SOLVERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from torch import Tensor

#: ``terms(v) -> (num, den)`` with ``cm · dv/dt = num − den · v``.
Terms = Callable[[Tensor], tuple[Tensor, Tensor]]


class Solver(Protocol):
    """One step of size ``dt`` (a float or a tensor broadcasting against ``v``)."""

    def __call__(self, terms: Terms, v: Tensor, cm: Tensor, dt: Tensor | float, epsilon: float) -> Tensor: ...


def semi_implicit_euler(terms: Terms, v: Tensor, cm: Tensor, dt: Tensor | float, epsilon: float) -> Tensor:
    """The fused step of Hasani et al.: ``v ← (cm_t·v + num) / (cm_t + den + ε)``, ``cm_t = cm/dt``.

    It is backward Euler in the linear part with the conductances frozen at ``v``.
    With ``cm, dt > 0`` and non-negative conductances the new ``v`` is a convex
    combination of the old ``v``, every reversal potential in ``num`` and 0 (the last
    with weight ``ε / (cm_t + den + ε)``), which is why the state stays bounded.
    ``epsilon`` keeps the denominator away from zero.
    """
    num, den = terms(v)
    cm_t = cm / dt
    return (cm_t * v + num) / (cm_t + den + epsilon)


def _rate(terms: Terms, v: Tensor, cm: Tensor) -> Tensor:
    num, den = terms(v)
    return (num - den * v) / cm


def explicit_euler(terms: Terms, v: Tensor, cm: Tensor, dt: Tensor | float, epsilon: float) -> Tensor:
    """Forward Euler: ``v ← v + dt · (num − den·v) / cm``. Needs ``cm > 0``; ``epsilon`` is unused.

    Unlike the semi-implicit step it can overshoot (and diverge) when
    ``dt · den / cm > 2``: use more ``ode_unfolds`` for stiff cells.
    """
    return v + dt * _rate(terms, v, cm)


def rk4(terms: Terms, v: Tensor, cm: Tensor, dt: Tensor | float, epsilon: float) -> Tensor:
    """Classical fourth-order Runge–Kutta on ``dv/dt = (num − den·v) / cm``; ``epsilon`` is unused."""
    k1 = _rate(terms, v, cm)
    k2 = _rate(terms, v + 0.5 * dt * k1, cm)
    k3 = _rate(terms, v + 0.5 * dt * k2, cm)
    k4 = _rate(terms, v + dt * k3, cm)
    return v + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)


#: Solvers by name; cells store the name so checkpoints can say which one they used.
SOLVERS: dict[str, Solver] = {
    "semi_implicit": semi_implicit_euler,
    "explicit_euler": explicit_euler,
    "rk4": rk4,
}


def get_solver(name: str) -> Solver:
    """Look a solver up by name, with an error that lists the known ones."""
    try:
        return SOLVERS[name]
    except KeyError:
        raise ValueError(f"unknown ODE solver {name!r}; known: {sorted(SOLVERS)}") from None
