"""Classical video baselines through PyAV: x264 (medium, veryslow), x265 (medium), SVT-AV1.

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
from pathlib import Path
from typing import ClassVar

import av
import numpy as np

from nvcodec.bench.base import CodedItem, MediaItem, MediaKind, Setting
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
