"""A campaign spec: which models, properties, samples, solver and limits — one TOML file.

Paths in the spec are relative to the spec's directory (that directory is what
``ctnn campaign submit`` ships to a Ray cluster). Every mistake is a ValueError that
names the file, the key and the value.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._properties import CAMPAIGN_PROPERTIES

_CAMPAIGN_KEYS = {"name", "store", "solver", "timeout_s", "grace_s", "max_in_flight", "max_retries", "plugins",
                  "artifacts"}  # fmt: skip
_SAMPLE_KEYS = {"dataset", "file", "split", "select", "count", "indices", "seed"}
_MODEL_KEYS = {
    "name",
    "onnx",
    "checkpoint",
    "recipe",
    "bits",
    "act_bits",
    "in_bits",
    "deploy",
    "deploy_inputs",
}
_SELECT = ("correct", "first", "random")
#: An MLP recipe takes only these (another kind's other keys go to its builder): the train task
#: would ignore anything else, and a misspelt key would go unnoticed.
_TRAIN_KEYS = {"kind", "seed", "dataset", "epochs", "lr"}
_MLP_RECIPE_KEYS = {*_TRAIN_KEYS, "sizes", "interval_eps"}


@dataclass
class ModelSpec:
    """One ``[[models]]`` entry: an ONNX file, or a checkpoint/recipe quantized at ``bits`` (a sweep)."""

    name: str
    onnx: Path | None = None
    checkpoint: Path | None = None
    recipe: dict[str, Any] | None = None
    bits: list[int] = field(default_factory=list)
    act_bits: int | None = None
    in_bits: int = 8
    deploy: list[str] = field(default_factory=list)
    deploy_inputs: int = 200


@dataclass
class SampleSpec:
    """Which inputs the queries are asked about: a dataset split or an ``.npz`` file of codes/labels."""

    dataset: str | None = "digits"
    file: Path | None = None
    split: str = "test"
    select: str = "correct"
    count: int = 10
    indices: list[int] | None = None
    seed: int = 0


@dataclass
class CampaignSpec:
    """A whole campaign; :meth:`from_toml` reads and checks one."""

    name: str
    path: Path | None
    models: list[ModelSpec]
    properties: list[tuple[str, dict[str, Any]]]  # (property name, one parameter set)
    samples: SampleSpec
    store: Path
    artifacts: Path
    solver: str = "z3"
    timeout_s: float = 30.0
    grace_s: float = 10.0
    max_in_flight: int = 0
    max_retries: int = 3
    plugins: list[Path] = field(default_factory=list)
    sha256: str = ""

    @property
    def root(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def files(self) -> list[Path]:
        """Every file the campaign reads (what a cluster job must be shipped)."""
        out = [p for m in self.models for p in (m.onnx, m.checkpoint) if p is not None]
        out += [
            p.with_suffix(".json") for m in self.models if (p := m.onnx) and p.with_suffix(".json").exists()
        ]
        out += self.plugins
        out += [Path(p[k]) for name, p in self.properties for k in CAMPAIGN_PROPERTIES[name].files if k in p]
        if self.samples.file:
            out.append(self.samples.file)
        return out

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> CampaignSpec:
        p = Path(path).resolve()
        try:
            text = p.read_text()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path}: no such campaign spec") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: not valid TOML ({exc})") from None
        spec = cls.from_dict(data, path=p)
        spec.sha256 = hashlib.sha256(text.encode()).hexdigest()
        return spec

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | None = None) -> CampaignSpec:
        src = str(path) if path else "<spec>"
        root = path.parent if path else Path.cwd()
        _unknown(data, {"campaign", "samples", "models", "properties"}, src, "top-level tables")
        camp = _table(data, "campaign", src)
        _unknown(camp, _CAMPAIGN_KEYS, src, "[campaign] keys")
        name = _typed(camp, "name", str, path.stem if path else "campaign", src, "campaign")
        plugins = [
            _file(root, f, src, "campaign.plugins")
            for f in _typed(camp, "plugins", list, [], src, "campaign")
        ]
        _load_plugins(plugins)  # before the properties are checked: a plugin can register one
        spec = cls(
            name=name,
            path=path,
            models=[_model(m, i, root, src) for i, m in enumerate(_list(data, "models", src))],
            properties=_properties(_list(data, "properties", src), root, src),
            samples=_samples(_table(data, "samples", src), root, src),
            store=root / _typed(camp, "store", str, f"{name}.sqlite", src, "campaign"),
            artifacts=root / _typed(camp, "artifacts", str, "artifacts", src, "campaign"),
            solver=_typed(camp, "solver", str, "z3", src, "campaign"),
            timeout_s=float(_typed(camp, "timeout_s", (int, float), 30.0, src, "campaign")),
            grace_s=float(_typed(camp, "grace_s", (int, float), 10.0, src, "campaign")),
            max_in_flight=_typed(camp, "max_in_flight", int, 0, src, "campaign"),
            max_retries=_typed(camp, "max_retries", int, 3, src, "campaign"),
            plugins=plugins,
        )
        if spec.timeout_s <= 0 or spec.grace_s < 0:
            raise ValueError(f"{src}: campaign.timeout_s must be > 0 and grace_s >= 0, got {spec.timeout_s}, "
                             f"{spec.grace_s}")  # fmt: skip
        _check_solver(spec.solver, src)
        for name in {n for n, _ in spec.properties}:
            CAMPAIGN_PROPERTIES[name].check_solver(spec.solver, src)
        if spec.max_in_flight < 0 or spec.max_retries < 0:
            raise ValueError(f"{src}: campaign.max_in_flight and max_retries must be >= 0")
        if not spec.models:
            raise ValueError(f"{src}: no [[models]]: a campaign needs at least one model")
        if not spec.properties:
            raise ValueError(f"{src}: no [[properties]]: a campaign needs at least one property")
        return spec


# ---------------------------------------------------------------- parsing helpers


def _unknown(d: dict, known: set[str], src: str, what: str) -> None:
    bad = sorted(set(d) - known)
    if bad:
        raise ValueError(f"{src}: unknown {what} {bad}; known: {sorted(known)}")


def _table(d: dict, key: str, src: str) -> dict:
    v = d.get(key, {})
    if not isinstance(v, dict):
        raise ValueError(f"{src}: [{key}] must be a table, got {v!r}")
    return v


def _list(d: dict, key: str, src: str) -> list[dict]:
    v = d.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
        raise ValueError(f"{src}: {key} must be an array of tables ([[{key}]]), got {v!r}")
    return v


def _typed(d: dict, key: str, typ: type | tuple[type, ...], default: Any, src: str, where: str) -> Any:
    v = d.get(key, default)
    if isinstance(v, bool) and typ is not bool or not isinstance(v, typ):
        raise ValueError(f"{src}: {where}.{key} = {v!r} has the wrong type")
    return v


def _file(root: Path, rel: str, src: str, where: str) -> Path:
    p = (root / rel).resolve()
    if not p.is_file():
        raise FileNotFoundError(f"{src}: {where} = {rel!r}: no such file ({p})")
    return p


def _check_solver(solver: str, src: str) -> None:
    import ctnn.verify

    known = getattr(ctnn.verify, "SOLVERS", ("z3",))
    if solver not in known:
        raise ValueError(f"{src}: campaign.solver = {solver!r}: this ctnn-verify knows {list(known)}")


def _load_plugins(paths: list[Path]) -> None:
    """Import each plugin file once; its objects travel to workers by value (cloudpickle)."""
    import importlib.util
    import sys

    from ray import cloudpickle

    for p in paths:
        mod_name = "ctnn_campaign_plugin_" + hashlib.sha256(str(p).encode()).hexdigest()[:12]
        if mod_name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(mod_name, p)
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[mod_name]
            raise ValueError(f"{p}: the campaign plugin failed to import: {exc!r}") from exc
        cloudpickle.register_pickle_by_value(module)


def _model(m: dict, i: int, root: Path, src: str) -> ModelSpec:
    where = f"models[{i}]"
    _unknown(m, _MODEL_KEYS, src, f"{where} keys")
    sources = [k for k in ("onnx", "checkpoint", "recipe") if k in m]
    if len(sources) != 1:
        raise ValueError(f"{src}: {where} needs exactly one of onnx, checkpoint, recipe; got {sources}")
    bits = _typed(m, "bits", list, [], src, where)
    if sources[0] != "onnx" and not bits:
        raise ValueError(f"{src}: {where}: a {sources[0]} is quantized at `bits`; give bits = [..]")
    if sources[0] == "onnx" and bits:
        raise ValueError(f"{src}: {where}: bits applies to checkpoints and recipes, not to an ONNX file")
    from ctnn.quant import check_bits

    for b in bits + [m.get("in_bits", 8)] + ([m["act_bits"]] if "act_bits" in m else []):
        try:
            check_bits(b, f"{src}: {where} bit-width")
        except Exception as exc:
            raise ValueError(str(exc)) from None
    spec = ModelSpec(
        name=_typed(m, "name", str, "", src, where),
        bits=bits,
        act_bits=m.get("act_bits"),
        in_bits=m.get("in_bits", 8),
        deploy=_typed(m, "deploy", list, [], src, where),
        deploy_inputs=_typed(m, "deploy_inputs", int, 200, src, where),
    )
    if spec.deploy:
        from ctnn.deploy import DeployError, get_target

        try:
            for target in spec.deploy:
                get_target(target)
        except DeployError as exc:
            raise ValueError(f"{src}: {where}.deploy: {exc}") from None
        if spec.deploy_inputs < 1:
            raise ValueError(f"{src}: {where}.deploy_inputs = {spec.deploy_inputs} must be >= 1")
    if "onnx" in m:
        spec.onnx = _file(root, _typed(m, "onnx", str, "", src, where), src, f"{where}.onnx")
    elif "checkpoint" in m:
        spec.checkpoint = _file(
            root, _typed(m, "checkpoint", str, "", src, where), src, f"{where}.checkpoint"
        )
    else:
        spec.recipe = _recipe(_typed(m, "recipe", dict, {}, src, where), src, f"{where}.recipe")
    if not spec.name:
        spec.name = (spec.onnx or spec.checkpoint).stem if (spec.onnx or spec.checkpoint) else f"model{i}"
    return spec


def _recipe(r: dict[str, Any], src: str, where: str) -> dict[str, Any]:
    """Check a sweep's recipe: its kind, its keys (the family's options), and the training values."""
    from ctnn.models import CLASSIFIERS, classifier_options

    kind = _typed(r, "kind", str, "mlp", src, where)
    if kind != "mlp" and kind not in CLASSIFIERS:
        raise ValueError(f"{src}: {where}.kind = {kind!r}: not one of {sorted({'mlp', *CLASSIFIERS})}")
    if kind == "mlp":
        _unknown(r, _MLP_RECIPE_KEYS, src, f"{where} keys of an mlp")
    elif "interval_eps" in r or "sizes" in r:
        key = "interval_eps" if "interval_eps" in r else "sizes"
        raise ValueError(f"{src}: {where}.{key} applies to kind = 'mlp' only, not to {kind!r}")
    else:
        _unknown(r, _TRAIN_KEYS | classifier_options(kind), src, f"{where} keys of kind {kind!r}")
    if _typed(r, "interval_eps", (int, float), 0.0, src, where) < 0:
        raise ValueError(
            f"{src}: {where}.interval_eps = {r['interval_eps']!r} must be >= 0 (in the data's units)"
        )
    if _typed(r, "epochs", int, 1, src, where) < 1:
        raise ValueError(f"{src}: {where}.epochs = {r['epochs']!r} must be >= 1")
    if _typed(r, "lr", (int, float), 1.0, src, where) <= 0:
        raise ValueError(f"{src}: {where}.lr = {r['lr']!r} must be > 0")
    _typed(r, "seed", int, 0, src, where)
    return r


def _properties(tables: list[dict], root: Path, src: str) -> list[tuple[str, dict[str, Any]]]:
    from ctnn.quant import sha256_file

    out = []
    for i, t in enumerate(tables):
        where = f"{src}: properties[{i}]"
        name = t.get("name")
        if name not in CAMPAIGN_PROPERTIES:
            raise ValueError(
                f"{where}: name = {name!r} is not a campaign property; known: {sorted(CAMPAIGN_PROPERTIES)}"
            )
        prop = CAMPAIGN_PROPERTIES[name]
        for params in prop.expand(t, where):
            for k in prop.files:  # a file travels as its absolute path; its content is in the query key
                if k in params:
                    p = _file(root, params[k], src, f"properties[{i}].{k}")
                    params[k], params[f"{k}_sha256"] = str(p), sha256_file(p)
            out.append((name, params))
    return out


def _samples(t: dict, root: Path, src: str) -> SampleSpec:
    _unknown(t, _SAMPLE_KEYS, src, "[samples] keys")
    s = SampleSpec(
        dataset=_typed(t, "dataset", str, "digits", src, "samples") if "file" not in t else None,
        split=_typed(t, "split", str, "test", src, "samples"),
        select=_typed(t, "select", str, "correct", src, "samples"),
        count=_typed(t, "count", int, 10, src, "samples"),
        indices=_typed(t, "indices", list, [], src, "samples") or None,
        seed=_typed(t, "seed", int, 0, src, "samples"),
    )
    if "file" in t:
        s.file = _file(root, _typed(t, "file", str, "", src, "samples"), src, "samples.file")
        if s.file.suffix != ".npz":
            raise ValueError(
                f"{src}: samples.file = {t['file']!r}: expected an .npz with `codes` or `x`, and `labels`"
            )
    if s.split not in ("train", "val", "test"):
        raise ValueError(f"{src}: samples.split = {s.split!r}: expected train, val or test")
    if s.select not in _SELECT:
        raise ValueError(f"{src}: samples.select = {s.select!r}: expected one of {list(_SELECT)}")
    if s.count < 1:
        raise ValueError(f"{src}: samples.count = {s.count}: must be >= 1")
    if s.indices and not all(isinstance(i, int) and i >= 0 for i in s.indices):
        raise ValueError(f"{src}: samples.indices must be non-negative integers, got {s.indices!r}")
    return s
