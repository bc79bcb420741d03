"""What the file-level paths share (``codecs.files`` for images and audio, ``codecs.video_files``
for video with sound): reports, damage bookkeeping, model loading, and an audio stream's
packets both ways, so an audio file and a video's soundtrack are coded the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TypeVar

import numpy as np

from nvcodec.codecs.audio import AudioCodec
from nvcodec.codecs.image import ImageCodec
from nvcodec.codecs.video import VideoCodec
from nvcodec.container import ContainerReader, Packet, StreamInfo, StreamSummary
from nvcodec.container.format import PACKET_MIN_OVERHEAD, packet_size
from nvcodec.errors import BitstreamError, FormatError, ModelError, NvcodecError
from nvcodec.io.audio import AudioReader

_Codec = TypeVar("_Codec", ImageCodec, AudioCodec, VideoCodec)


@dataclass(frozen=True)
class EncodeReport:
    output: Path
    bytes: int
    setting: str  # what was chosen: "quality 3", "6k (8 codebooks)"
    rate: str  # what it cost, whole file: "0.3290 bpp", "5.21 kb/s"


@dataclass(frozen=True)
class DecodeReport:
    output: Path
    damage: str | None  # what was wrong in the file after the packet that was decoded
    note: str | None = None  # what the output leaves out by its nature (sound in a .y4m)


def load_codec(codec: type[_Codec], source: Path, number: int, stream: StreamInfo) -> _Codec:
    """The model a stream names, or a ModelError naming the file that needs it."""
    if not stream.model_id:
        raise ModelError(f"{source}: stream {number} does not name the model it was coded with")
    try:
        return codec.load(stream.model_id, expected_sha256=stream.model_sha256 or None)
    except ModelError as e:
        raise ModelError(f"{source}: {e}") from None


class Damage:
    """The damage one walk over a file meets, as the reader's ``on_damage`` callback: the first
    error (what is reported) and a count (a file of many damaged packets keeps no error object
    for each). With ``strict`` the first one is raised instead."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.first: FormatError | None = None
        self.count = 0

    def __call__(self, error: FormatError) -> None:
        if self.strict:
            raise error
        if self.first is None:
            self.first = error
        self.count += 1


