"""ctnn-quant: integer-only fixed-point quantization and the integer ONNX dialect.

The core (this module's eager names) needs only numpy and onnx: the dialect and its
checker, the numpy int64 reference interpreter, the integer semantics, the graph
writer and the JSON sidecar. The torch side (post-training quantization of
ctnn-models networks) loads on first use and needs the ``ctnn-quant[torch]`` extra.
"""

from importlib import import_module
from typing import Any

from ._calibrate import CALIBRATIONS, FrozenRanges, absmax, quantize_weight, real_range
from ._continuous_int import IntegerContinuousNet, IntegerStage
from ._dialect import (
    MIN_OPSET,
    SUPPORTED_OPS,
    DialectError,
    GraphSummary,
    as_model,
    check_model,
    initializers,
    load_model,
)
from ._gated_int import IntegerGated
from ._graph import GraphBuilder, IntegerDense, IntegerMLP, random_integer_mlp
from ._lem_int import IntegerLEM
from ._ltc_int import IntegerLTC
from ._lut import LUT_FUNCTIONS, apply_lut, emit_lut, lut_table
from ._nonlin import NONLINEARITY_KINDS, LutActivation, PwlActivation, make_activation, pwl_fit
from ._program import IntervalOps, NumpyOps, OnnxOps, ProgramModel, Rq, check_program, overflow_check_deferred
from ._qdq import QDQImportError, import_qdq
from ._recurrent import RECURRENT_FAMILIES, IntegerRecurrent, Requant
from ._reference import REFERENCE_OPS, ReferenceInterpreter, register_op, run_reference
from ._registry import registrar
from ._samples import SampleFileError, read_arrays, read_codes, write_samples
from ._semantics import (
    BitWidthError,
    check_bits,
    container_dtype,
    quantize_multiplier,
    requantize,
    round_div,
    signed_range,
    trunc_div,
)
from ._sidecar import (
    Sidecar,
    TensorQuant,
    input_code_range,
    read_sidecar,
    sha256_file,
    sidecar_path,
    write_sidecar,
)

__version__ = "0.3.2"

# torch-side names, imported lazily so that the core never pulls torch
_LAZY = {
    "quantize_mlp": "._ptq",
    "QuantizedModel": "._ptq",
    "export_onnx": "._ptq",
    "quantize_sequence_classifier": "._recurrent_ptq",
    "quantize_model": "._quantize",
    "supported_families": "._quantize",
    "UnsupportedFamilyError": "._quantize",
    "QATModel": "._qat",
    "integer_forward": "._qat",
    "qat_finetune": "._qat",
    "quantize": "._quantize",
    "model_family": "._quantize",
    "QUANTIZERS": "._quantize",
    "quantize_continuous_net": "._continuous_ptq",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        try:
            mod = import_module(_LAZY[name], __name__)
        except ModuleNotFoundError as exc:
            if exc.name == "torch" or (exc.name or "").startswith("ctnn.models"):
                raise ModuleNotFoundError(
                    f"ctnn.quant.{name} needs torch and ctnn-models: pip install 'ctnn-quant[torch]'"
                ) from exc
            raise
        return getattr(mod, name)
    raise AttributeError(f"module 'ctnn.quant' has no attribute {name!r}")


__all__ = [
    "MIN_OPSET", "SUPPORTED_OPS", "DialectError", "GraphSummary", "as_model", "check_model",
    "initializers", "load_model", "GraphBuilder", "IntegerDense", "IntegerMLP",
    "random_integer_mlp", "REFERENCE_OPS", "ReferenceInterpreter", "register_op", "registrar",
    "run_reference", "BitWidthError", "check_bits", "container_dtype", "quantize_multiplier",
    "requantize", "round_div", "signed_range", "trunc_div", "Sidecar", "TensorQuant",
    "read_sidecar", "input_code_range", "sha256_file", "sidecar_path", "write_sidecar", "LUT_FUNCTIONS", "apply_lut",
    "emit_lut", "lut_table", "RECURRENT_FAMILIES", "IntegerRecurrent", "Requant", "IntegerLTC",
    "IntegerLEM", "QDQImportError", "import_qdq", "CALIBRATIONS", "FrozenRanges", "overflow_check_deferred", "absmax", "quantize_weight", "real_range",
    "IntegerContinuousNet", "IntegerStage", "IntegerGated", "NONLINEARITY_KINDS", "LutActivation",
    "PwlActivation", "make_activation", "pwl_fit", "IntervalOps", "NumpyOps", "OnnxOps", "ProgramModel", "Rq",
    "check_program", "SampleFileError", "read_arrays", "read_codes", "write_samples", *_LAZY,
]  # fmt: skip
