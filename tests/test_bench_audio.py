"""Audio bench: classical baselines code real files that line up with the source; metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nvcodec.bench.audio_codecs import FFmpegAudioCodec, classical_audio_codecs
from nvcodec.bench.audio_metrics import audio_metrics, mel_distance, si_sdr
from nvcodec.bench.base import MediaItem
from nvcodec.errors import NvcodecError
from nvcodec.io.audio import read_audio

CODECS = {codec.name: codec for codec in classical_audio_codecs()}


@pytest.fixture(scope="module")
def speech(samples_dir: Path) -> MediaItem:
    """LJ001-0004 (5.1 s of speech) at 16 kHz, the rate the speech sets use."""
    path = samples_dir / "LJ001-0004.wav"
    audio = read_audio(path, rate=16000)
    return MediaItem("LJ001-0004", path, "audio", audio.samples, audio.rate)


def lag(reference: np.ndarray, decoded: np.ndarray) -> int:
    """Lag (samples) of the cross-correlation peak: positive when ``decoded`` is late."""
    n = len(reference)
    spectrum = np.fft.rfft(decoded, 2 * n) * np.conj(np.fft.rfft(reference, 2 * n))
    peak = int(np.argmax(np.fft.irfft(spectrum)))
    return peak if peak < n else peak - 2 * n


@pytest.mark.parametrize(("name", "kbps"), [("opus", 12), ("opus", 24), ("aac", 32), ("mp3", 32)])
@pytest.mark.parametrize("rate", [16000, 22050])
def test_baselines_decode_aligned_at_the_source_rate(
    speech: MediaItem, samples_dir: Path, name: str, kbps: int, rate: int
) -> None:
    """Priming is trimmed from the container's info: the correlation peaks at lag 0, also
    where Opus codes 48 kHz and its output is resampled back (22.05 kHz)."""
    audio = read_audio(samples_dir / "LJ001-0004.wav", rate=rate)
    item = MediaItem("LJ", speech.path, "audio", audio.samples, rate)
    coded = CODECS[name].code(item, kbps)
    assert coded.decoded.shape == item.data.shape and coded.decoded.dtype == np.float32
    assert lag(item.data[0], coded.decoded[0]) == 0
    real_kbps = coded.num_bytes * 8 / audio.duration / 1000
    assert 0.8 * kbps < real_kbps < 1.25 * kbps  # whole file, container included


@pytest.mark.parametrize("name", sorted(CODECS))
def test_quality_rises_with_rate(speech: MediaItem, name: str) -> None:
    codec = CODECS[name]
    low, high = codec.code(speech, codec.settings[0]), codec.code(speech, codec.settings[-1])
    assert low.num_bytes < high.num_bytes
    low_values = audio_metrics(speech, low.decoded, speech=True)
    high_values = audio_metrics(speech, high.decoded, speech=True)
    assert set(low_values) == {"si-sdr", "mel-distance", "pesq-wb", "stoi"}
    assert high_values["mel-distance"] < low_values["mel-distance"]
    assert high_values["pesq-wb"] > low_values["pesq-wb"] and high_values["pesq-wb"] > 3.5
    assert high_values["stoi"] > 0.95


def test_stereo_is_coded_as_stereo(speech: MediaItem) -> None:
    stereo = np.stack([speech.data[0], 0.5 * speech.data[0][::-1]])
    item = MediaItem("stereo", speech.path, "audio", stereo, speech.rate)
    coded = CODECS["opus"].code(item, 32)
    assert coded.decoded.shape == stereo.shape
    # Each channel decodes to its own signal, not to a mix of the two.
    correlation = np.corrcoef(np.concatenate([stereo, coded.decoded]))[:2, 2:]
    assert correlation[0, 0] > 0.8 and correlation[1, 1] > 0.8
    assert abs(correlation[0, 1]) < 0.2 and abs(correlation[1, 0]) < 0.2


def test_codec_failure_names_the_item(speech: MediaItem) -> None:
    three = MediaItem("three", speech.path, "audio", np.zeros((3, 1600), np.float32), 16000)
    with pytest.raises(NvcodecError, match=r"LJ001-0004\.wav: mp3 at 32 kbps"):
        FFmpegAudioCodec("mp3", ".mp3", (32,)).code(three, 32)  # LAME codes 1 or 2 channels


def test_si_sdr_is_scale_invariant_and_measures_noise() -> None:
    rng = np.random.default_rng(0)
    signal = rng.standard_normal((1, 16000))
    noise = rng.standard_normal((1, 16000))
    noise -= (noise @ signal.T) / (signal @ signal.T) * signal  # orthogonal to the signal
    noisy = signal + noise * np.sqrt(np.sum(signal**2) / np.sum(noise**2) / 10)  # 10 dB SNR
    assert si_sdr(signal, noisy) == pytest.approx(10, abs=1e-6)
    assert si_sdr(signal, 0.3 * noisy) == pytest.approx(10, abs=1e-6)
    assert si_sdr(signal, signal) > 80


def test_mel_distance_is_zero_for_identical_and_grows_with_noise() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(8000) / 16000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t))[None]
    assert mel_distance(tone, tone, 16000) == 0
    small = mel_distance(tone, tone + 1e-3 * rng.standard_normal(tone.shape), 16000)
    large = mel_distance(tone, tone + 1e-1 * rng.standard_normal(tone.shape), 16000)
    assert 0 < small < large
    short = tone[:, :300]  # shorter than the largest FFT: still defined
    assert 0 < mel_distance(short, 0.5 * short, 16000) < np.log10(4)


def test_speech_metrics_only_when_asked(speech: MediaItem) -> None:
    values = audio_metrics(speech, speech.data)
    assert set(values) == {"si-sdr", "mel-distance"}
    values = audio_metrics(speech, speech.data, speech=True)
    assert values["pesq-wb"] > 4.5 and values["stoi"] > 0.99
    silent = MediaItem(
        "silence", Path("silence.wav"), "audio", np.zeros((1, 16000), np.float32), 16000
    )
    with pytest.raises(NvcodecError, match=r"silence\.wav: PESQ found no speech"):
        audio_metrics(silent, silent.data, speech=True)
