"""Trajectory length of random networks of every family (needs ctnn-analysis[models])."""

import json

import numpy as np
import pytest

pytest.importorskip("ctnn.models", reason="the model-side analyses need the ctnn-analysis[models] extra")

from ctnn.analysis import TrajectoryLengths, trajectory_lengths  # noqa: E402
from ctnn.analysis._measure.expressivity import FAMILIES, WEIGHTS, circle  # noqa: E402
from ctnn.models import SEQUENCE_FAMILIES  # noqa: E402


def test_every_scaled_weight_exists_in_its_family():
    for fam, specs in WEIGHTS.items():
        params = dict(SEQUENCE_FAMILIES[fam](2, 4).named_parameters())
        for name, axis, _ in specs:
            assert name in params and params[name].dim() == 2 and axis in (0, 1), (fam, name)


def test_sweeps_over_all_families():
    s = trajectory_lengths(sigmas=[0.25, 4.0], widths=[4, 8], depths=[1, 2], base={"width": 8, "sigma_w": 1.0},
                           n_points=16, seeds=[0])  # fmt: skip
    assert s.families == list(FAMILIES)
    assert len(s.rows) == len(FAMILIES) * (2 + 2 + 2)
    assert all(np.isfinite(r["length"]) and r["length"] > 0 for r in s.rows)
    assert s.input_length == pytest.approx(2 * 16 * np.sin(np.pi / 16), rel=1e-9)
    for fam in FAMILIES:
        assert s.projections[fam].shape == (17, 2) and 0 < s.explained[fam] <= 1 + 1e-12
    # larger weights stretch the circle more (Raghu et al.): a tanh CT-RNN at σ_w = 4 vs 0.25
    _, m, _ = s.series("ctrnn", "sigma_w")
    assert m[1] > 3 * m[0]
    # the depth sweep really stacks layers: a 2-layer net differs from the 1-layer one
    _, d, _ = s.series("lstm", "depth")
    assert d[0] != pytest.approx(d[1])
    headers, rows = s.table()
    assert headers[:3] == ["swept", "value", "LTC"] and len(headers) == 2 + len(FAMILIES)
    assert len(rows) == 6 and rows[0][:2] == ["weight scale σ_w", "0.25"]
    assert rows[1][headers.index("CT-RNN")] == f"{m[1]:.3g} ± 0"
    back = TrajectoryLengths.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back.rows == s.rows and np.allclose(back.projections["ltc"], s.projections["ltc"])
    assert len(s.plot().axes) == len(FAMILIES) + 3


def test_circle_input():
    c = circle(8, laps=2)
    assert c.shape == (16, 2) and np.allclose(np.linalg.norm(c, axis=1), 1.0) and np.allclose(c[:8], c[8:])
