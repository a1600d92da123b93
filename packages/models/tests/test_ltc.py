"""The LTC cell: shapes, solvers against direct re-implementations, the paper's state bound."""

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ctnn.models import LTC, SOLVERS, LTCCell, LTCClassifier, Wiring, train_classifier

NCPS_PARAMETERS = {
    "gleak", "vleak", "cm", "sigma", "mu", "w", "erev",
    "sensory_sigma", "sensory_mu", "sensory_w", "sensory_erev",
    "input_w", "input_b", "output_w", "output_b",
}  # fmt: skip


def _cell(in_features=3, units=5, seed=0, **kw):
    torch.manual_seed(seed)
    return LTCCell(in_features, units, **kw).double()


# --- shapes and structure ---------------------------------------------------------------


def test_parameters_follow_ncps():
    cell = LTCCell(3, 5)
    assert {n for n, _ in cell.named_parameters()} == NCPS_PARAMETERS
    assert {n for n, _ in cell.named_buffers()} == {"sparsity_mask", "sensory_sparsity_mask"}
    assert cell.w.shape == (5, 5) and cell.sensory_w.shape == (3, 5) and cell.cm.shape == (5,)
    # reversal potentials start at the wiring's polarities
    assert torch.equal(cell.erev, torch.as_tensor(cell.wiring.adjacency_matrix, dtype=torch.float32))
    assert {
        n for n, _ in LTCCell(3, 5, input_mapping="none", output_mapping="linear").named_parameters()
    } == (NCPS_PARAMETERS - {"input_w", "input_b", "output_b"})


def test_shapes():
    cell = LTCCell(3, 5)
    out, h = cell(torch.rand(4, 3))
    assert out.shape == (4, 5) and h.shape == (4, 5)

    wiring = Wiring(6, output_dim=2)
    rnn = LTC(3, wiring)
    out, h = rnn(torch.rand(4, 7, 3))
    assert out.shape == (4, 7, 2) and h.shape == (4, 6)
    out2, _ = rnn(torch.rand(4, 7, 3), hx=h, timespans=torch.rand(4, 7) + 0.1)
    assert out2.shape == (4, 7, 2)

    clf = LTCClassifier(8, 10, n_classes=4)
    x = torch.rand(5, 64)
    assert clf(x).shape == (5, 4)
    assert torch.equal(clf(x), clf(x.reshape(5, 8, 8)))
    with pytest.raises(ValueError, match="multiple of in_features"):
        clf(torch.rand(5, 63))
    with pytest.raises(ValueError, match=r"\[N, T, F\]"):
        rnn(torch.rand(7, 3))


def test_bad_options():
    with pytest.raises(ValueError, match="unknown ODE solver 'midpoint'"):
        LTCCell(2, 3, solver="midpoint")
    with pytest.raises(ValueError, match="ode_unfolds"):
        LTCCell(2, 3, ode_unfolds=0)
    with pytest.raises(ValueError, match="positivity"):
        LTCCell(2, 3, positivity="abs")
    with pytest.raises(ValueError, match="elapsed_time must be positive"):
        LTCCell(2, 3)(torch.rand(1, 2), elapsed_time=0.0)


