"""Audio files <-> float32 arrays through PyAV (FFmpeg): wav, flac, mp3, ogg, m4a, video tracks.

Arrays are (channels, samples) float32 in [-1, 1] at the file's own sample rate; ``resample``
changes the rate with FFmpeg's resampler and keeps the exact expected length, so a signal
resampled there and back has its original length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from nvcodec.errors import NvcodecError
from nvcodec.utils.files import atomic_output

# Output container per extension for write_audio (codec, sample format).
_WRITERS = {
    ".wav": ("pcm_s16le", "s16"),
    ".flac": ("flac", "s16"),
    ".ogg": ("libopus", "flt"),
    ".opus": ("libopus", "flt"),
    ".mp3": ("libmp3lame", "fltp"),
    ".m4a": ("aac", "fltp"),
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


def read_audio(path: str | Path, rate: int | None = None) -> Audio:
    """Decode the first audio stream of ``path`` (optionally resampled to ``rate``)."""
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise NvcodecError(f"{path}: no audio stream")
            stream = container.streams.audio[0]
            chunks = [frame.to_ndarray() for frame in _planar_float(container.decode(stream))]
            source_rate = stream.codec_context.sample_rate
    except (av.error.FFmpegError, UnicodeDecodeError) as error:
        raise NvcodecError(f"{path}: not a readable audio file ({error})") from None
    if not chunks:
        raise NvcodecError(f"{path}: audio stream has no samples")
    audio = Audio(np.concatenate(chunks, axis=1).astype(np.float32), source_rate)
    return resample(audio, rate) if rate and rate != source_rate else audio


def _planar_float(frames):
    """Frames converted to planar float32 at their own rate and layout."""
    resampler = None
    for frame in frames:
        if resampler is None:
            resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=frame.rate)
        yield from resampler.resample(frame)
    if resampler is not None:
        yield from resampler.resample(None)


def resample(audio: Audio, rate: int) -> Audio:
    """``audio`` at ``rate`` Hz, exactly round(n * rate / audio.rate) samples long."""
    if rate == audio.rate:
        return audio
    expected = round(audio.samples.shape[1] * rate / audio.rate)
    layout = {1: "mono", 2: "stereo"}.get(audio.channels)
    if layout is None:  # FFmpeg layouts beyond stereo: resample channel by channel
        rows = [resample(Audio(row[None], audio.rate), rate).samples[0] for row in audio.samples]
        return Audio(np.stack(rows), rate)
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(audio.samples, dtype=np.float32), format="fltp", layout=layout
    )
    frame.sample_rate = audio.rate
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    out = [f.to_ndarray() for f in resampler.resample(frame)]
    out += [f.to_ndarray() for f in resampler.resample(None)]
    samples = np.concatenate(out, axis=1) if out else np.zeros((audio.channels, 0), np.float32)
    if samples.shape[1] < expected:
        samples = np.pad(samples, ((0, 0), (0, expected - samples.shape[1])))
    return Audio(samples[:, :expected].astype(np.float32), rate)


def write_audio(
    path: str | Path,
    audio: Audio,
    *,
    bitrate: int | None = None,
    overwrite: bool = False,
    protect: tuple[Path, ...] = (),
) -> None:
    """Write ``audio`` atomically; the format follows the extension (wav, flac, ogg, mp3, m4a).

    ``bitrate`` (bits/s) is the lossy encoders' target (None: their default). A rate the encoder
    does not take (Opus codes 8/12/16/24/48 kHz) is resampled to the next one up it takes.
    Encoder priming is marked in the container (Ogg pre-skip, MP4 edit list, LAME tag), so
    :func:`read_audio` returns samples aligned with the input; AAC may add up to one frame
    (1024 samples) of padding at the end.
    """
    path = Path(path)
    codec_format = _WRITERS.get(path.suffix.lower())
    if codec_format is None:
        raise NvcodecError(f"{path}: unknown audio extension (use {', '.join(sorted(_WRITERS))})")
    codec, sample_format = codec_format
    layout = {1: "mono", 2: "stereo"}.get(audio.channels)
    if layout is None:
        raise NvcodecError(f"{path}: writing {audio.channels} channels is not supported")
    clipped = np.clip(audio.samples, -1.0, 1.0).astype(np.float32)
    container_format = {".opus": "ogg", ".m4a": "ipod"}.get(path.suffix.lower(), path.suffix[1:])
    rates = sorted(av.codec.Codec(codec, "w").audio_rates or [audio.rate])
    rate = next((r for r in rates if r >= audio.rate), rates[-1])
    with atomic_output(path, overwrite=overwrite, protect=protect) as file:
        try:
            with av.open(file, "w", format=container_format) as container:
                stream = container.add_stream(codec, rate=rate, layout=layout)
                if bitrate is not None:
                    stream.bit_rate = bitrate
                resampler = av.AudioResampler(format=sample_format, layout=layout, rate=rate)
                source = av.AudioFrame.from_ndarray(clipped, format="fltp", layout=layout)
                source.sample_rate = audio.rate
                source.pts = 0  # timestamps let the encoder mark its priming delay for the muxer
                for frame in [*resampler.resample(source), *resampler.resample(None)]:
                    for packet in stream.encode(frame):
                        container.mux(packet)
                for packet in stream.encode(None):
                    container.mux(packet)
        except av.error.FFmpegError as error:
            raise NvcodecError(f"{path}: cannot write audio ({error})") from None
