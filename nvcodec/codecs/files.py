"""File-level encode/decode: media files <-> .nvc containers, dispatching on the media kind."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nvcodec.codecs.image import CODEC_ID as IMAGE_CODEC_ID
from nvcodec.codecs.image import DEFAULT_MODEL as IMAGE_MODEL
from nvcodec.codecs.image import DEFAULT_QUALITY, ImageCodec
from nvcodec.container import ContainerReader, ContainerWriter, Packet
from nvcodec.errors import BitstreamError, FormatError, NvcodecError
from nvcodec.io.image import IMAGE_SUFFIXES, read_image, write_image


@dataclass(frozen=True)
class EncodeReport:
    output: Path
    bytes: int
    quality: int
    bpp: float


def _pick_quality(codec: ImageCodec, pixels: np.ndarray, target_bpp: float) -> tuple[int, bytes]:
    """Highest quality whose payload stays within ``target_bpp`` (the lowest if none does)."""
    pixel_count = pixels.shape[0] * pixels.shape[1]
    low, high = 0, codec.model.qualities - 1
    best: tuple[int, bytes] | None = None
    while low <= high:
        middle = (low + high) // 2
        payload = codec.encode(pixels, middle)
        if len(payload) * 8 / pixel_count <= target_bpp:
            best, low = (middle, payload), middle + 1
        else:
            high = middle - 1
    # When no level fits, the search ended by trying level 0: that payload is the answer.
    return best if best is not None else (0, payload)


def write_image_container(
    output: Path,
    codec: ImageCodec,
    shape: tuple[int, ...],
    payload: bytes,
    *,
    overwrite: bool = False,
    protect: Sequence[Path] = (),
) -> int:
    """Write one coded image of (H, W, C) ``shape`` as a one-stream .nvc; returns its size."""
    stream = codec.stream_info(*shape)
    with ContainerWriter(output, [stream], overwrite=overwrite, protect=protect) as writer:
        writer.write(Packet(stream=0, pts=0, duration=1, keyframe=True, payload=payload))
    return output.stat().st_size


def encode_file(
    source: Path,
    output: Path,
    *,
    quality: int | None = None,
    target_bpp: float | None = None,
    model_id: str = IMAGE_MODEL,
    overwrite: bool = False,
) -> EncodeReport:
    """Encode an image file into an .nvc container (one image stream, one packet)."""
    if source.suffix.lower() not in IMAGE_SUFFIXES:
        raise NvcodecError(
            f"{source}: only images are supported so far (audio and video codecs are not "
            "implemented yet)"
        )
    pixels = read_image(source)
    codec = ImageCodec.load(model_id)
    chosen = DEFAULT_QUALITY if quality is None else quality
    if not 0 <= chosen < codec.model.qualities:
        raise NvcodecError(f"--quality must be 0..{codec.model.qualities - 1}, got {chosen}")
    try:
        if target_bpp is not None:
            chosen, payload = _pick_quality(codec, pixels, target_bpp)
        else:
            payload = codec.encode(pixels, chosen)
    except ValueError as e:  # the image itself is unsuitable (e.g. too large)
        raise NvcodecError(f"{source}: {e}") from None
    size = write_image_container(
        output, codec, pixels.shape, payload, overwrite=overwrite, protect=[source]
    )
    return EncodeReport(output, size, chosen, size * 8 / (pixels.shape[0] * pixels.shape[1]))


@dataclass(frozen=True)
class DecodeReport:
    output: Path
    damage: str | None  # what was wrong in the file after the packet that was decoded


def decode_file(source: Path, output: Path, *, overwrite: bool = False) -> DecodeReport:
    """Decode the first image stream of an .nvc file into any image format Pillow writes.

    The whole stream is read so damage anywhere is noticed; damage after an intact image packet
    is reported (``DecodeReport.damage``) rather than fatal, as the image itself is whole.
    """
    with ContainerReader(source) as reader:
        try:
            index = next(i for i, s in enumerate(reader.streams) if s.codec == IMAGE_CODEC_ID)
        except StopIteration:
            raise NvcodecError(f"{source}: no stream this nvcodec can decode") from None
        stream = reader.streams[index]
        codec = ImageCodec.load(stream.model_id, expected_sha256=stream.model_sha256 or None)
        packets, damage = reader.packets(index), None
        packet = next(packets, None)
        if packet is None:
            raise FormatError(source, None, "image stream has no packet")
        try:
            for _ in packets:
                pass
        except FormatError as e:
            damage = str(e)
        try:
            decoded = codec.decode(packet.payload)
        except BitstreamError as e:
            raise FormatError(source, packet.offset, f"image packet: {e}") from None
    write_image(output, decoded.pixels, overwrite=overwrite, protect=[source])
    return DecodeReport(output, damage)
