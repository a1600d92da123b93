"""SequenceClassifier: every family behind one API; NaN padding never changes a prediction."""

import numpy as np
import pytest
import torch

from ctnn.models import (
    CLASSIFIERS,
    SEQUENCE_FAMILIES,
    SequenceClassifier,
    build_classifier,
    classifier_options,
    load_checkpoint,
    load_digits,
    save_checkpoint,
)


@pytest.mark.parametrize("family", sorted(SEQUENCE_FAMILIES))
def test_padding_is_ignored(family):
    torch.manual_seed(0)
    clf = SequenceClassifier(family, 3, 6, n_classes=4).double().eval()
    short = torch.randn(1, 4, 3, dtype=torch.float64)
    padded = torch.cat([short, torch.full((1, 3, 3), float("nan"), dtype=torch.float64)], dim=1)
    batch = torch.cat([padded, torch.randn(1, 7, 3, dtype=torch.float64)])
    with torch.no_grad():
        torch.testing.assert_close(clf(batch)[:1], clf(short), rtol=1e-12, atol=1e-12)
        assert torch.isfinite(clf(batch)).all()


@pytest.mark.parametrize("family", sorted(SEQUENCE_FAMILIES))
def test_checkpoint_round_trip(family, tmp_path):
    torch.manual_seed(1)
    clf = SequenceClassifier(family, 8, 5, n_classes=3, input_norm=True)
    clf.set_input_normalization(np.random.default_rng(0).normal(2.0, 3.0, size=(50, 64)))
    path = tmp_path / "m.safetensors"
    save_checkpoint(clf, path)
    loaded, cfg = load_checkpoint(path)
    assert cfg["family"] == "sequence_classifier" and cfg["args"]["family"] == family
    x = torch.rand(4, 64)
    assert torch.equal(loaded(x), clf.eval()(x))
    assert torch.equal(loaded.input_shift, clf.input_shift)


def test_input_normalization_and_errors():
    clf = SequenceClassifier("gru", 2, 4, n_classes=2, input_norm=True)
    X = np.array([[1.0, 10.0, 3.0, 30.0], [np.nan, np.nan, np.nan, np.nan]], dtype=np.float32)
    clf.set_input_normalization(np.array([[1.0, 10.0, 3.0, 30.0]]))
    torch.testing.assert_close(clf.input_shift, torch.tensor([2.0, 20.0]))
    torch.testing.assert_close(clf.input_scale, torch.tensor([2.0**0.5, 200.0**0.5]))
    with pytest.raises(ValueError, match="no valid step"):
        clf(torch.from_numpy(X))
    with pytest.raises(ValueError, match="input_norm=False"):
        SequenceClassifier("gru", 2, 4, n_classes=2).set_input_normalization(X)
    with pytest.raises(ValueError, match="unknown sequence family 'rnn'"):
        SequenceClassifier("rnn", 2, 4, n_classes=2)


def test_build_classifier_every_kind():
    d = load_digits()
    for kind in ("mlp", "ltc", "lipschitz_rnn", "lem", "ctrnn", "lstm", "gru", "continuous_net"):
        torch.manual_seed(0)
        m = build_classifier(kind, d, units=6, widths=[8], n_basis=2)
        assert m(torch.from_numpy(d.X_test[:3])).shape == (3, 10), kind
    ncp = build_classifier("ltc", d, units=12, wiring="ncp")
    assert ncp.cell.wiring.kind == "auto_ncp" and ncp.cell.motor_size == 9
    with pytest.raises(ValueError, match="unknown model 'rnn'"):
        build_classifier("rnn", d)


def test_classifier_options_are_the_ones_each_builder_uses():
    d = load_digits()
    assert classifier_options("lem") == {"units", "input_norm", "dt"}
    assert classifier_options("continuous_net") >= {"widths", "n_basis", "scheme"}
    assert "units" not in classifier_options("continuous_net") and "widths" not in classifier_options("ltc")
    non_default = {"dt": 0.5, "beta": 0.5, "ode_unfolds": 3, "units": 5, "n_basis": 3, "scheme": "rk4"}
    for kind in CLASSIFIERS:
        torch.manual_seed(0)
        base = build_classifier(kind, d).get_config()
        # a key outside the set is ignored; one inside it reaches the model
        assert build_classifier(kind, d, not_an_option=7).get_config() == base, kind
        for key in classifier_options(kind) & set(non_default):
            assert build_classifier(kind, d, **{key: non_default[key]}).get_config() != base, (kind, key)
    with pytest.raises(ValueError, match="unknown model 'rnn'"):
        classifier_options("rnn")
