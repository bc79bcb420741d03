"""Audio files <-> float32 arrays through PyAV (FFmpeg): wav, flac, mp3, ogg, m4a, video tracks.

Arrays are (channels, samples) float32 in [-1, 1]. ``AudioReader`` streams blocks (optionally
resampled on the fly) so an hour of audio never sits in memory; ``AudioWriter`` streams blocks
out, resampling to the file's rate and cutting or padding to an exact length. ``read_audio``,
``resample`` and ``write_audio`` are the whole-array conveniences on top.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from nvcodec.errors import NvcodecError
from nvcodec.utils.files import atomic_output

# Output container per extension for AudioWriter: (container format, codec, sample format).
_WRITERS = {
    ".wav": ("wav", "pcm_s16le", "s16"),
    ".flac": ("flac", "flac", "s16"),
    ".ogg": ("ogg", "libopus", "flt"),
    ".opus": ("ogg", "libopus", "flt"),
    ".mp3": ("mp3", "libmp3lame", "fltp"),
    ".m4a": ("ipod", "aac", "fltp"),
}
AUDIO_SUFFIXES = frozenset(_WRITERS) | {".aac", ".wma", ".aif", ".aiff"}


@dataclass(frozen=True)
class Audio:
    """Samples (channels, n) float32 and their rate in Hz."""

    samples: np.ndarray
    rate: int

    @property
    def channels(self) -> int:
        return self.samples.shape[0]

    @property
    def duration(self) -> float:
        return self.samples.shape[1] / self.rate


# Channel counts nvcodec reads and writes: FFmpeg has default layouts for 1-8, 10, 12, 14, 16
# and 24 channels, but PyAV 18.1 cannot build frames of 8 or more (AudioFrame.from_ndarray
# indexes past the array: IndexError; a packed 8-channel frame crashes its resampler), so
# 1-7 (up to 6.1 surround) it is; the fuzzer found the 14-channel case.
LAYOUT_CHANNELS = frozenset(range(1, 8))


def _layout(channels: int) -> av.AudioLayout:
    if channels not in LAYOUT_CHANNELS:
        raise NvcodecError(
            f"{channels} audio channels: nvcodec handles 1 to {max(LAYOUT_CHANNELS)}"
        )
    return av.AudioLayout({1: "mono", 2: "stereo"}.get(channels, f"{channels}c"))


def _frame(samples: np.ndarray, rate: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples, dtype=np.float32), format="fltp", layout=_layout(len(samples))
    )
    frame.sample_rate = rate
    return frame


class AudioReader:
    """The first audio stream of a file, decoded block by block.

    ``rate`` and ``channels`` are the stream's own; ``samples_read`` counts samples at that
    rate, so a caller resampling on the fly still knows the exact original length. In MP4/MOV
    the stream's duration (its edit list) is exact, and decoding stops there: AAC decoders
    otherwise give the padding of the last frame too (up to 1024 samples).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._container = av.open(str(self.path))
        except (av.error.FFmpegError, UnicodeDecodeError) as error:
            raise NvcodecError(f"{self.path}: not a readable audio file ({error})") from None
        if not self._container.streams.audio:
            self._container.close()
            raise NvcodecError(f"{self.path}: no audio stream")
        self._stream = self._container.streams.audio[0]
        self.rate: int = self._stream.codec_context.sample_rate
        self.channels: int = self._stream.codec_context.channels
        if self.channels not in LAYOUT_CHANNELS:
            self._container.close()
            raise NvcodecError(
                f"{self.path}: {self.channels} audio channels (nvcodec reads 1 to "
                f"{max(LAYOUT_CHANNELS)})"
            )
        self.samples_read = 0
        self._length: int | None = None
        stream = self._stream
        if _EXACT_DURATION & set(self._container.format.name.split(",")) and stream.duration:
            self._length = round(stream.duration * stream.time_base * self.rate)

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self._container.close()

    def blocks(self, rate: int | None = None) -> Iterator[np.ndarray]:
        """(channels, n) float32 blocks, resampled to ``rate`` when given."""
        target = rate or self.rate
        resampler = None
        try:
            for frame in self._container.decode(self._stream):
                if self._length is not None and self.samples_read + frame.samples > self._length:
                    frame = _cut(frame, self._length - self.samples_read)
                    if frame is None:
                        break
                self.samples_read += frame.samples
                if resampler is None:
                    layout = _layout(self.channels)
                    resampler = av.AudioResampler(format="fltp", layout=layout, rate=target)
                for out in resampler.resample(frame):
                    yield out.to_ndarray()
            if resampler is not None:
                for out in resampler.resample(None):
                    yield out.to_ndarray()
        except av.error.FFmpegError as error:
            raise NvcodecError(f"{self.path}: audio cannot be decoded ({error})") from None


