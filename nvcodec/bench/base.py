"""What every benchmarked codec provides, whatever its media kind.

A bench codec turns one :class:`MediaItem` at one rate setting into real bytes and a decoded
signal (:class:`CodedItem`); the runner measures quality and speed from those, never from an
estimate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from nvcodec.errors import NvcodecError
from nvcodec.models.store import StoredModel, load_model

MediaKind = Literal["image", "video", "audio"]
Setting = int | float | str


@dataclass(frozen=True)
class MediaItem:
    """One benchmark input, decoded once.

    ``data`` is (H, W, 3) uint8 RGB for images, (T, H, W, 3) uint8 RGB for video and
    (channels, samples) float32 for audio; ``rate`` is frames/s (video), Hz (audio), 0 (image).
    """

    name: str
    path: Path
    kind: MediaKind
    data: np.ndarray
    rate: float = 0.0


@dataclass(frozen=True)
class CodedItem:
    """The result of coding one item: whole-file bytes, the decoded signal, wall times.

    ``decoded`` has the shape and dtype of ``MediaItem.data``; times exclude model and
    library loading.
    """

    num_bytes: int
    decoded: np.ndarray
    encode_seconds: float
    decode_seconds: float


class BenchCodec(Protocol):
    """A codec the bench sweeps: ``settings`` from lowest to highest rate."""

    name: str
    kind: MediaKind
    settings: tuple[Setting, ...]

    def code(self, item: MediaItem, setting: Setting) -> CodedItem: ...


def stored_model(spec: str) -> StoredModel:
    """A model to bench, given as an installed id, a folder holding one model (a training
    run's ``--out``), or a manifest file."""
    path = Path(spec)
    if path.suffix == ".json":
        return load_model(path.stem, search=[path.parent])
    if path.is_dir():
        manifests = sorted(path.glob("*.json"))
        if len(manifests) != 1:
            raise NvcodecError(f"{path}: expected one model manifest (*.json) in it")
        return load_model(manifests[0].stem, search=[path])
    return load_model(spec)
