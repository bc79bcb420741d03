"""Image files <-> uint8 arrays through Pillow (PNG, JPEG, WebP, TIFF, BMP, ...).

Arrays are (height, width, channels) uint8 with channels 1 (gray), 2 (gray + alpha),
3 (RGB) or 4 (RGBA): the codecs code colour and alpha separately.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from nvcodec.errors import NvcodecError
from nvcodec.utils.files import atomic_output

# Extensions read as images (anything else is left to the audio/video readers).
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".ppm", ".pgm"}
)
_MODE_OF_CHANNELS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_HIGH_BIT_DEPTH_MODES = {"I;16", "I;16B", "I;16L", "I", "F"}


def _to_supported_mode(image: Image.Image, path: Path) -> Image.Image:
    if image.mode in _MODE_OF_CHANNELS.values():
        return image
    if image.mode in _HIGH_BIT_DEPTH_MODES:
        warnings.warn(f"{path}: {image.mode} image converted to 8 bits", stacklevel=3)
        wide = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or wide.max() > 255 else 255.0
        scaled = np.clip(np.round(wide * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(scaled)
    has_alpha = image.mode in {"PA", "RGBa", "La"} or "transparency" in image.info
    return image.convert("RGBA" if has_alpha else "RGB")


def to_rgb(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) colour of (H, W, 1..4) pixels: alpha dropped, gray replicated."""
    return pixels[..., :3] if pixels.shape[2] >= 3 else np.repeat(pixels[..., :1], 3, axis=2)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, C) uint8, applying its EXIF orientation."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            image.load()
            return np.asarray(_to_supported_mode(image, path)).reshape(
                image.height, image.width, -1
            )
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as e:
        if isinstance(e, FileNotFoundError):
            raise NvcodecError(f"{path}: no such file") from None
        raise NvcodecError(f"{path}: cannot read image ({e})") from None


def write_image(
    path: str | Path,
    pixels: np.ndarray,
    *,
    overwrite: bool = False,
    protect: Sequence[str | Path] = (),
) -> None:
    """Write (H, W, C) uint8 pixels in the format the extension names, atomically."""
    path = Path(path)
    image_format = Image.registered_extensions().get(path.suffix.lower())
    if image_format is None:
        raise NvcodecError(f"{path}: unknown image extension {path.suffix!r} (try .png)")
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in _MODE_OF_CHANNELS:
        raise ValueError(f"expected (H, W, 1..4) uint8 pixels, got {pixels.dtype} {pixels.shape}")
    channels = pixels.shape[2]
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
    with atomic_output(path, overwrite=overwrite, protect=protect) as f:
        try:
            image.save(f, format=image_format)
        except (OSError, ValueError, KeyError) as e:
            raise NvcodecError(f"{path}: cannot write {image_format} ({e})") from None