# Container formats (FFmpeg demuxer names) whose stream duration is the exact sample count.
_EXACT_DURATION = {"mov", "mp4"}


def _cut(frame: av.AudioFrame, keep: int) -> av.AudioFrame | None:
    """The first ``keep`` samples of a decoded frame (None for none), in its own format."""
    if keep <= 0:
        return None
    data = frame.to_ndarray()  # planar: (channels, n); packed: (1, n * channels)
    width = keep if frame.format.is_planar else keep * len(frame.layout.channels)
    cut = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(data[:, :width]), format=frame.format.name, layout=frame.layout
    )
    cut.sample_rate, cut.pts, cut.time_base = frame.sample_rate, frame.pts, frame.time_base
    return cut


def read_audio(path: str | Path, rate: int | None = None) -> Audio:
    """Decode the first audio stream of ``path`` whole (optionally resampled to ``rate``)."""
    with AudioReader(path) as reader:
        blocks = list(reader.blocks())
        if not blocks:
            raise NvcodecError(f"{path}: audio stream has no samples")
        audio = Audio(np.concatenate(blocks, axis=1), reader.rate)
    return resample(audio, rate) if rate else audio


def resample(audio: Audio, rate: int) -> Audio:
    """``audio`` at ``rate`` Hz, exactly round(n * rate / audio.rate) samples long."""
    if rate == audio.rate:
        return audio
    expected = round(audio.samples.shape[1] * rate / audio.rate)
    resampler = av.AudioResampler(format="fltp", layout=_layout(audio.channels), rate=rate)
    out = [f.to_ndarray() for f in resampler.resample(_frame(audio.samples, audio.rate))]
    out += [f.to_ndarray() for f in resampler.resample(None)]
    samples = np.concatenate(out, axis=1) if out else np.zeros((audio.channels, 0), np.float32)
    return Audio(exact_length(samples, expected), rate)


def exact_length(samples: np.ndarray, length: int) -> np.ndarray:
    """(channels, n) float32 samples cut or zero-padded at the end to ``length``."""
    if samples.shape[1] < length:
        samples = np.pad(samples, ((0, 0), (0, length - samples.shape[1])))
    return samples[:, :length].astype(np.float32, copy=False)


