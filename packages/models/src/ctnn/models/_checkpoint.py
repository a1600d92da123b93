"""Checkpoints: weights in safetensors, and a JSON config beside them that rebuilds the model.

``model.safetensors`` pairs with ``model.json``. The JSON names the model family
(a key of :data:`~ctnn.models.MODELS`), its constructor arguments, the shape of every
tensor and the sha256 of the weights file, plus whatever the caller adds (data set,
input range, metrics). Nothing is ever unpickled: weights load with safetensors only.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ._families import build_model, family_of

CHECKPOINT_FORMAT = 1
# Keys the checkpoint writes itself; a caller's config may repeat them only with equal values.
_RESERVED = ("format", "family", "args", "weights", "sha256", "tensors", "ctnn_models_version")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded: unknown family, or config and weights disagree."""


def config_path(path: str | os.PathLike[str]) -> Path:
    """The JSON config that pairs with weights file ``path`` (``x.safetensors`` → ``x.json``)."""
    p = Path(path)
    if p.suffix == ".json":
        raise ValueError(f"{p}: pass the weights file (e.g. model.safetensors), not its JSON config")
    return p.with_suffix(".json")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(
    model: nn.Module, path: str | os.PathLike[str], config: dict[str, Any] | None = None
) -> Path:
    """Write ``path`` (safetensors weights) and its JSON config; return the JSON's path.

    ``config`` holds extra JSON-serialisable entries to record (data set, value range,
    training settings, metrics); the family, constructor arguments and tensor shapes
    are added from the model itself.

    Example:
        >>> import tempfile, pathlib
        >>> from ctnn.models import MLP
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> save_checkpoint(MLP([4, 3]), d / "m.safetensors", {"dataset": "toy"}).name
        'm.json'
    """
    from . import __version__

    path = Path(path)
    cfg_path = config_path(path)
    family = family_of(model)
    get_config = getattr(model, "get_config", None)
    if not callable(get_config):
        raise TypeError(f"{type(model).__name__} has no get_config(); it cannot be rebuilt from a checkpoint")
    args = get_config()
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    # One metadata entry: safetensors writes several in a random order (safetensors issue #584),
    # and the same weights must give the same bytes (sweeps and campaigns key checkpoints by sha256)
    meta = {"ctnn": json.dumps({"config": cfg_path.name, "family": family}, sort_keys=True)}
    save_file(tensors, str(path), metadata=meta)
    own: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "family": family,
        "args": args,
        "weights": path.name,
        "sha256": _sha256(path),
        "tensors": {k: list(v.shape) for k, v in tensors.items()},
        "ctnn_models_version": __version__,
    }
    extra = dict(config or {})
    for key in _RESERVED:
        if key in extra and json.loads(json.dumps(extra[key])) != json.loads(json.dumps(own[key])):
            raise ValueError(f"config[{key!r}] = {extra[key]!r} contradicts the model ({own[key]!r})")
    text = json.dumps({**own, **{k: v for k, v in extra.items() if k not in own}}, indent=2)
    cfg_path.write_text(text + "\n", encoding="utf-8")
    return cfg_path


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved at ``path`` and load its weights; return ``(model, config)``.

    The model is in eval mode. Raises ``FileNotFoundError`` for a missing weights or
    config file and :class:`CheckpointError` when the family is unknown or the
    weights do not fit the architecture the config describes.

    Example:
        >>> import tempfile, pathlib
        >>> from ctnn.models import MLP
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.safetensors"
        >>> _ = save_checkpoint(MLP([4, 3]), p)
        >>> model, config = load_checkpoint(p)
        >>> config["family"], config["args"]
        ('mlp', {'sizes': [4, 3]})
    """
    path = Path(path)
    cfg_path = config_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint weights file")
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path}: no such checkpoint config (expected next to {path.name})")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{cfg_path}: not valid JSON ({exc})") from None
    if not isinstance(config, dict) or "family" not in config or "args" not in config:
        raise CheckpointError(f"{cfg_path}: not a ctnn-models checkpoint config (needs 'family' and 'args')")
    if config.get("format", CHECKPOINT_FORMAT) > CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{cfg_path}: checkpoint format {config['format']} is newer than this ctnn-models "
            f"understands ({CHECKPOINT_FORMAT}); upgrade ctnn-models"
        )
    try:
        model = build_model(config["family"], config["args"])
    except ValueError as exc:
        raise CheckpointError(f"{cfg_path}: {exc}") from None
    except TypeError as exc:
        raise CheckpointError(f"{cfg_path}: 'args' do not fit family {config['family']!r}: {exc}") from None

    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from None
    _check_tensors(path, config["family"], model.state_dict(), tensors)
    digest = config.get("sha256")
    if digest is not None and digest != _sha256(path):
        raise CheckpointError(
            f"{path}: sha256 differs from the one recorded in {cfg_path.name}; "
            "the weights were overwritten after the config was written"
        )
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model, config


def _check_tensors(
    path: Path, family: str, expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]
) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match the {family!r} architecture in its config: "
            f"missing tensors {missing}, unexpected tensors {unexpected}"
        )
    for name, ref in expected.items():
        if tuple(found[name].shape) != tuple(ref.shape):
            raise CheckpointError(
                f"{path}: tensor {name!r} has shape {list(found[name].shape)} in the weights "
                f"but the config's {family!r} architecture expects {list(ref.shape)}"
            )
