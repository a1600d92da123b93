"""Copy parameters between an ncps torch LTC and a ctnn LTC (shared by the ncps benchmarks)."""

from __future__ import annotations

import numpy as np
import torch

from ctnn.models import LTC, Wiring

NAMES = ["gleak", "vleak", "cm", "sigma", "mu", "w", "erev", "sensory_sigma", "sensory_mu", "sensory_w",
         "sensory_erev", "input_w", "input_b", "output_w", "output_b"]  # fmt: skip


def ncps_available() -> tuple[bool, str]:
    try:
        import ncps  # noqa: F401
        from ncps.torch import LTC as _  # noqa: F401
    except Exception as exc:  # ImportError, or ncps's own import errors
        return False, f"{type(exc).__name__}: {exc}"
    return True, ""


def ctnn_twin(peer, in_features: int, ode_unfolds: int) -> LTC:
    """A ctnn LTC with the ncps model's wiring matrices and parameter values (softplus positivity)."""
    cell = peer.rnn_cell
    wiring = Wiring(peer.state_size, output_dim=peer.motor_size)
    wiring.adjacency_matrix = np.asarray(peer._wiring.adjacency_matrix, dtype=np.int8)
    wiring.build(in_features)
    wiring.sensory_adjacency_matrix = np.asarray(peer._wiring.sensory_adjacency_matrix, dtype=np.int8)
    positivity = "softplus" if cell._implicit_param_constraints else "clamp"
    ours = LTC(in_features, wiring, ode_unfolds=ode_unfolds, positivity=positivity, epsilon=cell._epsilon)
    with torch.no_grad():
        for name in NAMES:
            getattr(ours.cell, name).copy_(cell._params[name])
        ours.cell.sparsity_mask.copy_(cell._params["sparsity_mask"])
        ours.cell.sensory_sparsity_mask.copy_(cell._params["sensory_sparsity_mask"])
    return ours


def grads(model, names_of) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in names_of(model) if p.grad is not None}


def ncps_named(peer):
    return [(n, peer.rnn_cell._params[n]) for n in NAMES]


def ctnn_named(ours):
    return [(n, getattr(ours.cell, n)) for n in NAMES]


def time_steps(model, x, target, repeats: int, warmup: int = 2) -> float:
    """Median seconds of one training step (forward, MSE on the last output, backward, Adam)."""
    import statistics
    import time

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    ts = []
    for i in range(warmup + repeats):
        t0 = time.perf_counter()
        out, _ = model(x)
        loss = torch.nn.functional.mse_loss(out[:, -1], target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            ts.append(time.perf_counter() - t0)
    return statistics.median(ts)
