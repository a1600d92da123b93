"""ContinuousNet: re-evaluation at other schemes/steps and at compressed bases (needs ctnn-analysis[models])."""

import json

import pytest

pytest.importorskip("ctnn.models", reason="the model-side analyses need the ctnn-analysis[models] extra")
import torch  # noqa: E402

from ctnn.analysis import continuous_net_study  # noqa: E402
from ctnn.models import ContinuousNet, accuracy, build_classifier, load_digits, train_classifier  # noqa: E402


def test_grid_and_compression_on_digits():
    data = load_digits()
    torch.manual_seed(0)
    net = build_classifier("continuous_net", data, widths=[8], n_basis=4)
    train_classifier(net, data, epochs=2, progress=False)
    X, y = data.X_test[:200], data.y_test[:200]
    s = continuous_net_study(net, X, y, schemes=["euler", "rk4"], steps=[1, 4, 8],
                             compress_to=[("piecewise_constant", 4), ("piecewise_constant", 1), ("fem_linear", 2),
                                          ("piecewise_linear", 3)], dataset="digits")  # fmt: skip
    assert net.scheme == "euler" and net.n_steps == 4  # restored
    assert sorted(s.grid) == [("euler", 1), ("euler", 4), ("euler", 8), ("rk4", 1), ("rk4", 4), ("rk4", 8)]
    assert s.grid[("euler", 4)] == s.trained["accuracy"] == accuracy(net, X, y)
    by = {(r["basis"], r["n_basis"]): r for r in s.compression}
    assert ("piecewise_linear", 3) not in by  # an invalid size is left out, not an error
    assert by[("piecewise_constant", 4)]["accuracy"] == s.trained["accuracy"]  # projecting onto itself: exact
    assert by[("piecewise_constant", 1)]["coefficients"] * 4 == by[("piecewise_constant", 4)]["coefficients"]
    headers, rows = s.table()
    assert len(rows) == 6 + 3 and headers[-1] == "test accuracy (%)"
    assert len(s.plot().axes) == 2
    assert type(s).from_dict(json.loads(json.dumps(s.to_dict()))).table() == s.table()


def test_needs_a_continuous_net():
    with pytest.raises(TypeError, match="ContinuousNet"):
        continuous_net_study(torch.nn.Linear(2, 2), [[0.0, 0.0]], [0])
    assert ContinuousNet  # the public class the study expects
