"""Re-evaluate a trained ContinuousNet at other schemes and step counts, and at compressed bases."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .._depth import ContinuousNetStudy


@torch.no_grad()
def continuous_net_study(
    model: nn.Module,
    X: np.ndarray,
    y: np.ndarray,
    schemes: Sequence[str] = ("euler", "midpoint", "rk4"),
    steps: Sequence[int] = (1, 2, 4, 8, 16),
    compress_to: Sequence[tuple[str, int]] | None = None,
    dataset: str = "",
) -> ContinuousNetStudy:
    """Accuracy of a ``ContinuousNet`` on ``(X, y)`` at every (scheme, steps), and after basis compression.

    The model's own scheme and step count are restored afterwards. ``compress_to`` lists
    ``(basis, n_basis)`` targets for :meth:`ContinuousNet.compress` (default: the model's
    basis at every power of two below its ``n_basis``, and ``fem_linear`` at 2 and 3);
    each compressed model is evaluated at the trained scheme and steps.

    Example:
        >>> import numpy as np, torch
        >>> from ctnn.models import ContinuousNet
        >>> from ctnn.analysis import continuous_net_study
        >>> _ = torch.manual_seed(0)
        >>> net = ContinuousNet(4, 2, widths=[8], n_basis=2, n_steps=2)
        >>> X, y = np.random.default_rng(0).normal(size=(20, 4)).astype("float32"), np.zeros(20, int)
        >>> s = continuous_net_study(net, X, y, schemes=["euler"], steps=[1, 2], compress_to=[])
        >>> sorted(s.grid)
        [('euler', 1), ('euler', 2)]
    """
    from ctnn.models import ContinuousNet, accuracy

    if not isinstance(model, ContinuousNet):
        raise TypeError(f"continuous_net_study needs a ContinuousNet, got {type(model).__name__}")
    scheme0, steps0 = model.scheme, model.n_steps
    trained = {"scheme": scheme0, "n_steps": steps0, "basis": model.basis, "n_basis": model.n_basis,
               "accuracy": accuracy(model, X, y)}  # fmt: skip
    grid: dict[tuple[str, int], float] = {}
    try:
        for s in schemes:
            for n in steps:
                model.scheme, model.n_steps = s, int(n)
                grid[(s, int(n))] = accuracy(model, X, y)
    finally:
        model.scheme, model.n_steps = scheme0, steps0
    if compress_to is None:
        compress_to = [(model.basis, 2**k) for k in range(8) if 2**k < model.n_basis]
        compress_to += [("fem_linear", 2), ("fem_linear", 3)]
    rows = []
    for basis, n in compress_to:
        try:
            small = model.compress(basis, int(n))
        except ValueError:  # e.g. an odd size for a two-nodes-per-cell basis: not a valid target
            continue
        coeffs = sum(p.numel() for st in small.stages for p in (st.W1, st.b1, st.W2, st.b2))
        rows.append(
            {"basis": basis, "n_basis": int(n), "accuracy": accuracy(small, X, y), "coefficients": coeffs}
        )
    return ContinuousNetStudy(grid, trained, rows, dataset)
