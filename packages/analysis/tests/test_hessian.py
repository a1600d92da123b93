"""Power iteration with Hessian-vector products against dense Hessians (needs ctnn-analysis[models])."""

import json

import numpy as np
import pytest

pytest.importorskip("ctnn.models", reason="the model-side analyses need the ctnn-analysis[models] extra")
import torch  # noqa: E402
from torch import nn  # noqa: E402

from ctnn.analysis import hessian_robustness, hessian_top_eigenvalue  # noqa: E402
from ctnn.models import SequenceClassifier, build_classifier, load_dataset  # noqa: E402


def _dominant(h: np.ndarray) -> float:
    ev = np.linalg.eigvalsh(h)
    return float(ev[np.argmax(np.abs(ev))])


def test_quadratic_form():
    a = torch.tensor([[2.0, 1.0, 0.0], [1.0, -4.0, 0.5], [0.0, 0.5, 1.0]], dtype=torch.float64)
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    lam, _, ok = hessian_top_eigenvalue(lambda: 0.5 * x @ a @ x, [x], iters=500, tol=1e-12)
    assert ok and lam == pytest.approx(_dominant(a.numpy()), rel=1e-8)


def test_matches_dense_hessians_of_a_small_recurrent_classifier():
    torch.manual_seed(0)
    model = SequenceClassifier("ctrnn", 1, 3, n_classes=2, ode_unfolds=1).double()
    x = torch.randn(4, 5, 1, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 0])
    params = list(model.parameters())
    shapes = [p.shape for p in params]

    def loss_of_flat(flat: torch.Tensor) -> torch.Tensor:
        chunks, k = [], 0
        for s in shapes:
            n = int(np.prod(s))
            chunks.append(flat[k : k + n].reshape(s))
            k += n
        out = torch.func.functional_call(model, dict(zip(dict(model.named_parameters()), chunks)), (x,))
        return nn.functional.cross_entropy(out, y)

    flat = torch.cat([p.detach().reshape(-1) for p in params])
    dense_p = torch.autograd.functional.hessian(loss_of_flat, flat).numpy()
    lam_p, _, ok = hessian_top_eigenvalue(lambda: nn.functional.cross_entropy(model(x), y), params,
                                          iters=2000, tol=1e-12)  # fmt: skip
    assert ok and lam_p == pytest.approx(_dominant(dense_p), rel=1e-5)

    xin = x.clone().requires_grad_(True)
    dense_x = (
        torch.autograd.functional.hessian(
            lambda v: nn.functional.cross_entropy(model(v), y, reduction="sum"), x
        )
        .reshape(20, 20)
        .numpy()
    )
    lam_x, _, ok = hessian_top_eigenvalue(lambda: nn.functional.cross_entropy(model(xin), y, reduction="sum"),
                                          [xin], iters=2000, tol=1e-12)  # fmt: skip
    assert ok and lam_x == pytest.approx(_dominant(dense_x), rel=1e-5)


def test_every_family_on_real_data():
    data = load_dataset("italy_power_demand")
    torch.manual_seed(0)
    models = {k: build_classifier(k, data, units=4, ode_unfolds=1) for k in
              ("ltc", "ctrnn", "lstm", "lipschitz_rnn", "lem")}  # fmt: skip
    fused_before = models["lem"].rnn.fused
    s = hessian_robustness(models, data.X_test, data.y_test, n_samples=8, iters=8, dataset="ItalyPowerDemand")
    assert [r["model"] for r in s.rows] == list(models)
    for r in s.rows:
        assert np.isfinite(r["input_eig"]) and np.isfinite(r["param_eig"]) and r["param_eig"] != 0.0
        assert r["n"] == 8 and r["loss"] > 0
    assert models["lem"].rnn.fused == fused_before  # the fused kernels are restored afterwards
    assert len(s.plot().axes) == 2
    back = type(s).from_dict(json.loads(json.dumps(s.to_dict())))
    assert back.table() == s.table()


def test_needs_grad():
    with pytest.raises(ValueError, match="require grad"):
        hessian_top_eigenvalue(lambda: torch.zeros(()), [torch.zeros(2)])
