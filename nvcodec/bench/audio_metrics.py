"""Audio quality for the bench, all compared at the source rate on equal-length signals.

- ``si-sdr``: scale-invariant SDR in dB (Le Roux et al. 2019), no mean removal, per channel,
  averaged over channels: 10 log10(|a s|^2 / |a s - y|^2) with a = <y, s> / |s|^2.
- ``mel-distance``: multi-scale log-mel distance (lower is better): for each (FFT size, mel bands)
  in ``MEL_SCALES``, log10 of the mel power spectrogram (periodic Hann window of the FFT size,
  hop a quarter of it, centred frames, HTK-scale Slaney-normalised triangles from 0 Hz to
  Nyquist, floor 1e-5; ``transforms.spectral.log_mel``), mean absolute difference over bands,
  frames and channels; then the mean over the scales.
- ``pesq-wb`` (ITU-T P.862.2 through the ``pesq`` package, on the channel mean resampled to
  16 kHz) and ``stoi`` (Taal et al. 2011 through ``pystoi``, at the source rate), for speech only:
  the caller says whether the item is speech (a dataset flag).
"""

from __future__ import annotations

import numpy as np
import torch

from nvcodec.bench.base import MediaItem
from nvcodec.errors import NvcodecError
from nvcodec.io.audio import Audio, resample
from nvcodec.transforms.spectral import MEL_SCALES
from nvcodec.transforms.spectral import mel_distance as _mel_distance

_EPS = 1e-10


def si_sdr(reference: np.ndarray, decoded: np.ndarray) -> float:
    """SI-SDR in dB of (channels, N) ``decoded`` against ``reference``, averaged over channels."""
    ref = reference.astype(np.float64)
    dec = decoded.astype(np.float64)
    scale = np.sum(dec * ref, axis=-1, keepdims=True) / (
        np.sum(ref**2, axis=-1, keepdims=True) + _EPS
    )
    target = scale * ref
    ratio = (np.sum(target**2, axis=-1) + _EPS) / (np.sum((dec - target) ** 2, axis=-1) + _EPS)
    return float(np.mean(10 * np.log10(ratio)))


def mel_distance(reference: np.ndarray, decoded: np.ndarray, rate: int) -> float:
    """Multi-scale log-mel L1 distance of (channels, N) signals at ``rate`` Hz (see module)."""
    length = max(reference.shape[-1], MEL_SCALES[-1][0])  # centred frames need n_fft/2 samples

    def tensor(signal: np.ndarray) -> torch.Tensor:
        padded = np.pad(signal, ((0, 0), (0, length - signal.shape[-1])))
        return torch.from_numpy(padded.astype(np.float64))

    return float(_mel_distance(tensor(reference), tensor(decoded), rate))


def speech_metrics(reference: np.ndarray, decoded: np.ndarray, rate: int) -> dict[str, float]:
    """PESQ-WB (16 kHz) and STOI of the channel means (needs the ``bench`` extra)."""
    try:
        from pesq import NoUtterancesError, pesq
        from pystoi import stoi
    except ImportError:
        raise NvcodecError(
            "speech metrics need the pesq and pystoi packages: pip install 'nvcodec[bench]'"
        ) from None
    ref, dec = reference.mean(axis=0), decoded.mean(axis=0)
    ref16, dec16 = (resample(Audio(x[None], rate), 16000).samples[0] for x in (ref, dec))
    try:
        # pesq divides by the peak: silence warns before it raises NoUtterancesError.
        with np.errstate(invalid="ignore", divide="ignore"):
            wideband = pesq(16000, ref16.astype(np.float64), dec16.astype(np.float64), "wb")
    except NoUtterancesError:
        raise NvcodecError("PESQ found no speech in the reference") from None
    return {"pesq-wb": float(wideband), "stoi": float(stoi(ref, dec, rate, extended=False))}


def audio_metrics(
    reference: MediaItem, decoded: np.ndarray, *, speech: bool = False
) -> dict[str, float]:
    """SI-SDR and mel distance of ``decoded`` (channels, N); PESQ-WB and STOI when ``speech``."""
    if decoded.shape != reference.data.shape:
        raise ValueError(f"shapes differ: {reference.data.shape} vs {decoded.shape}")
    rate = int(reference.rate)
    values = {
        "si-sdr": si_sdr(reference.data, decoded),
        "mel-distance": mel_distance(reference.data, decoded, rate),
    }
    if speech:
        try:
            values |= speech_metrics(reference.data, decoded, rate)
        except NvcodecError as error:
            raise NvcodecError(f"{reference.path}: {error}") from None
    return values
