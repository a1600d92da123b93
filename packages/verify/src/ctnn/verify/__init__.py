"""ctnn-verify: bit-precise verification of integer ONNX graphs.

Local robustness of a graph in ctnn's integer dialect, decided per query by an interval
pre-pass, a cheap attack replayed on the numpy reference, and a z3 bit-vector model of the
graph on what is left. Every counterexample is replayed on the reference and in
onnxruntime before it is reported.

>>> from ctnn.verify import verify_robustness                     # doctest: +SKIP
>>> verify_robustness("mlp.onnx", x_codes, eps=2).verdict          # doctest: +SKIP
'robust'
"""

from ctnn.quant import DialectError

from ._encoder import ENCODINGS
from ._errors import EpsError, SampleError, UnsupportedError, VerifyError, WitnessError
from ._interval import INTERVAL_RULES, Bounds, register_interval
from ._linear import LINEAR_RULES, register_linear
from ._properties import PROPERTIES, LocalRobustness, Property, register_property
from ._result import VerificationResult
from ._smt import SMT_OPS, register_smt
from ._verify import interval_bounds, to_smtlib, verify_robustness

__version__ = "0.1.0"

__all__ = [
    "verify_robustness", "to_smtlib", "interval_bounds", "VerificationResult",
    "VerifyError", "EpsError", "SampleError", "UnsupportedError", "WitnessError", "DialectError",
    "ENCODINGS", "SMT_OPS", "register_smt", "INTERVAL_RULES", "register_interval", "Bounds",
    "LINEAR_RULES", "register_linear",
    "PROPERTIES", "Property", "LocalRobustness", "register_property", "__version__",
]  # fmt: skip
