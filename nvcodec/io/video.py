"""Video files <-> RGB uint8 frames through PyAV (FFmpeg): mp4, mkv, mov, webm, y4m, PNG folders.

Frames are (height, width, 3) uint8 RGB. Colour is converted explicitly, never by swscale's
defaults (which ignore the stream's range): the YUV matrix is the stream's own (BT.601, BT.709,
SMPTE 240M, FCC or BT.2020) and, where the stream does not say, BT.601 below 720 lines and
BT.709 from 720 lines up (what FFmpeg-based players assume); the range is full for ``yuvj``
formats and streams tagged full (JPEG) range, limited (16-235) otherwise. Chroma is resampled
bicubically (FFmpeg's default scaler). Writers tag the matrix and range they used, and y4m (which
cannot carry them) is written with the untagged default, so every file reads back as written.

A folder of images (PNG, ...) is a video too: its files in natural order (f2 before f10), at a
frame rate the caller gives (image files carry none); :func:`write_video` writes one for an
output path without a suffix. Writers can mux a soundtrack beside the frames (AAC in MP4, FLAC
in Matroska), interleaved in time.
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
from PIL import Image

from nvcodec.errors import NvcodecError
from nvcodec.io.audio import AudioTrack
from nvcodec.io.image import IMAGE_SUFFIXES, read_image, to_rgb
from nvcodec.utils.files import atomic_folder, atomic_output

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


def rate_fraction(rate: float) -> Fraction:
    """A frame rate as the fraction containers store: 29.97002997... -> 30000/1001."""
    return Fraction(rate).limit_denominator(1001)


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
    ``has_audio`` says whether the file has an audio stream too (a folder has none).
    """

    def __init__(
        self, path: str | Path, *, frame_rate: float | None = None, threads: int = 0
    ) -> None:
        self.path = Path(path)
        self._container: av.container.InputContainer | None = None
        self.has_audio = False
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
            self.has_audio = bool(self._container.streams.audio)
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
    limited range, and say so in the stream. ``audio``: (codec, sample format) of a
    soundtrack in this container; None if it carries video only.
    """

    codec: str
    container: str
    pix_fmt: str
    options: tuple[tuple[str, str], ...] = ()
    gop: int | None = None
    threads: int = 0
    audio: tuple[str, str] | None = None


# Writer per extension: H.264 for viewing, FFV1 lossless RGB, y4m for classical tools (4:2:0).
WRITERS = {
    ".mp4": VideoEncoding(
        "libx264", "mp4", "yuv420p", (("preset", "medium"), ("crf", "16")), audio=("aac", "fltp")
    ),
    ".mkv": VideoEncoding("ffv1", "matroska", "bgr0", (("level", "3"),), audio=("flac", "s16")),
    ".y4m": VideoEncoding("rawvideo", "yuv4mpegpipe", "yuv420p"),
}
# Frames of an output path without a suffix: a folder of these, 000001.png on.
FOLDER_FRAME_SUFFIX = ".png"


@dataclass(frozen=True)
class Soundtrack:
    """Audio a writer muxes beside the frames: (channels, n) float32 ``blocks`` at
    ``source_rate`` (default ``rate``), written at ``rate`` Hz and cut or padded there to
    ``length`` samples (see :class:`~nvcodec.io.audio.AudioTrack`)."""

    blocks: Iterable[np.ndarray]
    rate: int
    channels: int
    source_rate: int | None = None
    length: int | None = None


def encode_video(
    file: BinaryIO,
    frames: Iterable[np.ndarray],
    rate: float,
    encoding: VideoEncoding,
    soundtrack: Soundtrack | None = None,
    name: str | Path = "<output>",
) -> int:
    """Encode (H, W, 3) uint8 RGB ``frames`` into ``file``; returns the number of frames.

    The ``soundtrack`` (for an encoding with ``audio``) is fed in step with the frames, a block
    at a time, so the muxer interleaves the two without holding either; ``name`` names the
    output in errors.
    """
    frame_rate = rate_fraction(rate)
    count = 0
    with av.open(file, "w", format=encoding.container) as container:
        stream = container.add_stream(encoding.codec, rate=frame_rate)
        stream.pix_fmt = encoding.pix_fmt
        stream.codec_context.thread_count = encoding.threads
        stream.options = dict(encoding.options)
        if encoding.gop is not None:
            stream.codec_context.gop_size = encoding.gop
        sound = None if soundtrack is None else _SoundFeed(container, encoding, soundtrack, name)
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
            if sound is not None:
                sound.feed(count / frame_rate)
        for packet in stream.encode(None):
            container.mux(packet)
        if sound is not None and count:
            sound.finish()
    return count


class _SoundFeed:
    """A soundtrack being written beside the frames: :meth:`feed` writes its blocks until it
    reaches a time, so audio never runs more than a block ahead of the video."""

    def __init__(
        self,
        container: av.container.OutputContainer,
        encoding: VideoEncoding,
        soundtrack: Soundtrack,
        name: str | Path,
    ) -> None:
        if encoding.audio is None:
            raise ValueError(f"{encoding.container} output carries no audio")
        self._track = AudioTrack(
            container,
            *encoding.audio,
            path=Path(name),
            rate=soundtrack.rate,
            channels=soundtrack.channels,
            source_rate=soundtrack.source_rate,
            length=soundtrack.length,
        )
        self._blocks: Iterator[np.ndarray] | None = iter(soundtrack.blocks)
        self._rate = soundtrack.source_rate or soundtrack.rate
        self._written = 0  # samples at the source rate

    def feed(self, seconds: Fraction | None) -> None:
        """Write blocks until ``seconds`` of audio are written (None: all of it)."""
        while self._blocks is not None and (
            seconds is None or self._written < seconds * self._rate
        ):
            block = next(self._blocks, None)
            if block is None:
                self._blocks = None
                break
            self._track.write(block)
            self._written += block.shape[1]

    def finish(self) -> None:
        self.feed(None)
        self._track.close()


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
    encoding: VideoEncoding | None = None,
    soundtrack: Soundtrack | None = None,
    overwrite: bool = False,
    protect: tuple[Path, ...] = (),
) -> int:
    """Write RGB ``frames`` atomically: .mp4 (H.264 CRF 16), .mkv (FFV1, lossless), .y4m, or,
    for a path without a suffix, a folder of PNG frames (000001.png, ...).

    ``encoding`` replaces the extension's (``WRITERS``); ``soundtrack`` is muxed beside the
    frames (mp4 and mkv; y4m and folders carry no audio). ``frames`` may be any iterable (a
    :class:`VideoReader` included), so memory stays bounded. Returns the number of frames.
    """
    path = Path(path)
    if not path.suffix and encoding is None:
        if soundtrack is not None:
            raise NvcodecError(f"{path}: a folder of frames carries no audio")
        return _write_folder(path, frames, overwrite, protect)
    encoding = encoding or WRITERS.get(path.suffix.lower())
    if encoding is None:
        raise NvcodecError(
            f"{path}: unknown video extension (use {', '.join(sorted(WRITERS))}, or no suffix "
            "for a folder of PNG frames)"
        )
    with atomic_output(path, overwrite=overwrite, protect=protect) as file:
        try:
            count = encode_video(file, frames, rate, encoding, soundtrack, path)
        except (av.error.FFmpegError, ValueError) as error:
            raise NvcodecError(f"{path}: cannot write video ({error})") from None
        if count == 0:
            raise NvcodecError(f"{path}: no frames to write")
    return count


def _write_folder(
    path: Path, frames: Iterable[np.ndarray], overwrite: bool, protect: tuple[Path, ...]
) -> int:
    """Frames as 000001.png, 000002.png, ... in a folder that appears whole (or not at all)."""
    count = 0
    with atomic_folder(
        path, suffix=FOLDER_FRAME_SUFFIX, overwrite=overwrite, protect=protect
    ) as folder:
        for frame in frames:
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frame {count} is {frame.dtype} {frame.shape}, expected RGB")
            count += 1
            try:
                Image.fromarray(frame).save(folder / f"{count:06d}{FOLDER_FRAME_SUFFIX}")
            except OSError as error:
                raise NvcodecError(f"{path}: cannot write frame {count} ({error})") from None
        if count == 0:
            raise NvcodecError(f"{path}: no frames to write")
    return count
