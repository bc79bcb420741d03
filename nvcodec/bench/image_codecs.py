"""Image codecs the bench sweeps: nvcodec's learned codec and classical baselines.

Baselines go through well-kept libraries at settings a fair comparison uses: JPEG and WebP
through Pillow (libjpeg-turbo; libwebp at method 6, its slowest and best), AVIF (libaom through
libavif), JPEG XL (libjxl, effort 7, its default) and JPEG 2000 (OpenJPEG) through imagecodecs.
Every rate is the whole file the library writes (headers included) and every decoded image
comes from decoding those bytes. Settings run from the lowest rate to the highest.
"""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, features

from nvcodec.bench.base import CodedItem, MediaItem, Setting, stored_model
from nvcodec.codecs.files import write_image_container
from nvcodec.codecs.image import ImageCodec
from nvcodec.errors import NvcodecError

# AVIF through libaom is slow at its best speeds: speed 6 keeps the two AVIF sweeps of a full
# Kodak run near 3 minutes on 2 cores; speed 4 encodes 5.2x slower for a BD-rate of -5.1%
# (PSNR, 4:4:4, 6 Kodak images, measured here).
AVIF_SPEED = 6
JPEG_XL_EFFORT = 7
WEBP_METHOD = 6
# Settings span ~0.1-2 bpp on Kodak; JPEG's are a subset of CompressAI's (5..95 by 5).
JPEG_QUALITIES = (5, 10, 15, 20, 30, 40, 50, 60, 75, 90)
WEBP_QUALITIES = (5, 10, 20, 30, 45, 60, 75, 85, 92)


def _timed(encode: Callable[[], bytes], decode: Callable[[bytes], np.ndarray]) -> CodedItem:
    start = time.perf_counter()
    data = encode()
    encoded = time.perf_counter()
    decoded = decode(data)
    done = time.perf_counter()
    return CodedItem(len(data), decoded, encoded - start, done - encoded)


def _threads(count: int) -> str:
    return f"{count} thread{'s' if count != 1 else ''}"


class PillowCodec:
    """JPEG or WebP through Pillow: ``quality`` is the setting."""

    kind = "image"

    def __init__(
        self, name: str, image_format: str, settings: tuple[int, ...], **options: object
    ) -> None:
        self.name = name
        self.settings: tuple[Setting, ...] = settings
        self._format = image_format
        self._options = options
        if image_format == "JPEG":
            label, library = "JPEG", f"libjpeg-turbo {features.version_feature('libjpeg_turbo')}"
        else:
            label, library = "WebP", f"libwebp {features.version_module('webp')}"
        extra = "".join(f", {k} {v}" for k, v in options.items())
        self.description = (
            f"{label} ({library} via Pillow {Image.__version__}){extra}, "
            f"setting = quality, {_threads(1)}"
        )

    def code(self, item: MediaItem, setting: Setting) -> CodedItem:
        def encode() -> bytes:
            buffer = io.BytesIO()
            Image.fromarray(item.data).save(
                buffer, format=self._format, quality=setting, **self._options
            )
            return buffer.getvalue()

        def decode(data: bytes) -> np.ndarray:
            with Image.open(io.BytesIO(data)) as image:
                return np.asarray(image.convert("RGB"))

        return _timed(encode, decode)


class ImagecodecsCodec:
    """A codec of the imagecodecs package: ``encode(pixels, setting)`` and ``decode(bytes)``."""

    kind = "image"

    def __init__(
        self,
        name: str,
        description: str,
        settings: tuple[Setting, ...],
        encode: Callable[[np.ndarray, Setting], bytes],
        decode: Callable[[bytes], np.ndarray],
    ) -> None:
        self.name = name
        self.description = description
        self.settings = settings
        self._encode = encode
        self._decode = decode

    def code(self, item: MediaItem, setting: Setting) -> CodedItem:
        return _timed(lambda: self._encode(item.data, setting), self._decode)


def _imagecodecs():
    try:
        import imagecodecs
    except ImportError:  # pragma: no cover - a dependency; only a broken install lacks it
        raise NvcodecError("the classical image baselines need the imagecodecs package") from None
    return imagecodecs


