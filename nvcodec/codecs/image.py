"""The learned image codec: pixels <-> packet payloads, with a shipped model from the store.

A packet holds one image: a short header (see ``PACKET_VERSION``), the entropy-coded latent in
tiles (so large images are coded with bounded memory), and, for images with alpha, the alpha
plane as a lossless PNG. Images are padded (edge-replicated) to the wavelet block size; only the
true size is stored, so padding costs a few latent columns at most.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch
from PIL import Image

from nvcodec.container import StreamInfo, StreamKind
from nvcodec.container.format import decode_varint, encode_varint
from nvcodec.errors import BitstreamError
from nvcodec.io.image import to_rgb
from nvcodec.models.image_codec import (
    ARCHITECTURE,
    ImageCodecConfig,
    WaveletImageCodec,
    padded_unit,
)
from nvcodec.models.store import StoredModel, load_model, weights_fitting
from nvcodec.utils.threads import one_thread

CODEC_ID = "nvc-image-wavelet"
DEFAULT_MODEL = "image-wavelet"
DEFAULT_QUALITY = 3
# version u8, quality u8, channels u8 (1 gray, 3 RGB; +1 with alpha), then varints: height,
# width, tile side in latent positions; per tile: length + bytes; the alpha PNG's length +
# bytes. Version 1 coded each tile in 11 separate coder streams (~80 bytes a tile more);
# version 2 had fixed-width sizes and lengths (12 bytes a Kodak image more) and uniformly
# coded class maps; their files name models that nvcodec no longer ships.
PACKET_VERSION = 3
_PACKET_HEADER = struct.Struct("<BBB")
TILE_LATENT = 64
MAX_PIXELS = 1 << 28


@dataclass(frozen=True)
class DecodedImage:
    pixels: np.ndarray  # (H, W, C) uint8
    quality: int

    @property
    def tensor(self) -> torch.Tensor:
        """The image as a float (C, H, W) tensor in [0, 1], torch's layout."""
        return torch.from_numpy(self.pixels).permute(2, 0, 1).float() / 255.0


Pixels = np.ndarray | torch.Tensor


def as_pixels(image: Pixels) -> np.ndarray:
    """(H, W, C) uint8 from a uint8 array/tensor in that layout, or a float (C, H, W) tensor
    in [0, 1] (rounded to 8 bits)."""
    if isinstance(image, torch.Tensor):
        if image.is_floating_point():
            if image.dim() != 3:
                raise ValueError(f"expected a (C, H, W) float tensor, got {tuple(image.shape)}")
            image = torch.round(image.detach().clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0)
        return image.detach().cpu().numpy()
    return image


