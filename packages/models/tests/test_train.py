"""Training reaches the accuracy bar quickly, is reproducible with a seed, and can train for
verification (interval bound propagation)."""

import numpy as np
import pytest
import torch

from ctnn.models import MLP, TrainResult, accuracy, train_classifier


def test_digits_mlp_reaches_bar(trained_mlp, digits):
    model, result = trained_mlp
    assert isinstance(result, TrainResult)
    assert result.test_accuracy >= 0.93
    assert result.seconds < 30  # seconds on 2 cores in practice
    assert accuracy(model, digits.X_test, digits.y_test) == result.test_accuracy
    # best weights restored: validation loss at the best epoch is the minimum seen
    best = min(result.history, key=lambda r: r.val_loss)
    assert best.epoch == result.best_epoch
    assert result.to_dict()["history"][0]["epoch"] == 1


def _train_once(digits, seed):
    torch.manual_seed(seed)
    model = MLP([64, 16, 10])
    result = train_classifier(model, digits, epochs=3, seed=seed, patience=None, progress=False)
    return model, result


def test_same_seed_gives_identical_weights(digits):
    (m1, r1), (m2, r2) = _train_once(digits, 7), _train_once(digits, 7)
    for (k, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert [h.train_loss for h in r1.history] == [h.train_loss for h in r2.history]
    m3, _ = _train_once(digits, 8)
    assert not torch.equal(m1.layers[0].weight, m3.layers[0].weight)


def test_early_stopping(digits):
    torch.manual_seed(0)
    # a huge learning rate makes validation loss stop improving at once
    result = train_classifier(MLP([64, 10]), digits, epochs=50, lr=5.0, patience=2, progress=False)
    assert result.stopped_early and result.epochs_run == result.best_epoch + 2


def test_progress_bar_can_be_silenced(digits, capsys):
    train_classifier(MLP([64, 10]), digits, epochs=1, progress=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_progress_bar_shows_epoch_and_loss(digits, capsys):
    train_classifier(MLP([64, 10]), digits, epochs=2, progress=True)
    err = capsys.readouterr().err
    assert "epoch" in err and "loss=" in err


def test_accuracy_accepts_tensors():
    net = MLP([2, 2])
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.eye(2))
        net.layers[0].bias.zero_()
    X = np.array([[1, 0], [0, 1], [1, 0]], np.float32)
    assert accuracy(net, X, np.array([0, 1, 1])) == 2 / 3
    assert accuracy(net, torch.from_numpy(X), torch.tensor([0, 1, 0])) == 1.0
    assert net.training  # the mode is restored


def _certified(model, data, eps):
    """Share of the test inputs whose worst logits over the L∞ box still pick the label."""
    X, y = torch.from_numpy(data.X_test), torch.from_numpy(data.y_test).long()
    lo, hi = data.value_range
    low, up = model.interval_logits((X - eps).clamp(lo, hi), (X + eps).clamp(lo, hi))
    worst = torch.where(torch.nn.functional.one_hot(y, 10).bool(), low, up)
    return float((worst.argmax(1) == y).float().mean())


def test_interval_training_certifies_what_plain_training_does_not(digits):
    runs = {}
    for eps in (0.0, 1.0):
        torch.manual_seed(0)
        model = MLP([64, 32, 10])
        result = train_classifier(model, digits, epochs=30, patience=None, progress=False, interval_eps=eps,
                                  interval_clip=digits.value_range)  # fmt: skip
        runs[eps] = (model, result)
    (plain, _), (robust, result) = runs[0.0], runs[1.0]
    assert _certified(plain, digits, 1.0) < 0.1
    assert _certified(robust, digits, 1.0) > 0.5
    assert result.test_accuracy >= 0.9
    # the loss ramps until six tenths of the epochs: the kept epoch is the best one after that
    after = [r for r in result.history if r.epoch >= 18]
    assert result.best_epoch == min(after, key=lambda r: r.val_loss).epoch


def test_interval_training_needs_interval_bounds(digits):
    from ctnn.models import ContinuousNet

    with pytest.raises(TypeError, match="interval_logits.*ContinuousNet"):
        train_classifier(ContinuousNet(64, 10), digits, epochs=1, progress=False, interval_eps=1.0)
    with pytest.raises(ValueError, match="interval_eps must be >= 0, got -1"):
        train_classifier(MLP([64, 10]), digits, epochs=1, progress=False, interval_eps=-1.0)
