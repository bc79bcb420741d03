"""Video files <-> .nvc: frames through the video codec (stream 0), the soundtrack (if any)
through the audio codec (stream 1), packets interleaved in time order.

Both directions stream: encoding holds a frame and a few audio packets, decoding a frame and
an audio packet or two, whatever the length. Stream 0 counts time in frames (time base
1 / frame rate, one packet per frame, pts = frame number); stream 1 in source samples.

Damage: a damaged or missing video packet loses its frame and, as later frames predict from
it, the rest of its group of frames; each lost frame is replaced by the last good one (black
before the first), so the frame count and the sync with the sound stay intact, and decoding
resumes at the next key frame. Lost audio becomes silence. ``strict`` fails instead.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from fractions import Fraction
from itertools import islice
from pathlib import Path

import numpy as np

from nvcodec.codecs import audio as audio_codec
from nvcodec.codecs.tracks import (
    AudioStreamDecoder,
    Damage,
    DecodeReport,
    EncodeReport,
    audio_packets,
    load_codec,
    packets_held,
    seconds,
)
from nvcodec.codecs.video import (
    CODEC_ID,
    DEFAULT_GOP,
    DEFAULT_MODEL,
    DEFAULT_QUALITY,
    CodedFrame,
    VideoCodec,
    VideoEncoder,
)
from nvcodec.container import ContainerReader, ContainerWriter, Packet
from nvcodec.container.format import PACKET_MIN_OVERHEAD, packet_size
from nvcodec.errors import BitstreamError, FormatError, NvcodecError
from nvcodec.io.audio import AudioReader
from nvcodec.io.video import (
    WRITERS,
    Soundtrack,
    VideoEncoding,
    VideoReader,
    rate_fraction,
    write_video,
)
from nvcodec.utils.files import check_target
from nvcodec.utils.memory import release_free_memory

Progress = Callable[[int, int | None], None]  # (frames done, frames in all when known)
# Decoding to .mkv writes H.264 (as .mp4) unless the output is to be lossless (FFV1).
_H264_MKV = replace(WRITERS[".mp4"], container="matroska", audio=WRITERS[".mkv"].audio)


def parse_video_bitrate(text: str) -> int:
    """'600k', '1.5M', '800000' -> bits/s (positive)."""
    scale = {"k": 1000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    try:
        value = float(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        value = 0.0
    if not 0 < value < 1e12:
        raise NvcodecError(f"--bitrate must be a rate like 600k or 1.5M, got {text!r}")
    return round(value)


# Encoding -------------------------------------------------------------------------------------


def encode_video_file(
    source: Path,
    output: Path,
    *,
    quality: int | None = None,
    bitrate: int | None = None,
    gop: int = DEFAULT_GOP,
    audio_bitrate: int = audio_codec.DEFAULT_BITRATE,
    model_id: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> EncodeReport:
    """Encode a video file (any PyAV reads) or a folder of frames, with its first audio track.

    ``quality`` is the level (default: the codec's); ``bitrate`` (bits/s) picks the highest
    level whose first group of ``gop`` frames fits it instead. ``audio_bitrate`` is the
    soundtrack's, per channel (1.5k, 3k, 6k or 12k).
    """
    codec = VideoCodec.load(model_id or DEFAULT_MODEL)
    if quality is not None and not 0 <= quality < codec.qualities:
        raise NvcodecError(f"--quality must be 0..{codec.qualities - 1}, got {quality}")
    if gop < 1:
        raise NvcodecError(f"--gop must be at least 1, got {gop}")
    check_target(output, overwrite, [source])  # before rate control's minutes, not after
    with ExitStack() as stack:
        reader = stack.enter_context(VideoReader(source))
        info = reader.info
        frame_rate = rate_fraction(info.rate)
        if frame_rate <= 0:
            raise NvcodecError(f"{source}: frame rate {info.rate} is too low (under 1/1001)")
        streams = [codec.stream_info(info.height, info.width, frame_rate, 1 / frame_rate)]
        if bitrate is not None:
            quality, encoder, probed, probe_rate = _rate_controlled(
                codec, source, frame_rate, gop, bitrate
            )
            setting = (
                f"quality {quality} (for {bitrate / 1000:g} kb/s: {probe_rate / 1000:.1f} kb/s "
                f"on the first {len(probed)} frames)"
            )
        else:
            quality = DEFAULT_QUALITY if quality is None else quality
            encoder, probed, setting = codec.encoder(quality, gop), [], f"quality {quality}"
        setting += f", key frame every {gop}"
        packets: Iterator[Packet] = _video_packets(source, reader, encoder, probed, progress)
        if reader.has_audio:
            audio_reader = stack.enter_context(AudioReader(source))
            sound = audio_codec.AudioCodec.load()
            codebooks = sound.codebooks_for(audio_bitrate)
            streams.append(
                sound.stream_info(audio_reader.rate, audio_reader.channels, 0, codebooks)
            )
            packets = heapq.merge(
                packets,
                audio_packets(source, sound, audio_reader, codebooks, 1),
                key=lambda packet: packet.pts * streams[packet.stream].time_base,
            )
            setting += f", audio {audio_bitrate / 1000:g}k ({codebooks} codebooks)"
        frames = 0
        with ContainerWriter(output, streams, overwrite=overwrite, protect=[source]) as writer:
            for packet in packets:
                writer.write(packet)
                frames += packet.stream == 0
    size = output.stat().st_size
    duration = frames / frame_rate
    return EncodeReport(
        output,
        size,
        setting,
        f"{size * 8 / float(duration) / 1000:.1f} kb/s (whole file), {frames} frames, "
        f"{float(duration):.2f} s",
    )


def _rate_controlled(
    codec: VideoCodec, source: Path, frame_rate: Fraction, gop: int, bitrate: int
) -> tuple[int, VideoEncoder, list[CodedFrame], float]:
    """The highest level whose first ``gop`` frames (read afresh for each level tried) fit
    ``bitrate``, container overhead included; the lowest if none does. Returns it with its
    encoder and coded frames (the encode goes on from them) and their rate (bits/s)."""
    low, high = 0, codec.qualities - 1
    best = None
    while low <= high:
        middle = (low + high) // 2
        encoder = codec.encoder(middle, gop)
        with VideoReader(source) as probe:
            coded = [_encoded(source, encoder, frame) for frame in islice(probe, gop)]
        if not coded:
            raise NvcodecError(f"{source}: video has no frames")
        bits = 8 * sum(
            packet_size(Packet(0, number, 1, c.keyframe, c.payload).header)
            for number, c in enumerate(coded)
        )
        tried = (middle, encoder, coded, float(bits * frame_rate / len(coded)))
        if tried[3] <= bitrate:
            best, low = tried, middle + 1
        else:
            high = middle - 1
    # When no level fits, the search ended by trying level 0: that is the answer.
    return best or tried


def _encoded(source: Path, encoder: VideoEncoder, frame: np.ndarray) -> CodedFrame:
    try:
        return encoder.encode(frame)
    except ValueError as e:  # the video itself is unsuitable (too large, size changes)
        raise NvcodecError(f"{source}: {e}") from None


def _video_packets(
    source: Path,
    reader: VideoReader,
    encoder: VideoEncoder,
    probed: list[CodedFrame],
    progress: Progress | None,
) -> Iterator[Packet]:
    """Stream 0's packets: the frames already coded by rate control, then the rest."""
    frames = iter(reader)
    number = 0
    for coded in probed:
        next(frames)  # coded already
        yield Packet(0, number, 1, coded.keyframe, coded.payload)
        number += 1
        if progress is not None:
            progress(number, reader.info.frames)
    for frame in frames:
        coded = _encoded(source, encoder, frame)
        release_free_memory()  # a frame's temporaries, before the next frame's
        yield Packet(0, number, 1, coded.keyframe, coded.payload)
        number += 1
        if progress is not None:
            progress(number, reader.info.frames)
    if number == 0:
        raise NvcodecError(f"{source}: video has no frames")


# Decoding -------------------------------------------------------------------------------------


def video_encoding(output: Path, lossless: bool) -> VideoEncoding | None:
    """How ``output`` is written: .mp4 H.264 (CRF 16) + AAC; .mkv H.264 + FLAC, or with
    ``lossless`` FFV1 (the decoded RGB frames exactly) + FLAC; .y4m raw 4:2:0; no suffix a
    folder of PNG frames (None). y4m and folders carry no sound."""
    suffix = output.suffix.lower()
    if not suffix:
        return None
    if suffix not in WRITERS:
        raise NvcodecError(
            f"{output}: unknown video extension (use .mp4, .mkv, .y4m, no suffix for a folder "
            "of PNG frames, or an audio extension for the sound alone)"
        )
    if lossless and suffix != ".mkv":
        raise NvcodecError(
            f"{output}: --lossless-out writes FFV1 in .mkv (or give a folder name for PNGs)"
        )
    return WRITERS[suffix] if lossless or suffix != ".mkv" else _H264_MKV


def decode_video_file(
    source: Path,
    output: Path,
    *,
    start: float | None = None,
    duration: float | None = None,
    lossless: bool = False,
    overwrite: bool = False,
    strict: bool = False,
    progress: Progress | None = None,
) -> DecodeReport:
    """Decode the video stream (and the first audio stream, in sync) of an .nvc file.

    ``start``/``duration`` (seconds) cut a range: decoding starts at the key frame at or
    before ``start`` (found through the index), and the output begins with the first frame at
    or after it; the sound is cut to the same frames' time. The output format follows
    :func:`video_encoding`. Damage is handled as the module says, and reported.
    """
    encoding = video_encoding(output, lossless)
    video_damage, audio_damage = Damage(strict), Damage(strict)
    with ContainerReader(source, recover=not strict) as reader:
        index = next(i for i, s in enumerate(reader.streams) if s.codec == CODEC_ID)
        video = VideoStreamDecoder(source, reader, index, video_damage)
        first = 0 if start is None else math.ceil(seconds(start) * video.frame_rate)
        stop = (
            None
            if duration is None
            else math.ceil((seconds(start or 0) + seconds(duration)) * video.frame_rate)
        )
        if video.frames is not None and first >= video.frames:
            raise NvcodecError(
                f"{source}: --start {start} is at or past the end of the video "
                f"({float(video.frames / video.frame_rate):.3f} s)"
            )
        audio_index = next(
            (i for i, s in enumerate(reader.streams) if s.codec == audio_codec.CODEC_ID), None
        )
        with ExitStack() as stack:
            sound, soundtrack = None, None
            if audio_index is not None and encoding is not None and encoding.audio is not None:
                audio_reader = stack.enter_context(
                    ContainerReader(source, recover=not strict)
                )  # a walk of its own: the sound is read as far ahead as the frames need it
                sound = AudioStreamDecoder(source, audio_reader, audio_index, audio_damage)
                rate = sound.stream.sample_rate
                begin = round(first / video.frame_rate * rate)
                end = sound.length
                if stop is not None:
                    limit = round(stop / video.frame_rate * rate)
                    end = limit if end is None else min(end, limit)
                if end is None or end > begin:
                    soundtrack = Soundtrack(
                        sound.blocks(begin, end),
                        rate=rate,
                        channels=sound.stream.channels,
                        source_rate=sound.codec.rate,
                        length=None if end is None else end - begin,
                    )
            write_video(
                output,
                video.frames_in(first, stop, progress),
                video.frame_rate,
                encoding=encoding,
                soundtrack=soundtrack,
                overwrite=overwrite,
                protect=(source,),
            )
    lost = []
    if video.lost:
        lost.append(
            f"{video.lost} of {video.written} frames lost, each replaced by the last good one "
            "(black before the first)"
        )
    if sound is not None and sound.lost:
        lost.append(f"{sound.lost / sound.codec.rate:.2f} s of audio lost, silence in its place")
    note = None
    if audio_index is not None and soundtrack is None:
        note = (
            f"sound not written: {output.suffix or 'a folder of frames'} carries none"
            if sound is None
            else "no sound in this range"
        )
    first_damage = video_damage.first or audio_damage.first
    if first_damage is None:
        return DecodeReport(output, None, note)
    if not lost:  # with the index, every frame is accounted for; without, the end is unknown
        lost.append("nothing lost" if video.frames is not None else "decoded up to there")
    return DecodeReport(output, f"{first_damage} ({'; '.join(lost)})", note)


class VideoStreamDecoder:
    """The video stream of an open .nvc file as frames, lost ones replaced (module doc).

    ``frames`` is the stream's frame count when the file's index gives it; ``written`` and
    ``lost`` count the frames given out and the replacements among them.
    """

    def __init__(self, source: Path, reader: ContainerReader, index: int, damage: Damage) -> None:
        self.source, self.reader, self.index, self.damage = source, reader, index, damage
        stream = reader.streams[index]
        rate = stream.frame_rate
        # Rates as the encoder writes them (rate_fraction's), so writers take them too.
        if rate is None or rate != rate_fraction(rate) or stream.time_base != 1 / rate:
            raise FormatError(
                source,
                None,
                f"video stream {index} has time base {stream.time_base} and frame rate {rate}: "
                "the time base must be one frame, the rate a fraction over 1001 at most",
            )
        self.frame_rate = stream.frame_rate
        self.codec = load_codec(VideoCodec, source, index, stream)
        try:
            self.decoder = self.codec.decoder(stream.height, stream.width)
        except BitstreamError as e:
            raise FormatError(source, None, f"stream {index}: {e}") from None
        self.frames: int | None = None
        if reader.has_index:
            summary = reader.summaries()[index]
            most = packets_held(reader, summary)  # one packet a frame
            if not 0 <= summary.end_pts <= most:
                raise FormatError(
                    source,
                    None,
                    f"index gives video stream {index} {summary.end_pts} frames, but it can "
                    f"hold at most {most}",
                )
            self.frames = summary.end_pts
        self.written = self.lost = 0

    def frames_in(
        self, first: int = 0, stop: int | None = None, progress: Progress | None = None
    ) -> Iterator[np.ndarray]:
        """(H, W, 3) uint8 frames ``first`` to ``stop`` (default: the stream's end); decoding
        starts at the key frame at or before ``first``."""
        stop = self.frames if stop is None else min(stop, self.frames or stop)
        if first:
            packets = self.reader.seek(self.index, first, on_damage=self.damage)
        else:
            packets = self.reader.packets(self.index, on_damage=self.damage)
        stream = self.reader.streams[self.index]
        last = np.zeros((stream.height, stream.width, 3), np.uint8)  # until a frame is decoded
        decoded_any = False
        position: int | None = None  # the frame the next packet should hold
        broken = False  # a frame was lost: inter frames fail until a key frame

        def emit(count: int, lost: bool) -> Iterator[np.ndarray]:
            """``last`` as the next ``count`` frames, decoded or standing in for lost ones;
            only those in range are given out (so a long gap out of range costs nothing)."""
            nonlocal position
            assert position is not None
            high = position + count if stop is None else min(position + count, stop)
            for _ in range(max(0, high - max(position, first))):
                self.written += 1
                self.lost += lost
                if progress is not None:
                    progress(self.written, None if stop is None else stop - first)
                yield last
            position += count

        known = self.damage.count  # damage met before the packet in hand
        for packet in packets:
            if position is None:
                position = min(packet.pts, first)
            if stop is not None and position >= stop:
                break
            gap = packet.pts - position
            # Each frame before this one has a packet before it, of PACKET_MIN_OVERHEAD bytes at
            # least: a pts past that is false (and must not make us write frames for ever).
            if gap < 0 or packet.pts * PACKET_MIN_OVERHEAD > packet.offset:
                self.damage(
                    FormatError(
                        self.source,
                        packet.offset,
                        f"video packet for frame {packet.pts} where frame {position} was due",
                    )
                )
                known = self.damage.count
                continue
            if gap:  # packets lost
                if self.damage.count == known:  # cut out cleanly: nothing else reported it
                    self.damage(
                        FormatError(
                            self.source,
                            packet.offset,
                            f"video frames {position} to {packet.pts - 1} are missing",
                        )
                    )
                yield from emit(gap, lost=True)
                self.decoder.reset()
                broken = True
            if broken and not packet.keyframe:  # the frame it predicts from is lost
                yield from emit(1, lost=True)
            else:
                try:
                    last = self.decoder.decode(packet.payload)
                    release_free_memory()
                    decoded_any, broken = True, False
                except BitstreamError as e:
                    self.damage(FormatError(self.source, packet.offset, f"video packet: {e}"))
                    self.decoder.reset()
                    broken = True
                yield from emit(1, lost=broken)
            known = self.damage.count
        if position is None:
            position = first
        if self.damage.count and stop is not None and position < stop:  # lost at the end
            yield from emit(stop - position, lost=True)
        if not decoded_any:
            raise self.damage.first or FormatError(self.source, None, "video stream is empty")
