"""Audio files <-> arrays: lossless round trips, aligned lossy codecs, bitrates, resampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nvcodec.errors import NvcodecError
from nvcodec.io.audio import Audio, read_audio, resample, write_audio
from nvcodec.io.video import write_video


@pytest.fixture(scope="module")
def speech(samples_dir: Path) -> Audio:
    return read_audio(samples_dir / "LJ001-0004.wav", rate=16000)


def lag(reference: np.ndarray, decoded: np.ndarray) -> int:
    """Lag (samples) of the cross-correlation peak: positive when ``decoded`` is late."""
    n = len(reference)
    spectrum = np.fft.rfft(decoded[:n], 2 * n) * np.conj(np.fft.rfft(reference, 2 * n))
    peak = int(np.argmax(np.fft.irfft(spectrum)))
    return peak if peak < n else peak - 2 * n


def test_sample_reads_at_its_own_rate(samples_dir: Path) -> None:
    audio = read_audio(samples_dir / "LJ001-0004.wav")
    assert (audio.rate, audio.channels, audio.samples.dtype) == (22050, 1, np.float32)
    assert audio.duration == pytest.approx(5.14, abs=0.01)


@pytest.mark.parametrize("suffix", [".wav", ".flac"])
def test_lossless_formats_round_trip(tmp_path: Path, speech: Audio, suffix: str) -> None:
    stereo = Audio(np.stack([speech.samples[0], -speech.samples[0]]), speech.rate)
    write_audio(tmp_path / f"a{suffix}", stereo)
    back = read_audio(tmp_path / f"a{suffix}")
    assert back.rate == stereo.rate and back.samples.shape == stereo.samples.shape
    np.testing.assert_allclose(back.samples, stereo.samples, atol=1 / 32768)


@pytest.mark.parametrize("suffix", [".ogg", ".m4a", ".mp3"])
@pytest.mark.parametrize("rate", [16000, 22050])
def test_lossy_formats_decode_aligned(
    tmp_path: Path, speech: Audio, suffix: str, rate: int
) -> None:
    """The container's priming info (Ogg pre-skip, MP4 edit list, LAME tag) lines samples up."""
    audio = resample(speech, rate)
    write_audio(tmp_path / f"a{suffix}", audio, bitrate=32000)
    back = read_audio(tmp_path / f"a{suffix}", rate=rate)
    assert lag(audio.samples[0], back.samples[0]) == 0
    extra = back.samples.shape[1] - audio.samples.shape[1]
    assert 0 <= extra <= (1024 if suffix == ".m4a" else 0)  # AAC keeps its last frame's padding


def test_bitrate_sets_the_lossy_rate(tmp_path: Path, speech: Audio) -> None:
    sizes = {}
    for kbps in (12, 24):
        write_audio(tmp_path / f"{kbps}.ogg", speech, bitrate=kbps * 1000)
        sizes[kbps] = (tmp_path / f"{kbps}.ogg").stat().st_size * 8 / speech.duration / 1000
    assert sizes[12] == pytest.approx(12, rel=0.2) and sizes[24] == pytest.approx(24, rel=0.2)


def test_resample_keeps_the_exact_length_and_a_tone(speech: Audio) -> None:
    t = np.arange(16000) / 16000
    tone = Audio(np.sin(2 * np.pi * 1000 * t).astype(np.float32)[None], 16000)
    up = resample(tone, 44100)
    assert up.samples.shape == (1, 44100)
    back = resample(up, 16000)
    assert back.samples.shape == tone.samples.shape
    error = back.samples[0, 100:-100] - tone.samples[0, 100:-100]
    assert np.sqrt(np.mean(error**2)) < 1e-3
    assert resample(speech, 22050).samples.shape[1] == round(
        speech.samples.shape[1] * 22050 / 16000
    )


def test_errors_name_the_file_and_leave_no_output(tmp_path: Path, speech: Audio) -> None:
    with pytest.raises(NvcodecError, match="unknown audio extension"):
        write_audio(tmp_path / "a.xyz", speech)
    three = Audio(np.zeros((3, 1600), np.float32), 16000)
    with pytest.raises(NvcodecError, match=r"a\.mp3: cannot write audio"):
        write_audio(tmp_path / "a.mp3", three)  # LAME codes one or two channels
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(NvcodecError, match=r"missing\.wav"):
        read_audio(tmp_path / "missing.wav")
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(NvcodecError, match=r"text\.wav: not a readable audio file"):
        read_audio(tmp_path / "text.wav")
    write_video(tmp_path / "silent.mkv", np.zeros((1, 8, 8, 3), np.uint8), 25)
    with pytest.raises(NvcodecError, match=r"silent\.mkv: no audio stream"):
        read_audio(tmp_path / "silent.mkv")
