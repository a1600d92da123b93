"""How close ``import_qdq`` comes to onnxruntime on its own QDQ models (writes benchmarks/quant/qdq.json).

A 64-32-16-10 MLP is trained on the digits with torch, exported with ``torch.onnx``,
quantized by ``onnxruntime.quantization.quantize_static`` (QDQ; int8 or uint8
activations; per-tensor or per-channel weights), converted with :func:`ctnn.quant.import_qdq`,
and both are run on all 1797 digits: onnxruntime on the QDQ model (its peer: with graph
optimizations, i.e. its integer kernels, and without, i.e. float32 Q/DQ arithmetic)
against onnxruntime on the converted integer graph (equal to the numpy reference).

    python benchmarks/quant/qdq.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import helper
from onnxruntime import quantization as oq

from ctnn.models import MLP, load_dataset, train_classifier
from ctnn.quant import ReferenceInterpreter, import_qdq

ROOT = Path(__file__).resolve().parents[2]


class _Reader(oq.CalibrationDataReader):
    def __init__(self, X):
        self.it = iter([{"x": X[i : i + 1].astype(np.float32)} for i in range(len(X))])

    def get_next(self):
        return next(self.it, None)


def main() -> int:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    data = load_dataset("digits", seed=0)
    model = MLP([64, 32, 16, 10])
    train_classifier(model, data, epochs=6, lr=1e-2, seed=0, progress=False)
    model.eval()
    X = np.concatenate([data.X_test, data.X_val, data.X_train]).astype(np.float32)
    y = np.concatenate([data.y_test, data.y_val, data.y_train])
    tmp = Path(tempfile.mkdtemp())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, 64), str(tmp / "f.onnx"), input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, dynamo=False)  # fmt: skip
    rows = []
    for act in (oq.QuantType.QInt8, oq.QuantType.QUInt8):
        for per_channel in (False, True):
            path = tmp / f"q_{act}_{per_channel}.onnx"
            oq.quantize_static(str(tmp / "f.onnx"), str(path), _Reader(data.X_train[:200]),
                               quant_format=oq.QuantFormat.QDQ, activation_type=act,
                               weight_type=oq.QuantType.QInt8, per_channel=per_channel)  # fmt: skip
            q = import_qdq(path)
            m = onnx.load(str(path))
            qs = [n for n in m.graph.node if n.op_type == "QuantizeLinear"]
            m.graph.output.extend([helper.make_value_info(n.output[i], onnx.TypeProto()) for n in qs[:1] + qs[-1:]
                                   for i in (0,)])  # fmt: skip
            off, zp = q.hyperparameters["input_code_offset"], q.hyperparameters["output_zero_point"]
            g = q.to_onnx()
            ours_sess = ort.InferenceSession(g.SerializeToString(), providers=["CPUExecutionProvider"])
            row = {"activations": str(act).split(".")[-1], "per_channel": per_channel, "inputs": len(X)}
            for level, name in ((ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "optimized"),
                                (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "unoptimized")):  # fmt: skip
                so = ort.SessionOptions()
                so.graph_optimization_level = level
                sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
                _, xc, yc = sess.run(None, {"x": X})
                xs = xc.astype(np.int64) - off
                ours = ours_sess.run(None, {"x": xs.astype(q.input.dtype)})[0].astype(np.int64)
                assert (ReferenceInterpreter(g).run({"x": xs})["y"] == ours).all()
                d = ours + zp - yc.astype(np.int64)
                row[name] = {
                    "rows_equal": int((d == 0).all(1).sum()), "elements_differing": int((d != 0).sum()),
                    "max_abs_difference": int(np.abs(d).max()),
                    "accuracy_ort": float((np.argmax(yc, 1) == y).mean()),
                    "accuracy_ctnn": float((np.argmax(ours, 1) == y).mean()),
                }  # fmt: skip
            rows.append(row)
            print(json.dumps(row), flush=True)
    out = ROOT / "benchmarks/quant/qdq.json"
    out.write_text(json.dumps({"model": "MLP 64-32-16-10, digits, 6 epochs", "onnxruntime": ort.__version__,
                               "results": rows}, indent=1) + "\n", encoding="utf-8")  # fmt: skip
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
