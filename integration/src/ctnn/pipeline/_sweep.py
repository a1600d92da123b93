"""Sweeps across the pipeline as Ray task graphs: train → quantize → (verify) → deploy.

Each stage output is content-addressed: its key hashes the stage's inputs (the recipe,
the upstream key, the bit-widths, the target) and the versions that produce it; its
files go to ``artifacts/<stage>/<key[:16]>/`` and a row in the store's ``stages`` table
records it. A sweep run again (or a campaign sharing a recipe) reuses every stored
stage instead of submitting its task. Quantize tasks take the train task's object ref
as an argument, deploy tasks the quantize task's, so Ray runs the graph.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import ray

from ._spec import CampaignSpec, ModelSpec
from ._store import ResultStore, query_key


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def stage_key(stage: str, **inputs: Any) -> str:
    """The content address of a stage output: its inputs and the versions of the packages that make it."""
    dists = {"train": ["ctnn-models", "torch"], "quantize": ["ctnn-quant", "onnx"], "deploy": ["ctnn-deploy"]}
    versions = {d: _version(d) for d in dists.get(stage, [])}
    return query_key(stage=stage, versions=versions, **inputs)


def build_and_check(
    onnx_path: Path, target: str, out_dir: Path, n_inputs: int, seed: int = 0
) -> dict[str, Any]:
    """Build ``onnx_path`` for ``target`` and check it bit for bit against the numpy reference.

    The random inputs span the sidecar's input code range or, for a graph without a sidecar,
    its input type's whole range (the box ctnn.verify assumes for it).
    """
    from ctnn.deploy import build
    from ctnn.quant import ReferenceInterpreter, input_code_range, load_model

    model = load_model(onnx_path)
    ref_run = ReferenceInterpreter(model)
    name = ref_run.input_names[0]
    dtype = np.dtype(ref_run.input_dtypes[name])
    vi = next(i for i in model.graph.input if i.name == name)
    shape = [d.dim_value for d in vi.type.tensor_type.shape.dim][1:]
    if len(ref_run.input_names) != 1 or not all(shape):
        raise ValueError(f"{onnx_path}: a graph to deploy needs one input with a fixed sample shape; got "
                         f"inputs {ref_run.input_names}, {name} of shape {shape}")  # fmt: skip
    lo, hi = input_code_range(onnx_path, dtype)
    rng = np.random.default_rng(seed)
    x = rng.integers(lo, hi + 1, size=(n_inputs, *shape)).astype(dtype)
    ref = next(iter(ref_run.run({name: x}).values()))
    t0 = time.monotonic()
    res = build(onnx_path, target=target, out_dir=out_dir)
    got = res.load().run(x)
    if not np.array_equal(got, ref):
        raise AssertionError(f"{onnx_path.name} on target {target}: output differs from the reference")
    return {"dir": str(res.out_dir), "exact_on": len(x), "input_range": [lo, hi],
            "build_s": round(time.monotonic() - t0, 2)}  # fmt: skip


# ---------------------------------------------------------------- stage tasks


def _dataset(name: str, seed: int):
    from ctnn.models import load_dataset

    return load_dataset(name, seed=seed)


@ray.remote(num_cpus=1)
def _train_task(recipe: dict[str, Any], out_dir: str) -> dict[str, Any]:
    import torch

    from ctnn.models import MLP, accuracy, build_classifier, save_checkpoint, train_classifier

    torch.set_num_threads(1)
    r = dict(recipe)
    kind, seed = r.pop("kind", "mlp"), r.pop("seed", 0)
    data = _dataset(r.pop("dataset", "digits"), seed)
    epochs, lr = r.pop("epochs", 40), r.pop("lr", 3e-3)
    interval = {"interval_eps": r.pop("interval_eps", 0.0), "interval_clip": data.value_range}
    torch.manual_seed(seed)
    model = MLP(r.pop("sizes", [64, 32, 10])) if kind == "mlp" else build_classifier(kind, data, **r)
    train_classifier(model, data, epochs=epochs, lr=lr, seed=seed, progress=False, **interval)
    path = Path(out_dir) / "model.safetensors"
    save_checkpoint(model, path)
    return {"checkpoint": str(path), "test_accuracy": accuracy(model, data.X_test, data.y_test)}


@ray.remote(num_cpus=1)
def _quantize_task(trained: dict[str, Any], dataset: str, seed: int, bits: int, act_bits: int, in_bits: int,
                   out_dir: str) -> dict[str, Any]:  # fmt: skip
    import torch

    from ctnn.models import MLP, load_checkpoint
    from ctnn.quant import export_onnx, quantize_mlp, quantize_sequence_classifier, read_sidecar

    torch.set_num_threads(1)
    data = _dataset(dataset, seed)
    model, _ = load_checkpoint(trained["checkpoint"])
    quant = quantize_mlp if isinstance(model, MLP) else quantize_sequence_classifier
    q = quant(
        model,
        data.X_train,
        weight_bits=bits,
        act_bits=act_bits,
        in_bits=in_bits,
        input_range=data.value_range,
    )
    path = export_onnx(q, Path(out_dir) / f"model_w{bits}a{act_bits}.onnx", dataset=dataset,
                       classes=[str(c) for c in range(data.n_classes)])  # fmt: skip
    return {"onnx": str(path), "sha256": read_sidecar(path).onnx_sha256, "bits": bits, "act_bits": act_bits}


@ray.remote(num_cpus=1)
def _deploy_task(quantized: dict[str, Any], target: str, n_inputs: int, out_dir: str) -> dict[str, Any]:
    return build_and_check(Path(quantized["onnx"]), target, Path(out_dir), n_inputs)


# ---------------------------------------------------------------- the graph


@dataclass
class ResolvedModel:
    """A model a campaign queries: an ONNX file (given, or the output of a quantize stage)."""

    name: str
    path: Path
    bits: int | None = None
    stage_key: str | None = None


@dataclass
class SweepGraph:
    """The submitted stage tasks; :meth:`finish_deploys` waits for the deploy tasks and records them."""

    models: list[ResolvedModel]
    deploys: list[tuple[str, str, Any]] = field(
        default_factory=list
    )  # (stage key, label, ref or stored dict)
    reused: int = 0
    ran: int = 0

    def submit_deploys(self, spec: CampaignSpec, store: ResultStore, m: ModelSpec, up_key: str, quantized: Any,
                       label: str) -> None:  # fmt: skip
        """A deploy task per target of ``m`` for the graph ``quantized`` (the output of stage ``up_key``)."""
        for target in m.deploy:
            d_key = stage_key("deploy", quantize=up_key, target=target, inputs=m.deploy_inputs)
            dep = _stored(store, d_key, "dir")
            if dep is None:
                out = spec.artifacts / "deploy" / d_key[:16]
                dep = _deploy_task.remote(quantized, target, m.deploy_inputs, str(out))
                self.ran += 1
            else:
                self.reused += 1
            self.deploys.append((d_key, f"{label} → {target}", dep))

    def finish_deploys(self, store: ResultStore) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for key, label, ref in self.deploys:
            if isinstance(ref, dict):
                out.append((label, ref))
                continue
            try:
                res = ray.get(ref)
            except ray.exceptions.RayError as exc:  # not stored: the next run builds it again
                out.append((label, {"error": f"{type(exc).__name__}: {exc}"[:2000]}))
                continue
            store.put_stage(key, "deploy", res)
            out.append((label, res))
        return out


def _stored(store: ResultStore, key: str, must_exist: str) -> dict[str, Any] | None:
    """A stored stage output whose file is still there."""
    got = store.get_stage(key)
    return got if got is not None and Path(got[must_exist]).exists() else None


def submit_sweep(spec: CampaignSpec, store: ResultStore) -> SweepGraph:
    """Resolve every ``[[models]]`` entry to ONNX files, running the train/quantize tasks that are not stored.

    Waits for the quantize stage (the queries need its files); deploy tasks keep running
    alongside the verification queries until :meth:`SweepGraph.finish_deploys`.
    """
    from ctnn.quant import sha256_file

    graph = SweepGraph(models=[])
    pending: list[tuple[str, ModelSpec, int, Any]] = []  # (quantize key, model, bits, ref or dict)
    trains: list[tuple[str, Any]] = []
    for m in spec.models:
        if m.onnx is not None:
            graph.models.append(ResolvedModel(m.name, m.onnx, _sidecar_bits(m.onnx)))
            graph.submit_deploys(spec, store, m, query_key(stage="onnx", sha256=sha256_file(m.onnx)),
                                 {"onnx": str(m.onnx)}, m.name)  # fmt: skip
            continue
        dataset = (m.recipe or {}).get("dataset") or spec.samples.dataset or "digits"
        seed = (m.recipe or {}).get("seed", 0)
        if m.checkpoint is not None:
            t_key = query_key(stage="checkpoint", sha256=sha256_file(m.checkpoint))
            trained: Any = {"checkpoint": str(m.checkpoint)}
        else:
            t_key = stage_key("train", recipe=m.recipe)
            trained = _stored(store, t_key, "checkpoint")
            if trained is None:
                out = spec.artifacts / "train" / t_key[:16]
                out.mkdir(parents=True, exist_ok=True)
                trained = _train_task.remote(m.recipe, str(out))
                trains.append((t_key, trained))
                graph.ran += 1
            else:
                graph.reused += 1
        for b in m.bits:
            ab = m.act_bits if m.act_bits is not None else b
            q_key = stage_key(
                "quantize", train=t_key, dataset=dataset, bits=b, act_bits=ab, in_bits=m.in_bits
            )
            quant = _stored(store, q_key, "onnx")
            if quant is None:
                out = spec.artifacts / "quantize" / q_key[:16]
                out.mkdir(parents=True, exist_ok=True)
                quant = _quantize_task.remote(trained, dataset, seed, b, ab, m.in_bits, str(out))
                graph.ran += 1
            else:
                graph.reused += 1
            pending.append((q_key, m, b, quant))
            graph.submit_deploys(spec, store, m, q_key, quant, f"{m.name} w{b}")
    for t_key, ref in trains:
        store.put_stage(t_key, "train", ray.get(ref))
    for q_key, m, b, quant in pending:
        if not isinstance(quant, dict):
            quant = ray.get(quant)
            store.put_stage(q_key, "quantize", quant)
        graph.models.append(ResolvedModel(f"{m.name}_w{b}", Path(quant["onnx"]), b, q_key))
    return graph


def _sidecar_bits(path: Path) -> int | None:
    if not path.with_suffix(".json").exists():
        return None
    from ctnn.quant import read_sidecar

    return read_sidecar(path).weight_bits