def test_ode_unfolds_and_solver_change_results():
    cell = _cell()
    x, v0 = torch.rand(4, 3, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    _, h6 = cell(x, v0)
    cell.ode_unfolds = 2
    _, h2 = cell(x, v0)
    assert not torch.allclose(h6, h2)
    cell.solver = "explicit_euler"
    _, he = cell(x, v0)
    assert not torch.allclose(he, h2)


def test_elapsed_time_tensor_equals_float_and_matters():
    cell = _cell()
    x, v0 = torch.rand(4, 3, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    _, a = cell(x, v0, 0.5)
    _, b = cell(x, v0, torch.full((4,), 0.5, dtype=torch.float64))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    _, c = cell(x, v0, torch.tensor([0.5, 2.0, 0.5, 0.5], dtype=torch.float64))
    assert torch.equal(c[0], a[0]) and not torch.allclose(c[1], a[1])


# --- solvers against direct re-implementations ------------------------------------------


def _softplus(z):
    return np.log1p(np.exp(z))


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _raw(cell):
    return {n: p.detach().numpy().astype(np.float64) for n, p in cell.named_parameters()} | {
        n: b.numpy().astype(np.float64) for n, b in cell.named_buffers()
    }


def _conductances(P, x, v):
    """Per-neuron lists of (conductance, reversal potential), written out synapse by synapse."""
    units, n_in = P["cm"].shape[0], x.shape[0]
    xin = x * P["input_w"] + P["input_b"]
    syn = []
    for i in range(units):
        g = [(_softplus(P["gleak"][i]), P["vleak"][i])]
        for j in range(units):
            if P["sparsity_mask"][j, i]:
                s = _sigmoid(P["sigma"][j, i] * (v[j] - P["mu"][j, i]))
                g.append((_softplus(P["w"][j, i]) * s, P["erev"][j, i]))
        for k in range(n_in):
            if P["sensory_sparsity_mask"][k, i]:
                s = _sigmoid(P["sensory_sigma"][k, i] * (xin[k] - P["sensory_mu"][k, i]))
                g.append((_softplus(P["sensory_w"][k, i]) * s, P["sensory_erev"][k, i]))
        syn.append(g)
    return syn


def _reference_semi_implicit(P, x, v, dt, eps):
    """v_i ← (cm_i/dt · v_i + Σ g·E) / (cm_i/dt + Σ g + ε), one neuron at a time."""
    new = np.empty_like(v)
    for i, g in enumerate(_conductances(P, x, v)):
        cm_t = _softplus(P["cm"][i]) / dt
        new[i] = (cm_t * v[i] + sum(a * e for a, e in g)) / (cm_t + sum(a for a, _ in g) + eps)
    return new


def _reference_euler(P, x, v, dt):
    """v_i ← v_i + dt/cm_i · Σ g·(E − v_i): the textbook ODE, not the (num, den) split."""
    new = np.empty_like(v)
    for i, g in enumerate(_conductances(P, x, v)):
        new[i] = v[i] + dt / _softplus(P["cm"][i]) * sum(a * (e - v[i]) for a, e in g)
    return new


def _sparse_wiring(units, n_in, seed):
    rng = np.random.default_rng(seed)
    w = Wiring(units, output_dim=min(2, units))
    for s, d in zip(*np.nonzero(rng.random((units, units)) < 0.5), strict=True):
        w.add_synapse(int(s), int(d), int(rng.choice([-1, 1])))
    w.build(n_in)
    for s, d in zip(*np.nonzero(rng.random((n_in, units)) < 0.5), strict=True):
        w.add_sensory_synapse(int(s), int(d), int(rng.choice([-1, 1])))
    return w


@pytest.mark.parametrize("eps", [0.0, 1e-8, 0.3])
@pytest.mark.parametrize("elapsed", [1.0, 0.37])
def test_semi_implicit_matches_update_equation(eps, elapsed):
    torch.manual_seed(1)
    cell = LTCCell(3, _sparse_wiring(5, 3, seed=2), ode_unfolds=1, epsilon=eps).double()
    with torch.no_grad():  # move away from the init so every parameter matters
        for p in cell.parameters():
            p.add_(0.3 * torch.randn_like(p))
    P = _raw(cell)
    x, v0 = np.random.default_rng(0).normal(size=(2, 3)), np.random.default_rng(1).normal(size=(2, 5))
    _, h = cell(torch.from_numpy(x), torch.from_numpy(v0), elapsed)
    expected = np.stack([_reference_semi_implicit(P, x[n], v0[n], elapsed, eps) for n in range(2)])
    np.testing.assert_allclose(h.detach().numpy(), expected, rtol=1e-12, atol=1e-12)

    # several unfolds are that update iterated with dt = elapsed / unfolds
    cell.ode_unfolds = 4
    _, h4 = cell(torch.from_numpy(x[:1]), torch.from_numpy(v0[:1]), elapsed)
    v = v0[0]
    for _ in range(4):
        v = _reference_semi_implicit(P, x[0], v, elapsed / 4, eps)
    np.testing.assert_allclose(h4[0].detach().numpy(), v, rtol=1e-12, atol=1e-12)


def test_explicit_euler_matches_textbook_ode():
    cell = _cell(ode_unfolds=1, solver="explicit_euler")
    P = _raw(cell)
    x, v0 = np.random.default_rng(0).normal(size=3), np.random.default_rng(1).normal(size=5)
    _, h = cell(torch.from_numpy(x[None]), torch.from_numpy(v0[None]), 0.1)
    np.testing.assert_allclose(h[0].detach().numpy(), _reference_euler(P, x, v0, 0.1), rtol=1e-12, atol=1e-12)


def test_solvers_converge_to_the_same_solution():
    """All registered solvers integrate the same ODE: with fine steps they agree."""
    cell = _cell(units=4, seed=3)
    x, v0 = torch.rand(3, 3, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    cell.solver, cell.ode_unfolds = "rk4", 128
    _, ref = cell(x, v0, 2.0)
    # first-order schemes: error ~ 1e-5 at 1000 steps; rk4: ~ 3e-6 at 16 steps (fourth order)
    for name, unfolds, tol in [
        ("semi_implicit", 1000, 1e-4),
        ("explicit_euler", 1000, 1e-4),
        ("rk4", 16, 2e-5),
    ]:
        cell.solver, cell.ode_unfolds = name, unfolds
        _, h = cell(x, v0, 2.0)
        torch.testing.assert_close(h, ref, rtol=0, atol=tol, msg=name)
    assert set(SOLVERS) == {"semi_implicit", "explicit_euler", "rk4"}


# --- the paper's bound on the state ------------------------------------------------------


def _hull_bounds(P, v0, eps):
    """Per neuron: [min, max] of {v0_i, vleak_i, erev into i, sensory erev into i} ∪ ({0} if ε > 0).

    Why: with cm_t = cm/dt > 0 and conductances g ≥ 0, the fused update is
    v_i' = (cm_t·v_i + gleak·vleak + Σ g_j·E_j + ε·0) / (cm_t + gleak + Σ g_j + ε),
    a convex combination of v_i, vleak_i, the E_j of existing synapses into i and 0
    (weight ε/(…)). The new value lies in the hull of those; by induction over unfolds
    and time steps, so does every later value. Synapses absent from the wiring
    contribute nothing, so their reversal potentials are excluded.
    """
    units = v0.shape[-1]
    lo, hi = np.empty(units), np.empty(units)
    for i in range(units):
        vals = [P["vleak"][i], *P["erev"][P["sparsity_mask"][:, i] != 0, i]]
        vals += list(P["sensory_erev"][P["sensory_sparsity_mask"][:, i] != 0, i])
        if eps > 0:
            vals.append(0.0)
        lo[i], hi[i] = min(vals), max(vals)
    return np.minimum(v0, lo), np.maximum(v0, hi)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    units=st.integers(1, 5),
    n_in=st.integers(1, 3),
    steps=st.integers(1, 4),
    unfolds=st.integers(1, 8),
    positivity=st.sampled_from(["softplus", "clamp"]),
    eps=st.sampled_from([0.0, 1e-8, 0.5]),
    scale=st.floats(0.1, 20.0),
)
def test_state_stays_within_the_convex_hull(seed, units, n_in, steps, unfolds, positivity, eps, scale):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed % 2**31)
    cell = LTCCell(
        n_in, _sparse_wiring(units, n_in, seed), ode_unfolds=unfolds, positivity=positivity, epsilon=eps
    ).double()
    with torch.no_grad():
        for p in cell.parameters():
            p.copy_(torch.from_numpy(rng.normal(0.0, scale, size=tuple(p.shape))))
        # reversal potentials of synapses the wiring lacks are extreme: they must not leak in
        cell.erev.masked_fill_(cell.sparsity_mask == 0, 1e3)
        cell.sensory_erev.masked_fill_(cell.sensory_sparsity_mask == 0, -1e3)
        if positivity == "clamp":
            cell.apply_weight_constraints()
            cell.cm.abs_().add_(1e-3)  # the bound needs cm > 0 (clamp alone allows cm = 0)
    v0 = torch.from_numpy(rng.normal(0.0, scale, size=(3, units)))
    x = torch.from_numpy(rng.normal(0.0, 3 * scale, size=(3, steps, n_in)))
    dts = torch.from_numpy(np.exp(rng.uniform(-4, 3, size=(3, steps))))

    P = {n: t.detach().numpy() for n, t in cell.named_parameters()} | {
        n: b.numpy() for n, b in cell.named_buffers()
    }
    lo, hi = _hull_bounds(P, v0.numpy(), eps)
    lo_c, hi_c = cell.state_bounds(v0)
    np.testing.assert_array_equal(lo_c.numpy(), lo)
    np.testing.assert_array_equal(hi_c.numpy(), hi)

    tol = 1e-9 * max(1.0, np.abs(lo).max(), np.abs(hi).max())
    h = v0
    with torch.no_grad():
        for t in range(steps):
            _, h = cell(x[:, t], h, dts[:, t])
            v = h.numpy()
            assert np.isfinite(v).all()
            assert (v >= lo - tol).all() and (v <= hi + tol).all()


# --- training -----------------------------------------------------------------------------


def test_classifier_trains_without_nans(digits):
    torch.manual_seed(0)
    clf = LTCClassifier(8, 8, n_classes=10, ode_unfolds=3)
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    small = dataclasses.replace(digits, X_train=digits.X_train[:128], y_train=digits.y_train[:128])
    result = train_classifier(clf, small, epochs=2, lr=1e-2, batch_size=64, patience=None, progress=False)
    assert all(np.isfinite(r.train_loss) and np.isfinite(r.val_loss) for r in result.history)
    assert all(torch.isfinite(p).all() for p in clf.parameters())
    assert not torch.equal(before["ltc.cell.w"], clf.cell.w)


def test_clamp_positivity_is_enforced_by_training(digits):
    torch.manual_seed(0)
    clf = LTCClassifier(8, 4, n_classes=10, ode_unfolds=2, positivity="clamp")
    with torch.no_grad():
        clf.cell.gleak.fill_(1e-4)  # one Adam step moves it below 0 unless clipped
    small = dataclasses.replace(digits, X_train=digits.X_train[:64], y_train=digits.y_train[:64])
    train_classifier(clf, small, epochs=1, lr=0.1, patience=None, progress=False)
    for name in ("w", "sensory_w", "cm", "gleak"):
        assert (getattr(clf.cell, name) >= 0).all(), name
