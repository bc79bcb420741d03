"""Spectral front and back ends for audio: compressed complex STFT and mel spectrograms.

The audio codec works on a power-law compressed complex STFT (magnitude^p with the phase kept):
it has a small dynamic range a network handles well, it is exactly invertible, and a loss on
it sees the phase (a loss on magnitudes alone, without an adversary, leaves the phase unlearnt).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch


class CompressedSpectrum:
    """Waveform (B, N) <-> compressed complex STFT (B, 2 * bins, frames): real parts, then
    imaginary parts. ``N`` must be a multiple of ``hop``; there are ``N / hop + 1`` frames."""

    def __init__(self, n_fft: int, hop: int, power: float) -> None:
        self.n_fft, self.hop, self.power = n_fft, hop, power

    @property
    def bins(self) -> int:
        return self.n_fft // 2 + 1

    def _window(self, like: torch.Tensor) -> torch.Tensor:
        return torch.hann_window(self.n_fft, dtype=like.dtype, device=like.device)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        # Zero padding at the ends (not reflection): defined for inputs of any length.
        spec = torch.stft(
            wave,
            self.n_fft,
            self.hop,
            window=self._window(wave),
            pad_mode="constant",
            return_complex=True,
        ) / math.sqrt(self.n_fft)
        magnitude = spec.abs().clamp_min(1e-8)
        compressed = spec * magnitude ** (self.power - 1)
        return torch.cat([compressed.real, compressed.imag], dim=1)

    def inverse(self, features: torch.Tensor) -> torch.Tensor:
        real, imag = features.split(self.bins, dim=1)
        compressed = torch.complex(real, imag)
        magnitude = compressed.abs().clamp_min(1e-8)
        spec = compressed * magnitude ** (1 / self.power - 1) * math.sqrt(self.n_fft)
        length = (features.shape[-1] - 1) * self.hop
        return torch.istft(spec, self.n_fft, self.hop, window=self._window(real), length=length)


@lru_cache(maxsize=16)
def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters on the HTK mel scale, Slaney-normalized."""

    def to_mel(hz: torch.Tensor) -> torch.Tensor:
        return 2595 * torch.log10(1 + hz / 700)

    def to_hz(mel: torch.Tensor) -> torch.Tensor:
        return 700 * (10 ** (mel / 2595) - 1)

    edges = to_hz(torch.linspace(0, float(to_mel(torch.tensor(sample_rate / 2))), n_mels + 2))
    freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lower) / (center - lower)
    falling = (upper - freqs) / (upper - center)
    triangles = torch.clamp(torch.minimum(rising, falling), min=0)
    return triangles * (2 / (upper - lower))


def log_mel(wave: torch.Tensor, sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """log10 mel power spectrogram (B, n_mels, frames), hop n_fft/4, floor 1e-5."""
    window = torch.hann_window(n_fft, dtype=wave.dtype, device=wave.device)
    spec = torch.stft(wave, n_fft, n_fft // 4, window=window, return_complex=True)
    power = spec.real**2 + spec.imag**2
    mel = mel_filterbank(n_fft, n_mels, sample_rate).to(wave) @ power
    return torch.log10(mel.clamp_min(1e-5))


# (n_fft, n_mels) of the multi-scale mel distance: the audio codec's training loss and the
# bench's metric are the same function.
MEL_SCALES = ((512, 40), (1024, 80), (2048, 128))


def mel_distance(reference: torch.Tensor, decoded: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Mean L1 distance of ``log_mel`` over ``MEL_SCALES`` (lower is better; differentiable)."""
    distances = [
        (log_mel(decoded, sample_rate, n, m) - log_mel(reference, sample_rate, n, m)).abs().mean()
        for n, m in MEL_SCALES
    ]
    return torch.stack(distances).mean()
