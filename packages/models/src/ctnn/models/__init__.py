"""ctnn-models: continuous-time and feed-forward networks, trained on offline data.

The names below are the whole public surface; everything else lives in private
modules. Registries that grow: :data:`MODELS` (model families, used by checkpoints),
:data:`SEQUENCE_FAMILIES` (recurrent families behind :class:`SequenceClassifier`),
:data:`SOLVERS` (LTC ODE solvers), :data:`DEPTH_SCHEMES` and :data:`BASES`
(ContinuousNet), :data:`WIRINGS` (neuron wirings) and :data:`DATASETS` (offline data sets).

Example:
    >>> import torch
    >>> from ctnn.models import MLP, load_digits, train_classifier
    >>> _ = torch.manual_seed(0)
    >>> result = train_classifier(MLP([64, 32, 10]), load_digits(), epochs=2, progress=False)
    >>> result.epochs_run
    2
"""

from ._builders import CLASSIFIERS, build_classifier, classifier_options
from ._checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ._continuous import BASES, DEPTH_SCHEMES, ContinuousNet
from ._data import (
    DATASETS,
    Dataset,
    DatasetUnavailableError,
    load_dataset,
    load_digits,
    load_mnist,
    load_ts_dataset,
)
from ._families import MODELS
from ._ltc import LTC, LTCClassifier
from ._ltc_cell import LTCCell
from ._mlp import MLP
from ._recurrent import CTRNN, GRU, LEM, LSTM, LipschitzRNN, StabilityReport, lipschitz_matrix
from ._sequence import SEQUENCE_FAMILIES, SequenceClassifier
from ._solvers import SOLVERS, Solver
from ._train import EpochRecord, TrainResult, accuracy, apply_constraints, train_classifier
from ._wiring import NCP, WIRINGS, AutoNCP, FullyConnected, Wiring, wiring_from_config

__version__ = "0.3.0"

__all__ = [
    "BASES",
    "CLASSIFIERS",
    "CTRNN",
    "DATASETS",
    "DEPTH_SCHEMES",
    "GRU",
    "LEM",
    "LSTM",
    "LTC",
    "MLP",
    "MODELS",
    "NCP",
    "SEQUENCE_FAMILIES",
    "SOLVERS",
    "WIRINGS",
    "AutoNCP",
    "CheckpointError",
    "ContinuousNet",
    "Dataset",
    "DatasetUnavailableError",
    "EpochRecord",
    "FullyConnected",
    "LTCCell",
    "LTCClassifier",
    "LipschitzRNN",
    "SequenceClassifier",
    "Solver",
    "StabilityReport",
    "TrainResult",
    "Wiring",
    "__version__",
    "accuracy",
    "apply_constraints",
    "build_classifier",
    "classifier_options",
    "lipschitz_matrix",
    "load_checkpoint",
    "load_dataset",
    "load_digits",
    "load_mnist",
    "load_ts_dataset",
    "save_checkpoint",
    "train_classifier",
    "wiring_from_config",
]
