"""The weights store: models as safetensors + a JSON manifest, verified by sha256 on load.

Weights are never pickled (a pickle can execute code), and a bitstream records the model id and
the sha256 of the weights it was coded with, so a decoder can refuse a file whose model it does
not have instead of decoding garbage. Bundled models live in ``nvcodec/weights/``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from nvcodec.errors import ModelError, NvcodecError
from nvcodec.utils.files import atomic_output

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "weights"
MANIFEST_FORMAT = 1
MAX_MANIFEST_BYTES = 1 << 20
MAX_MODEL_ID = 128


@dataclass(frozen=True)
class Manifest:
    """What a model is, how it was made, and the hash of its weights file."""

    model_id: str
    architecture: str
    config: dict[str, Any]
    sha256: str
    recipe: dict[str, Any] = field(default_factory=dict)
    format: int = MANIFEST_FORMAT

    @property
    def sha256_bytes(self) -> bytes:
        return bytes.fromhex(self.sha256)


@dataclass(frozen=True)
class StoredModel:
    manifest: Manifest
    tensors: dict[str, torch.Tensor]
    path: Path


def _paths(directory: Path, model_id: str) -> tuple[Path, Path]:
    return directory / f"{model_id}.safetensors", directory / f"{model_id}.json"


def _check_model_id(model_id: str) -> None:
    """Ids become file names: a safe alphabet, no leading dot, and short enough for any OS."""
    if (
        not 0 < len(model_id) <= MAX_MODEL_ID
        or not all(c.isalnum() or c in "-_." for c in model_id)
        or model_id[0] == "."
    ):
        raise ModelError(
            f"invalid model id {model_id[:MAX_MODEL_ID]!r}: use 1..{MAX_MODEL_ID} letters, "
            "digits, '-', '_', '.'"
        )


def save_model(
    directory: str | Path,
    model_id: str,
    architecture: str,
    config: Mapping[str, Any],
    tensors: Mapping[str, torch.Tensor | np.ndarray],
    recipe: Mapping[str, Any] | None = None,
    *,
    overwrite: bool = False,
) -> Manifest:
    """Write ``<model_id>.safetensors`` and ``<model_id>.json`` atomically; return the manifest."""
    _check_model_id(model_id)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights_path, manifest_path = _paths(directory, model_id)
    as_torch = {
        name: (torch.from_numpy(np.ascontiguousarray(t)) if isinstance(t, np.ndarray) else t)
        .detach()
        .cpu()
        .contiguous()
        for name, t in tensors.items()
    }
    blob = save_safetensors_bytes(as_torch, metadata={"model_id": model_id})
    manifest = Manifest(
        model_id=model_id,
        architecture=architecture,
        config=dict(config),
        sha256=hashlib.sha256(blob).hexdigest(),
        recipe=dict(recipe or {}),
    )
    with atomic_output(weights_path, overwrite=overwrite) as f:
        f.write(blob)
    with atomic_output(manifest_path, overwrite=overwrite) as f:
        f.write((json.dumps(asdict(manifest), indent=2, sort_keys=True) + "\n").encode())
    return manifest


def read_manifest(path: str | Path) -> Manifest:
    """Parse and validate one manifest file."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ModelError(f"{path}: manifest is larger than {MAX_MANIFEST_BYTES} bytes")
        raw = json.loads(path.read_text(encoding="utf-8"))
        manifest = Manifest(**raw)
    except FileNotFoundError:
        raise ModelError(f"{path}: manifest not found") from None
    except (OSError, ValueError, TypeError) as e:
        raise ModelError(f"{path}: not a valid model manifest ({e})") from None
    if manifest.format != MANIFEST_FORMAT:
        raise ModelError(f"{path}: manifest format {manifest.format} is not supported")
    if len(manifest.sha256) != 64 or not all(c in "0123456789abcdef" for c in manifest.sha256):
        raise ModelError(f"{path}: manifest sha256 is not 64 lowercase hex digits")
    return manifest


def _search_dirs(extra: Iterable[str | Path]) -> list[Path]:
    return [*(Path(d) for d in extra), BUNDLED_DIR]


def list_models(search: Iterable[str | Path] = ()) -> list[Manifest]:
    """Every model found on the search path (first directory wins for a repeated id)."""
    found: dict[str, Manifest] = {}
    for directory in _search_dirs(search):
        for manifest_path in sorted(directory.glob("*.json")):
            manifest = read_manifest(manifest_path)
            found.setdefault(manifest.model_id, manifest)
    return list(found.values())


def load_model(
    model_id: str,
    *,
    search: Iterable[str | Path] = (),
    expected_sha256: bytes | None = None,
) -> StoredModel:
    """Load a model by id, verifying its weights against the manifest (and the caller's hash).

    ``expected_sha256`` is the hash a bitstream recorded: a different installed model is refused
    with a message naming the model the file needs.
    """
    _check_model_id(model_id)
    dirs = _search_dirs(search)
    for directory in dirs:
        weights_path, manifest_path = _paths(directory, model_id)
        if manifest_path.exists():
            break
    else:
        needed = f" (sha256 {expected_sha256.hex()[:16]}...)" if expected_sha256 else ""
        where = ", ".join(str(d) for d in dirs)
        raise ModelError(f"model {model_id!r}{needed} is not installed (looked in {where})")
    manifest = read_manifest(manifest_path)
    if manifest.model_id != model_id:
        raise ModelError(f"{manifest_path}: manifest names model {manifest.model_id!r}")
    if expected_sha256 is not None and expected_sha256 != manifest.sha256_bytes:
        raise ModelError(
            f"this stream needs model {model_id!r} with sha256 {expected_sha256.hex()[:16]}..., "
            f"but the installed one ({manifest_path}) is {manifest.sha256[:16]}...: "
            "install the nvcodec version that wrote the file"
        )
    try:
        blob = weights_path.read_bytes()
    except OSError as e:
        raise ModelError(f"{weights_path}: cannot read model weights ({e.strerror})") from None
    actual = hashlib.sha256(blob).hexdigest()
    if actual != manifest.sha256:
        raise ModelError(
            f"{weights_path}: sha256 {actual[:16]}... does not match its manifest "
            f"({manifest.sha256[:16]}...): the weights file is damaged or was replaced"
        )
    try:
        tensors = load_safetensors_bytes(blob)
    except Exception as e:  # safetensors raises its own error types for malformed files
        raise ModelError(f"{weights_path}: not a valid safetensors file ({e})") from None
    return StoredModel(manifest=manifest, tensors=tensors, path=weights_path)


@contextmanager
def weights_fitting(stored: StoredModel, architecture: str) -> Iterator[None]:
    """Building a network from a manifest's config and loading the weights into it: a model
    of another architecture is refused first, and whatever does not fit becomes one
    ModelError naming the weights file."""
    if stored.manifest.architecture != architecture:
        raise ModelError(
            f"model {stored.manifest.model_id!r} is a {stored.manifest.architecture}, "
            f"not a {architecture}"
        )
    try:
        yield
    except (TypeError, KeyError, ValueError, RuntimeError, NvcodecError) as e:
        raise ModelError(
            f"{stored.path}: weights do not fit the {stored.manifest.architecture} config in "
            f"their manifest ({' '.join(str(e).split())[:200]})"
        ) from None
