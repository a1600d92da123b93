"""Measure stability quantities of trained models: Lipschitz RNN spectra, LTC ranges, LEM step sizes."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._stability import LEMTimescales, LipschitzSpectra, LTCRanges
from ._common import as_sequences, family_module


@torch.no_grad()
def lipschitz_spectra(model: nn.Module, label: str = "Lipschitz RNN") -> LipschitzSpectra:
    """Eigenvalues of ``A`` and ``W`` (float64) and the model's own ``stability()`` report.

    ``model``: a ``LipschitzRNN`` or a classifier holding one (``SequenceClassifier``).

    Example:
        >>> from ctnn.models import LipschitzRNN
        >>> from ctnn.analysis import lipschitz_spectra
        >>> s = lipschitz_spectra(LipschitzRNN(2, 8, gamma_a=2.0))
        >>> s.continuous, len(s.eig_a)
        (True, 8)
    """
    from ctnn.models import LipschitzRNN

    rnn = family_module(model, LipschitzRNN)
    a, w = (m.detach().double().cpu().numpy() for m in rnn.matrices())
    report = rnn.stability()
    report = report.to_dict() if hasattr(report, "to_dict") else dict(vars(report))
    return LipschitzSpectra(np.linalg.eigvals(a), np.linalg.eigvals(w), report, float(rnn.eps), label)


@torch.no_grad()
def ltc_ranges(
    model: nn.Module, X: np.ndarray, dataset: str = "", max_sequences: int | None = 512
) -> LTCRanges:
    """Proved state bounds, observed states and system time constants of an LTC over data ``X``.

    ``model``: an ``LTC``, ``LTCClassifier`` or ``SequenceClassifier("ltc", ...)``; ``X`` the
    data as the classifier takes it (``[n, T·F]`` or ``[n, T, F]``, NaN-padded). The state
    is advanced input step by input step with the cell itself; at each step's start the
    system time constant ``τ_i = cm_i / (gleak_i + Σ_k sensory conductance_ki + Σ_j w_ji σ(·))``
    is recorded (one input step lasts 1 time unit).
    """
    from ctnn.models import LTC

    ltc = family_module(model, LTC)
    cell = ltc.cell
    x, valid = as_sequences(model, X[:max_sequences] if max_sequences else X, cell.in_features)
    dtype = cell.erev.dtype
    x = x.to(dtype)
    p = cell.effective_parameters()
    xm = x
    if cell.input_mapping in ("affine", "linear"):
        xm = xm * cell.input_w
    if cell.input_mapping == "affine":
        xm = xm + cell.input_b
    n, steps = x.shape[:2]
    v = x.new_zeros(n, cell.state_size)
    lo_b, hi_b = cell.state_bounds(v[0])
    big = torch.tensor(float("inf"), dtype=dtype)
    s_lo, s_hi = torch.full((cell.state_size,), big), torch.full((cell.state_size,), -big)
    taus = []
    for t in range(steps):
        ok = valid[:, t]
        sens = (
            p["sensory_w"] * torch.sigmoid(p["sensory_sigma"] * (xm[:, t].unsqueeze(-1) - p["sensory_mu"]))
        ).sum(1)
        rec = (p["w"] * torch.sigmoid(p["sigma"] * (v.unsqueeze(-1) - p["mu"]))).sum(1)
        tau = p["cm"] / (p["gleak"] + sens + rec)
        _, v_next = cell(x[:, t], v)
        v = torch.where(ok.unsqueeze(-1), v_next, v)  # padded steps leave the state as it was
        if ok.any():
            taus.append(tau[ok])
            s_lo = torch.minimum(s_lo, v[ok].amin(0))
            s_hi = torch.maximum(s_hi, v[ok].amax(0))
    tau_all = torch.cat(taus).double().numpy()
    return LTCRanges(
        lo_b.double().numpy(), hi_b.double().numpy(), s_lo.double().numpy(), s_hi.double().numpy(),
        tau_all.min(0), np.median(tau_all, 0), tau_all.max(0), n, dataset,
    )  # fmt: skip


@torch.no_grad()
def lem_timescales(
    model: nn.Module,
    X: np.ndarray,
    dataset: str = "",
    max_sequences: int | None = 512,
    max_values: int = 50_000,
) -> LEMTimescales:
    """The LEM's gated step sizes ``Δt·σ(·)`` for both gates over data ``X``.

    The gates are recomputed from the LEM's parameters at each step and checked against
    the model's own ``step`` (the z update they imply must match it), so a change to the
    cell cannot silently make this analysis describe another model.
    """
    from ctnn.models import LEM

    lem = family_module(model, LEM)
    x, valid = as_sequences(model, X[:max_sequences] if max_sequences else X, lem.in_features)
    x = x.to(lem.inp2hid.weight.dtype)
    ti = lem.inp2hid(x)
    n = x.shape[0]
    y = z = x.new_zeros(n, lem.units)
    dts, dtbars = [], []
    for t in range(x.shape[1]):
        ok = valid[:, t]
        i_dt1, i_dt2, _i_z, i_y = ti[:, t].chunk(4, dim=-1)
        h_dt1, h_dt2, h_y = lem.hid2hid(y).chunk(3, dim=-1)
        dt_bar = lem.dt * torch.sigmoid(i_dt1 + h_dt1)  # gates y
        dt = lem.dt * torch.sigmoid(i_dt2 + h_dt2)  # gates z
        y_next, z_next = lem.step(ti[:, t], y, z, lem.dt)
        expect = (1.0 - dt) * z + dt * torch.tanh(i_y + h_y)
        if not torch.allclose(expect, z_next, atol=1e-5, rtol=1e-4):
            raise RuntimeError(
                "LEM.step no longer matches the gate formula this analysis reads; update lem_timescales"
            )
        y = torch.where(ok.unsqueeze(-1), y_next, y)
        z = torch.where(ok.unsqueeze(-1), z_next, z)
        dts.append(dt[ok])
        dtbars.append(dt_bar[ok])
    d, db = torch.cat(dts).double().numpy(), torch.cat(dtbars).double().numpy()
    med_d, med_db = np.median(d, 0), np.median(db, 0)
    rng = np.random.default_rng(0)
    flat_d, flat_db = d.ravel(), db.ravel()
    if flat_d.size > max_values:
        pick = rng.choice(flat_d.size, max_values, replace=False)
        flat_d, flat_db = flat_d[pick], flat_db[pick]
    return LEMTimescales(flat_d, flat_db, med_d, med_db, float(lem.dt), n, dataset)
