"""File-level encode/decode: media files <-> .nvc containers, dispatching on the media kind.

Images are one packet; audio streams through in packets of 10 s, so an hour-long file needs
memory for a few packets only; video (``codecs.video_files``) streams a frame at a time, its
sound beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import av
import numpy as np

from nvcodec.codecs import audio as audio_codec
from nvcodec.codecs.image import CODEC_ID as IMAGE_CODEC_ID
from nvcodec.codecs.image import DEFAULT_MODEL as IMAGE_MODEL
from nvcodec.codecs.image import DEFAULT_QUALITY, ImageCodec
from nvcodec.codecs.tracks import (
    AudioStreamDecoder,
    Damage,
    DecodeReport,
    EncodeReport,
    audio_packets,
    load_codec,
    seconds,
)
from nvcodec.codecs.video import CODEC_ID as VIDEO_CODEC_ID
from nvcodec.codecs.video import DEFAULT_GOP
from nvcodec.codecs.video_files import Progress, decode_video_file, encode_video_file
from nvcodec.container import ContainerReader, ContainerWriter, Packet
from nvcodec.errors import BitstreamError, FormatError, NvcodecError
from nvcodec.io.audio import AUDIO_SUFFIXES, AudioReader, AudioWriter
from nvcodec.io.image import IMAGE_SUFFIXES, read_image, write_image
from nvcodec.io.video import VIDEO_SUFFIXES


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


def media_kind(source: Path) -> Literal["image", "audio", "video"]:
    """What :func:`encode_file` codes ``source`` as: an image by its extension; a video if it
    is a folder (of frames) or a file with a video stream that is not cover art; else audio.
    A file PyAV cannot open goes by its extension, so its reader says what is wrong."""
    if source.suffix.lower() in IMAGE_SUFFIXES:
        return "image"
    if source.is_dir():
        return "video"
    try:
        with av.open(str(source)) as container:
            streams = container.streams.video
            video = any(not s.disposition & av.stream.Disposition.attached_pic for s in streams)
    except (av.error.FFmpegError, UnicodeDecodeError):
        video = source.suffix.lower() in VIDEO_SUFFIXES
    return "video" if video else "audio"


def encode_file(
    source: Path,
    output: Path,
    *,
    quality: int | None = None,
    target_bpp: float | None = None,
    bitrate: int | None = None,
    audio_bitrate: int | None = None,
    gop: int | None = None,
    audio_only: bool = False,
    model_id: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> EncodeReport:
    """Encode an image, audio or video file into an .nvc container (by :func:`media_kind`).

    ``bitrate`` (bits/s) is a video's target, or an audio file's rate (1.5k, 3k, 6k or 12k
    per channel, as ``audio_bitrate`` is, a video's sound's); ``audio_only`` codes a video's
    sound alone. ``model_id`` names the image, audio or video model; ``progress`` is called
    after each video frame.
    """
    kind = "audio" if audio_only else media_kind(source)
    if gop is not None and kind != "video":
        raise NvcodecError(f"{source}: --gop is for video")
    if kind == "image":
        if bitrate is not None or audio_bitrate is not None:
            raise NvcodecError(f"{source}: --bitrate is for audio; use --quality or --bpp")
        return _encode_image(source, output, quality, target_bpp, model_id, overwrite)
    if kind == "video":
        if target_bpp is not None:
            raise NvcodecError(f"{source}: --bpp is for images; use --quality or --bitrate")
        if quality is not None and bitrate is not None:
            raise NvcodecError(f"{source}: give --quality or --bitrate, not both")
        return encode_video_file(
            source,
            output,
            quality=quality,
            bitrate=bitrate,
            gop=gop or DEFAULT_GOP,
            audio_bitrate=audio_bitrate or audio_codec.DEFAULT_BITRATE,
            model_id=model_id,
            overwrite=overwrite,
            progress=progress,
        )
    if quality is not None or target_bpp is not None:
        raise NvcodecError(f"{source}: --quality/--bpp are for images; use --bitrate for audio")
    if bitrate is not None and audio_bitrate is not None:
        raise NvcodecError(f"{source}: give --bitrate or --audio-bitrate, not both")
    return encode_audio_file(
        source,
        output,
        bitrate=bitrate or audio_bitrate or audio_codec.DEFAULT_BITRATE,
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
        with ContainerWriter(output, [stream], overwrite=overwrite, protect=[source]) as writer:
            for packet in audio_packets(source, codec, reader, codebooks, 0):
                writer.write(packet)
        duration = reader.samples_read / reader.rate
    size = output.stat().st_size
    kbps = size * 8 / max(duration, 1e-9) / 1000
    return EncodeReport(
        output,
        size,
        f"{bitrate / 1000:g}k ({codebooks} codebooks)",
        f"{kbps:.2f} kb/s (whole file)",
    )


def decode_file(
    source: Path,
    output: Path,
    *,
    overwrite: bool = False,
    strict: bool = False,
    start: float | None = None,
    duration: float | None = None,
    lossless: bool = False,
    progress: Progress | None = None,
) -> DecodeReport:
    """Decode an .nvc file: a video with its sound (or, to an audio extension, its sound
    alone); else its first stream this nvcodec knows (image or audio).

    ``start``/``duration`` (seconds) cut a range of a video or audio; ``lossless`` asks for a
    bit-exact video output (see ``video_files.video_encoding``). Damage after what could be
    decoded is reported in the result; ``strict`` raises it instead (and writes nothing).
    """
    if duration is not None and not duration > 0:
        raise NvcodecError(f"--duration must be positive, got {duration}")
    if start is not None and not start >= 0:
        raise NvcodecError(f"--start must be 0 or more, got {start}")
    with ContainerReader(source, recover=True) as reader:
        codecs = [s.codec for s in reader.streams]
    to_audio = output.suffix.lower() in AUDIO_SUFFIXES
    if VIDEO_CODEC_ID in codecs and to_audio and audio_codec.CODEC_ID not in codecs:
        raise NvcodecError(f"{source}: the video has no sound to write to {output}")
    if VIDEO_CODEC_ID in codecs and not to_audio:
        return decode_video_file(
            source,
            output,
            start=start,
            duration=duration,
            lossless=lossless,
            overwrite=overwrite,
            strict=strict,
            progress=progress,
        )
    if lossless:
        raise NvcodecError(f"{output}: --lossless-out is for video outputs")
    if audio_codec.CODEC_ID in codecs and (to_audio or IMAGE_CODEC_ID not in codecs):
        return decode_audio_file(
            source, output, overwrite=overwrite, strict=strict, start=start, duration=duration
        )
    if start is not None or duration is not None:
        raise NvcodecError(f"{source}: --start/--duration are for video and audio")
    return _decode_image(source, output, overwrite, strict)


def decode_audio_file(
    source: Path,
    output: Path,
    *,
    overwrite: bool = False,
    strict: bool = False,
    start: float | None = None,
    duration: float | None = None,
    codec: audio_codec.AudioCodec | None = None,
) -> DecodeReport:
    """Decode the first audio stream to wav/flac/ogg/mp3/m4a at the source rate and length
    (or the ``duration`` seconds from ``start``).

    A damaged packet or a missing range loses that audio only: silence stands in for it and
    decoding resumes at the next intact packet. A file cut short decodes up to the cut. What
    was lost is reported, or raised instead with ``strict``. ``codec``: an already loaded
    model (the bench times decoding without loading), used if it is the one the stream names.
    """
    damage = Damage(strict)
    with ContainerReader(source, recover=not strict) as reader:
        try:
            index = next(i for i, s in enumerate(reader.streams) if s.codec == audio_codec.CODEC_ID)
        except StopIteration:
            raise NvcodecError(f"{source}: no audio stream to decode") from None
        track = AudioStreamDecoder(source, reader, index, damage, codec)
        rate = track.stream.sample_rate
        first = 0 if start is None else round(seconds(start) * rate)
        end = track.length
        if duration is not None:
            limit = first + round(seconds(duration) * rate)
            end = limit if end is None else min(end, limit)
        if end is not None and first >= end:
            raise NvcodecError(f"{source}: --start {start} is at or past the end of the audio")
        with AudioWriter(
            output,
            rate=rate,
            channels=track.stream.channels,
            source_rate=track.codec.rate,
            length=None if end is None else end - first,
            overwrite=overwrite,
            protect=(source,),
        ) as writer:
            for block in track.blocks(first, end):
                writer.write(block)
            if track.written == track.lost:
                raise damage.first or FormatError(source, None, "audio stream is empty")
    if damage.first is None:
        return DecodeReport(output, None)
    if not track.lost:
        return DecodeReport(output, f"{damage.first} (decoded up to there)")
    return DecodeReport(
        output,
        f"{damage.first} ({damage.count} damaged part(s): {track.lost / track.codec.rate:.2f} s "
        "of audio lost, silence in its place)",
    )


def _decode_image(source: Path, output: Path, overwrite: bool, strict: bool) -> DecodeReport:
    """Decode the first image stream of an .nvc file into any image format Pillow writes.

    The whole stream is read so damage anywhere is noticed; damage around an intact image
    packet (before it, the reader skips to it) is reported (``DecodeReport.damage``) rather
    than fatal, as the image itself is whole, unless ``strict``.
    """
    damage = Damage(strict)
    with ContainerReader(source, recover=not strict) as reader:
        try:
            index = next(i for i, s in enumerate(reader.streams) if s.codec == IMAGE_CODEC_ID)
        except StopIteration:
            raise NvcodecError(f"{source}: no stream this nvcodec can decode") from None
        stream = reader.streams[index]
        codec = load_codec(ImageCodec, source, index, stream)
        packets = reader.packets(index, on_damage=damage)
        packet = next(packets, None)
        if packet is None:
            raise damage.first or FormatError(source, None, "image stream has no packet")
        for _ in packets:
            pass
        try:
            decoded = codec.decode(packet.payload)
        except BitstreamError as e:
            raise FormatError(source, packet.offset, f"image packet: {e}") from None
    write_image(output, decoded.pixels, overwrite=overwrite, protect=[source])
    return DecodeReport(output, None if damage.first is None else str(damage.first))
