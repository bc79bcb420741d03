"""Classical audio baselines through PyAV: Opus (libopus, Ogg), AAC (FFmpeg's, MP4), MP3 (LAME).

Each codes the item into a real file with :func:`nvcodec.io.audio.write_audio` at a target
bitrate (``settings``, kbps, lowest first) and decodes it with ``read_audio``. A source rate the
encoder does not take is resampled to the next one up (Opus: 22.05/44.1 kHz -> 48 kHz) and the
decoded signal back to the source rate (Opus always decodes at 48 kHz); resampling counts in the
encode and decode times. Encoder priming is removed through the container (Ogg pre-skip, MP4 edit
list, LAME tag), so decoded samples line up with the source (checked by the tests); the tail is
cut or zero-padded to the source length. The rate is the whole file's bytes. Opus and AAC are
VBR/ABR around the target; LAME is CBR at the nearest rate its MPEG version allows (at 32 kHz and
up that is 32 kbps or more, so low settings give the same file).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import av

from nvcodec.bench.base import CodedItem, MediaItem, MediaKind, Setting, stored_model
from nvcodec.codecs.audio import BITRATES, AudioCodec
from nvcodec.codecs.files import decode_audio_file, encode_audio_file
from nvcodec.errors import NvcodecError
from nvcodec.io.audio import Audio, exact_length, read_audio, write_audio

_ENCODERS = {".ogg": "libopus", ".m4a": "FFmpeg aac (LC)", ".mp3": "libmp3lame (CBR)"}
_LIBAVCODEC = ".".join(map(str, av.library_versions["libavcodec"]))


@dataclass(frozen=True)
class FFmpegAudioCodec:
    """One FFmpeg audio encoder, swept over target bitrates in kbps (``settings``)."""

    name: str
    extension: str
    settings: tuple[Setting, ...]
    kind: ClassVar[MediaKind] = "audio"

    @property
    def description(self) -> str:
        return (
            f"{_ENCODERS[self.extension]} via PyAV {av.__version__} (libavcodec {_LIBAVCODEC}), "
            f"{self.extension[1:]} file, setting = target kbps, 1 thread"
        )

    def code(self, item: MediaItem, setting: Setting) -> CodedItem:
        """Encode ``item`` at ``setting`` kbps to a file, decode it, time both."""
        samples = item.data
        with tempfile.TemporaryDirectory(prefix="nvcodec-bench-") as folder:
            path = Path(folder) / f"coded{self.extension}"
            try:
                start = time.perf_counter()
                write_audio(path, Audio(samples, int(item.rate)), bitrate=int(setting) * 1000)
                encode_seconds = time.perf_counter() - start
                start = time.perf_counter()
                decoded = read_audio(path, rate=int(item.rate)).samples
                decode_seconds = time.perf_counter() - start
            except NvcodecError as error:
                raise NvcodecError(
                    f"{item.path}: {self.name} at {setting} kbps ({error})"
                ) from None
            num_bytes = path.stat().st_size
        length = samples.shape[1]
        decoded = exact_length(decoded, length)
        return CodedItem(num_bytes, decoded, encode_seconds, decode_seconds)


def classical_audio_codecs() -> list[FFmpegAudioCodec]:
    """The audio baselines: Opus 6-32 kbps, AAC 16-64 kbps, MP3 8-64 kbps."""
    return [
        FFmpegAudioCodec("opus", ".ogg", (6, 8, 12, 16, 24, 32)),
        FFmpegAudioCodec("aac", ".m4a", (16, 24, 32, 48, 64)),
        FFmpegAudioCodec("mp3", ".mp3", (8, 16, 24, 32, 48, 64)),
    ]


class NvcodecAudio:
    """The learned audio codec through the same file path as ``nvcodec encode/decode``: the
    item's file in, a whole .nvc out (rate = its bytes), decoded back to the source rate."""

    kind: ClassVar[MediaKind] = "audio"

    def __init__(self, codec: AudioCodec, name: str = "nvcodec") -> None:
        self.name = name
        self.codec = codec
        self.settings = tuple(b / 1000 for b in BITRATES if BITRATES[b] <= codec.config.codebooks)
        manifest = codec.manifest
        self.description = (
            f"nvcodec {manifest.model_id} (sha256 {manifest.sha256[:12]}), whole .nvc file, "
            "setting = nominal kbps per channel, networks on 1 thread"
        )

    @classmethod
    def load(cls, model: str | None = None) -> NvcodecAudio:
        if model is None:
            return cls(AudioCodec.load())
        return cls(AudioCodec(stored_model(model)), name=f"nvcodec:{model}")

    def code(self, item: MediaItem, setting: Setting) -> CodedItem:
        with tempfile.TemporaryDirectory(prefix="nvcodec-bench-") as folder:
            coded, decoded_path = Path(folder) / "audio.nvc", Path(folder) / "decoded.wav"
            start = time.perf_counter()
            bitrate = round(float(setting) * 1000)
            encode_audio_file(item.path, coded, bitrate=bitrate, codec=self.codec)
            encoded = time.perf_counter()
            decode_audio_file(coded, decoded_path, codec=self.codec)
            done = time.perf_counter()
            decoded = read_audio(decoded_path).samples
            num_bytes = coded.stat().st_size
        return CodedItem(num_bytes, decoded, encoded - start, done - encoded)
