"""The multilayer perceptron: Linear → ReLU → … → Linear, the first model to quantize."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from torch import Tensor, nn


class MLP(nn.Module):
    """A ReLU multilayer perceptron producing logits.

    ``sizes = [in, hidden..., out]``. The layers are exactly ``self.layers`` (an
    ``nn.ModuleList`` of ``nn.Linear``) with a ReLU between consecutive layers and
    nothing after the last: the quantizer reads ``layers[i].weight`` and ``.bias``
    and relies on that structure.

    Example:
        >>> import torch
        >>> net = MLP([64, 32, 10])
        >>> tuple(net(torch.zeros(3, 64)).shape)
        (3, 10)
    """

    def __init__(self, sizes: list[int]) -> None:
        super().__init__()
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"MLP needs at least [in, out] positive sizes, got {sizes}")
        self.sizes = sizes
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairwise(sizes))

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments (``MLP(**config)`` rebuilds the architecture)."""
        return {"sizes": list(self.sizes)}

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, sizes[-1]]`` for ``x [N, sizes[0]]``."""
        *hidden, last = self.layers
        for layer in hidden:
            x = nn.functional.relu(layer(x))
        return last(x)

    def interval_logits(self, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        """Bounds ``(lower, upper)`` ``[N, sizes[-1]]`` on the logits of every input in the box
        ``lo <= x <= hi`` (``[N, sizes[0]]``), by interval bound propagation (Gowal et al., 2018).

        Each layer maps the box's centre through the layer and its radius through ``|W|``,
        and ReLU maps both ends. Differentiable, for verification-aware training
        (``train_classifier(..., interval_eps=)``); sound up to float rounding, so it is no
        proof: ctnn.verify proves properties of the integer network.
        """
        last = self.layers[-1]
        for layer in self.layers:
            mid = layer((lo + hi) / 2)
            rad = nn.functional.linear((hi - lo) / 2, layer.weight.abs())
            lo, hi = mid - rad, mid + rad
            if layer is not last:
                lo, hi = nn.functional.relu(lo), nn.functional.relu(hi)
        return lo, hi
