from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nvcodec.errors import ModelError
from nvcodec.models.store import list_models, load_model, read_manifest, save_model


def _save(directory: Path, model_id: str = "toy") -> None:
    tensors = {
        "w": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "t": np.arange(4, dtype=np.int32),
    }
    save_model(directory, model_id, "toy-arch", {"width": 3}, tensors, {"steps": 0, "seed": 1})


def test_round_trip_keeps_tensors_config_and_recipe(tmp_path: Path) -> None:
    _save(tmp_path)
    stored = load_model("toy", search=[tmp_path])
    assert stored.manifest.architecture == "toy-arch"
    assert stored.manifest.config == {"width": 3}
    assert stored.manifest.recipe == {"steps": 0, "seed": 1}
    assert torch.equal(stored.tensors["w"], torch.arange(6, dtype=torch.float32).reshape(2, 3))
    assert stored.tensors["t"].dtype == torch.int32
    assert list_models([tmp_path])[0].model_id == "toy"


def test_refuses_to_overwrite_without_flag(tmp_path: Path) -> None:
    _save(tmp_path)
    with pytest.raises(Exception, match="already exists"):
        _save(tmp_path)


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    _save(tmp_path)
    weights = tmp_path / "toy.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="does not match its manifest"):
        load_model("toy", search=[tmp_path])


def test_stream_needing_another_model_version_is_refused(tmp_path: Path) -> None:
    _save(tmp_path)
    with pytest.raises(ModelError, match="this stream needs model 'toy' with sha256 0000"):
        load_model("toy", search=[tmp_path], expected_sha256=bytes(32))


def test_missing_model_names_the_model(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"model .absent.*is not installed"):
        load_model("absent", search=[tmp_path])


@pytest.mark.parametrize("model_id", ["", "../escape", ".hidden", "a/b", "a" * 300])
def test_invalid_model_ids_are_refused(model_id: str, tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="invalid model id"):
        load_model(model_id, search=[tmp_path])


def test_broken_manifest_is_a_model_error(tmp_path: Path) -> None:
    _save(tmp_path)
    manifest = tmp_path / "toy.json"
    manifest.write_text("{not json")
    with pytest.raises(ModelError, match="not a valid model manifest"):
        read_manifest(manifest)
    manifest.write_text(json.dumps({"model_id": "toy"}))
    with pytest.raises(ModelError, match="not a valid model manifest"):
        load_model("toy", search=[tmp_path])


def test_weights_that_are_not_safetensors_are_refused(tmp_path: Path) -> None:
    _save(tmp_path)
    import hashlib

    junk = b"\x80\x04pickle-like junk"
    (tmp_path / "toy.safetensors").write_bytes(junk)
    manifest = json.loads((tmp_path / "toy.json").read_text())
    manifest["sha256"] = hashlib.sha256(junk).hexdigest()
    (tmp_path / "toy.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="not a valid safetensors file"):
        load_model("toy", search=[tmp_path])
