"""The inter-frame model of the video codec: a frame coded given its motion-compensated
prediction (conditional coding) by a wavelet autoencoder.

Key frames are coded by the image model. Every other frame is predicted from the previous
decoded frame by block motion (``transforms.motion``). The shallow encoder stays one linear map
per position, now of the wavelet bands of both the frame and the prediction: it starts as
residual coding (the image encoder applied to ``frame - prediction``) and learns how much of
each prediction band to take away (a blurred or shifted prediction should not be subtracted in
full). The decoder adds a linear map of the prediction's bands (starting as the identity) and
a convolutional refiner that sees the latent and the prediction, so it can put detail back
where the prediction holds it without spending bits. Quality levels work as in the image model
(a learned gain per level, each with its own block-adaptive integer tables).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from nvcodec.entropy.adaptive import BlockAdaptiveEntropyModel
from nvcodec.models.image_codec import BandRefiner, WaveletImageCodec, error_bits
from nvcodec.transforms.wavelet import block_size, packet_forward, packet_inverse

ARCHITECTURE = "wavelet-video-v1"
# The inter-frame encoder's rate-distortion trade-off (``error_bits``): smaller than the image
# model's RD_SLOPE, since an inter frame's error is also in the prediction of the frames after
# it. HEVC class D, BD-rate vs x264 medium (PSNR-RGB / -Y): rounding +123.6% / +102.8%, 0.03
# +127.1% / +108.1%, 0.01 +118.5% / +99.7%, 0.003 +119.8% / +100.1%.
INTER_RD_SLOPE = 0.01


@dataclass(frozen=True)
class VideoCodecConfig:
    """The inter model's shape, and the image model its key frames use (id + sha256)."""

    intra_model: str
    intra_sha256: str
    levels: int = 3
    color_channels: int = 3
    latent_channels: int = 192
    decoder_width: int = 96
    decoder_blocks: int = 4
    entropy_classes: int = 4
    entropy_block: int = 2
    motion_block: int = 16
    motion_search: int = 16
    gains: tuple[float, ...] = field(default=(1.0, 1.4, 2.0, 2.8, 3.9, 5.4, 7.5, 10.4))
    # Per level: luma SAD a half-pixel step of motion-vector difference must save to be sent
    # (about 1.5 sqrt(1 / lambda) for the levels' distortion weights, as H.264's motion lambda).
    motion_costs: tuple[float, ...] = field(default=(35, 25, 18, 13, 9, 6.5, 4.5, 3.5))

    @property
    def bands(self) -> int:
        return self.color_channels * 4**self.levels

    @property
    def block(self) -> int:
        return block_size(self.levels)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "gains": list(self.gains), "motion_costs": list(self.motion_costs)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> VideoCodecConfig:
        return cls(
            **{
                **values,
                "gains": tuple(values["gains"]),
                "motion_costs": tuple(values["motion_costs"]),
            }
        )


class InterFrameCodec(nn.Module):
    """Frame (N, 3, H, W) in [-0.5, 0.5] <-> latent, both ways given its prediction."""

    def __init__(self, config: VideoCodecConfig) -> None:
        super().__init__()
        self.config = config
        self.analysis = nn.Conv2d(config.bands, config.latent_channels, 1)
        self.synthesis = nn.Conv2d(config.latent_channels, config.bands, 1)
        self.context_analysis = nn.Conv2d(config.bands, config.latent_channels, 1, bias=False)
        self.context_synthesis = nn.Conv2d(config.bands, config.bands, 1, bias=False)
        self.refiner = BandRefiner(
            config.latent_channels + config.bands,
            config.bands,
            config.decoder_width,
            config.decoder_blocks,
        )
        self.log_gains = nn.Parameter(torch.log(torch.tensor(config.gains)))
        self.entropy_models = nn.ModuleList(
            BlockAdaptiveEntropyModel(
                config.latent_channels, config.entropy_classes, config.entropy_block
            )
            for _ in config.gains
        )

    @property
    def qualities(self) -> int:
        return len(self.config.gains)

    def error_bits(self) -> np.ndarray:
        """The encoder's rate-distortion trade-off per latent channel (see the image model's
        ``error_bits``), with ``INTER_RD_SLOPE``."""
        return error_bits(self.synthesis, INTER_RD_SLOPE)

    def encode_latent(
        self, frame: torch.Tensor, prediction: torch.Tensor, quality: int
    ) -> torch.Tensor:
        """Unrounded latent at ``quality``'s scale: round it to get the coded symbols."""
        levels = self.config.levels
        bands = self.analysis(packet_forward(frame, levels))
        bands = bands + self.context_analysis(packet_forward(prediction, levels))
        return bands * self.log_gains[quality].exp()

    def decode_frame(
        self, latent: torch.Tensor, prediction: torch.Tensor, quality: int
    ) -> torch.Tensor:
        """The frame from (rounded) latent symbols and its prediction."""
        scaled = latent / self.log_gains[quality].exp()
        context = packet_forward(prediction, self.config.levels)
        bands = self.synthesis(scaled) + self.context_synthesis(context)
        bands = bands + self.refiner(torch.cat([scaled, context], dim=1))
        return packet_inverse(bands, self.config.levels)

    def forward(
        self, frame: torch.Tensor, prediction: torch.Tensor, quality: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass: (reconstruction, likelihoods of the noisy latent)."""
        latent_hat, likelihoods = self.entropy_models[quality](
            self.encode_latent(frame, prediction, quality)
        )
        return self.decode_frame(latent_hat, prediction, quality), likelihoods

    @torch.no_grad()
    def start_from_image_model(self, image: WaveletImageCodec) -> None:
        """Start as residual coding with the image model: its transforms and densities (same
        shapes), the prediction subtracted before the encoder and added after the decoder,
        and the refiner's prediction input at zero."""
        state = image.state_dict()
        head = state["refiner.head.weight"]
        widened = torch.zeros_like(self.refiner.head.weight)
        widened[:, : head.shape[1]] = head
        state["refiner.head.weight"] = widened
        state["context_analysis.weight"] = -state["analysis.weight"]
        identity = torch.eye(self.config.bands)[:, :, None, None]
        state["context_synthesis.weight"] = identity
        own = self.state_dict()
        for name, value in state.items():
            if name in own and own[name].shape == value.shape:
                own[name].copy_(value)