def packets_held(reader: ContainerReader, summary: StreamSummary) -> int:
    """How many packets the index says a stream has, bounded by what the file can hold (each
    takes PACKET_MIN_OVERHEAD bytes at least): filling in for lost packets then never takes longer
    than reading the file would, whatever a hostile index declares."""
    return min(summary.packet_count, (reader.file_size or 0) // PACKET_MIN_OVERHEAD)


def seconds(value: float) -> Fraction:
    """A time given in seconds, exact as written (0.4 is 2/5, not the float's binary value)."""
    return Fraction(repr(value))


def audio_packets(
    source: Path, codec: AudioCodec, reader: AudioReader, codebooks: int, stream: int
) -> Iterator[Packet]:
    """The packets of ``reader``'s audio as stream ``stream``, coded as it is read.

    Packet pts and durations count samples at the source rate; the last packet ends at the
    exact source length, which decode restores.
    """
    scale = Fraction(reader.rate * codec.hop, codec.rate)  # source samples per frame

    def packet(payload: bytes, start: Fraction | int, end: Fraction | int) -> Packet:
        pts = round(start)
        return Packet(stream, pts, round(end) - pts, keyframe=True, payload=payload)

    # (first frame, payload) of the packets not yet given out. Two are held back: the last may
    # hold only padding frames past the source's end, and both then get times clamped to the
    # exact length, known only at the end of the input.
    held: list[tuple[int, bytes]] = []
    frame = 0
    try:
        for indices in codec.encode_blocks(reader.blocks(codec.rate), codebooks):
            held.append((frame, codec.pack(indices)))
            frame += indices.shape[1]
            if len(held) == 3:
                (start, payload), (following, _) = held[0], held[1]
                yield packet(payload, start * scale, following * scale)
                del held[0]
    except NvcodecError as e:
        raise NvcodecError(f"{source}: {e}") from None
    length = reader.samples_read
    bounds = [min(round(start * scale), length) for start, _ in held] + [length]
    for (_, payload), pts, end in zip(held, bounds, bounds[1:], strict=False):
        yield packet(payload, pts, end)


class AudioStreamDecoder:
    """One audio stream of an open .nvc file as blocks at the model rate, in time.

    A damaged packet or a missing range loses that audio only: silence stands in for it
    (``lost`` counts it) and decoding resumes at the next intact packet; damage that loses no
    audio (in another stream's packet) does not interrupt it. ``length`` is the stream's
    length in source samples, when the file's index gives it. ``codec``: an already loaded
    model, used if it is the one the stream names.
    """

    def __init__(
        self,
        source: Path,
        reader: ContainerReader,
        index: int,
        damage: Damage,
        codec: AudioCodec | None = None,
    ) -> None:
        self.source, self.reader, self.index, self.damage = source, reader, index, damage
        self.stream = stream = reader.streams[index]
        if codec is None or codec.manifest.sha256_bytes != stream.model_sha256:
            codec = load_codec(AudioCodec, source, index, stream)
        self.codec = codec
        try:
            config = codec.stream_config(stream)
        except BitstreamError as e:
            raise FormatError(source, None, f"stream {index}: {e}") from None
        self.packet_samples = config.packet_frames * codec.hop  # at the model rate
        self.per_tick = Fraction(codec.rate, stream.sample_rate)  # model samples per pts tick
        self.length: int | None = None
        if reader.has_index:
            summary = reader.summaries()[index]
            self.length = summary.end_pts
            # What the packets can hold bounds the silence a damaged file is padded with.
            packets = packets_held(reader, summary)
            most = packets * self.packet_samples * stream.sample_rate // codec.rate
            if not 0 <= self.length <= most:
                raise FormatError(
                    source,
                    None,
                    f"index gives stream {index} {self.length} samples, but its "
                    f"{packets} packets hold at most {most}",
                )
        self.written = self.lost = 0  # model-rate samples given out, and the silence among them

    def blocks(self, start: int = 0, end: int | None = None) -> Iterator[np.ndarray]:
        """(channels, n) float32 blocks of source samples ``start`` to ``end`` (default: the
        stream's end), at the model rate; decoding starts a packet early, for its context."""
        end = self.length if end is None else end
        first = round(start * self.per_tick)
        last = None if end is None else round(end * self.per_tick)
        if start > 0:
            packet_ticks = int(self.packet_samples / self.per_tick)
            packets = self.reader.seek(
                self.index, max(0, start - packet_ticks - 1), on_damage=self.damage
            )
        else:
            packets = self.reader.packets(self.index, on_damage=self.damage)
        position = first
        for at, block, silent in self._timeline(packets, first):
            low, high = max(first - at, 0), block.shape[1]
            if last is not None:
                high = min(high, last - at)
                if high <= 0:
                    break
            if low < high:
                yield block[:, low:high]
                self.written += high - low
                self.lost += (high - low) * silent
                position = at + high
        if self.damage.count and last is not None and position < last:  # lost at the end
            for block in self._silence(last - position):
                yield block
                self.written += block.shape[1]
                self.lost += block.shape[1]

    def _timeline(
        self, packets: Iterator[Packet], first: int
    ) -> Iterator[tuple[int, np.ndarray, bool]]:
        """(model-rate position, block, whether it is silence) from the first packet on."""

        def unpacked() -> Iterator[tuple[Packet, np.ndarray]]:
            for packet in packets:
                try:
                    yield packet, self.codec.unpack(packet.payload, self.stream)
                except BitstreamError as e:
                    self.damage(FormatError(self.source, packet.offset, f"audio packet: {e}"))

        decoded = unpacked()
        pending = next(decoded, None)
        position: int | None = None
        end_of_last = 0  # file offset after the last intact packet
        while pending is not None:
            # Packets lost before this one: their time (their bytes bound it) is silence.
            packet = pending[0]
            at = round(packet.pts * self.per_tick)
            position = min(at, first) if position is None else position
            gap = at - position
            if (
                0
                < gap
                <= ((packet.offset - end_of_last) // PACKET_MIN_OVERHEAD + 1)
                * (self.packet_samples)
            ):
                for block in self._silence(gap):
                    yield position, block, True
                    position += block.shape[1]

            def segment() -> Iterator[np.ndarray]:
                """Packets up to the next loss, decoded as one run (no seam)."""
                nonlocal pending, end_of_last
                while pending is not None:
                    packet, indices = pending
                    end_of_last = packet.offset + packet_size(packet.header)
                    yield indices
                    known = self.damage.count
                    pending = next(decoded, None)
                    if self.damage.count > known and (
                        pending is None or pending[0].pts != packet.pts + packet.duration
                    ):
                        return

            for block in self.codec.decode_packets(segment()):
                yield position, block, False
                position += block.shape[1]

    def _silence(self, samples: int) -> Iterator[np.ndarray]:
        """``samples`` of silence, a packet at a time."""
        for start in range(0, samples, self.packet_samples):
            size = min(self.packet_samples, samples - start)
            yield np.zeros((self.stream.channels, size), np.float32)
