"""Video bench: classical baselines code real files (same GOP, every frame back), PSNR metrics."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, BinaryIO

import av
import numpy as np
import pytest

from nvcodec.bench import video_codecs
from nvcodec.bench.base import MediaItem
from nvcodec.bench.video_codecs import FFmpegVideoCodec, classical_video_codecs
from nvcodec.bench.video_metrics import luma, video_metrics
from nvcodec.errors import NvcodecError
from nvcodec.io.video import encode_video, read_video

CODECS = {codec.name: codec for codec in classical_video_codecs(gop=4)}


@pytest.fixture(scope="module")
def clip(samples_dir: Path) -> MediaItem:
    """10 real frames (Big Buck Bunny), cropped to 128x96 to keep the sweep fast."""
    path = samples_dir / "bigbuckbunny_360p.mp4"
    video = read_video(path, max_frames=10)
    return MediaItem("bunny", path, "video", video.frames[:, 100:196, 200:328].copy(), video.rate)


@pytest.mark.parametrize("name", sorted(CODECS))
def test_baselines_give_every_frame_back_and_rate_rises_with_quality(
    clip: MediaItem, name: str
) -> None:
    codec = CODECS[name]
    low, high = codec.code(clip, codec.settings[0]), codec.code(clip, codec.settings[-1])
    for coded in (low, high):
        assert coded.decoded.shape == clip.data.shape and coded.decoded.dtype == np.uint8
        assert coded.encode_seconds > 0 and coded.decode_seconds > 0
    assert 0 < low.num_bytes < high.num_bytes
    low_psnr = video_metrics(clip, low.decoded)["psnr-rgb"]
    assert 20 < low_psnr < video_metrics(clip, high.decoded)["psnr-rgb"]


@pytest.mark.parametrize("name", sorted(CODECS))
def test_baselines_share_the_keyframe_interval(clip: MediaItem, name: str) -> None:
    codec = CODECS[name]
    file = io.BytesIO()
    encode_video(file, clip.data, clip.rate, codec.encoding(codec.settings[2]))
    file.seek(0)
    with av.open(file) as container:
        packets = sorted(
            (packet.pts, packet.is_keyframe) for packet in container.demux(video=0) if packet.size
        )
    assert len(packets) == len(clip.data)
    assert [index for index, (_, key) in enumerate(packets) if key] == [0, 4, 8]


def test_num_bytes_is_the_whole_file(clip: MediaItem, monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[int] = []

    def encode_and_measure(file: BinaryIO, *args: Any) -> int:
        count = encode_video(file, *args)
        written.append(file.tell())
        return count

    monkeypatch.setattr(video_codecs, "encode_video", encode_and_measure)
    coded = CODECS["x264-medium"].code(clip, 30)
    assert written == [coded.num_bytes]
    # More than the coded frames: the container's header and index count too.
    file = io.BytesIO()
    encode_video(file, clip.data, clip.rate, CODECS["x264-medium"].encoding(30))
    file.seek(0)
    with av.open(file) as container:
        payload = sum(packet.size for packet in container.demux(video=0))
    assert payload < len(file.getvalue())


def test_encoder_failure_is_one_line_naming_the_item(clip: MediaItem) -> None:
    odd = MediaItem("odd", clip.path, "video", clip.data[:, :, :-1].copy(), clip.rate)
    codec = FFmpegVideoCodec("x264-medium", "libx264", "medium", (30,))
    with pytest.raises(NvcodecError, match=r"bigbuckbunny_360p\.mp4: x264-medium at CRF 30"):
        codec.code(odd, 30)


def test_psnr_y_weights_channels_by_the_frame_size_matrix() -> None:
    frames = np.full((2, 16, 8, 3), 100, np.uint8)
    item = MediaItem("flat", Path("flat"), "video", frames)
    shifted = frames + 1
    assert video_metrics(item, shifted) == pytest.approx(
        {"psnr-rgb": 20 * np.log10(255), "psnr-y": 20 * np.log10(255)}
    )
    blue = frames.copy()
    blue[..., 2] += 10
    # Y' moves by Kb * 10: BT.601 below 720 lines, BT.709 from 720.
    assert video_metrics(item, blue)["psnr-y"] == pytest.approx(20 * np.log10(255 / 1.14))
    hd = np.full((1, 720, 2, 3), 100, np.uint8)
    hd_blue = hd.copy()
    hd_blue[..., 2] += 10
    assert np.allclose(luma(hd_blue[0]) - luma(hd[0]), 0.722)
    assert video_metrics(item, frames)["psnr-rgb"] >= 99  # identical: capped, finite


def test_nvcodec_inter_beats_its_all_intra_mode_on_real_frames(clip: MediaItem) -> None:
    inter = video_codecs.NvcodecVideo.load("4")
    intra = video_codecs.NvcodecVideo.load(None, intra=True)
    assert (inter.name, inter.gop, intra.name, intra.gop) == ("nvcodec:4", 4, "nvcodec-intra", 1)
    coded_inter, coded_intra = inter.code(clip, 3), intra.code(clip, 3)
    for coded in (coded_inter, coded_intra):
        assert coded.decoded.shape == clip.data.shape and coded.decoded.dtype == np.uint8
        assert video_metrics(clip, coded.decoded)["psnr-rgb"] > 25
    assert coded_inter.num_bytes < 0.6 * coded_intra.num_bytes


def test_nvcodec_option_names_a_gop_a_model_or_both() -> None:
    with pytest.raises(NvcodecError, match="GOP"):
        video_codecs.NvcodecVideo.load("video-wavelet@0")
    assert video_codecs.NvcodecVideo.load("video-wavelet@12").gop == 12
    assert video_codecs.NvcodecVideo.load("video-wavelet").gop == video_codecs.DEFAULT_GOP
