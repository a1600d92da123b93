"""ctnn-models: continuous-time and feed-forward networks, trained on offline data.

The names below are the whole public surface; everything else lives in private
modules. Registries that grow: :data:`MODELS` (model families, used by checkpoints),
:data:`SOLVERS` (ODE solvers), :data:`WIRINGS` (neuron wirings) and
:data:`DATASETS` (offline data sets).

Example:
    >>> import torch
    >>> from ctnn.models import MLP, load_digits, train_classifier
    >>> _ = torch.manual_seed(0)
    >>> result = train_classifier(MLP([64, 32, 10]), load_digits(), epochs=2, progress=False)
    >>> result.epochs_run
    2
"""

from ._checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ._data import DATASETS, Dataset, load_dataset, load_digits
from ._families import MODELS
from ._ltc import LTC, LTCClassifier
from ._ltc_cell import LTCCell
from ._mlp import MLP
from ._solvers import SOLVERS, Solver
from ._train import EpochRecord, TrainResult, accuracy, train_classifier
from ._wiring import WIRINGS, FullyConnected, Wiring, wiring_from_config

__version__ = "0.1.0"

__all__ = [
    "DATASETS",
    "LTC",
    "MLP",
    "MODELS",
    "SOLVERS",
    "WIRINGS",
    "CheckpointError",
    "Dataset",
    "EpochRecord",
    "FullyConnected",
    "LTCCell",
    "LTCClassifier",
    "Solver",
    "TrainResult",
    "Wiring",
    "__version__",
    "accuracy",
    "load_checkpoint",
    "load_dataset",
    "load_digits",
    "save_checkpoint",
    "train_classifier",
    "wiring_from_config",
]
