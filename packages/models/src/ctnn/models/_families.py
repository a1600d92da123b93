"""Model families by name, so a checkpoint's JSON config can say how to rebuild its model.

A family is an ``nn.Module`` class with ``get_config() -> dict`` returning its
constructor arguments as JSON values, so that ``MODELS[name](**config)`` rebuilds the
architecture (weights come from the checkpoint). Adding a family is one line here.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ._continuous import ContinuousNet
from ._ltc import LTC, LTCClassifier
from ._mlp import MLP
from ._recurrent import CTRNN, GRU, LEM, LSTM, LipschitzRNN
from ._sequence import SequenceClassifier

#: Model classes by family name.
MODELS: dict[str, type[nn.Module]] = {
    "mlp": MLP,
    "ltc": LTC,
    "ltc_classifier": LTCClassifier,
    "lipschitz_rnn": LipschitzRNN,
    "lem": LEM,
    "ctrnn": CTRNN,
    "lstm": LSTM,
    "gru": GRU,
    "sequence_classifier": SequenceClassifier,
    "continuous_net": ContinuousNet,
}


def family_of(model: nn.Module) -> str:
    """The registered family name of ``model``'s class."""
    for name, cls in MODELS.items():
        if type(model) is cls:
            return name
    raise TypeError(
        f"{type(model).__name__} is not a registered model family; known: {sorted(MODELS)} "
        "(add the class to ctnn.models.MODELS and give it get_config())"
    )


def build_model(family: str, args: dict[str, Any]) -> nn.Module:
    """Instantiate a family from its constructor arguments."""
    if family not in MODELS:
        raise ValueError(f"unknown model family {family!r}; known: {sorted(MODELS)}")
    return MODELS[family](**args)
