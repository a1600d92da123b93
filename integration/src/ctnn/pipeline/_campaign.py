"""Running a campaign: models × properties × samples as Ray tasks, into the durable store.

Queries are generated lazily (a 100,000-query campaign is never a list); each one's
key hashes the model's sha256, the property and its parameters, the sample's codes and
label, the timeout, the solver and the versions of ctnn-verify and the solver, so a
re-run skips exactly what is stored and a changed model, solver or package re-asks.
"""

from __future__ import annotations

import hashlib
import json
import platform
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ._properties import CAMPAIGN_PROPERTIES
from ._ray import Query, RunStats, execute, init_ray
from ._spec import CampaignSpec, SampleSpec
from ._store import ResultStore, query_key
from ._sweep import ResolvedModel, submit_sweep

#: the SMT solvers' packages; OR-tools (CP-SAT) takes part in every query's answer, whatever the solver
_SOLVER_DISTS = {
    "z3": ["z3-solver"],
    "bitwuzla": ["bitwuzla"],
    "cpsat": [],
    "auto": ["z3-solver", "bitwuzla"],
}
_VERSION_DISTS = ["ctnn-pipeline", "ctnn-verify", "ctnn-quant", "onnx", "ray", "numpy"]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def key_versions(solver: str) -> dict[str, str]:
    """The versions a query's answer depends on (part of its key): ctnn-verify, OR-tools and the solver's
    package."""
    return {
        "ctnn-verify": _version("ctnn-verify"),
        "ortools": _version("ortools"),
        **{d: _version(d) for d in _SOLVER_DISTS.get(solver, [solver])},
    }


def provenance_versions(solver: str) -> dict[str, str]:
    return {
        **{d: _version(d) for d in _VERSION_DISTS},
        **key_versions(solver),
        "python": platform.python_version(),
    }


# ---------------------------------------------------------------- samples


@dataclass
class SampleSet:
    """The selected inputs of one model: dataset indices, input codes and labels."""

    indices: np.ndarray
    codes: np.ndarray
    labels: np.ndarray
    input_range: tuple[int, int] | None
    #: the model's input quantizer ``[scale, zero_point, lo, hi]`` from its sidecar (None: none)
    input_quant: list | None = None


def _predict(path: Path, codes: np.ndarray, input_name: str) -> np.ndarray:
    from ctnn.quant import run_reference

    out = next(iter(run_reference(path, {input_name: codes}).values()))
    return np.argmax(out.reshape(len(codes), -1), axis=-1)


def select_samples(s: SampleSpec, model: ResolvedModel, spec_src: str = "<spec>") -> SampleSet:
    """The inputs ``s`` selects for ``model``: input codes via the model's sidecar (or an .npz of codes)."""
    from ctnn.quant import read_arrays, read_sidecar

    sc = read_sidecar(model.path) if model.path.with_suffix(".json").exists() else None
    rng_ = (int(sc.input.lo), int(sc.input.hi)) if sc else None
    if s.file is not None:
        data = read_arrays(s.file, "samples")
        if "codes" in data:
            codes = data["codes"]
        elif "x" in data and sc is not None:
            codes = sc.input.quantize(data["x"])
        else:
            raise ValueError(
                f"{s.file}: needs an array `codes` (or `x` and a sidecar next to {model.path.name})"
            )
        labels = data["labels"] if "labels" in data else None
    else:
        if sc is None:
            raise ValueError(f"{spec_src}: model {model.path}: no sidecar ({model.path.with_suffix('.json').name}) "
                             f"to quantize dataset {s.dataset!r} with; give samples.file = an .npz of codes")  # fmt: skip
        from ctnn.models import load_dataset

        d = load_dataset(s.dataset, seed=s.seed)
        x, labels = {
            "train": (d.X_train, d.y_train),
            "val": (d.X_val, d.y_val),
            "test": (d.X_test, d.y_test),
        }[s.split]
        codes = sc.input.quantize(x)
    name = sc.input.name if sc else "x"
    n = len(codes)
    if s.indices:
        bad = [i for i in s.indices if i >= n]
        if bad:
            raise ValueError(f"{spec_src}: samples.indices {bad} out of range: {n} samples")
        idx = np.asarray(s.indices)
    elif s.select == "random":
        idx = np.sort(np.random.default_rng(s.seed).choice(n, size=min(s.count, n), replace=False))
    elif s.select == "first" or labels is None:
        idx = np.arange(min(s.count, n))
    else:  # correct: the first `count` samples the model classifies correctly
        pred = _predict(model.path, codes, name)
        idx = np.flatnonzero(pred == np.asarray(labels))[: s.count]
    labs = np.asarray(labels)[idx] if labels is not None else _predict(model.path, codes[idx], name)
    quant = [float(sc.input.scale), int(sc.input.zero_point), *rng_] if sc else None
    return SampleSet(idx, np.ascontiguousarray(codes[idx]), labs.astype(np.int64), rng_, quant)


