"""Video codecs the bench sweeps: nvcodec's learned codec (and its all-intra mode) and the
classical baselines through PyAV: x264 (medium, veryslow), x265 (medium), SVT-AV1.

Every baseline codes the same frames with the same keyframe interval (``gop``, no scene-cut
keyframes, closed GOPs) into a real MP4 file, swept over CRF from low to high rate. Frames go
RGB -> YUV 4:2:0 (limited range, BT.601 below 720 lines, BT.709 above, tagged in the stream) ->
encoder, and back through the decoder to RGB (:mod:`nvcodec.io.video`); the colour conversion
counts in the encode and decode times. B-frames stay as each preset sets them: they reorder
frames but never add or drop any, and the decoded frame count is checked. ``threads`` (default
1: steady timings on a shared machine, deterministic output) sets encoder and decoder threads.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import av
import numpy as np

from nvcodec.bench.base import CodedItem, MediaItem, MediaKind, Setting, stored_model
from nvcodec.codecs.video import VideoCodec
from nvcodec.container import ContainerReader, ContainerWriter, Packet
from nvcodec.errors import NvcodecError
from nvcodec.io.video import VideoEncoding, VideoReader, encode_video

# SVT-AV1 prints its configuration to stderr at every encoder start unless told not to.
os.environ.setdefault("SVT_LOG", "1")

DEFAULT_GOP = 32
_LIBAVCODEC = ".".join(map(str, av.library_versions["libavcodec"]))
# CRF sweeps, lowest rate first, chosen to span ~0.025-0.17 bpp on HEVC class D (416x240).
_X26X_CRF = (38, 34, 30, 26, 22)
_SVTAV1_CRF = (63, 59, 54, 48, 42, 36)


@dataclass(frozen=True)
class FFmpegVideoCodec:
    """One FFmpeg encoder at one preset, swept over CRF (``settings``)."""

    name: str
    encoder: str
    preset: str
    settings: tuple[Setting, ...]
    gop: int = DEFAULT_GOP
    threads: int = 1
    kind: ClassVar[MediaKind] = "video"

    @property
    def description(self) -> str:
        threads = f"{self.threads} thread{'s' if self.threads != 1 else ''}"
        return (
            f"{self.encoder} via PyAV {av.__version__} (libavcodec {_LIBAVCODEC}), preset "
            f"{self.preset}, GOP {self.gop}, YUV 4:2:0 in MP4, setting = CRF, {threads}"
        )

    def encoding(self, crf: Setting) -> VideoEncoding:
        """The encoder configuration for one CRF."""
        options = {"preset": self.preset, "crf": str(crf)}
        keyint = f"keyint={self.gop}:min-keyint={self.gop}:scenecut=0"
        if self.encoder == "libx264":
            options["x264-params"] = keyint
        elif self.encoder == "libx265":
            pools = f":pools={self.threads}" if self.threads else ""
            options["x265-params"] = f"{keyint}:open-gop=0:log-level=error{pools}"
        elif self.encoder == "libsvtav1" and self.threads:
            options["svtav1-params"] = f"lp={self.threads}"
        return VideoEncoding(
            self.encoder, "mp4", "yuv420p", tuple(options.items()), self.gop, self.threads
        )

    def code(self, item: MediaItem, setting: Setting) -> CodedItem:
        """Encode ``item`` at CRF ``setting`` to an MP4 file, decode it, time both."""
        what = f"{item.path}: {self.name} at CRF {setting}"
        decoded = np.empty_like(item.data)
        with tempfile.TemporaryDirectory(prefix="nvcodec-bench-") as folder:
            path = Path(folder) / "coded.mp4"
            try:
                start = time.perf_counter()
                with path.open("wb") as file:
                    encode_video(file, item.data, item.rate, self.encoding(setting))
                encode_seconds = time.perf_counter() - start
                start = time.perf_counter()
                count = 0
                with VideoReader(path, threads=self.threads) as reader:
                    for count, frame in enumerate(reader, 1):
                        if count <= len(decoded):
                            decoded[count - 1] = frame
                decode_seconds = time.perf_counter() - start
            except (av.error.FFmpegError, NvcodecError, ValueError) as error:
                raise NvcodecError(f"{what}: failed ({error})") from None
            if count != len(decoded):
                raise NvcodecError(f"{what}: decoded {count} frames of {len(decoded)}")
            return CodedItem(path.stat().st_size, decoded, encode_seconds, decode_seconds)


def classical_video_codecs(gop: int = DEFAULT_GOP, threads: int = 1) -> list[FFmpegVideoCodec]:
    """The video baselines: x264 medium and veryslow, x265 medium, SVT-AV1 preset 6."""
    return [
        FFmpegVideoCodec("x264-medium", "libx264", "medium", _X26X_CRF, gop, threads),
        FFmpegVideoCodec("x264-veryslow", "libx264", "veryslow", _X26X_CRF, gop, threads),
        FFmpegVideoCodec("x265-medium", "libx265", "medium", _X26X_CRF, gop, threads),
        FFmpegVideoCodec("svt-av1-p6", "libsvtav1", "6", _SVTAV1_CRF, gop, threads),
    ]


class NvcodecVideo:
    """The learned video codec: every frame through the encoder into a real .nvc file (rate =
    its bytes), then the file read back and decoded. ``gop`` 1 is the all-intra mode (every
    frame coded by the image model), the baseline the inter model must beat."""

    kind: ClassVar[MediaKind] = "video"

    def __init__(self, codec: VideoCodec, gop: int, name: str) -> None:
        self.name, self.codec, self.gop = name, codec, gop
        self.settings: tuple[Setting, ...] = tuple(range(min(7, codec.qualities)))
        manifest = codec.manifest
        mode = "all-intra" if gop == 1 else f"GOP {gop}"
        self.description = (
            f"nvcodec {manifest.model_id} (sha256 {manifest.sha256[:12]}), {mode}, whole .nvc "
            "file, setting = quality level, networks on 1 thread"
        )

    @classmethod
    def load(cls, option: str | None, *, intra: bool = False) -> NvcodecVideo:
        """``option``: a GOP (digits), a model spec (see ``stored_model``), or SPEC@GOP."""
        text = option or ""
        if "@" in text:
            spec, gop_text = text.rsplit("@", 1)
        else:
            spec, gop_text = ("", text) if text.isdigit() else (text, "")
        if gop_text and not (gop_text.isdigit() and int(gop_text) > 0):
            raise NvcodecError(f"video GOP must be a positive number of frames, got {gop_text!r}")
        codec = VideoCodec(stored_model(spec)) if spec else VideoCodec.load()
        gop = 1 if intra else int(gop_text) if gop_text else DEFAULT_GOP
        base = "nvcodec-intra" if intra else "nvcodec"
        return cls(codec, gop, f"{base}:{option}" if option else base)

    def code(self, item: MediaItem, setting: Setting) -> CodedItem:
        frames = item.data
        rate = Fraction(item.rate).limit_denominator(1001)
        stream = self.codec.stream_info(frames.shape[1], frames.shape[2], rate, 1 / rate)
        decoded = np.empty_like(frames)
        with tempfile.TemporaryDirectory(prefix="nvcodec-bench-") as folder:
            path = Path(folder) / "coded.nvc"
            start = time.perf_counter()
            encoder = self.codec.encoder(int(setting), self.gop)
            with ContainerWriter(path, [stream]) as writer:
                for pts, frame in enumerate(frames):
                    coded = encoder.encode(frame)
                    writer.write(Packet(0, pts, 1, coded.keyframe, coded.payload))
            encode_seconds = time.perf_counter() - start
            start = time.perf_counter()
            decoder = self.codec.decoder(frames.shape[1], frames.shape[2])
            with ContainerReader(path) as reader:
                for packet in reader.packets():
                    decoded[packet.pts] = decoder.decode(packet.payload)
            decode_seconds = time.perf_counter() - start
            return CodedItem(path.stat().st_size, decoded, encode_seconds, decode_seconds)
