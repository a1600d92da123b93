"""ContinuousNet: a ResNet when discretised like one; scheme/step invariance; exact refine; projection."""

import numpy as np
import pytest
import torch

from ctnn.models import BASES, DEPTH_SCHEMES, ContinuousNet, accuracy, train_classifier


def _net(basis="piecewise_constant", n_basis=4, **kw):
    torch.manual_seed(0)
    return ContinuousNet(6, 3, widths=[5, 4], n_basis=n_basis, basis=basis, **kw).double()


def test_euler_piecewise_constant_is_a_resnet():
    net = _net(n_steps=4)
    x = torch.randn(7, 6, dtype=torch.float64)
    h = net.encoder(x)
    for k, stage in enumerate(net.stages):
        if k:
            h = net.stitches[k - 1](h)
        for a in range(4):  # block a: h + 1/4 · tanh(W2 tanh(W1 h + b1) + b2)
            inner = torch.tanh(h @ stage.W1[a].T + stage.b1[a])
            h = h + 0.25 * torch.tanh(inner @ stage.W2[a].T + stage.b2[a])
    torch.testing.assert_close(net(x), net.head(h), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("basis, n", [("piecewise_constant", 3), ("piecewise_linear", 4), ("fem_linear", 3)])
def test_refine_keeps_theta_exactly(basis, n):
    net = _net(basis, n, n_steps=3)
    fine = net.refine()
    # twice the cells: 2n nodes, or 2n - 1 for the continuous hat functions (shared end nodes)
    assert fine.n_basis == (2 * n - 1 if basis == "fem_linear" else 2 * n)
    assert fine.n_steps == 6 and fine.basis == basis
    for t in np.linspace(0, 1, 37):
        for a, b in zip(net.stages[1].theta(float(t)), fine.stages[1].theta(float(t)), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # same θ(t), same steps → the same network; the original is untouched
    x = torch.randn(5, 6, dtype=torch.float64)
    net.n_steps = 6
    torch.testing.assert_close(fine(x), net(x), rtol=1e-12, atol=1e-12)
    assert net.n_basis == n


@pytest.mark.parametrize("basis", ["piecewise_linear", "fem_linear"])
def test_schemes_converge_to_one_ode(basis):
    """Scheme/step invariance: every scheme approaches the same solution, at its own order."""
    n = 4 if basis == "piecewise_linear" else 3
    net = _net(basis, n)
    x = torch.randn(5, 6, dtype=torch.float64)
    net.scheme, net.n_steps = "rk4", 256
    ref = net(x)
    errors = {}
    for scheme in DEPTH_SCHEMES:
        net.scheme = scheme
        errs = []
        for steps in (8, 16):
            net.n_steps = steps
            errs.append(float((net(x) - ref).detach().abs().max()))
        errors[scheme] = errs
        assert errs[1] < errs[0], scheme
    assert errors["euler"][1] < 5e-2 and errors["midpoint"][1] < 1e-3 and errors["rk4"][1] < 1e-5
    assert errors["euler"][0] / errors["euler"][1] == pytest.approx(2, rel=0.3)  # first order
    assert errors["midpoint"][0] / errors["midpoint"][1] > 3  # second order


def test_compress_is_an_l2_projection():
    net = _net("piecewise_constant", 4)
    # onto the same basis: the identity
    same = net.compress("piecewise_constant", 4)
    torch.testing.assert_close(same.stages[0].W1, net.stages[0].W1, rtol=1e-12, atol=1e-12)
    # piecewise constant onto 2 cells: the average of each pair
    half = net.compress("piecewise_constant", 2)
    torch.testing.assert_close(half.stages[0].b1[0], net.stages[0].b1[:2].mean(0), rtol=1e-12, atol=1e-12)
    # a linear θ(t) is represented exactly by the discontinuous linear basis on any mesh
    lin = _net("fem_linear", 2)
    dg = lin.compress("piecewise_linear", 2)
    for t in np.linspace(0, 1, 11):
        torch.testing.assert_close(dg.stages[0].theta(float(t))[0], lin.stages[0].theta(float(t))[0])
    assert half.n_basis == 2 and sum(p.numel() for p in half.parameters()) < sum(
        p.numel() for p in net.parameters()
    )
    with pytest.raises(ValueError, match="even n_basis"):
        net.compress("piecewise_linear", 3)


def test_trained_model_survives_other_discretisations(digits):
    torch.manual_seed(0)
    net = ContinuousNet(64, 10, widths=[24], n_basis=4, n_steps=4, input_scale=16.0)
    train_classifier(net, digits, epochs=8, lr=3e-3, progress=False, patience=None)
    base = accuracy(net, digits.X_test, digits.y_test)
    assert base > 0.85
    for scheme, steps in [("midpoint", 8), ("rk4", 8), ("euler", 16)]:
        net.scheme, net.n_steps = scheme, steps
        assert accuracy(net, digits.X_test, digits.y_test) > base - 0.05, (scheme, steps)
    net.scheme, net.n_steps = "euler", 4
    small = net.compress("piecewise_linear", 2)
    assert accuracy(small, digits.X_test, digits.y_test) > base - 0.15


def test_bad_options():
    with pytest.raises(ValueError, match="unknown basis"):
        ContinuousNet(4, 2, basis="spline")
    with pytest.raises(ValueError, match="unknown scheme"):
        ContinuousNet(4, 2, scheme="heun")
    assert set(BASES) == {"piecewise_constant", "piecewise_linear", "fem_linear"}