class ImageCodec:
    """A loaded image model and the packet format around it."""

    def __init__(self, stored: StoredModel) -> None:
        self.manifest = stored.manifest
        with weights_fitting(stored, ARCHITECTURE):
            self.config = ImageCodecConfig.from_dict(stored.manifest.config)
            self.model = WaveletImageCodec(self.config)
            self.model.load_state_dict(stored.tensors)
        self.model.eval()

    @classmethod
    def load(
        cls, model_id: str = DEFAULT_MODEL, expected_sha256: bytes | None = None
    ) -> ImageCodec:
        return cls(load_model(model_id, expected_sha256=expected_sha256))

    def to(self, device: str | torch.device) -> ImageCodec:
        """Run the networks on ``device`` (e.g. "cuda"); entropy coding stays on the CPU, so
        the symbols are the same anywhere, while float results may differ in the last bit."""
        self.model.to(device)
        return self

    @property
    def halo(self) -> int:
        """Latent positions the refiner sees around a tile (its receptive field: a 3x3
        convolution in, two in each block, one out), so tiles decode without seams."""
        return 2 * self.config.decoder_blocks + 2

    @property
    def device(self) -> torch.device:
        """Where the networks run (see ``to``)."""
        return self.model.log_gains.device

    def stream_info(self, height: int, width: int, channels: int) -> StreamInfo:
        return StreamInfo(
            kind=StreamKind.IMAGE,
            codec=CODEC_ID,
            time_base=Fraction(1, 1),
            model_id=self.manifest.model_id,
            model_sha256=self.manifest.sha256_bytes,
            width=width,
            height=height,
            channels=channels,
        )

    def _check_quality(self, quality: int) -> None:
        if not 0 <= quality < self.model.qualities:
            raise ValueError(f"quality must be 0..{self.model.qualities - 1}, got {quality}")

    @torch.inference_mode()
    def latents(self, pixels: Pixels, quality: int = DEFAULT_QUALITY) -> torch.Tensor:
        """The latent symbols (1, C, H/8, W/8) the bitstream codes, as float."""
        strips = self._coded_tiles(as_pixels(pixels), quality)
        return torch.cat([torch.cat([s for s, _ in tiles], dim=3) for tiles in strips], dim=2)

    def _coded_tiles(
        self, pixels: np.ndarray, quality: int
    ) -> Iterator[list[tuple[torch.Tensor, bytes]]]:
        """Each tile's (symbols, payload), left to right, ``TILE_LATENT`` latent rows at a time
        from the top; the encoder chooses the symbols under the tables that code them (see
        ``WaveletImageCodec.symbols``). The analysis is local to each wavelet block, so neither
        the latent nor a float copy of the image is ever needed whole."""
        self._check_quality(quality)
        entropy_model = self.model.entropy_models[quality]
        error_bits = self.model.error_bits()
        color = _color_planes(pixels)
        block = self.config.block
        strip = TILE_LATENT * block
        for top in range(0, color.shape[0], strip):
            x = padded_unit(color[top : top + strip], block)
            with one_thread():
                latent = self.model.encode_latent(x.to(self.device), quality).cpu()
            yield [
                entropy_model.encode(latent[..., left : left + TILE_LATENT], error_bits)
                for left in range(0, latent.shape[3], TILE_LATENT)
            ]

    @torch.inference_mode()
    def encode(self, pixels: Pixels, quality: int = DEFAULT_QUALITY) -> bytes:
        """Code an image (see ``as_pixels``; 1 to 4 channels) into one packet payload."""
        pixels = as_pixels(pixels)
        height, width = pixels.shape[:2]
        if height * width > MAX_PIXELS:
            raise ValueError(f"{width}x{height} exceeds {MAX_PIXELS} pixels")
        self._check_quality(quality)
        has_alpha = pixels.shape[2] in (2, 4)
        channels = (1 if pixels.shape[2] <= 2 else 3) + int(has_alpha)
        out = [_PACKET_HEADER.pack(PACKET_VERSION, quality, channels)]
        out += [encode_varint(height), encode_varint(width), encode_varint(TILE_LATENT)]
        for tiles in self._coded_tiles(pixels, quality):
            for _, coded in tiles:
                out += [encode_varint(len(coded)), coded]
        alpha = _png_bytes(pixels[..., -1]) if has_alpha else b""
        out += [encode_varint(len(alpha)), alpha]
        return b"".join(out)

    @torch.inference_mode()
    def decode(self, payload: bytes) -> DecodedImage:
        """Decode one packet payload; raises :class:`BitstreamError` on a malformed payload.

        The payload's layout is checked whole before anything is decoded; then tiles are
        decoded a strip at a time, each strip synthesized once the next one is known (its
        halo), so only three strips of latent are held, besides the pixels.
        """
        reader = _PayloadReader(payload)
        version, quality, channels = reader.unpack(_PACKET_HEADER)
        if version != PACKET_VERSION:
            raise BitstreamError(f"image packet version {version} is not supported")
        if not 0 <= quality < self.model.qualities or channels not in (1, 2, 3, 4):
            raise BitstreamError("image packet header is invalid")
        height, width, tile = reader.varint(), reader.varint(), reader.varint()
        if tile != TILE_LATENT:
            raise BitstreamError(f"image packet tile side {tile} is not supported")
        if not 0 < height * width <= MAX_PIXELS:
            raise BitstreamError(f"image packet declares an invalid size {width}x{height}")
        block = self.config.block
        lat_h, lat_w = -(-height // block), -(-width // block)
        # Each tile, and the alpha plane, starts with its length (a byte at least): the payload
        # must hold those before the size it declares is allocated.
        tiles = -(-lat_h // TILE_LATENT) * -(-lat_w // TILE_LATENT)
        if tiles + 1 > reader.remaining:
            raise BitstreamError(
                f"image packet declares {width}x{height} pixels ({tiles} tiles) but holds only "
                f"{reader.remaining} bytes after its header"
            )
        chunks = [reader.chunk() for _ in range(tiles + 1)]
        reader.finish()
        alpha = chunks.pop()
        if bool(alpha) != (channels in (2, 4)):
            raise BitstreamError(
                f"image packet with {channels} channels has {len(alpha)} alpha bytes"
            )
        pixels = np.empty((height, width, channels), dtype=np.uint8)
        strips = self._decoded_strips(iter(chunks), quality, lat_h, lat_w)
        previous, current, top = None, next(strips), 0
        with one_thread():
            while current is not None:
                following = next(strips, None)
                parts = [current]
                if previous is not None:
                    parts.insert(0, previous[:, :, -self.halo :])
                if following is not None:
                    parts.append(following[:, :, : self.halo])
                halo = self.halo if previous is not None else 0
                band = self._synthesize(torch.cat(parts, dim=2), halo, current.shape[2], quality)
                band = band[: height - top, :width]
                if channels in (1, 2):
                    # Gray was coded as three equal planes: their mean is the best estimate.
                    band = np.round(band.mean(axis=2, keepdims=True)).astype(np.uint8)
                pixels[top : top + band.shape[0], :, : band.shape[2]] = band
                top += band.shape[0]
                previous, current = current, following
        if channels in (2, 4):
            pixels[..., -1] = _png_plane(alpha, height, width)
        return DecodedImage(pixels=pixels, quality=quality)

    def _decoded_strips(
        self, chunks: Iterator[bytes], quality: int, lat_h: int, lat_w: int
    ) -> Iterator[torch.Tensor]:
        """The latent, ``TILE_LATENT`` rows at a time, from the tiles' entropy-coded bytes."""
        entropy_model = self.model.entropy_models[quality]
        for top in range(0, lat_h, TILE_LATENT):
            strip = torch.empty(
                1, self.config.latent_channels, min(TILE_LATENT, lat_h - top), lat_w
            )
            for left in range(0, lat_w, TILE_LATENT):
                view = strip[:, :, :, left : left + TILE_LATENT]
                view.copy_(entropy_model.decompress(next(chunks), tuple(view.shape)))
            yield strip

    def _synthesize(self, window: torch.Tensor, halo: int, rows: int, quality: int) -> np.ndarray:
        """Pixels of the ``rows`` latent rows that start ``halo`` rows into ``window``, decoded
        tile by tile with ``halo`` latent positions around each (no seams)."""
        block = self.config.block
        lat_w = window.shape[3]
        out = np.empty((rows * block, lat_w * block, 3), dtype=np.uint8)
        for left in range(0, lat_w, TILE_LATENT):
            start = max(left - self.halo, 0)
            image = self.model.decode_latent(
                window[:, :, :, start : left + TILE_LATENT + self.halo].to(self.device), quality
            )
            crop_left = (left - start) * block
            w = min(left + TILE_LATENT, lat_w) - left
            image = image[
                0, :, halo * block : (halo + rows) * block, crop_left : crop_left + w * block
            ]
            pixels = torch.clamp(torch.round((image + 0.5) * 255.0), 0, 255).to(torch.uint8)
            out[:, left * block : (left + w) * block] = pixels.permute(1, 2, 0).cpu().numpy()
        return out


def _color_planes(pixels: np.ndarray) -> np.ndarray:
    """(H, W, 3) colour without alpha; gray is replicated (its chroma bands code to ~nothing)."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected (H, W, 1..4) uint8 pixels, got {pixels.dtype} {pixels.shape}")
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ValueError("image is empty")
    return np.ascontiguousarray(to_rgb(pixels))


def _png_bytes(plane: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(plane)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _png_plane(data: bytes, height: int, width: int) -> np.ndarray:
    """The alpha plane, its size checked against the image's before its pixels are decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
                if image.size != (width, height):
                    raise BitstreamError(
                        f"alpha plane is {image.width}x{image.height}, the image {width}x{height}"
                    )
                return np.asarray(image.convert("L"))
    except (
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as e:
        raise BitstreamError(f"alpha plane is not a valid PNG ({e})") from None


class _PayloadReader:
    """Bounds-checked reads from a packet payload."""

    def __init__(self, payload: bytes) -> None:
        self.data = memoryview(payload)
        self.pos = 0

    def unpack(self, layout: struct.Struct) -> tuple[int, ...]:
        if self.pos + layout.size > len(self.data):
            raise BitstreamError("image packet is truncated")
        values = layout.unpack_from(self.data, self.pos)
        self.pos += layout.size
        return values

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def varint(self) -> int:
        try:
            value, self.pos = decode_varint(self.data, self.pos)
        except ValueError as error:
            raise BitstreamError(f"image packet has a size or length that {error}") from None
        return value

    def chunk(self) -> bytes:
        length = self.varint()
        if self.pos + length > len(self.data):
            raise BitstreamError("image packet is truncated")
        self.pos += length
        return bytes(self.data[self.pos - length : self.pos])

    def finish(self) -> None:
        if self.pos != len(self.data):
            raise BitstreamError("image packet has trailing bytes")
