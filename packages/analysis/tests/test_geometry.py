"""Trajectory length and its 2-D projection on curves whose answer is known."""

import numpy as np
import pytest

from ctnn.analysis import curve_length, pca_2d


def test_polygon_length_is_exact():
    n = 12
    t = 2 * np.pi * np.arange(n + 1) / n
    circle = np.stack([np.cos(t), np.sin(t)], 1)
    assert curve_length(circle) == pytest.approx(2 * n * np.sin(np.pi / n), rel=1e-12)


def test_pca_of_an_embedded_planar_curve_keeps_its_length():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 2 * np.pi, 50)
    planar = np.stack([3 * np.cos(t), np.sin(t)], 1)
    q, _ = np.linalg.qr(rng.normal(size=(7, 7)))
    embedded = planar @ q[:2] + rng.normal(size=7)  # rotated into 7-D and shifted
    proj, explained = pca_2d(embedded)
    assert proj.shape == (50, 2) and explained == pytest.approx(1.0)
    assert curve_length(proj) == pytest.approx(curve_length(planar), rel=1e-9)
    assert curve_length(embedded) == pytest.approx(curve_length(planar), rel=1e-9)


def test_too_short_is_an_error():
    with pytest.raises(ValueError, match="T >= 2"):
        curve_length(np.zeros((1, 3)))
