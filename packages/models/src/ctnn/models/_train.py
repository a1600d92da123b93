"""Supervised training of any classifier in this package: Adam, early stopping, progress bar;
for an MLP, optionally for verification (interval bound propagation)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ._data import Dataset


@dataclass
class EpochRecord:
    """What one epoch did: mean training loss and the validation metrics after it."""

    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float


@dataclass
class TrainResult:
    """The outcome of :func:`train_classifier`; the model holds the best weights."""

    best_epoch: int
    epochs_run: int
    stopped_early: bool
    train_accuracy: float
    val_accuracy: float
    test_accuracy: float
    seconds: float
    history: list[EpochRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (for a metrics file)."""
        return asdict(self)


def _as_tensor(a: np.ndarray | Tensor, dtype: torch.dtype) -> Tensor:
    return a.to(dtype) if isinstance(a, Tensor) else torch.as_tensor(np.asarray(a), dtype=dtype)


def _loss(logits: Tensor, y: Tensor, model: nn.Module, x: Tensor, eps: float, ramp: float,
          clip: tuple[float, float] | None) -> Tensor:  # fmt: skip
    """Cross-entropy on ``logits`` (``model(x)``); with ``eps > 0``, mixed with cross-entropy on
    the worst logits over the L∞ box of radius ``eps`` around ``x`` (the label's lower bound, the
    others' upper bounds), whose weight is ``ramp / 2`` (Gowal et al.'s κ = 1 - ramp / 2)."""
    clean = nn.functional.cross_entropy(logits, y)
    if eps <= 0:
        return clean
    lo, hi = x - eps, x + eps
    if clip is not None:
        lo, hi = lo.clamp(*clip), hi.clamp(*clip)
    low, up = model.interval_logits(lo, hi)
    worst = torch.where(nn.functional.one_hot(y, logits.shape[1]).bool(), low, up)
    return (1 - ramp / 2) * clean + ramp / 2 * nn.functional.cross_entropy(worst, y)


def _interval_ramp(epoch: int, epochs: int) -> float:
    """Gowal et al.'s schedule: 0 for the first tenth of the epochs (1-based), then linear up
    to 1 at six tenths of them."""
    return min(1.0, max(0.0, (epoch - 0.1 * epochs) / (0.5 * epochs)))


@torch.no_grad()
def _evaluate(model: nn.Module, X: Tensor, y: Tensor, batch_size: int, eps: float = 0.0,
              clip: tuple[float, float] | None = None) -> tuple[float, float]:  # fmt: skip
    """Mean loss (:func:`_loss` at the full ``eps``) and accuracy, in eval mode (the caller
    restores the mode)."""
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, len(y), batch_size):
        xb, yb = X[i : i + batch_size], y[i : i + batch_size]
        logits = model(xb)
        if eps > 0:
            loss_sum += float(_loss(logits, yb, model, xb, eps, 1.0, clip)) * len(yb)
        else:
            loss_sum += float(nn.functional.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(dim=1) == yb).sum())
    n = max(len(y), 1)
    return loss_sum / n, correct / n


def accuracy(
    model: nn.Module, X: np.ndarray | Tensor, y: np.ndarray | Tensor, batch_size: int = 1024
) -> float:
    """Fraction of samples whose arg-max logit is the label.

    Example:
        >>> import numpy as np
        >>> from ctnn.models import MLP
        >>> acc = accuracy(MLP([4, 3]), np.zeros((5, 4), np.float32), np.zeros(5, np.int64))
        >>> 0.0 <= acc <= 1.0
        True
    """
    was_training = model.training
    try:
        _, acc = _evaluate(model, _as_tensor(X, torch.float32), _as_tensor(y, torch.int64), batch_size)
    finally:
        model.train(was_training)
    return acc


def apply_constraints(model: nn.Module) -> None:
    """Project every cell with hard parameter constraints back onto its domain (call after each optimiser step).

    Cells opt in with an ``apply_weight_constraints()`` method (LTC with ``positivity="clamp"``).
    """
    for m in model.modules():
        hook = getattr(m, "apply_weight_constraints", None)
        if callable(hook):
            hook()


