"""Measure latent trajectory lengths of randomly initialised sequence families for a circular input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .._expressivity import SWEEPS, TrajectoryLengths, curve_length, pca_2d

#: Per family: the weight matrices that σ_w scales, as (parameter name, fan-in axis, non-negative).
#: LTC synaptic weights are conductances (non-negative): their magnitudes are drawn.
WEIGHTS: dict[str, list[tuple[str, int, bool]]] = {
    "ltc": [("cell.w", 0, True), ("cell.sensory_w", 0, True)],
    "ctrnn": [("U.weight", 1, False), ("W.weight", 1, False)],
    "lstm": [("weight_ih", 1, False), ("weight_hh", 1, False)],
    "gru": [("weight_ih", 1, False), ("weight_hh", 1, False)],
    "lipschitz_rnn": [("M_A", 1, False), ("M_W", 1, False), ("U.weight", 1, False)],
    "lem": [("inp2hid.weight", 1, False), ("hid2hid.weight", 1, False), ("transform_z.weight", 1, False)],
}
FAMILIES = ("ltc", "ctrnn", "lstm", "lipschitz_rnn", "lem")


def _layer(family: str, in_features: int, width: int, sigma_w: float, gen: torch.Generator) -> nn.Module:
    from ctnn.models import SEQUENCE_FAMILIES

    if family not in WEIGHTS:
        raise ValueError(f"no weight-scaling rule for family {family!r}; known: {sorted(WEIGHTS)}")
    # clamp positivity: the drawn LTC conductances are used as they are, not through softplus
    opts: dict[str, Any] = {"positivity": "clamp"} if family == "ltc" else {}
    layer = SEQUENCE_FAMILIES[family](in_features, width, **opts).double()
    params = dict(layer.named_parameters())
    with torch.no_grad():
        for name, axis, positive in WEIGHTS[family]:
            p = params[name]
            w = torch.randn(p.shape, generator=gen, dtype=torch.float64) * (sigma_w / np.sqrt(p.shape[axis]))
            p.copy_(w.abs() if positive else w)
    return layer


def _latent(family: str, width: int, depth: int, sigma_w: float, x: torch.Tensor, seed: int) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # the families' own (unscaled) parameters
    h = x
    with torch.no_grad():
        for k in range(depth):
            layer = _layer(family, x.shape[-1] if k == 0 else width, width, sigma_w, gen)
            h, _ = layer(h)
    return h[0].numpy()


def circle(n_points: int, laps: int = 2) -> np.ndarray:
    """``laps`` laps of the unit circle, ``n_points`` samples per lap: ``[laps·n_points, 2]``."""
    t = 2 * np.pi * np.arange(laps * n_points) / n_points
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def trajectory_lengths(
    families: Sequence[str] = FAMILIES,
    sigmas: Sequence[float] = (0.5, 1.0, 2.0, 4.0, 8.0),
    widths: Sequence[int] = (8, 16, 32, 64),
    depths: Sequence[int] = (1, 2, 3, 4),
    base: dict[str, Any] | None = None,
    n_points: int = 100,
    seeds: Sequence[int] = (0, 1, 2),
) -> TrajectoryLengths:
    """Latent trajectory length of each family for a circular 2-D input, swept over σ_w, width and depth.

    Each network is a stack of ``depth`` layers of the family (each layer's output
    sequence is the next one's input) with its weight matrices drawn N(0, σ_w²/fan-in)
    (:data:`WEIGHTS`). The input is the unit circle sampled at ``n_points`` steps per lap,
    run for two laps; the length is measured on the last layer's hidden states over the
    second lap (the first lets the state forget its zero start). Each sweep varies one of
    σ_w / width / depth with the others at ``base`` (default: σ_w=2, width=32, depth=1).

    Example:
        >>> from ctnn.analysis import trajectory_lengths
        >>> s = trajectory_lengths(["ctrnn"], sigmas=[1, 4], widths=[8], depths=[1], n_points=16, seeds=[0])
        >>> [round(r["length"], 2) > 0 for r in s.rows]
        [True, True, True, True]
    """
    b = {"sigma_w": 2.0, "width": 32, "depth": 1} | dict(base or {})
    pts = circle(n_points)
    x = torch.as_tensor(pts, dtype=torch.float64).unsqueeze(0)
    values = {"sigma_w": list(sigmas), "width": list(widths), "depth": list(depths)}
    rows: list[dict[str, Any]] = []
    projections: dict[str, np.ndarray] = {}
    explained: dict[str, float] = {}
    for fam in families:
        for sweep in SWEEPS:
            for v in values[sweep]:
                cfg = {**b, sweep: v}
                for seed in seeds:
                    lat = _latent(fam, int(cfg["width"]), int(cfg["depth"]), float(cfg["sigma_w"]), x, seed)
                    lap = lat[n_points - 1 :]  # the second lap, joined to the end of the first
                    length = curve_length(lap) if np.isfinite(lap).all() else float("inf")
                    rows.append({"family": fam, "sweep": sweep, "sigma_w": float(cfg["sigma_w"]),
                                 "width": int(cfg["width"]), "depth": int(cfg["depth"]), "length": length,
                                 "seed": int(seed)})  # fmt: skip
        lat = _latent(fam, int(b["width"]), int(b["depth"]), float(b["sigma_w"]), x, int(seeds[0]))[
            n_points - 1 :
        ]
        if np.isfinite(lat).all():
            projections[fam], explained[fam] = pca_2d(lat)
    return TrajectoryLengths(rows, b, curve_length(pts[n_points - 1 :]), projections, explained)
