"""Lipschitz RNN, LEM, CT-RNN, LSTM and GRU: each against a direct re-implementation of its equations."""

import numpy as np
import pytest
import torch

from ctnn.models import CTRNN, GRU, LEM, LSTM, LipschitzRNN, lipschitz_matrix


def _np(t):
    return t.detach().double().numpy()


def _tanh(z):
    return np.tanh(z)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


# --- Lipschitz RNN ---------------------------------------------------------------------------


def test_lipschitz_matrix_structure():
    torch.manual_seed(0)
    m = torch.randn(5, 5, dtype=torch.float64)
    eye = torch.eye(5, dtype=torch.float64)
    sym = lipschitz_matrix(m, beta=0.0, gamma=0.0)
    skew = lipschitz_matrix(m, beta=1.0, gamma=0.3)
    torch.testing.assert_close(sym, m + m.T)
    torch.testing.assert_close(skew + 0.3 * eye, m - m.T)
    mixed = lipschitz_matrix(m, beta=0.75, gamma=0.1)
    torch.testing.assert_close(mixed, 0.25 * (m + m.T) + 0.75 * (m - m.T) - 0.1 * eye)


def _lipschitz_reference(rnn, x, ts=None):
    """h ← h + ε(A h + tanh(W h + U x + b)) sample by sample with column vectors (the paper's form)."""
    A, W = (_np(m) for m in rnn.matrices())
    U, b = _np(rnn.U.weight), _np(rnn.U.bias)
    X = x.numpy()
    out = np.zeros((X.shape[0], X.shape[1], rnn.units))
    for n in range(X.shape[0]):
        h = np.zeros(rnn.units)
        for t in range(X.shape[1]):
            eps = rnn.eps * (1.0 if ts is None else float(ts[n, t]))
            u = X[n, t]
            f = lambda v, u=u: A @ v + _tanh(W @ v + U @ u + b)  # noqa: E731
            if rnn.solver == "euler":
                h = h + eps * f(h)
            else:
                h = h + eps * f(h + 0.5 * eps * f(h))
            out[n, t] = h
    return out


@pytest.mark.parametrize("solver", ["euler", "rk2"])
def test_lipschitz_matches_equations(solver):
    torch.manual_seed(1)
    rnn = LipschitzRNN(
        3, 6, beta=0.6, gamma_a=0.2, gamma_w=0.05, eps=0.1, solver=solver, init_std=4.0
    ).double()
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    ts = torch.rand(2, 7, dtype=torch.float64) + 0.5
    out, h = rnn(x)
    np.testing.assert_allclose(out.detach().numpy(), _lipschitz_reference(rnn, x), rtol=1e-12, atol=1e-12)
    assert torch.equal(h, out[:, -1])
    out_ts, _ = rnn(x, timespans=ts)
    np.testing.assert_allclose(
        out_ts.detach().numpy(), _lipschitz_reference(rnn, x, ts), rtol=1e-12, atol=1e-12
    )


def _lipschitz_with(units, beta, gamma_a, gamma_w, m_a, m_w, eps, solver="euler"):
    rnn = LipschitzRNN(2, units, beta=beta, gamma_a=gamma_a, gamma_w=gamma_w, eps=eps, solver=solver)
    rnn = rnn.double()
    with torch.no_grad():
        rnn.M_A.copy_(m_a)
        rnn.M_W.copy_(m_w)
    return rnn


def _distances(rnn, x, h1, h2):
    out1, _ = rnn(x, hx=h1)
    out2, _ = rnn(x, hx=h2)
    d = (out1 - out2).detach().norm(dim=-1)[0]
    return torch.cat([(h1 - h2).norm(dim=-1), d])


