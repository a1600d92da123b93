"""Checkpoints: safetensors + JSON round trips exactly; broken ones fail with named causes."""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from ctnn.models import MLP, MODELS, CheckpointError, LTCClassifier, load_checkpoint, save_checkpoint


def test_mlp_round_trip(trained_mlp, digits, tmp_path):
    model, _ = trained_mlp
    path = tmp_path / "mlp.safetensors"
    cfg_path = save_checkpoint(model, path, {"dataset": "digits", "value_range": [0, 16]})
    assert cfg_path == tmp_path / "mlp.json"
    assert path.read_bytes()[8:9] == b"{"  # safetensors: u64 header length, then a JSON header

    cfg = json.loads(cfg_path.read_text())
    assert cfg["family"] == "mlp" and cfg["args"] == {"sizes": [64, 32, 10]}
    assert cfg["tensors"]["layers.0.weight"] == [32, 64]
    assert cfg["dataset"] == "digits" and cfg["value_range"] == [0, 16]

    loaded, config = load_checkpoint(path)
    assert isinstance(loaded, MLP) and not loaded.training
    assert config == cfg
    x = torch.from_numpy(digits.X_test)
    model.eval()
    assert torch.equal(loaded(x), model(x))


def test_the_same_weights_give_the_same_bytes(tmp_path):
    torch.manual_seed(0)
    model = MLP([8, 4, 3])
    # safetensors writes a metadata map in a random order per save: twelve saves would rarely agree
    files = {save_checkpoint(model, tmp_path / str(i) / "m.safetensors").with_suffix(".safetensors").read_bytes()
             for i in range(12)}  # fmt: skip
    assert len(files) == 1
    meta = json.loads(safe_open(str(tmp_path / "0" / "m.safetensors"), "pt").metadata()["ctnn"])
    assert meta == {"config": "m.json", "family": "mlp"}


def test_ltc_round_trip(tmp_path):
    torch.manual_seed(0)
    model = LTCClassifier(8, 6, n_classes=3, ode_unfolds=3, solver="rk4", positivity="clamp")
    path = tmp_path / "ltc.safetensors"
    save_checkpoint(model, path)
    loaded, cfg = load_checkpoint(path)
    assert cfg["family"] == "ltc_classifier"
    assert loaded.cell.solver == "rk4" and loaded.cell.ode_unfolds == 3 and loaded.cell.positivity == "clamp"
    assert (loaded.cell.wiring.adjacency_matrix == model.cell.wiring.adjacency_matrix).all()
    x = torch.rand(4, 64)
    assert torch.equal(loaded(x), model(x))


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint weights file"):
        load_checkpoint(tmp_path / "absent.safetensors")
    path = tmp_path / "m.safetensors"
    save_checkpoint(MLP([3, 2]), path).unlink()
    with pytest.raises(FileNotFoundError, match=r"m\.json: no such checkpoint config"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="not its JSON config"):
        load_checkpoint(tmp_path / "m.json")


def _rewrite_config(path, **changes):
    cfg_path = path.with_suffix(".json")
    cfg = json.loads(cfg_path.read_text())
    cfg.update(changes)
    cfg_path.write_text(json.dumps(cfg))


def test_shape_mismatch_names_tensor_and_shapes(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(MLP([8, 4, 2]), path)
    _rewrite_config(path, args={"sizes": [8, 5, 2]})
    with pytest.raises(
        CheckpointError, match=r"tensor 'layers.0.weight' has shape \[4, 8\].*expects \[5, 8\]"
    ):
        load_checkpoint(path)


def test_missing_and_unexpected_tensors(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(MLP([8, 4, 2]), path)
    _rewrite_config(path, args={"sizes": [8, 4, 4, 2]})
    with pytest.raises(CheckpointError, match=r"missing tensors \['layers.2.bias', 'layers.2.weight'\]"):
        load_checkpoint(path)


def test_overwritten_weights_fail_the_hash(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(MLP([8, 2]), path)
    save_file({k: v + 1 for k, v in MLP([8, 2]).state_dict().items()}, str(path))
    with pytest.raises(CheckpointError, match="sha256 differs"):
        load_checkpoint(path)


def test_unknown_family_and_bad_args(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(MLP([8, 2]), path)
    _rewrite_config(path, family="transformer")
    with pytest.raises(CheckpointError, match="unknown model family 'transformer'"):
        load_checkpoint(path)
    _rewrite_config(path, family="mlp", args={"width": 3})
    with pytest.raises(CheckpointError, match="'args' do not fit family 'mlp'"):
        load_checkpoint(path)


def test_not_safetensors_and_not_json(tmp_path):
    path = tmp_path / "m.safetensors"
    save_checkpoint(MLP([8, 2]), path)
    path.write_bytes(b"\x80\x04 a pickle, say")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(path)
    path.with_suffix(".json").write_text("{oops")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)


def test_unregistered_model_and_contradicting_config(tmp_path):
    with pytest.raises(TypeError, match="not a registered model family"):
        save_checkpoint(nn.Linear(2, 2), tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match="contradicts the model"):
        save_checkpoint(MLP([2, 2]), tmp_path / "x.safetensors", {"family": "ltc"})
    save_checkpoint(MLP([2, 2]), tmp_path / "x.safetensors", {"family": "mlp"})  # agreeing is fine


def test_registry_lists_families():
    assert {"mlp", "ltc", "ltc_classifier"} <= set(MODELS)