class AudioTrack:
    """One audio stream of a PyAV output container that is open for writing: blocks in, coded
    packets muxed. ``AudioWriter`` is one alone in a file; ``io.video`` muxes one beside video.

    Blocks are (channels, n) at ``source_rate``; they are resampled to ``rate`` Hz, where
    ``length`` (if given) cuts or zero-pads them to exactly that many samples, which undoes
    the few samples a resampler gains or loses. A rate the codec does not take is coded at the
    next one up it takes (Opus: 8, 12, 16, 24 or 48 kHz). Frames carry timestamps, so the
    encoder's priming is marked in the container (Ogg pre-skip, MP4 edit list, LAME tag).
    ``path`` names the file in errors.
    """

    def __init__(
        self,
        container: av.container.OutputContainer,
        codec: str,
        sample_format: str,
        *,
        path: Path,
        rate: int,
        channels: int,
        source_rate: int | None = None,
        length: int | None = None,
        bitrate: int | None = None,
    ) -> None:
        self.path = path
        self._container = container
        self._source_rate = source_rate or rate
        self._remaining = length
        rates = sorted(av.codec.Codec(codec, "w").audio_rates or [rate])
        coded_rate = next((r for r in rates if r >= rate), rates[-1])
        layout = _layout(channels)
        self._stream = container.add_stream(codec, rate=coded_rate, layout=layout)
        if bitrate is not None:  # lossy codecs only (Opus, MP3, AAC): target bits/s
            self._stream.bit_rate = bitrate
        # Blocks go to ``rate`` first (that is where ``length`` counts), then to the codec's
        # sample format and rate.
        self._to_rate = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        self._to_codec = av.AudioResampler(format=sample_format, layout=layout, rate=coded_rate)
        self._rate, self._channels = rate, channels
        self._coded = 0  # samples sent to the encoder: the next frame's timestamp

    def write(self, block: np.ndarray) -> None:
        """Append (channels, n) float32 samples at ``source_rate``."""
        if block.shape[0] != self._channels:
            raise ValueError(f"block has {block.shape[0]} channels, writer {self._channels}")
        if block.shape[1]:
            frame = _frame(np.clip(block, -1.0, 1.0), self._source_rate)
            for out in self._to_rate.resample(frame):
                self._emit(out.to_ndarray())

    def _emit(self, samples: np.ndarray) -> None:
        if self._remaining is not None:
            samples = samples[:, : self._remaining]
            self._remaining -= samples.shape[1]
        if samples.shape[1]:
            for frame in self._to_codec.resample(_frame(samples, self._rate)):
                self._encode(frame)

    def _encode(self, frame: av.AudioFrame | None) -> None:
        """Encode and mux one frame (None flushes the encoder)."""
        if frame is not None:
            frame.pts = self._coded
            self._coded += frame.samples
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except av.error.FFmpegError as error:
            raise NvcodecError(f"{self.path}: cannot write audio ({error})") from None

    def close(self) -> None:
        """Flush the resamplers, pad to ``length`` and flush the encoder."""
        for out in self._to_rate.resample(None):
            self._emit(out.to_ndarray())
        if self._remaining:
            self._emit(np.zeros((self._channels, self._remaining), np.float32))
        for frame in self._to_codec.resample(None):
            self._encode(frame)
        self._encode(None)


class AudioWriter:
    """Writes (channels, n) blocks at ``source_rate`` to ``path`` at ``rate`` Hz, atomically.

    The format follows the extension (wav, flac, ogg/opus, mp3, m4a); ``bitrate`` (bits/s)
    sets the lossy ones' target; ``length`` and the rates work as in :class:`AudioTrack`.
    :func:`read_audio` gives samples aligned with the input; AAC adds up to 1024 samples of
    padding at the end, which MP4's edit list (and so :class:`AudioReader`) leaves out.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        rate: int,
        channels: int,
        source_rate: int | None = None,
        length: int | None = None,
        bitrate: int | None = None,
        overwrite: bool = False,
        protect: tuple[Path, ...] = (),
    ) -> None:
        self.path = Path(path)
        spec = _WRITERS.get(self.path.suffix.lower())
        if spec is None:
            raise NvcodecError(
                f"{self.path}: unknown audio extension (use {', '.join(sorted(_WRITERS))})"
            )
        container_format, codec, sample_format = spec
        self._stack = contextlib.ExitStack()
        file = self._stack.enter_context(
            atomic_output(self.path, overwrite=overwrite, protect=protect)
        )
        container = self._stack.enter_context(av.open(file, "w", format=container_format))
        self._track = AudioTrack(
            container,
            codec,
            sample_format,
            path=self.path,
            rate=rate,
            channels=channels,
            source_rate=source_rate,
            length=length,
            bitrate=bitrate,
        )

    def __enter__(self) -> AudioWriter:
        return self

    def write(self, block: np.ndarray) -> None:
        """Append (channels, n) float32 samples at ``source_rate``."""
        self._track.write(block)

    def close(self) -> None:
        """Flush, pad to ``length``, and move the finished file into place (or, on an error,
        remove the temp file)."""
        with self._stack:
            self._track.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        else:  # the temp file is removed; nothing appears under the output name
            self._stack.__exit__(exc_type, exc, traceback)


def write_audio(
    path: str | Path,
    audio: Audio,
    *,
    bitrate: int | None = None,
    overwrite: bool = False,
    protect: tuple[Path, ...] = (),
) -> None:
    """Write ``audio`` atomically at its own rate; the format follows the extension."""
    with AudioWriter(
        path,
        rate=audio.rate,
        channels=audio.channels,
        length=audio.samples.shape[1],
        bitrate=bitrate,
        overwrite=overwrite,
        protect=protect,
    ) as writer:
        writer.write(audio.samples)
