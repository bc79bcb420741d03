"""What the bench knows per media kind: codecs, how items load, how quality and rate are measured.

The runner is generic; everything kind-specific is one :class:`MediaBench` entry in ``MEDIA``.
The video and audio entries are at the end of this file, with their codec factories
(``nvcodec/bench/video_codecs.py``, ``audio_codecs.py``), loaders and metrics
(``video_metrics.py``, ``audio_metrics.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nvcodec.bench import audio_codecs, datasets, image_codecs, video_codecs
from nvcodec.bench.audio_metrics import audio_metrics
from nvcodec.bench.base import BenchCodec, MediaItem, MediaKind
from nvcodec.bench.image_metrics import image_derived, image_metrics
from nvcodec.bench.video_metrics import video_metrics
from nvcodec.errors import NvcodecError
from nvcodec.io.audio import AUDIO_SUFFIXES, read_audio
from nvcodec.io.image import IMAGE_SUFFIXES, read_image, to_rgb
from nvcodec.io.video import VIDEO_SUFFIXES, read_video

# (option after "name:" in a codec spec, or None; CPU threads the codec may use) -> codec.
CodecFactory = Callable[[str | None, int], BenchCodec]


@dataclass(frozen=True)
class MediaBench:
    """One media kind's bench.

    ``metrics`` gives an item's quality values from its decoded signal; ``derived`` adds values
    computed from those (applied to each item and to each setting's means, e.g. MS-SSIM in dB
    from the mean MS-SSIM, as CompressAI plots it). ``quality_metrics`` are the BD-rate axes,
    the first one the headline. ``rate`` turns an item's whole-file byte count into
    ``rate_unit``; ``size`` is the amount of media speed is measured in (``speed_unit``).
    """

    kind: MediaKind
    codecs: dict[str, CodecFactory]
    default_codecs: tuple[str, ...]
    default_anchors: tuple[str, ...]
    default_dataset: str
    discover: Callable[[Path], list[Path]]
    load: Callable[[Path, str], MediaItem]
    metrics: Callable[[MediaItem, np.ndarray], dict[str, float]]
    derived: Callable[[dict[str, float]], dict[str, float]]
    quality_metrics: tuple[str, ...]
    rate_unit: str
    rate: Callable[[MediaItem, int], float]
    speed_unit: str
    size: Callable[[MediaItem], float]


def _plain(make: Callable[[int], BenchCodec], name: str) -> CodecFactory:
    """A factory for a codec that takes no ``name:option``."""

    def factory(option: str | None, threads: int) -> BenchCodec:
        if option is not None:
            raise NvcodecError(f"codec {name!r} takes no option (got {name}:{option})")
        return make(threads)

    return factory


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def _load_image(path: Path, name: str) -> MediaItem:
    return MediaItem(name=name, path=path, kind="image", data=to_rgb(read_image(path)))


def _pixels(item: MediaItem) -> int:
    return item.data.shape[0] * item.data.shape[1]


MEDIA: dict[MediaKind, MediaBench] = {
    "image": MediaBench(
        kind="image",
        codecs={
            "nvcodec": lambda option, threads: image_codecs.NvcodecImage.load(option),
            "jpeg": _plain(
                lambda _: image_codecs.PillowCodec("jpeg", "JPEG", image_codecs.JPEG_QUALITIES),
                "jpeg",
            ),
            "webp": _plain(
                lambda _: image_codecs.PillowCodec(
                    "webp", "WEBP", image_codecs.WEBP_QUALITIES, method=image_codecs.WEBP_METHOD
                ),
                "webp",
            ),
            "avif": _plain(lambda threads: image_codecs.avif("avif", "420", threads), "avif"),
            "avif444": _plain(
                lambda threads: image_codecs.avif("avif444", "444", threads), "avif444"
            ),
            "jpegxl": _plain(image_codecs.jpeg_xl, "jpegxl"),
            "jpeg2000": _plain(image_codecs.jpeg_2000, "jpeg2000"),
        },
        default_codecs=("nvcodec", "jpeg", "webp", "avif", "avif444", "jpegxl", "jpeg2000"),
        default_anchors=("webp", "jpeg"),
        default_dataset="kodak",
        discover=_image_files,
        load=_load_image,
        metrics=image_metrics,
        derived=image_derived,
        quality_metrics=("psnr-rgb", "ms-ssim-db"),
        rate_unit="bpp",
        rate=lambda item, num_bytes: num_bytes * 8 / _pixels(item),
        speed_unit="MP/s",
        size=lambda item: _pixels(item) / 1e6,
    ),
}


def media_bench(kind: MediaKind) -> MediaBench:
    try:
        return MEDIA[kind]
    except KeyError:
        raise NvcodecError(f"no {kind} codecs are registered for the bench yet") from None


def make_codec(bench: MediaBench, spec: str, threads: int) -> BenchCodec:
    """A codec from ``name`` or ``name:option`` (e.g. ``nvcodec:runs/image`` for a model)."""
    name, _, option = spec.partition(":")
    try:
        factory = bench.codecs[name]
    except KeyError:
        known = ", ".join(bench.codecs)
        raise NvcodecError(f"unknown {bench.kind} codec {name!r} (known: {known})") from None
    return factory(option or None, threads)


# Video: the learned codec and classical baselines through PyAV (video_codecs.py).

# Frame rates of registered frame-folder sets (image files carry none; others get 25 fps).
_FOLDER_FRAME_RATES = {datasets.DATASETS["hevc_classD"].folder: 50.0}


def _video_items(folder: Path) -> list[Path]:
    """Video files under ``folder`` and the folders of image frames there."""
    files = [p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES]
    frames = {p.parent for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES}
    return sorted([*files, *frames])


def _load_video(path: Path, name: str) -> MediaItem:
    rate = next((r for f, r in _FOLDER_FRAME_RATES.items() if f in path.parts), None)
    video = read_video(path, frame_rate=rate)
    return MediaItem(name=name, path=path, kind="video", data=video.frames, rate=video.rate)


def _video_codec(name: str) -> CodecFactory:
    """A baseline whose ``name:N`` option is the keyframe interval (default DEFAULT_GOP)."""

    def factory(option: str | None, threads: int) -> BenchCodec:
        if option is not None and not (option.isdigit() and int(option) > 0):
            raise NvcodecError(f"codec {name!r}: the option is the GOP in frames, got {option!r}")
        gop = int(option) if option else video_codecs.DEFAULT_GOP
        return {c.name: c for c in video_codecs.classical_video_codecs(gop, threads)}[name]

    return factory


def _frames(item: MediaItem) -> int:
    return item.data.shape[0]


_VIDEO_CODECS = tuple(c.name for c in video_codecs.classical_video_codecs())
MEDIA["video"] = MediaBench(
    kind="video",
    codecs={
        "nvcodec": lambda option, threads: video_codecs.NvcodecVideo.load(option),
        "nvcodec-intra": lambda option, threads: video_codecs.NvcodecVideo.load(option, intra=True),
        **{name: _video_codec(name) for name in _VIDEO_CODECS},
    },
    default_codecs=("nvcodec", "nvcodec-intra", *_VIDEO_CODECS),
    default_anchors=("x264-medium",),
    default_dataset="hevc_classD",
    discover=_video_items,
    load=_load_video,
    metrics=video_metrics,
    derived=lambda values: {},
    quality_metrics=("psnr-rgb", "psnr-y"),
    rate_unit="bpp",
    rate=lambda item, num_bytes: num_bytes * 8 / item.data[..., 0].size,
    speed_unit="fps",
    size=_frames,
)


# Audio: the learned codec and classical baselines through PyAV (audio_codecs.py).

# Speech sets: their items also get PESQ-WB and STOI.
_SPEECH_FOLDERS = frozenset(
    datasets.DATASETS[name].folder for name in ("ljspeech", "librispeech_test_other", "vctk")
)


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)


def _load_audio(path: Path, name: str) -> MediaItem:
    audio = read_audio(path)
    return MediaItem(name=name, path=path, kind="audio", data=audio.samples, rate=audio.rate)


def _audio_metrics(item: MediaItem, decoded: np.ndarray) -> dict[str, float]:
    return audio_metrics(item, decoded, speech=not _SPEECH_FOLDERS.isdisjoint(item.path.parts))


def _audio_codec(name: str) -> CodecFactory:
    return _plain(lambda _: {c.name: c for c in audio_codecs.classical_audio_codecs()}[name], name)


def _seconds(item: MediaItem) -> float:
    return item.data.shape[1] / item.rate


_AUDIO_CODECS = tuple(c.name for c in audio_codecs.classical_audio_codecs())
MEDIA["audio"] = MediaBench(
    kind="audio",
    codecs={
        "nvcodec": lambda option, threads: audio_codecs.NvcodecAudio.load(option),
        **{name: _audio_codec(name) for name in _AUDIO_CODECS},
    },
    default_codecs=("nvcodec", *_AUDIO_CODECS),
    default_anchors=("opus",),
    default_dataset="librispeech_test_other",
    discover=_audio_files,
    load=_load_audio,
    metrics=_audio_metrics,
    derived=lambda values: {},
    quality_metrics=("pesq-wb", "stoi", "si-sdr", "mel-distance"),
    rate_unit="kbps",
    rate=lambda item, num_bytes: num_bytes * 8 / _seconds(item) / 1000,
    speed_unit="x realtime",
    size=_seconds,
)
