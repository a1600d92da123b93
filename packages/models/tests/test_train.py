"""Training reaches the accuracy bar quickly and is reproducible with a seed."""

import numpy as np
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
