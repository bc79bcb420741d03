"""Video files <-> RGB uint8 frames through PyAV (FFmpeg): mp4, mkv, mov, webm, y4m, PNG folders.

Frames are (height, width, 3) uint8 RGB. Colour is converted explicitly, never by swscale's
defaults (which ignore the stream's range): the YUV matrix is the stream's own (BT.601, BT.709,
SMPTE 240M, FCC or BT.2020) and, where the stream does not say, BT.601 below 720 lines and
BT.709 from 720 lines up (what FFmpeg-based players assume); the range is full for ``yuvj``
formats and streams tagged full (JPEG) range, limited (16-235) otherwise. Chroma is resampled
bicubically (FFmpeg's default scaler). Writers tag the matrix and range they used, and y4m (which
cannot carry them) is written with the untagged default, so every file reads back as written.

A folder of images (PNG, ...) is a video too: its files in natural order (f2 before f10), at a
frame rate the caller gives (image files carry none).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import BinaryIO, Literal

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation, VideoReformatter

from nvcodec.errors import NvcodecError
from nvcodec.io.image import IMAGE_SUFFIXES, read_image, to_rgb
from nvcodec.utils.files import atomic_output

Matrix = Literal["rgb", "bt601", "bt709", "smpte240m", "fcc", "bt2020"]

# FFmpeg's AVColorSpace values -> the matrix swscale applies for them.
_MATRIX_OF_AVCOL = {
    1: "bt709",
    4: "fcc",
    5: "bt601",  # BT.470BG
    6: "bt601",  # SMPTE 170M
    7: "smpte240m",
    9: "bt2020",  # non-constant luminance
    10: "bt2020",  # constant luminance: converted as NCL (swscale has no CL path)
}
_SWS_MATRIX = {
    "bt601": Colorspace.ITU601,
    "bt709": Colorspace.ITU709,
    "smpte240m": Colorspace.SMPTE240M,
    "fcc": Colorspace.FCC,
    "bt2020": Colorspace.BT2020,
}
_SCALER = Interpolation.BICUBIC
# Extensions read as video files (a folder of images is a video too).
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mkv", ".mov", ".webm", ".y4m", ".avi"})
# Frame rate of image folders when the caller gives none (FFmpeg's image2 default).
FOLDER_FRAME_RATE = 25.0


def default_matrix(height: int) -> Matrix:
    """The YUV matrix assumed for untagged video: BT.601 for SD, BT.709 from 720 lines."""
    return "bt709" if height >= 720 else "bt601"


@dataclass(frozen=True)
class VideoInfo:
    """What a reader knows before decoding: size, rate, exact frame count, colour handling.

    ``matrix`` and ``full_range`` say how YUV became RGB ("rgb" when the source is RGB already).
    """

    width: int
    height: int
    rate: float
    frames: int
    matrix: Matrix
    full_range: bool


@dataclass(frozen=True)
class Video:
    """Frames (T, H, W, 3) uint8 RGB and what the reader knew about them."""

    frames: np.ndarray
    info: VideoInfo

    @property
    def rate(self) -> float:
        return self.info.rate


class VideoReader:
    """Streams the RGB frames of a video file or image folder, one at a time (bounded memory).

    Use as a context manager; ``threads`` is the decoder's thread count (0: FFmpeg's choice).
    """

    def __init__(
        self, path: str | Path, *, frame_rate: float | None = None, threads: int = 0
    ) -> None:
        self.path = Path(path)
        self._container: av.container.InputContainer | None = None
        if self.path.is_dir():
            self._files = _frame_files(self.path)
            first = self._read_frame_file(self._files[0])
            height, width = first.shape[:2]
            rate = float(frame_rate or FOLDER_FRAME_RATE)
            self.info = VideoInfo(width, height, rate, len(self._files), "rgb", True)
            return
        if not self.path.exists():
            raise NvcodecError(f"{self.path}: no such file")
        try:
            self._container = av.open(str(self.path))
            if not self._container.streams.video:
                raise NvcodecError(f"{self.path}: no video stream")
            self._stream = self._container.streams.video[0]
            self._stream.codec_context.thread_count = threads
            self._stream.thread_type = "AUTO"
            self.info = self._stream_info(frame_rate)
            self._to_rgb = _converter("rgb24", self.info.matrix, self.info.full_range, "src")
        except (av.error.FFmpegError, UnicodeDecodeError) as error:
            self.close()
            raise NvcodecError(f"{self.path}: not a readable video file ({error})") from None
        except NvcodecError:
            self.close()
            raise

    def _stream_info(self, frame_rate: float | None) -> VideoInfo:
        context = self._stream.codec_context
        rate = frame_rate or float(self._stream.guessed_rate or self._stream.average_rate or 0)
        if rate <= 0:
            raise NvcodecError(f"{self.path}: the stream has no frame rate")
        pix_fmt = av.VideoFormat(context.pix_fmt)
        if pix_fmt.is_rgb:
            matrix: Matrix = "rgb"
        else:
            matrix = _MATRIX_OF_AVCOL.get(int(context.colorspace), default_matrix(context.height))
        full_range = pix_fmt.is_rgb or pix_fmt.name.startswith("yuvj") or context.color_range == 2
        count = self._stream.frames or self._count_packets()
        return VideoInfo(context.width, context.height, rate, count, matrix, full_range)

    def _count_packets(self) -> int:
        """Frames of a container that does not store the count: its video packets, read in a
        second pass over the file (demuxing only, no decoding)."""
        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            return sum(packet.size > 0 for packet in container.demux(stream))

    def _read_frame_file(self, path: Path) -> np.ndarray:
        return to_rgb(read_image(path))

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._container is None:
            for file in self._files:
                frame = self._read_frame_file(file)
                if frame.shape[:2] != (self.info.height, self.info.width):
                    raise NvcodecError(f"{file}: frame size differs from the folder's first frame")
                yield frame
            return
        try:
            for frame in self._container.decode(self._stream):
                yield self._to_rgb(frame).to_ndarray()
        except av.error.FFmpegError as error:
            raise NvcodecError(f"{self.path}: cannot decode video ({error})") from None

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _frame_files(folder: Path) -> list[Path]:
    """The image files of ``folder`` in natural order (frame2 before frame10)."""
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    if not files:
        raise NvcodecError(f"{folder}: folder has no image frames")

    def natural(path: Path) -> list[int | str]:
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]

    return sorted(files, key=natural)


def read_video(
    path: str | Path, *, max_frames: int | None = None, frame_rate: float | None = None
) -> Video:
    """All frames of ``path`` (or its first ``max_frames``) as one (T, H, W, 3) array."""
    with VideoReader(path, frame_rate=frame_rate) as reader:
        frames = []
        for frame in reader:
            if max_frames is not None and len(frames) == max_frames:
                break
            frames.append(frame)
        if not frames:
            raise NvcodecError(f"{path}: video has no frames")
        return Video(np.stack(frames), reader.info)


@dataclass(frozen=True)
class VideoEncoding:
    """How :func:`encode_video` codes frames: FFmpeg codec and container, pixel format, options.

    ``gop`` is the keyframe interval (None: the encoder's default); ``threads`` the encoder's
    thread count (0: FFmpeg's choice). YUV formats use ``default_matrix`` of the frame height,
    limited range, and say so in the stream.
    """

    codec: str
    container: str
    pix_fmt: str
    options: tuple[tuple[str, str], ...] = ()
    gop: int | None = None
    threads: int = 0


# Writer per extension: H.264 for viewing, FFV1 lossless RGB, y4m for classical tools (4:2:0).
WRITERS = {
    ".mp4": VideoEncoding("libx264", "mp4", "yuv420p", (("preset", "medium"), ("crf", "16"))),
    ".mkv": VideoEncoding("ffv1", "matroska", "bgr0", (("level", "3"),)),
    ".y4m": VideoEncoding("rawvideo", "yuv4mpegpipe", "yuv420p"),
}


def encode_video(
    file: BinaryIO, frames: Iterable[np.ndarray], rate: float, encoding: VideoEncoding
) -> int:
    """Encode (H, W, 3) uint8 RGB ``frames`` into ``file``; returns the number of frames."""
    rate_fraction = Fraction(rate).limit_denominator(1001)
    count = 0
    with av.open(file, "w", format=encoding.container) as container:
        stream = container.add_stream(encoding.codec, rate=rate_fraction)
        stream.pix_fmt = encoding.pix_fmt
        stream.codec_context.thread_count = encoding.threads
        stream.options = dict(encoding.options)
        if encoding.gop is not None:
            stream.codec_context.gop_size = encoding.gop
        for frame in frames:
            if count == 0:
                shape = frame.shape
                stream.width, stream.height = shape[1], shape[0]
                matrix: Matrix = "rgb"
                if not av.VideoFormat(encoding.pix_fmt).is_rgb:
                    matrix = default_matrix(frame.shape[0])
                    _tag_colour(stream.codec_context, matrix)
                from_rgb = _converter(encoding.pix_fmt, matrix, False, "dst")
            if frame.shape != shape or frame.dtype != np.uint8 or shape[2:] != (3,):
                raise ValueError(f"frame {count} is {frame.dtype} {frame.shape}, expected {shape}")
            packed = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            packed.pts = count
            for packet in stream.encode(from_rgb(packed)):
                container.mux(packet)
            count += 1
        for packet in stream.encode(None):
            container.mux(packet)
    return count


def _tag_colour(context: av.VideoCodecContext, matrix: Matrix) -> None:
    """Mark the stream's matrix, primaries and transfer (as BT.709 or BT.601/SMPTE 170M)."""
    code = {"bt709": 1, "bt601": 6}[matrix]
    context.colorspace = context.color_primaries = context.color_trc = code
    context.color_range = 1  # limited (MPEG)


def _converter(
    pix_fmt: str, matrix: Matrix, full_range: bool, yuv_side: Literal["src", "dst"]
) -> Callable[[av.VideoFrame], av.VideoFrame]:
    """Frames -> ``pix_fmt`` with the given YUV matrix and range on ``yuv_side``, on one thread
    and one swscale context (a context per frame costs more than the conversion)."""
    options: dict[str, object] = {"format": pix_fmt, "interpolation": _SCALER, "threads": 1}
    if matrix != "rgb":
        options[f"{yuv_side}_colorspace"] = _SWS_MATRIX[matrix]
        options[f"{yuv_side}_color_range"] = ColorRange.JPEG if full_range else ColorRange.MPEG
    return partial(VideoReformatter().reformat, **options)


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    rate: float,
    *,
    overwrite: bool = False,
    protect: tuple[Path, ...] = (),
) -> int:
    """Write RGB ``frames`` atomically: .mp4 (H.264 CRF 16), .mkv (FFV1, lossless) or .y4m.

    ``frames`` may be any iterable (a :class:`VideoReader` included), so memory stays bounded.
    Returns the number of frames written.
    """
    path = Path(path)
    encoding = WRITERS.get(path.suffix.lower())
    if encoding is None:
        raise NvcodecError(f"{path}: unknown video extension (use {', '.join(sorted(WRITERS))})")
    with atomic_output(path, overwrite=overwrite, protect=protect) as file:
        try:
            count = encode_video(file, frames, rate, encoding)
        except (av.error.FFmpegError, ValueError) as error:
            raise NvcodecError(f"{path}: cannot write video ({error})") from None
        if count == 0:
            raise NvcodecError(f"{path}: no frames to write")
    return count