def avif(name: str, subsampling: str, threads: int) -> ImagecodecsCodec:
    """AVIF (libaom) at 4:4:4 or 4:2:0; setting = libavif quality 0..100."""
    ic = _imagecodecs()
    pixel_format = {"444": ic.AVIF.PIXEL_FORMAT.YUV444, "420": ic.AVIF.PIXEL_FORMAT.YUV420}
    versions = ic.version(dict)
    return ImagecodecsCodec(
        name,
        f"AVIF {subsampling[0]}:{subsampling[1]}:{subsampling[2]} (libaom via libavif "
        f"{versions.get('libavif', '?')}, imagecodecs {ic.__version__}), speed {AVIF_SPEED}, "
        f"setting = quality, {_threads(threads)}",
        (10, 20, 30, 40, 50, 60, 70, 80),
        lambda pixels, quality: ic.avif_encode(
            pixels,
            level=quality,
            speed=AVIF_SPEED,
            pixelformat=pixel_format[subsampling],
            codec=ic.AVIF.CODEC_CHOICE.AOM,
            numthreads=threads,
        ),
        lambda data: ic.avif_decode(data, numthreads=threads),
    )


def jpeg_xl(threads: int) -> ImagecodecsCodec:
    """JPEG XL (libjxl); setting = Butteraugli distance (lower is better)."""
    ic = _imagecodecs()
    return ImagecodecsCodec(
        "jpegxl",
        f"JPEG XL (libjxl {ic.version(dict).get('libjxl', '?')}, imagecodecs "
        f"{ic.__version__}), effort {JPEG_XL_EFFORT}, setting = distance, {_threads(threads)}",
        (12.0, 8.0, 5.0, 3.5, 2.5, 1.8, 1.2, 0.8),
        lambda pixels, distance: ic.jpegxl_encode(
            pixels, distance=distance, effort=JPEG_XL_EFFORT, numthreads=threads
        ),
        lambda data: ic.jpegxl_decode(data, numthreads=threads),
    )


def jpeg_2000(threads: int) -> ImagecodecsCodec:
    """JPEG 2000 (OpenJPEG, 9/7 wavelet with colour transform); setting = target PSNR."""
    ic = _imagecodecs()
    return ImagecodecsCodec(
        "jpeg2000",
        f"JPEG 2000 (OpenJPEG {ic.version(dict).get('openjpeg', '?')}, imagecodecs "
        f"{ic.__version__}), JP2 file, setting = target PSNR (dB), {_threads(threads)}",
        (24, 26, 28, 30, 32, 34, 37, 40),
        lambda pixels, target: ic.jpeg2k_encode(pixels, level=target, numthreads=threads),
        lambda data: ic.jpeg2k_decode(data, numthreads=threads),
    )


class NvcodecImage:
    """The learned image codec; the rate is the whole one-image .nvc file it writes."""

    kind = "image"

    def __init__(self, codec: ImageCodec, name: str = "nvcodec") -> None:
        self.name = name
        self.codec = codec
        self.settings = tuple(range(codec.model.qualities))
        manifest = codec.manifest
        self.description = (
            f"nvcodec {manifest.model_id} (sha256 {manifest.sha256[:12]}), whole .nvc file, "
            f"setting = quality level, networks on {_threads(1)}"
        )
        self._scratch = tempfile.TemporaryDirectory(prefix="nvcodec-bench-")

    @classmethod
    def load(cls, model: str | None = None) -> NvcodecImage:
        """``model``: an installed model id, a folder holding one model, or a manifest file."""
        if model is None:
            return cls(ImageCodec.load())
        stored = stored_model(model)
        return cls(ImageCodec(stored), name=f"nvcodec:{model}")

    def code(self, item: MediaItem, setting: Setting) -> CodedItem:
        start = time.perf_counter()
        payload = self.codec.encode(item.data, int(setting))
        encoded = time.perf_counter()
        decoded = self.codec.decode(payload).pixels
        done = time.perf_counter()
        size = write_image_container(
            Path(self._scratch.name) / "image.nvc",
            self.codec,
            item.data.shape,
            payload,
            overwrite=True,
        )
        return CodedItem(size, decoded, encoded - start, done - encoded)
