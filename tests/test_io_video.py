"""Video files <-> RGB frames: containers, frame folders, colour matrix and range, writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nvcodec.bench.image_metrics import psnr
from nvcodec.errors import NvcodecError
from nvcodec.io.image import write_image
from nvcodec.io.video import (
    FOLDER_FRAME_RATE,
    VideoEncoding,
    VideoReader,
    encode_video,
    read_video,
    write_video,
)


def smooth_frames(count: int, height: int, width: int) -> np.ndarray:
    """Moving colour gradients: easy for lossy codecs, every channel and frame distinct."""
    y, x = np.mgrid[0:height, 0:width]
    frames = [
        np.stack([x * 200 / width + 3 * t, y * 200 / height + 20, (x + y) * 100 / (width + height)])
        for t in range(count)
    ]
    return np.clip(np.stack(frames).transpose(0, 2, 3, 1) + 20, 0, 255).astype(np.uint8)


def write_y4m(path: Path, height: int, width: int, yuv: tuple[int, int, int], header: str) -> None:
    """Two constant-colour 4:2:0 frames; ``header`` adds the colour tags (C..., X...)."""
    dtype = np.uint16 if "p10" in header else np.uint8
    planes = [
        np.full(shape, value, dtype)
        for shape, value in zip(
            [(height, width), (height // 2, width // 2), (height // 2, width // 2)],
            yuv,
            strict=True,
        )
    ]
    with path.open("wb") as file:
        file.write(f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 {header}\n".encode())
        for _ in range(2):
            file.write(b"FRAME\n" + b"".join(plane.tobytes() for plane in planes))


def test_sample_mp4_streams_frames_with_its_rate_count_and_colour(samples_dir: Path) -> None:
    with VideoReader(samples_dir / "bigbuckbunny_360p.mp4") as reader:
        info = reader.info
        first = next(iter(reader))
    assert (info.width, info.height, info.rate, info.frames) == (640, 360, 25.0, 75)
    assert (info.matrix, info.full_range) == ("bt601", False)  # untagged SD: BT.601, limited
    assert first.shape == (360, 640, 3) and first.dtype == np.uint8
    video = read_video(samples_dir / "bigbuckbunny_360p.mp4", max_frames=3)
    assert video.frames.shape == (3, 360, 640, 3) and video.rate == 25.0
    np.testing.assert_array_equal(video.frames[0], first)


def test_image_folder_is_read_in_natural_order(tmp_path: Path) -> None:
    for index in (1, 2, 10):
        write_image(tmp_path / f"f{index}.png", np.full((4, 6, 3), index, np.uint8))
    write_image(tmp_path / "f3.png", np.full((4, 6, 1), 3, np.uint8))  # gray becomes RGB
    (tmp_path / "SOURCE.md").write_text("not a frame")
    video = read_video(tmp_path)
    assert [int(frame[0, 0, 0]) for frame in video.frames] == [1, 2, 3, 10]
    assert video.info.frames == 4 and video.info.matrix == "rgb"
    assert video.rate == FOLDER_FRAME_RATE
    assert read_video(tmp_path, frame_rate=50).rate == 50.0


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(NvcodecError, match="no image frames"):
        read_video(tmp_path)
    write_image(tmp_path / "a1.png", np.zeros((4, 6, 3), np.uint8))
    write_image(tmp_path / "a2.png", np.zeros((4, 8, 3), np.uint8))
    with pytest.raises(NvcodecError, match=r"a2\.png: frame size differs"):
        read_video(tmp_path)


def test_ffv1_mkv_is_lossless_and_its_frames_are_counted(tmp_path: Path) -> None:
    frames = np.random.default_rng(0).integers(0, 256, (5, 24, 32, 3), dtype=np.uint8)
    assert write_video(tmp_path / "v.mkv", frames, 30) == 5
    video = read_video(tmp_path / "v.mkv")
    np.testing.assert_array_equal(video.frames, frames)
    assert (video.info.frames, video.rate, video.info.matrix) == (5, 30.0, "rgb")


@pytest.mark.parametrize("suffix", [".mp4", ".y4m"])
def test_yuv_writers_tag_what_the_reader_assumes(tmp_path: Path, suffix: str) -> None:
    frames = smooth_frames(6, 48, 64)
    write_video(tmp_path / f"v{suffix}", frames, 29.97)
    video = read_video(tmp_path / f"v{suffix}")
    assert video.frames.shape == frames.shape and video.info.frames == 6
    assert (video.info.matrix, video.info.full_range) == ("bt601", False)
    assert video.rate == pytest.approx(29.97, abs=1e-3)
    assert psnr(frames, video.frames) > 38


@pytest.mark.parametrize("suffix", [".mp4", ".y4m"])
def test_hd_frames_use_bt709_both_ways(tmp_path: Path, suffix: str) -> None:
    """Saturated colours survive only if writer and reader agree on the matrix."""
    frames = np.zeros((2, 720, 32, 3), np.uint8)
    frames[:, :240, :, 0] = frames[:, 240:480, :, 1] = frames[:, 480:, :, 2] = 255
    write_video(tmp_path / f"hd{suffix}", frames, 25)
    video = read_video(tmp_path / f"hd{suffix}")
    assert video.info.matrix == "bt709"
    inner = (slice(None), slice(16, 224), slice(None))  # away from chroma edges
    assert np.abs(video.frames[inner].astype(int) - frames[inner]).max() <= 4


def test_y4m_colour_is_converted_by_its_matrix_and_range(tmp_path: Path) -> None:
    # BT.601 limited-range red; read as BT.709 its green would be ~24.
    write_y4m(tmp_path / "red.y4m", 16, 16, (81, 90, 240), "C420jpeg")
    np.testing.assert_allclose(
        read_video(tmp_path / "red.y4m").frames[0, 8, 8], [255, 0, 0], atol=3
    )
    # Full-range black-ish gray: Y=16 is RGB 16 in full range, 0 if taken as limited.
    write_y4m(tmp_path / "full.y4m", 16, 16, (16, 128, 128), "C420jpeg XCOLORRANGE=FULL")
    video = read_video(tmp_path / "full.y4m")
    assert video.info.full_range
    np.testing.assert_allclose(video.frames[0, 8, 8], [16, 16, 16], atol=1)
    # 10-bit 4:2:0 (the same red, scaled by 4) comes out as 8-bit RGB.
    write_y4m(tmp_path / "red10.y4m", 16, 16, (324, 360, 960), "C420p10 XYSCSS=420P10")
    red = read_video(tmp_path / "red10.y4m").frames
    assert red.dtype == np.uint8
    np.testing.assert_allclose(red[0, 8, 8], [255, 0, 0], atol=3)


@pytest.mark.parametrize(
    ("name", "encoding"),
    [
        ("v.webm", VideoEncoding("libvpx-vp9", "webm", "yuv420p", (("crf", "20"), ("b", "0")))),
        ("v.mov", VideoEncoding("libx264", "mov", "yuv420p", (("crf", "18"),))),
    ],
)
def test_other_containers_read_back(tmp_path: Path, name: str, encoding: VideoEncoding) -> None:
    frames = smooth_frames(4, 48, 64)
    with (tmp_path / name).open("wb") as file:
        assert encode_video(file, frames, 25, encoding) == 4
    video = read_video(tmp_path / name)
    assert video.frames.shape == frames.shape and video.info.frames == 4
    assert psnr(frames, video.frames) > 35


def test_reader_errors_name_the_file(tmp_path: Path, samples_dir: Path) -> None:
    with pytest.raises(NvcodecError, match=r"missing\.mp4: no such file"):
        read_video(tmp_path / "missing.mp4")
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(NvcodecError, match=r"text\.mp4: not a readable video"):
        read_video(tmp_path / "text.mp4")
    with pytest.raises(NvcodecError, match=r"LJ001-0004\.wav: no video stream"):
        read_video(samples_dir / "LJ001-0004.wav")


def test_writer_errors_leave_no_file(tmp_path: Path) -> None:
    with pytest.raises(NvcodecError, match="unknown video extension"):
        write_video(tmp_path / "v.avi", smooth_frames(1, 8, 8), 25)
    frames = [smooth_frames(1, 16, 16)[0], smooth_frames(1, 16, 8)[0]]
    with pytest.raises(NvcodecError, match=r"v\.mkv: cannot write video \(frame 1"):
        write_video(tmp_path / "v.mkv", frames, 25)
    with pytest.raises(NvcodecError, match="no frames"):
        write_video(tmp_path / "v.mp4", [], 25)
    assert list(tmp_path.iterdir()) == []
    write_video(tmp_path / "v.mkv", smooth_frames(1, 8, 8), 25)
    with pytest.raises(NvcodecError, match="already exists"):
        write_video(tmp_path / "v.mkv", smooth_frames(1, 8, 8), 25)
