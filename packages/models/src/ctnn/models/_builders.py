"""Build a classifier of any family for a data set: what the CLI and the benchmarks share."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from ._continuous import ContinuousNet
from ._data import Dataset
from ._mlp import MLP
from ._sequence import SequenceClassifier
from ._wiring import AutoNCP


def _steps_features(data: Dataset) -> tuple[int, int]:
    # A sample shaped (T, F) is read as T steps of F features; anything flat as T steps of 1.
    if len(data.sample_shape) > 1:
        return int(data.sample_shape[0]), int(data.sample_shape[-1])
    return int(data.sample_shape[0]), 1


def _mlp(data: Dataset, hidden: list[int] | None = None, **_: Any) -> nn.Module:
    return MLP([data.n_features, *(hidden or [32]), data.n_classes])


def _ltc(
    data: Dataset,
    units: int = 16,
    ode_unfolds: int = 6,
    solver: str | None = None,
    wiring: str = "fully_connected",
    sparsity: float = 0.5,
    input_norm: bool = True,
    **_: Any,
) -> nn.Module:
    _, f = _steps_features(data)
    w: Any = units
    if wiring == "ncp":
        w = AutoNCP(units, max(1, min(data.n_classes, units - 3)), sparsity_level=sparsity)
    elif wiring != "fully_connected":
        raise ValueError(f"wiring must be 'fully_connected' or 'ncp', got {wiring!r}")
    opts = {"ode_unfolds": ode_unfolds, "solver": solver or "semi_implicit"}
    return SequenceClassifier("ltc", f, w, data.n_classes, input_norm=input_norm, **opts)


def _seq(family: str, **defaults: Any) -> Callable[..., nn.Module]:
    def build(data: Dataset, units: int = 32, input_norm: bool = True, **opts: Any) -> nn.Module:
        _, f = _steps_features(data)
        keep = {k: v for k, v in {**defaults, **opts}.items() if k in defaults and v is not None}
        return SequenceClassifier(family, f, units, data.n_classes, input_norm=input_norm, **keep)

    build.family_options = tuple(defaults)  # type: ignore[attr-defined]  # read by classifier_options
    return build


def _continuous(
    data: Dataset,
    widths: list[int] | None = None,
    n_basis: int = 4,
    basis: str = "piecewise_constant",
    n_steps: int | None = None,
    scheme: str = "euler",
    activation: str = "tanh",
    **_: Any,
) -> nn.Module:
    lo, hi = data.value_range
    return ContinuousNet(
        data.n_features, data.n_classes, widths=widths or [32], n_basis=n_basis, basis=basis,
        n_steps=n_steps or n_basis, scheme=scheme, activation=activation,
        input_scale=max(abs(lo), abs(hi)) or 1.0,
    )  # fmt: skip


#: Classifier builders by the name the CLI and the benchmarks use.
CLASSIFIERS: dict[str, Callable[..., nn.Module]] = {
    "mlp": _mlp,
    "ltc": _ltc,
    "lipschitz_rnn": _seq("lipschitz_rnn", beta=0.75, gamma_a=0.001, gamma_w=0.001, eps=0.03, solver="euler"),
    "lem": _seq("lem", dt=1.0),
    "ctrnn": _seq("ctrnn", ode_unfolds=4, solver="euler"),
    "lstm": _seq("lstm"),
    "gru": _seq("gru"),
    "continuous_net": _continuous,
}


def classifier_options(kind: str) -> frozenset[str]:
    """The options :func:`build_classifier` uses for family ``kind``; it ignores any others.

    A caller that takes options for one family (a campaign recipe, say) checks them against
    this set, so that a misspelt option is an error rather than a default silently used.

    >>> sorted(classifier_options("lem"))
    ['dt', 'input_norm', 'units']
    """
    if kind not in CLASSIFIERS:
        raise ValueError(f"unknown model {kind!r}; known: {sorted(CLASSIFIERS)}")
    fn = CLASSIFIERS[kind]
    named = (p.name for p in inspect.signature(fn).parameters.values() if p.kind is not p.VAR_KEYWORD)
    return frozenset({*named, *getattr(fn, "family_options", ())} - {"data"})


def build_classifier(kind: str, data: Dataset, **options: Any) -> nn.Module:
    """A classifier of family ``kind`` sized for ``data``, with input normalisation fitted on its training split.

    Sequence families read a sample of shape ``(T, F)`` as T steps of F features (the
    digits as 8 rows of 8 pixels, BasicMotions as 100 steps of 6 channels) and, unless
    ``input_norm=False``, standardise each feature with the training split's mean and
    standard deviation (buffers saved in the checkpoint). Options not used by a family
    are ignored, so one options dict can serve every family. Kinds: :data:`CLASSIFIERS`.

    Example:
        >>> import torch
        >>> from ctnn.models import load_digits
        >>> _ = torch.manual_seed(0)
        >>> model = build_classifier("lem", load_digits(), units=8)
        >>> tuple(model(torch.zeros(2, 64)).shape)
        (2, 10)
    """
    if kind not in CLASSIFIERS:
        raise ValueError(f"unknown model {kind!r}; known: {sorted(CLASSIFIERS)}")
    model = CLASSIFIERS[kind](data, **options)
    if isinstance(model, SequenceClassifier) and model.input_norm:
        model.set_input_normalization(data.X_train)
    return model
