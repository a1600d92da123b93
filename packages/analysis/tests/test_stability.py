"""Stability studies on real data (ItalyPowerDemand) with small models (needs ctnn-analysis[models])."""

import json

import numpy as np
import pytest

pytest.importorskip("ctnn.models", reason="the model-side analyses need the ctnn-analysis[models] extra")
import torch  # noqa: E402

from ctnn.analysis import Report, lem_timescales, lipschitz_spectra, ltc_ranges  # noqa: E402
from ctnn.models import LipschitzRNN, build_classifier, load_dataset  # noqa: E402


def _same_after_json(study) -> bool:
    """A study survives to_dict → JSON → from_dict with the same table (what a resumed pipeline reads)."""
    back = type(study).from_dict(json.loads(json.dumps(study.to_dict())))
    return back.table() == study.table() and back.description() == study.description()


@pytest.fixture(scope="module")
def data():
    return load_dataset("italy_power_demand")


def test_lipschitz_spectra_match_the_matrices_and_the_condition():
    torch.manual_seed(0)
    stable = lipschitz_spectra(LipschitzRNN(2, 6, gamma_a=3.0, gamma_w=0.5))
    a, _ = (m.detach().double().numpy() for m in LipschitzRNN(2, 6).matrices())  # shape check only
    assert stable.eig_a.shape == (6,) == a.shape[:1]
    assert stable.continuous is True and stable.eig_a.real.max() < 0
    torch.manual_seed(0)
    rnn = LipschitzRNN(2, 6, gamma_a=-3.0)  # spectrum shifted right: unstable
    unstable = lipschitz_spectra(rnn)
    assert unstable.continuous is False and unstable.eig_a.real.max() > 0
    a_np = rnn.matrices()[0].detach().double().numpy()
    assert np.allclose(np.sort_complex(unstable.eig_a), np.sort_complex(np.linalg.eigvals(a_np)))
    headers, rows = unstable.table()
    assert headers == ["quantity", "value"] and ["ODE condition holds", "no"] in rows
    assert not any(str(r[0]).startswith(("lambda_", "gamma_", "spectral_")) for r in rows)  # words, not keys
    assert _same_after_json(unstable)


def test_ltc_states_stay_in_their_bounds_on_real_data(data):
    torch.manual_seed(0)
    model = build_classifier("ltc", data, units=6, ode_unfolds=2)
    r = ltc_ranges(model, data.X_test, "ItalyPowerDemand", max_sequences=64)
    assert r.n_sequences == 64 and r.within_bounds
    assert np.all(r.bound_lo <= r.state_lo) and np.all(r.state_hi <= r.bound_hi)
    assert np.all(r.tau_min > 0) and np.all(r.tau_min <= r.tau_median) and np.all(r.tau_median <= r.tau_max)
    # the observed states are the model's: the last step of the family's own run lies in the observed range
    x = torch.as_tensor(data.X_test[:64]).reshape(64, -1, 1)
    _, h = model.rnn((x - model.input_shift) / model.input_scale)
    h = h.detach().double().numpy()
    assert np.all(h >= r.state_lo - 1e-6) and np.all(h <= r.state_hi + 1e-6)
    assert _same_after_json(r)
    rep = Report("x")
    rep.study(r)
    assert "stays within the bounds" in rep.to_html()


def test_lem_timescales_are_gated_fractions_of_dt(data):
    torch.manual_seed(0)
    model = build_classifier("lem", data, units=6, dt=0.5)
    s = lem_timescales(model, data.X_test, max_sequences=32, max_values=100)
    assert s.base_dt == 0.5 and s.n_sequences == 32
    assert s.dt.shape == (100,) and s.unit_median_dt.shape == (6,)
    for v in (s.dt, s.dt_bar):
        assert np.all(v > 0) and np.all(v < 0.5)
    headers, rows = s.table()
    assert headers[0] == "gate" and rows[0][1] <= rows[0][3] <= rows[0][5]
    assert _same_after_json(s)


def test_wrong_family_is_a_clear_error(data):
    with pytest.raises(TypeError, match="LipschitzRNN"):
        lipschitz_spectra(build_classifier("lem", data, units=4))