def test_lipschitz_stability_condition_holds_and_trajectories_converge():
    # constructed so that the condition holds with margin exactly 1:
    # λ_max(A^sym) = (1 − β)·λ_max(M_A + M_Aᵀ) − γ_A, and γ_A = that + ‖W‖₂ + 1
    torch.manual_seed(2)
    units, beta, eps = 8, 0.75, 0.02
    m_a = torch.randn(units, units, dtype=torch.float64) / units**0.5
    m_w = torch.randn(units, units, dtype=torch.float64) / units**0.5
    w = lipschitz_matrix(m_w, beta, 0.01)
    norm_w = float(torch.linalg.svdvals(w)[0])
    lam_m = float(torch.linalg.eigvalsh(m_a + m_a.T).max())
    gamma_a = (1 - beta) * lam_m + norm_w + 1.0
    rnn = _lipschitz_with(units, beta, gamma_a, 0.01, m_a, m_w, eps)
    rep = rnn.stability()
    a = lipschitz_matrix(m_a, beta, gamma_a)
    assert rep.lambda_max_sym_m_a == pytest.approx(lam_m)
    assert rep.lambda_max_sym_a == pytest.approx(float(torch.linalg.eigvalsh((a + a.T) / 2).max()))
    assert rep.lambda_max_sym_a == pytest.approx((1 - beta) * lam_m - gamma_a)  # β, γ's exact role
    assert rep.spectral_norm_w == pytest.approx(norm_w)
    assert rep.margin == pytest.approx(1.0) and rep.continuous and rep.a_sym_negative_definite
    assert rep.gamma_a_required == pytest.approx(gamma_a - 1.0)
    assert rep.discrete and rep.euler_lipschitz < 1
    # two initial states, the same input: the distance shrinks at least by euler_lipschitz per step
    x = torch.randn(1, 300, 2, dtype=torch.float64) * 3
    h1 = torch.randn(1, units, dtype=torch.float64) * 5
    h2 = torch.randn(1, units, dtype=torch.float64) * 5
    d = _distances(rnn, x, h1, h2)
    assert bool((d[1:] <= rep.euler_lipschitz * d[:-1] * (1 + 1e-12)).all())
    assert float(d[-1]) < 1e-3 * float(d[0])
    # and the continuous-time rate e^{-margin·t}, followed closely by a fine midpoint integration
    fine = _lipschitz_with(units, beta, gamma_a, 0.01, m_a, m_w, eps=0.005, solver="rk2")
    d = _distances(fine, x, h1, h2)
    t = torch.arange(d.shape[0], dtype=torch.float64) * 0.005
    assert bool((d <= torch.exp(-rep.margin * t) * float(d[0]) * 1.001).all())


def test_lipschitz_stability_condition_fails():
    units = 6
    zeros = torch.zeros(units, units, dtype=torch.float64)
    # A = (1 − 0)(M + Mᵀ) = 0.5 I (expanding), W = 0: the difference of two trajectories grows as e^{t/2}
    rnn = _lipschitz_with(units, 0.0, 0.0, 0.0, 0.25 * torch.eye(units, dtype=torch.float64), zeros, 0.05)
    rep = rnn.stability()
    assert rep.lambda_max_sym_a == pytest.approx(0.5) and rep.spectral_norm_w == pytest.approx(0.0)
    assert not rep.a_sym_negative_definite and not rep.continuous and rep.margin == pytest.approx(-0.5)
    assert not rep.discrete and rep.gamma_a_required == pytest.approx(0.5)
    x = torch.randn(1, 100, 2, dtype=torch.float64)
    d = _distances(
        rnn, x, torch.zeros(1, units, dtype=torch.float64), torch.ones(1, units, dtype=torch.float64)
    )
    np.testing.assert_allclose(d.numpy(), d[0].item() * 1.025 ** np.arange(101), rtol=1e-10)
    # A^sym negative definite but ‖W‖₂ too large: the sufficient condition does not hold
    big_w = _lipschitz_with(units, 1.0, 0.5, 2.0, zeros, zeros, 0.05)  # A = −0.5 I, W = −2 I
    rep = big_w.stability()
    assert rep.a_sym_negative_definite and not rep.continuous
    assert rep.margin == pytest.approx(-1.5) and rep.gamma_a_required == pytest.approx(2.0)
    with pytest.raises(ValueError, match="lipschitz_constant"):
        big_w.stability(lipschitz_constant=-1.0)


def test_lipschitz_bad_options():
    with pytest.raises(ValueError, match="unknown Lipschitz RNN solver"):
        LipschitzRNN(2, 3, solver="rk4")
    with pytest.raises(ValueError, match="beta"):
        LipschitzRNN(2, 3, beta=1.5)


# --- LEM -------------------------------------------------------------------------------------


def _lem_reference(lem, x, ts=None):
    Wi, bi = _np(lem.inp2hid.weight), _np(lem.inp2hid.bias)
    Wh, bh = _np(lem.hid2hid.weight), _np(lem.hid2hid.bias)
    Wz, bz = _np(lem.transform_z.weight), _np(lem.transform_z.bias)
    n = lem.units
    V1, V2, Vz, Vy = (Wi[k * n : (k + 1) * n] for k in range(4))
    c1, c2, cz, cy = (bi[k * n : (k + 1) * n] for k in range(4))
    W1, W2, Wy = (Wh[k * n : (k + 1) * n] for k in range(3))
    d1, d2, dy = (bh[k * n : (k + 1) * n] for k in range(3))
    X = x.numpy()
    out = np.zeros((X.shape[0], X.shape[1], n))
    for s in range(X.shape[0]):
        y, z = np.zeros(n), np.zeros(n)
        for t in range(X.shape[1]):
            u = X[s, t]
            dt = lem.dt * (1.0 if ts is None else float(ts[s, t]))
            dt_bar = dt * _sigmoid(V1 @ u + c1 + W1 @ y + d1)  # gates y
            dt_z = dt * _sigmoid(V2 @ u + c2 + W2 @ y + d2)  # gates z
            z = (1 - dt_z) * z + dt_z * _tanh(Vy @ u + cy + Wy @ y + dy)
            y = (1 - dt_bar) * y + dt_bar * _tanh(Wz @ z + bz + Vz @ u + cz)
            out[s, t] = y
    return out


