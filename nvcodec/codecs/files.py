"""File-level encode/decode: media files <-> .nvc containers, dispatching on the media kind.

Images are one packet; audio streams through in packets of 10 s, so an hour-long file needs
memory for a few packets only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import numpy as np

from nvcodec.codecs import audio as audio_codec
from nvcodec.codecs.image import CODEC_ID as IMAGE_CODEC_ID
from nvcodec.codecs.image import DEFAULT_MODEL as IMAGE_MODEL
from nvcodec.codecs.image import DEFAULT_QUALITY, ImageCodec
from nvcodec.container import ContainerReader, ContainerWriter, Packet, StreamInfo
from nvcodec.container.format import PACKET_OVERHEAD
from nvcodec.errors import BitstreamError, FormatError, ModelError, NvcodecError
from nvcodec.io.audio import AudioReader, AudioWriter
from nvcodec.io.image import IMAGE_SUFFIXES, read_image, write_image

_Codec = TypeVar("_Codec", ImageCodec, audio_codec.AudioCodec)


@dataclass(frozen=True)
class EncodeReport:
    output: Path
    bytes: int
    setting: str  # what was chosen: "quality 3", "6k (8 codebooks)"
    rate: str  # what it cost, whole file: "0.3290 bpp", "5.21 kb/s"


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
    bitrate: int | None = None,
    model_id: str | None = None,
    overwrite: bool = False,
) -> EncodeReport:
    """Encode an image or audio file into an .nvc container (by the input's kind)."""
    if source.suffix.lower() in IMAGE_SUFFIXES:
        if bitrate is not None:
            raise NvcodecError(f"{source}: --bitrate is for audio; use --quality or --bpp")
        return _encode_image(source, output, quality, target_bpp, model_id, overwrite)
    if quality is not None or target_bpp is not None:
        raise NvcodecError(f"{source}: --quality/--bpp are for images; use --bitrate for audio")
    return encode_audio_file(
        source,
        output,
        bitrate=bitrate or audio_codec.DEFAULT_BITRATE,
        model_id=model_id,
        overwrite=overwrite,
    )


def _encode_image(
    source: Path,
    output: Path,
    quality: int | None,
    target_bpp: float | None,
    model_id: str | None,
    overwrite: bool,
) -> EncodeReport:
    """One image stream, one packet."""
    pixels = read_image(source)
    codec = ImageCodec.load(model_id or IMAGE_MODEL)
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
    bpp = size * 8 / (pixels.shape[0] * pixels.shape[1])
    return EncodeReport(output, size, f"quality {chosen}", f"{bpp:.4f} bpp (whole file)")


def encode_audio_file(
    source: Path,
    output: Path,
    *,
    bitrate: int = audio_codec.DEFAULT_BITRATE,
    model_id: str | None = None,
    codec: audio_codec.AudioCodec | None = None,
    overwrite: bool = False,
) -> EncodeReport:
    """The first audio track of ``source`` (any file PyAV reads) as one audio stream.

    Packet pts and durations count samples at the source rate; the last packet ends at the
    exact source length, which decode restores. ``codec``: an already loaded model (the bench
    times coding without loading), instead of ``model_id``.
    """
    codec = codec or audio_codec.AudioCodec.load(model_id or audio_codec.DEFAULT_MODEL)
    codebooks = codec.codebooks_for(bitrate)
    with AudioReader(source) as reader:
        stream = codec.stream_info(reader.rate, reader.channels, 0, codebooks)
        scale = Fraction(reader.rate * codec.hop, codec.rate)  # source samples per frame
        with ContainerWriter(output, [stream], overwrite=overwrite, protect=[source]) as writer:
            # (first frame, payload) of the packets not yet written. Two are held back: the
            # last may hold only padding frames past the source's end, and both then get
            # times clamped to the exact length, known only at the end of the input.
            held: list[tuple[int, bytes]] = []
            frame = 0
            try:
                for indices in codec.encode_blocks(reader.blocks(codec.rate), codebooks):
                    held.append((frame, codec.pack(indices)))
                    frame += indices.shape[1]
                    if len(held) == 3:
                        (start, payload), (following, _) = held[0], held[1]
                        _write_audio_packet(writer, payload, start * scale, following * scale)
                        del held[0]
            except NvcodecError as e:
                raise NvcodecError(f"{source}: {e}") from None
            length = reader.samples_read
            bounds = [min(round(start * scale), length) for start, _ in held] + [length]
            for (_, payload), pts, end in zip(held, bounds, bounds[1:], strict=False):
                _write_audio_packet(writer, payload, pts, end)
        duration = reader.samples_read / reader.rate
    size = output.stat().st_size
    kbps = size * 8 / max(duration, 1e-9) / 1000
    return EncodeReport(
        output,
        size,
        f"{bitrate / 1000:g}k ({codebooks} codebooks)",
        f"{kbps:.2f} kb/s (whole file)",
    )


def _write_audio_packet(
    writer: ContainerWriter, payload: bytes, start: Fraction | int, end: Fraction | int
) -> None:
    """One audio packet from ``start`` to ``end`` (source samples, rounded to ticks)."""
    pts = round(start)
    writer.write(
        Packet(stream=0, pts=pts, duration=round(end) - pts, keyframe=True, payload=payload)
    )


@dataclass(frozen=True)
class DecodeReport:
    output: Path
    damage: str | None  # what was wrong in the file after the packet that was decoded


def decode_file(
    source: Path, output: Path, *, overwrite: bool = False, strict: bool = False
) -> DecodeReport:
    """Decode the first stream of an .nvc file this nvcodec knows (image or audio).

    Damage after what could be decoded is reported in the result; ``strict`` raises it instead
    (and writes nothing).
    """
    with ContainerReader(source, recover=True) as reader:
        codecs = [s.codec for s in reader.streams]
    if audio_codec.CODEC_ID in codecs and IMAGE_CODEC_ID not in codecs:
        return decode_audio_file(source, output, overwrite=overwrite, strict=strict)
    return _decode_image(source, output, overwrite, strict)


def _load_codec(codec: type[_Codec], source: Path, number: int, stream: StreamInfo) -> _Codec:
    """The model a stream names, or a ModelError naming the file that needs it."""
    if not stream.model_id:
        raise ModelError(f"{source}: stream {number} does not name the model it was coded with")
    try:
        return codec.load(stream.model_id, expected_sha256=stream.model_sha256 or None)
    except ModelError as e:
        raise ModelError(f"{source}: {e}") from None


def decode_audio_file(
    source: Path,
    output: Path,
    *,
    overwrite: bool = False,
    strict: bool = False,
    codec: audio_codec.AudioCodec | None = None,
) -> DecodeReport:
    """Decode the first audio stream to wav/flac/ogg/mp3/m4a at the source rate and length.

    A damaged packet or a missing range loses that audio only: silence stands in for it and
    decoding resumes at the next intact packet. A file cut short decodes up to the cut. What
    was lost is reported, or raised instead with ``strict``. ``codec``: an already loaded
    model (the bench times decoding without loading), used if it is the one the stream names.
    """
    damage: list[FormatError] = []  # the first, which is reported; the rest are counted
    damage_count = 0

    def damaged(error: FormatError) -> None:
        nonlocal damage_count
        if strict:
            raise error
        if not damage:
            damage.append(error)
        damage_count += 1

    with ContainerReader(source, recover=not strict) as reader:
        index = next(i for i, s in enumerate(reader.streams) if s.codec == audio_codec.CODEC_ID)
        stream = reader.streams[index]
        if codec is None or codec.manifest.sha256_bytes != stream.model_sha256:
            codec = _load_codec(audio_codec.AudioCodec, source, index, stream)
        try:
            config = codec.stream_config(stream)
        except BitstreamError as e:
            raise FormatError(source, None, f"stream {index}: {e}") from None
        packet_samples = config.packet_frames * codec.hop  # at the model rate
        length = None
        if reader.has_index:
            summary = reader.summaries()[index]
            length = summary.end_pts
            # What the packets can hold bounds the silence a damaged file is padded with.
            most = summary.packet_count * packet_samples * stream.sample_rate // codec.rate
            if not 0 <= length <= most:
                raise FormatError(
                    source,
                    None,
                    f"index gives stream {index} {length} samples, but its "
                    f"{summary.packet_count} packets hold at most {most}",
                )
        per_tick = Fraction(codec.rate, stream.sample_rate)  # model-rate samples per pts tick

        def unpacked() -> Iterator[tuple[Packet, np.ndarray]]:
            for packet in reader.packets(index, on_damage=damaged):
                try:
                    yield packet, codec.unpack(packet.payload, stream)
                except BitstreamError as e:
                    damaged(FormatError(source, packet.offset, f"audio packet: {e}"))

        with AudioWriter(
            output,
            rate=stream.sample_rate,
            channels=stream.channels,
            source_rate=codec.rate,
            length=length,
            overwrite=overwrite,
            protect=(source,),
        ) as writer:

            def silence(samples: int) -> int:
                """Write ``samples`` of silence, a packet at a time; return how many."""
                for start in range(0, samples, packet_samples):
                    size = min(packet_samples, samples - start)
                    writer.write(np.zeros((stream.channels, size), np.float32))
                return max(samples, 0)

            packets = unpacked()
            pending = next(packets, None)
            written = lost = 0  # model-rate samples: all, and the silence among them
            end_of_last = 0  # file offset after the last intact packet
            while pending is not None:
                # Packets lost before this one: their time (their bytes bound it) is silence.
                packet = pending[0]
                gap = round(packet.pts * per_tick) - written
                if gap <= ((packet.offset - end_of_last) // PACKET_OVERHEAD + 1) * packet_samples:
                    lost += silence(gap)
                    written += max(gap, 0)

                def segment() -> Iterator[np.ndarray]:
                    """Packets up to the next damage, decoded as one run."""
                    nonlocal pending, end_of_last
                    while pending is not None:
                        packet, indices = pending
                        end_of_last = packet.offset + PACKET_OVERHEAD + len(packet.payload)
                        yield indices
                        known = damage_count
                        pending = next(packets, None)
                        if damage_count > known:
                            return

                for block in codec.decode_packets(segment()):
                    writer.write(block)
                    written += block.shape[1]
            if written == lost:
                raise damage[0] if damage else FormatError(source, None, "audio stream is empty")
            if damage and length is not None:  # lost at the end
                lost += silence(round(length * per_tick) - written)
    if not damage:
        return DecodeReport(output, None)
    if not lost:
        return DecodeReport(output, f"{damage[0]} (decoded up to there)")
    return DecodeReport(
        output,
        f"{damage[0]} ({damage_count} damaged part(s): {lost / codec.rate:.2f} s of audio lost, "
        "silence in its place)",
    )


def _decode_image(source: Path, output: Path, overwrite: bool, strict: bool) -> DecodeReport:
    """Decode the first image stream of an .nvc file into any image format Pillow writes.

    The whole stream is read so damage anywhere is noticed; damage around an intact image
    packet (before it, the reader skips to it) is reported (``DecodeReport.damage``) rather
    than fatal, as the image itself is whole, unless ``strict``.
    """
    damage: list[FormatError] = []  # the first, which is reported

    def damaged(error: FormatError) -> None:
        if strict:
            raise error
        if not damage:
            damage.append(error)

    with ContainerReader(source, recover=not strict) as reader:
        try:
            index = next(i for i, s in enumerate(reader.streams) if s.codec == IMAGE_CODEC_ID)
        except StopIteration:
            raise NvcodecError(f"{source}: no stream this nvcodec can decode") from None
        stream = reader.streams[index]
        codec = _load_codec(ImageCodec, source, index, stream)
        packets = reader.packets(index, on_damage=damaged)
        packet = next(packets, None)
        if packet is None:
            raise damage[0] if damage else FormatError(source, None, "image stream has no packet")
        for _ in packets:
            pass
        try:
            decoded = codec.decode(packet.payload)
        except BitstreamError as e:
            raise FormatError(source, packet.offset, f"image packet: {e}") from None
    write_image(output, decoded.pixels, overwrite=overwrite, protect=[source])
    return DecodeReport(output, str(damage[0]) if damage else None)