def train_classifier(
    model: nn.Module,
    data: Dataset,
    epochs: int = 100,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
    patience: int | None = 10,
    progress: bool = True,
    weight_decay: float = 0.0,
    clip_grad_norm: float | None = None,
    interval_eps: float = 0.0,
    interval_clip: tuple[float, float] | None = None,
) -> TrainResult:
    """Train ``model`` on ``data`` with Adam and cross-entropy; keep the best weights.

    After every epoch the validation loss is measured; training stops once it has not
    improved for ``patience`` epochs (``None``: run all ``epochs``), and the weights of
    the best epoch are restored. ``seed`` fixes the batch order (a numpy generator)
    and torch's global generator; seed torch before *constructing* the model too
    (``torch.manual_seed``) to make the initial weights reproducible — then two runs
    give identical weights. ``progress`` shows a tqdm bar with the epoch and loss.
    ``clip_grad_norm`` clips the global gradient norm before each step (as the
    Lipschitz RNN and LEM papers' training scripts do).

    ``interval_eps > 0`` trains for verification by interval bound propagation (Gowal et al.,
    2018), for a model with ``interval_logits`` (:class:`~ctnn.models.MLP`). The loss mixes
    cross-entropy on the logits with cross-entropy on the worst logits the intervals allow over
    the L∞ box of that radius around each input (clamped to ``interval_clip``, the inputs'
    range): the label's lower bound against the others' upper bounds. The radius ramps from 0
    (a tenth of the epochs in) to ``interval_eps`` (six tenths in) while the worst case's
    weight grows to one half. The validation loss is that mixed loss at the full radius, and
    only epochs from the end of the ramp on are kept or count toward ``patience``. Such a
    network's integer version leaves ctnn.verify far less to search (measured on MNIST in
    ctnn-verify's README).

    Example:
        >>> import torch
        >>> from ctnn.models import MLP, load_digits
        >>> _ = torch.manual_seed(0)
        >>> data = load_digits()
        >>> result = train_classifier(MLP([64, 32, 10]), data, epochs=3, progress=False)
        >>> result.epochs_run
        3
    """
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
    if not interval_eps >= 0:
        raise ValueError(f"interval_eps must be >= 0, got {interval_eps}")
    if interval_eps and not callable(getattr(model, "interval_logits", None)):
        raise TypeError(
            f"interval_eps needs a model with interval_logits (ctnn.models.MLP), got {type(model).__name__}"
        )
    start = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    X_tr, y_tr = _as_tensor(data.X_train, torch.float32), _as_tensor(data.y_train, torch.int64)
    X_va, y_va = _as_tensor(data.X_val, torch.float32), _as_tensor(data.y_val, torch.int64)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)

    history: list[EpochRecord] = []
    best_loss, best_epoch = float("inf"), 0
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    stopped_early = False
    bar = tqdm(range(1, epochs + 1), desc="train", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        ramp = _interval_ramp(epoch, epochs) if interval_eps else 1.0
        order = torch.from_numpy(rng.permutation(len(y_tr)))
        loss_sum = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            xb, yb = X_tr[idx], y_tr[idx]
            loss = _loss(model(xb), yb, model, xb, interval_eps * ramp, ramp, interval_clip)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            opt.step()
            apply_constraints(model)
            loss_sum += float(loss.detach()) * len(idx)
        train_loss = loss_sum / len(order)
        val_loss, val_acc = _evaluate(model, X_va, y_va, 1024, interval_eps, interval_clip)
        history.append(EpochRecord(epoch, train_loss, val_loss, val_acc))
        bar.set_postfix(loss=f"{train_loss:.4f}", val_loss=f"{val_loss:.4f}", val_acc=f"{val_acc:.3f}")
        if ramp < 1:  # the loss is still changing: no epoch is kept before the ramp ends
            best_epoch = epoch
        elif val_loss < best_loss:
            best_loss, best_epoch = val_loss, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif patience is not None and epoch - best_epoch >= patience:
            stopped_early = True
            break
    bar.close()

    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        best_epoch=best_epoch,
        epochs_run=len(history),
        stopped_early=stopped_early,
        train_accuracy=accuracy(model, X_tr, y_tr),
        val_accuracy=accuracy(model, X_va, y_va),
        test_accuracy=accuracy(model, data.X_test, data.y_test),
        seconds=time.perf_counter() - start,
        history=history,
    )
