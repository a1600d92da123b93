"""The fused LTC kernel equals the step-by-step cell, forward and backward; the state bound holds."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ctnn.models import LTC, AutoNCP, _native

needs_native = pytest.mark.skipif(
    not _native.available(), reason=f"no native kernel: {_native.unavailable_reason()}"
)
IMPLS = ["eager", pytest.param("native", marks=needs_native)]


def _run(model, impl, x, ts, hx=None):
    model.implementation = impl
    model.zero_grad()
    out, h = model(x, hx=hx, timespans=ts)
    (out.sin().sum() + h.square().sum()).backward()
    return out.detach(), h.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("wiring", ["fc", "ncp"])
def test_matches_the_cell_in_float64(impl, wiring):
    torch.manual_seed(0)
    units = AutoNCP(10, 3) if wiring == "ncp" else 7
    model = LTC(3, units, ode_unfolds=4, output_mapping="affine").double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    x = torch.randn(3, 6, 3, dtype=torch.float64)
    ts = torch.rand(3, 6, dtype=torch.float64) + 0.3
    hx = torch.randn(3, model.state_size, dtype=torch.float64)
    ref = _run(model, "cell", x, ts, hx)
    got = _run(model, impl, x, ts, hx)
    torch.testing.assert_close(got[0], ref[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got[1], ref[1], rtol=1e-12, atol=1e-12)
    for k in ref[2]:
        torch.testing.assert_close(got[2][k], ref[2][k], rtol=1e-10, atol=1e-10, msg=k)


@needs_native
def test_gradcheck():
    torch.manual_seed(1)
    B, T, N, U = 2, 3, 4, 3
    d = dict(dtype=torch.float64, requires_grad=True)
    args = (
        torch.rand(B, T, N, **d), torch.rand(B, T, N, **d), torch.rand(B, T, N, **d) + 1.0,
        torch.randn(B, N, **d), torch.rand(N, N, **d) * 4, torch.rand(N, N, **d),
        torch.randn(N, N, **d), torch.rand(N, N, **d),
    )  # fmt: skip
    assert torch.autograd.gradcheck(lambda *a: _native.FusedSemiImplicit.apply(*a, 1e-8, U), args)


@needs_native
def test_float32_agrees_with_the_cell():
    torch.manual_seed(2)
    model = LTC(4, 32)
    x = torch.randn(8, 50, 4)
    ref = _run(model, "cell", x, None)
    got = _run(model, "native", x, None)
    torch.testing.assert_close(got[0], ref[0], rtol=0, atol=1e-5)
    for k in ref[2]:
        torch.testing.assert_close(got[2][k], ref[2][k], rtol=1e-3, atol=1e-4, msg=k)


def test_implementation_choice(monkeypatch):
    model = LTC(2, 3)
    with pytest.raises(ValueError, match="implementation must be one of"):
        model.implementation = "cuda"
    model.cell.solver = "rk4"
    model.implementation = "native"
    with pytest.raises(ValueError, match="needs solver='semi_implicit'"):
        model(torch.rand(1, 2, 2))
    model.cell.solver = "semi_implicit"
    monkeypatch.setenv("CTNN_NATIVE", "0")
    assert not _native.available() and "CTNN_NATIVE=0" in _native.unavailable_reason()
    with pytest.raises(RuntimeError, match="unavailable"):
        model(torch.rand(1, 2, 2))
    model.implementation = "auto"
    assert model(torch.rand(1, 2, 2))[0].shape == (1, 2, 3)  # falls back to eager


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.1, 10.0), unfolds=st.integers(1, 6))
def test_fused_path_keeps_the_state_bound(seed, scale, unfolds):
    """The paper's bound, on the sequence path the trainer uses (native when available)."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = LTC(2, 5, ode_unfolds=unfolds).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.from_numpy(rng.normal(0.0, scale, size=tuple(p.shape))))
    v0 = torch.from_numpy(rng.normal(0.0, scale, size=(3, 5)))
    x = torch.from_numpy(rng.normal(0.0, 3 * scale, size=(3, 8, 2)))
    ts = torch.from_numpy(np.exp(rng.uniform(-4, 3, size=(3, 8))))
    model.cell.output_mapping = "none"
    lo, hi = model.cell.state_bounds(v0)
    with torch.no_grad():
        out, _ = model(x, hx=v0, timespans=ts)
    tol = 1e-9 * max(1.0, float(lo.abs().max()), float(hi.abs().max()))
    assert (out >= lo.unsqueeze(1) - tol).all() and (out <= hi.unsqueeze(1) + tol).all()