# ---------------------------------------------------------------- queries


def _x_hash(x: np.ndarray) -> str:
    return hashlib.sha256(f"{x.dtype}{x.shape}".encode() + x.tobytes()).hexdigest()


def generate_queries(
    spec: CampaignSpec, models: list[tuple[ResolvedModel, str, Any, SampleSet]]
) -> tuple[int, Iterator[Query]]:
    """(how many, a lazy iterator of the queries): models × properties × samples.

    A property that is not about a sample (``per_sample = False``, e.g. a VNNLIB file) is one
    query per model and parameter set, with ``sample = -1``.
    """
    per = [
        len(ss.indices) if CAMPAIGN_PROPERTIES[p].per_sample else 1
        for *_, ss in models
        for p, _ in spec.properties
    ]
    total = sum(per)
    versions = key_versions(spec.solver)

    def gen() -> Iterator[Query]:
        for m, sha, ref, ss in models:
            for prop, params in spec.properties:
                if CAMPAIGN_PROPERTIES[prop].input_quant and ss.input_quant is not None:
                    # a worker holds the graph's bytes, not its sidecar: the property gets the quantizer
                    params = {**params, "input_quant": ss.input_quant}
                params_json = json.dumps(params, sort_keys=True)
                files = CAMPAIGN_PROPERTIES[prop].files  # in the key by content (their sha256), not by path
                key_params = {k: v for k, v in params.items() if k not in files}
                samples = enumerate(ss.indices) if CAMPAIGN_PROPERTIES[prop].per_sample else [(None, -1)]
                for j, i in samples:
                    x, label = (ss.codes[j], int(ss.labels[j])) if j is not None else (ss.codes[:0], -1)
                    key = query_key(model=sha, prop=prop, params=key_params, x=_x_hash(x), label=label,
                                    timeout=spec.timeout_s, solver=spec.solver, versions=versions)  # fmt: skip
                    meta = {"model": m.name, "bits": m.bits, "sample": int(i), "label": label, "property": prop,
                            "params": params_json, **params}  # fmt: skip
                    yield Query(key, prop, sha, ref, x, label, params, ss.input_range, meta)

    return total, gen()


# ---------------------------------------------------------------- running


@dataclass
class CampaignResult:
    """What :func:`run_campaign` did: this run's statistics and the store's totals for the campaign."""

    name: str
    store: Path
    total: int
    stats: RunStats
    counts: dict[str, int]
    deploys: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    stages_reused: int = 0
    stages_ran: int = 0

    @property
    def complete(self) -> bool:
        return self.stats.failed == 0


def run_campaign(
    spec: CampaignSpec,
    address: str | None = None,
    num_cpus: int | None = None,
    store_path: str | Path | None = None,
    quiet: bool = False,
    progress: Any = None,
) -> CampaignResult:
    """Run (or finish) a campaign; return its statistics. Ray is started embedded unless connected.

    >>> from ctnn.pipeline import CampaignSpec, run_campaign
    >>> res = run_campaign(CampaignSpec.from_toml("campaign.toml"))   # doctest: +SKIP
    >>> res.counts                                                    # doctest: +SKIP
    {'robust': 18, 'vulnerable': 2}
    """
    import ray

    from ._progress import CampaignProgress

    started = init_ray(address, num_cpus=num_cpus)
    store = ResultStore(store_path or spec.store)
    try:
        graph = submit_sweep(spec, store)
        models = []
        for m in graph.models:
            blob = m.path.read_bytes()
            sha = hashlib.sha256(blob).hexdigest()
            models.append((m, sha, ray.put(blob), select_samples(spec.samples, m, str(spec.path))))
        total, queries = generate_queries(spec, models)
        bar = progress if progress is not None else CampaignProgress(spec.name, quiet=quiet)
        prov = {"versions": provenance_versions(spec.solver), "spec_sha256": spec.sha256,
                "driver_started": time.time(), "driver_host": socket.gethostname()}  # fmt: skip
        with bar:
            stats = execute(
                queries, store, spec.name, timeout_s=spec.timeout_s, grace_s=spec.grace_s, solver=spec.solver,
                max_in_flight=spec.max_in_flight, max_retries=spec.max_retries, provenance=prov, total=total,
                progress=bar.update,
            )  # fmt: skip
        deploys = graph.finish_deploys(store)
        return CampaignResult(spec.name, store.path, total, stats, store.counts(spec.name), deploys,
                              graph.reused, graph.ran)  # fmt: skip
    finally:
        store.close()
        if started:
            ray.shutdown()
