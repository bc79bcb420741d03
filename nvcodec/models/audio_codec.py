"""The audio codec (RVQ tokenizer): compressed complex STFT -> ConvNeXt encoder -> residual
vector quantizer -> ConvNeXt decoder -> compressed complex STFT -> inverse STFT.

Every layer runs at the frame rate (75 Hz at 24 kHz with hop 320), as in Vocos and
WavTokenizer, which trains several times faster on a CPU than waveform convolutions. One model
serves every bitrate: ``stages`` codebooks of ``log2(codebook_size)`` bits at the frame rate
(quantizer dropout in training), e.g. 8 x 10 bits x 75 Hz = 6 kbps before entropy coding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from nvcodec.models.rvq import ResidualVectorQuantizer
from nvcodec.transforms.spectral import CompressedSpectrum

ARCHITECTURE = "spectral-rvq-audio-v1"


@dataclass(frozen=True)
class AudioCodecConfig:
    """Everything needed to rebuild the network before loading its weights."""

    sample_rate: int = 24000
    n_fft: int = 1280
    hop: int = 320
    compression: float = 0.3
    encoder_width: int = 256
    encoder_blocks: int = 4
    decoder_width: int = 384
    decoder_blocks: int = 6
    mlp_ratio: int = 3
    kernel: int = 7
    latent_dim: int = 128
    codebooks: int = 16
    codebook_size: int = 1024
    code_dim: int = 8

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    @property
    def receptive_frames(self) -> int:
        """Frames of context either side that can change one output frame (encoder + decoder)."""
        return (self.encoder_blocks + self.decoder_blocks) * (self.kernel // 2) + 2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AudioCodecConfig:
        return cls(**values)


class ConvNeXtBlock(nn.Module):
    """Depthwise temporal conv, LayerNorm, pointwise MLP, scaled residual (ConvNeXt / Vocos)."""

    def __init__(self, width: int, kernel: int, mlp_ratio: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv1d(width, width, kernel, padding=kernel // 2, groups=width)
        self.norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, width * mlp_ratio), nn.GELU(), nn.Linear(width * mlp_ratio, width)
        )
        self.scale = nn.Parameter(torch.full((width,), 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.mlp(self.norm(self.depthwise(x).transpose(1, 2))) * self.scale
        return x + y.transpose(1, 2)


def _stack(inputs: int, width: int, blocks: int, outputs: int, c: AudioCodecConfig) -> nn.Module:
    return nn.Sequential(
        nn.Conv1d(inputs, width, 3, padding=1),
        *(ConvNeXtBlock(width, c.kernel, c.mlp_ratio) for _ in range(blocks)),
        nn.Conv1d(width, outputs, 1),
    )


class SpectralAudioCodec(nn.Module):
    """Mono waveform (B, N) with N a multiple of ``hop`` <-> (B, N / hop + 1, stages) indices."""

    def __init__(self, config: AudioCodecConfig) -> None:
        super().__init__()
        self.config = config
        self.spectrum = CompressedSpectrum(config.n_fft, config.hop, config.compression)
        bins2 = 2 * self.spectrum.bins
        c = config
        self.encoder = _stack(bins2, c.encoder_width, c.encoder_blocks, c.latent_dim, c)
        self.quantizer = ResidualVectorQuantizer(
            c.latent_dim, c.codebooks, c.codebook_size, c.code_dim
        )
        self.decoder = _stack(c.latent_dim, c.decoder_width, c.decoder_blocks, bins2, c)

    def encode_latent(self, wave: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.spectrum.forward(wave))

    def decode_features(self, latent: torch.Tensor) -> torch.Tensor:
        """Compressed complex spectrum (B, 2 * bins, frames) from a quantized latent."""
        return self.decoder(latent)

    def encode(self, wave: torch.Tensor, stages: int) -> torch.Tensor:
        return self.quantizer.quantize(self.encode_latent(wave), stages)

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        return self.spectrum.inverse(self.decode_features(self.quantizer.dequantize(indices)))

    def forward(
        self, wave: torch.Tensor, active: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Training pass: (waveform, decoded features, target features, quantizer loss,
        stage projections) with ``active[b]`` codebooks for item b."""
        target = self.spectrum.forward(wave)
        latent, _, vq_loss, projections = self.quantizer(self.encoder(target), active)
        features = self.decode_features(latent)
        return self.spectrum.inverse(features), features, target, vq_loss, projections