def test_lem_matches_equations():
    torch.manual_seed(3)
    lem = LEM(3, 5, dt=0.7).double()
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    ts = torch.rand(2, 6, dtype=torch.float64) + 0.2
    out, (y, z) = lem(x)
    np.testing.assert_allclose(out.detach().numpy(), _lem_reference(lem, x), rtol=1e-12, atol=1e-12)
    assert torch.equal(y, out[:, -1]) and z.shape == (2, 5)
    out_ts, _ = lem(x, timespans=ts)
    np.testing.assert_allclose(out_ts.detach().numpy(), _lem_reference(lem, x, ts), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="dt must be positive"):
        LEM(2, 3, dt=0.0)


@pytest.mark.parametrize("with_timespans", [False, True])
def test_lem_fused_equals_step_loop_with_gradients(with_timespans):
    # the fused sequence (hand-written backward) against LEM.step in a plain autograd loop
    torch.manual_seed(4)
    lem = LEM(3, 5, dt=0.7).double()
    x = torch.randn(4, 9, 3, dtype=torch.float64)
    ts = torch.rand(4, 9, dtype=torch.float64) + 0.2 if with_timespans else None
    hx0 = [torch.randn(4, 5, dtype=torch.float64) for _ in range(2)]
    weights = torch.randn(4, 9, 5, dtype=torch.float64)
    results = {}
    for fused in (True, False):
        lem.fused = fused
        lem.zero_grad()
        hx = [h.clone().requires_grad_() for h in hx0]
        out, (y, z) = lem(x, hx=tuple(hx), timespans=ts)
        ((out * weights).sum() + (z**2).sum()).backward()
        grads = [p.grad.clone() for p in lem.parameters()] + [h.grad for h in hx]
        results[fused] = (out.detach(), y.detach(), z.detach(), grads)
    for a, b in zip(results[True][:3], results[False][:3], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for a, b in zip(results[True][3], results[False][3], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_lem_sequence_gradcheck():
    from ctnn.models._lem_fused import lem_sequence

    torch.manual_seed(5)
    t, n, u = 4, 3, 2

    def leaf(*shape):
        return torch.randn(*shape, dtype=torch.float64).requires_grad_()

    for dt_shape in ((t, n, 1), (t, 1, 1)):
        dt = (torch.rand(*dt_shape, dtype=torch.float64) + 0.3).requires_grad_()
        args = (leaf(t, n, 3 * u), leaf(t, n, u), dt, leaf(n, u), leaf(n, u), leaf(3 * u, u), leaf(u, u))
        assert torch.autograd.gradcheck(lem_sequence, args)


# --- CT-RNN ----------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", ["euler", "rk4"])
def test_ctrnn_matches_equations(solver):
    torch.manual_seed(4)
    rnn = CTRNN(2, 4, ode_unfolds=3, solver=solver).double()
    with torch.no_grad():
        rnn.tau_raw.copy_(torch.randn(4))
    x = torch.randn(1, 5, 2, dtype=torch.float64)
    U, b, W = _np(rnn.U.weight), _np(rnn.U.bias), _np(rnn.W.weight)
    tau = _np(rnn.tau())
    f = lambda h, u: (_tanh(W @ h + U @ u + b) - h) / tau  # noqa: E731
    h, dt = np.zeros(4), 1.0 / 3
    for t in range(5):
        u = x[0, t].numpy()
        for _ in range(3):
            if solver == "euler":
                h = h + dt * f(h, u)
            else:
                k1 = f(h, u)
                k2 = f(h + dt / 2 * k1, u)
                k3 = f(h + dt / 2 * k2, u)
                k4 = f(h + dt * k3, u)
                h = h + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    _, hT = rnn(x)
    np.testing.assert_allclose(hT[0].detach().numpy(), h, rtol=1e-12, atol=1e-12)


# --- LSTM / GRU against torch's own ----------------------------------------------------------


@pytest.mark.parametrize("ours, theirs", [(LSTM, torch.nn.LSTM), (GRU, torch.nn.GRU)])
def test_baselines_match_torch(ours, theirs):
    torch.manual_seed(5)
    mine = ours(3, 6).double()
    ref = theirs(3, 6, batch_first=True).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ref, f"{name}_l0").copy_(getattr(mine, name))
    x = torch.randn(4, 9, 3, dtype=torch.float64)
    out, _ = mine(x)
    expected, _ = ref(x)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="no notion of elapsed time"):
        mine(x, timespans=torch.ones(4, 9))
