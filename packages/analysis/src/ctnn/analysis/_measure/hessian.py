"""Top eigenvalue of a loss Hessian by power iteration with Hessian-vector products (double backward)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._hessian import HessianStudy
from ._common import unfused


def hessian_top_eigenvalue(
    loss_fn: Callable[[], Tensor],
    wrt: Sequence[Tensor],
    iters: int = 100,
    tol: float = 1e-4,
    seed: int = 0,
) -> tuple[float, int, bool]:
    """Dominant eigenvalue of ∇²loss with respect to the tensors ``wrt`` (each ``requires_grad``).

    Power iteration on ``v ↦ H v``, with ``H v = ∇(∇loss · v)`` by double backward: the
    Hessian is never formed. Returns ``(eigenvalue, iterations, converged)``; the
    eigenvalue is the Rayleigh quotient ``vᵀHv`` of the final unit vector (the eigenvalue of
    largest magnitude, with its sign); converged when it changed by less than
    ``tol · |λ|`` between two iterations.

    Example:
        >>> import torch
        >>> from ctnn.analysis import hessian_top_eigenvalue
        >>> x = torch.zeros(3, requires_grad=True)
        >>> a = torch.diag(torch.tensor([1.0, -5.0, 2.0]))
        >>> lam, _, ok = hessian_top_eigenvalue(lambda: 0.5 * x @ a @ x, [x])
        >>> round(lam, 3), ok
        (-5.0, True)
    """
    wrt = list(wrt)
    if not wrt or not all(t.requires_grad for t in wrt):
        raise ValueError("hessian_top_eigenvalue needs tensors that require grad")
    loss = loss_fn()
    raw = torch.autograd.grad(loss, wrt, create_graph=True, allow_unused=True)
    # a gradient that does not depend on wrt (unused or linear tensors) adds nothing to H v
    live = [i for i, g in enumerate(raw) if g is not None and g.requires_grad]
    grads = [raw[i] for i in live]

    def hvp(vec: list[Tensor]) -> list[Tensor]:
        if not grads:
            return [torch.zeros_like(t) for t in wrt]
        out = torch.autograd.grad(grads, wrt, grad_outputs=[vec[i] for i in live], retain_graph=True,
                                  allow_unused=True)  # fmt: skip
        return [torch.zeros_like(t) if o is None else o for o, t in zip(out, wrt, strict=True)]

    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(t.shape, generator=gen, dtype=t.dtype).to(t.device) for t in wrt]
    norm = torch.sqrt(sum((u * u).sum() for u in v))
    v = [u / norm for u in v]
    lam, prev = 0.0, None
    for k in range(1, iters + 1):
        hv = hvp(v)
        lam = float(sum((a * b).sum() for a, b in zip(v, hv, strict=True)))
        norm = torch.sqrt(sum((h * h).sum() for h in hv))
        if float(norm) == 0.0:
            return 0.0, k, True
        v = [h.detach() / norm for h in hv]
        if prev is not None and abs(lam - prev) <= tol * max(abs(lam), 1e-12):
            return lam, k, True
        prev = lam
    return lam, iters, False


def hessian_robustness(
    models: Mapping[str, nn.Module],
    X: np.ndarray,
    y: np.ndarray,
    n_samples: int = 64,
    iters: int = 50,
    tol: float = 1e-3,
    dataset: str = "",
    seed: int = 0,
) -> HessianStudy:
    """Top loss-Hessian eigenvalues of each model w.r.t. its inputs and its parameters, on real data.

    ``models`` maps a name to a classifier taking ``X`` (flat or ``[n, T, F]``; the name is
    also the family label when it is one, e.g. ``"ltc"``); the first ``n_samples`` samples
    are used. Inputs: Hessian of the summed per-sample cross-entropy w.r.t. the input batch
    (block-diagonal across samples). Parameters: Hessian of the mean cross-entropy w.r.t.
    every parameter. Models run in float32, in eval mode, and fused sequence kernels (LTC,
    LEM) are swapped for their plain PyTorch form (their backward passes have no double backward).
    """
    xs = np.asarray(X[:n_samples], dtype=np.float32)
    if np.isnan(xs).any():
        raise ValueError("hessian_robustness needs equal-length sequences (the data has NaN padding)")
    xt = torch.as_tensor(xs)
    yt = torch.as_tensor(np.asarray(y[:n_samples]), dtype=torch.int64)
    rows: list[dict[str, Any]] = []
    for name, model in models.items():
        was_training = model.training
        model.eval()
        try:
            with unfused(model):
                x_in = xt.clone().requires_grad_(True)

                def input_loss(m: nn.Module = model, xi: Tensor = x_in) -> Tensor:
                    return nn.functional.cross_entropy(m(xi), yt, reduction="sum")

                lam_x, it_x, ok_x = hessian_top_eigenvalue(input_loss, [x_in], iters, tol, seed)
                params = [p for p in model.parameters() if p.requires_grad]

                def param_loss(m: nn.Module = model) -> Tensor:
                    return nn.functional.cross_entropy(m(xt), yt)

                lam_p, it_p, ok_p = hessian_top_eigenvalue(param_loss, params, iters, tol, seed)
                with torch.no_grad():
                    loss = float(nn.functional.cross_entropy(model(xt), yt))
        finally:
            model.train(was_training)
        family = getattr(model, "family", None) or name
        rows.append({"model": name, "family": family, "input_eig": lam_x, "param_eig": lam_p,
                     "input_iters": it_x, "param_iters": it_p, "converged": ok_x and ok_p, "loss": loss,
                     "n": len(yt)})  # fmt: skip
    return HessianStudy(rows, dataset)
