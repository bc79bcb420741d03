"""The learned video codec at the frame level: round trips, motion coding, determinism, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nvcodec.codecs.video import (
    KEY,
    VideoCodec,
    decode_motion,
    encode_motion,
)
from nvcodec.errors import BitstreamError
from nvcodec.io.image import read_image


@pytest.fixture(scope="module")
def codec() -> VideoCodec:
    return VideoCodec.load()


def _panning(photo: np.ndarray, frames: int, height: int, width: int) -> list[np.ndarray]:
    """A camera pan across a real photo: 2 pixels right and 1 down per frame."""
    return [photo[t : t + height, 2 * t : 2 * t + width].copy() for t in range(frames)]


@pytest.fixture(scope="module")
def clip(samples_dir: Path) -> list[np.ndarray]:
    return _panning(read_image(samples_dir / "kodim23.png")[150:, 100:], 6, 128, 192)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255**2 / mse))


def test_round_trip_predicts_from_the_previous_frame(
    codec: VideoCodec, clip: list[np.ndarray]
) -> None:
    encoder, decoder = codec.encoder(3, gop=4), codec.decoder(128, 192)
    coded = [encoder.encode(frame) for frame in clip]
    assert [c.keyframe for c in coded] == [True, False, False, False, True, False]
    decoded = [decoder.decode(c.payload) for c in coded]
    for frame, out in zip(clip, decoded, strict=True):
        assert out.shape == frame.shape and out.dtype == np.uint8
        assert _psnr(out, frame) > 26
    # Inter frames cost far less than the key frame they follow.
    assert max(len(c.payload) for c in coded[1:4]) < len(coded[0].payload) / 2
    # The encoder's reference is exactly what the decoder output (no drift between them).
    assert np.array_equal(encoder.reference[:128, :192], decoded[-1])


def test_odd_sizes_and_determinism(codec: VideoCodec, clip: list[np.ndarray]) -> None:
    frames = [f[:37, :53] for f in clip[:3]]
    runs = []
    for _ in range(2):
        encoder = codec.encoder(2, gop=32)
        runs.append([encoder.encode(f).payload for f in frames])
    assert runs[0] == runs[1]
    decoder = codec.decoder(37, 53)
    outs = [decoder.decode(p) for p in runs[0]]
    assert all(o.shape == (37, 53, 3) for o in outs)
    again = codec.decoder(37, 53)
    assert all(np.array_equal(a, again.decode(p)) for a, p in zip(outs, runs[0], strict=True))


def test_scene_cut_becomes_a_key_frame_and_restarts_the_gop(
    codec: VideoCodec, samples_dir: Path
) -> None:
    photo = read_image(samples_dir / "kodim23.png")
    first = photo[:64, :96].copy()
    cut = [photo[300 + t : 364 + t, 500:596][::-1].copy() for t in range(5)]
    encoder = codec.encoder(3, gop=4)
    assert encoder.encode(first).keyframe
    assert [encoder.encode(frame).keyframe for frame in cut] == [True, False, False, False, True]


def test_inter_frame_needs_a_reference(codec: VideoCodec, clip: list[np.ndarray]) -> None:
    encoder = codec.encoder(3)
    encoder.encode(clip[0])
    inter = encoder.encode(clip[1]).payload
    assert inter[1] != KEY
    with pytest.raises(BitstreamError, match="without a reference"):
        codec.decoder(128, 192).decode(inter)


def test_damaged_payloads_raise_bitstream_errors(codec: VideoCodec, clip: list[np.ndarray]) -> None:
    encoder = codec.encoder(3)
    key = encoder.encode(clip[0]).payload
    inter = encoder.encode(clip[1]).payload
    rng = np.random.default_rng(1)
    for payload in (key, inter):
        for cut in (0, 1, 3, 5, 9, len(payload) // 2, len(payload) - 1):
            decoder = codec.decoder(128, 192)
            decoder.decode(key)
            with pytest.raises(BitstreamError):
                decoder.decode(payload[:cut])
        for _ in range(20):
            damaged = bytearray(payload)
            damaged[rng.integers(0, 9)] ^= 1 << int(rng.integers(0, 8))  # headers
            decoder = codec.decoder(128, 192)
            decoder.decode(key)
            try:
                out = decoder.decode(bytes(damaged))
            except BitstreamError:
                continue
            assert out.shape == (128, 192, 3)  # a flip that still parses gives a frame


def test_key_frame_of_another_size_is_refused(codec: VideoCodec, clip: list[np.ndarray]) -> None:
    key = codec.encoder(3).encode(clip[0]).payload
    with pytest.raises(BitstreamError, match="key frame is"):
        codec.decoder(96, 192).decode(key)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 5),
    st.integers(1, 7),
    st.integers(1, 32),
    st.integers(0, 2**32 - 1),
)
def test_motion_coding_round_trips(rows: int, cols: int, limit: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    spread = int(rng.integers(0, limit + 1))
    vectors = rng.integers(-spread, spread + 1, (2, rows, cols)).astype(np.int16)
    choice, data = encode_motion(vectors, limit)
    assert np.array_equal(decode_motion(data, choice, (rows, cols), limit), vectors)


def test_motion_out_of_range_is_a_bitstream_error() -> None:
    vectors = np.array([[[4, 4]], [[0, 0]]], dtype=np.int16)
    choice, data = encode_motion(vectors, 4)
    with pytest.raises(BitstreamError):
        decode_motion(data, choice, (1, 2), 2)  # read with a smaller range: beyond it
    with pytest.raises(BitstreamError):
        decode_motion(data, (9, 0), (1, 2), 4)


def test_other_packet_versions_are_refused(codec: VideoCodec, clip: list[np.ndarray]) -> None:
    """Versions 1-4 (the latent in separate coder streams or the class map coded uniformly,
    models no longer shipped) and unknown ones get a clear error, not a misread frame."""
    encoder = codec.encoder(3, gop=8)
    key, inter = (encoder.encode(frame).payload for frame in clip[:2])
    assert inter[0] == 5
    decoder = codec.decoder(128, 192)
    decoder.decode(key)
    for version in (4, 6):
        with pytest.raises(BitstreamError, match=f"version {version}"):
            decoder.decode(bytes([version]) + inter[1:])
