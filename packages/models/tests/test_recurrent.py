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


def test_lipschitz_stability_report():
    torch.manual_seed(2)
    stable = LipschitzRNN(2, 8, gamma_a=3.0, eps=0.05).double()
    rep = stable.stability()
    A, W = (m.detach() for m in stable.matrices())
    assert rep.lambda_max_sym_a == pytest.approx(float(torch.linalg.eigvalsh((A + A.T) / 2).max()))
    assert rep.spectral_norm_w == pytest.approx(float(torch.linalg.svdvals(W)[0]))
    assert rep.continuous and rep.margin > 0 and rep.discrete
    assert set(rep.to_dict()) >= {"margin", "continuous", "discrete", "euler_lipschitz"}
    # the guarantee in action: two different initial states, the same inputs, trajectories converge
    x = torch.randn(1, 200, 2, dtype=torch.float64)
    _, h1 = stable(x, hx=torch.randn(1, 8, dtype=torch.float64) * 5)
    _, h2 = stable(x, hx=torch.randn(1, 8, dtype=torch.float64) * 5)
    assert float((h1 - h2).detach().norm()) < 1e-3 * 5 * 8
    # an expanding A (γ < 0 pushes the spectrum right) violates the condition
    unstable = LipschitzRNN(2, 8, gamma_a=-1.0, eps=0.05)
    rep2 = unstable.stability()
    assert not rep2.continuous and rep2.margin < 0


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
