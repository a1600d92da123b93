"""ctnn-verify: bit-precise verification of integer ONNX graphs.

Local robustness of a graph in ctnn's integer dialect, decided per query by an interval
pre-pass, a cheap attack replayed on the numpy reference, and a z3 bit-vector model of the
graph on what is left. Every counterexample is replayed on the reference and in
onnxruntime before it is reported. The same stages answer targeted attacks, bias (the
largest output change when a sensitive input changes) and differential equivalence of two
graphs (on a product graph); ``float_int_gap`` bounds a float model's distance from its
integer version, and ``float_baselines`` shows where IBP / PGD on the float model are wrong.

>>> from ctnn.verify import verify_robustness                     # doctest: +SKIP
>>> verify_robustness("mlp.onnx", x_codes, eps=2).verdict          # doctest: +SKIP
'robust'
"""

from ctnn.quant import DialectError

from ._backends import SOLVERS
from ._baselines import float_baselines, ibp_robust, pgd_attack, summarize_baselines
from ._bias import verify_bias
from ._encoder import ENCODINGS
from ._equivalence import max_difference, verify_argmax_equivalence, verify_equivalence
from ._errors import BoxError, EpsError, SampleError, UnsupportedError, VerifyError, WitnessError
from ._float import FloatGapResult, FloatMLP, float_int_gap
from ._interval import INTERVAL_RULES, Bounds, register_interval
from ._linear import LINEAR_RULES, register_linear
from ._properties import (
    PROPERTIES,
    ArgmaxAgreement,
    LocalRobustness,
    OutputGap,
    Property,
    TargetedAttack,
    register_property,
)
from ._result import EquivalenceResult, GapResult, VerificationResult
from ._smt import SMT_OPS, register_smt
from ._targeted import verify_targeted
from ._verify import interval_bounds, to_smtlib, verify_robustness
from ._vnnlib import LinearCondition, VnnlibError, read_vnnlib, verify_vnnlib

__version__ = "0.8.0"

__all__ = [
    "verify_robustness", "to_smtlib", "interval_bounds", "VerificationResult",
    "VerifyError", "EpsError", "SampleError", "UnsupportedError", "WitnessError", "DialectError",
    "ENCODINGS", "SMT_OPS", "register_smt", "INTERVAL_RULES", "register_interval", "Bounds",
    "LINEAR_RULES", "register_linear",
    "PROPERTIES", "Property", "LocalRobustness", "register_property", "__version__",
    "verify_targeted", "verify_bias", "verify_equivalence", "verify_argmax_equivalence", "max_difference",
    "GapResult", "EquivalenceResult", "BoxError", "TargetedAttack", "OutputGap", "ArgmaxAgreement",
    "FloatMLP", "FloatGapResult", "float_int_gap", "float_baselines", "ibp_robust", "pgd_attack",
    "summarize_baselines",
    "verify_vnnlib", "read_vnnlib", "VnnlibError", "LinearCondition", "SOLVERS",
]  # fmt: skip
