"""The wavelet image autoencoder (WaLLoC-style): Haar packet bands -> shallow encoder ->
entropy bottleneck -> heavier decoder at the latent resolution -> inverse transform.

Encoding is one per-position linear map on the wavelet bands (a few hundred MACs per pixel,
folded with the transform into one strided convolution), so it stays cheap; the decoder adds a
residual convolutional refiner on the bands. One model serves every quality level: quality
``q`` scales the latent by a learned gain before rounding (a nearly free variable-rate control)
and has its own learned density, hence its own integer tables.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nvcodec.entropy.adaptive import BlockAdaptiveEntropyModel
from nvcodec.transforms.wavelet import block_size, packet_inverse, pixel_weights

ARCHITECTURE = "wavelet-image-v1"
# Dead zone of ``quantize`` (the encoder's rule before rate-distortion optimized symbols; the
# integer tables still assume it). Kodak, BD-rate vs WebP with the model of its day: 0 (plain
# rounding) +24.8%, 0.1 +20.0%, 0.13 +20.0%, 0.16 +20.5%; shrinking every magnitude by 0.05
# instead: +22.1%. Rate-distortion optimized symbols: +7.2% -> +4.6% (payload bytes).
DEAD_ZONE = 0.12
# The encoder's rate-distortion trade-off (``symbols``): lambda, the squared error (pixels in
# [0, 1], summed) one bit is worth, is close to RD_SLOPE / gain**2 at every level (Kodak, the
# slope of each level's PSNR-rate curve: 0.028 to 0.037 times gain**2).
RD_SLOPE = 0.03


@dataclass(frozen=True)
class ImageCodecConfig:
    """Everything needed to rebuild the network before loading its weights."""

    levels: int = 3
    color_channels: int = 3
    latent_channels: int = 192
    decoder_width: int = 96
    decoder_blocks: int = 4
    # The refiner's features scaled and shifted per quality level (FiLM): it then knows the
    # quantization step it is undoing, which its input alone hides.
    decoder_conditioned: bool = False
    # Forward-adaptive entropy coding: density classes chosen per block of latent positions.
    entropy_classes: int = 1
    entropy_block: int = 4
    # Initial latent gain per quality level (learned in training): about 0.1 to 2 bpp on Kodak.
    gains: tuple[float, ...] = field(default=(1.0, 1.4, 2.0, 2.8, 3.9, 5.4, 7.5, 10.4))

    @property
    def bands(self) -> int:
        return self.color_channels * 4**self.levels

    @property
    def block(self) -> int:
        return block_size(self.levels)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "gains": list(self.gains)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ImageCodecConfig:
        return cls(**{**values, "gains": tuple(values["gains"])})


class ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(width, width, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class BandRefiner(nn.Module):
    """Predicts a correction to the linearly decoded bands from the latent (zero at init).

    With ``levels``, the features after the head are scaled by ``1 + level_scale[level]`` and
    shifted by ``level_bias[level]`` (both zero at init) for the quality level decoded.
    """

    def __init__(
        self, latent_channels: int, bands: int, width: int, blocks: int, levels: int = 0
    ) -> None:
        super().__init__()
        self.head = nn.Conv2d(latent_channels, width, 3, padding=1)
        self.blocks = nn.Sequential(*(ResidualBlock(width) for _ in range(blocks)))
        self.tail = nn.Conv2d(width, bands, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)
        self.levels = levels
        if levels:
            self.level_scale = nn.Parameter(torch.zeros(levels, width))
            self.level_bias = nn.Parameter(torch.zeros(levels, width))

    def forward(self, latent: torch.Tensor, level: int | None = None) -> torch.Tensor:
        features = self.head(latent)
        if self.levels:
            if level is None:
                raise ValueError("this refiner is conditioned on the quality level: give it")
            scale = 1 + self.level_scale[level, :, None, None]
            features = features * scale + self.level_bias[level, :, None, None]
        return self.tail(self.blocks(features))

    @torch.no_grad()
    def grown(self, width: int, blocks: int, levels: int | None = None) -> BandRefiner:
        """A copy ``width`` channels wide and ``blocks`` deep (conditioned on ``levels``
        quality levels; default: as this one) computing the same function: the new channels
        start from small random weights, and nothing reads them yet (their outgoing weights
        are zero); the new blocks, after the trained ones, add zero to the residual stream; a
        new conditioning starts at scale 1, shift 0. So training grows a trained refiner
        instead of starting from zero."""
        old = self.head.out_channels
        levels = self.levels if levels is None else levels
        if width < old or blocks < len(self.blocks) or (self.levels and levels != self.levels):
            raise ValueError(
                f"cannot grow a refiner of {old} channels, {len(self.blocks)} blocks and "
                f"{self.levels} levels to {width}, {blocks} and {levels}"
            )
        wide = BandRefiner(self.head.in_channels, self.tail.out_channels, width, blocks, levels)
        if self.levels:
            wide.level_scale[:, :old] = self.level_scale
            wide.level_bias[:, :old] = self.level_bias
        convs = [(self.head, wide.head)]
        for block, wide_block in zip(self.blocks, wide.blocks, strict=False):
            convs += [(block.body[0], wide_block.body[0]), (block.body[2], wide_block.body[2])]
        convs.append((self.tail, wide.tail))
        for trained, grown in convs:
            outputs, inputs = trained.weight.shape[:2]
            grown.weight[:outputs, inputs:] = 0  # old channels ignore the new ones
            grown.weight[:outputs, :inputs] = trained.weight
            grown.bias[:outputs] = trained.bias
        for index, block in enumerate(wide.blocks):
            # New channels pass the residual stream through unchanged; new blocks add nothing.
            start = old if index < len(self.blocks) else 0
            block.body[2].weight[start:] = 0
            block.body[2].bias[start:] = 0
        return wide


def error_bits(synthesis: nn.Conv2d, slope: float) -> np.ndarray:
    """(C,) bits one unit of squared error in each latent channel is worth to the encoder
    (for ``BlockAdaptiveEntropyModel.encode``), for a linear ``synthesis`` from latent / gain
    to packet bands: at quality q that error adds |synthesis column|**2 / gain**2 to the
    image's (the packet transform is orthonormal; the refiner is left out) and a bit is worth
    ``slope`` / gain**2, so the gain cancels."""
    weight = synthesis.weight.detach()[:, :, 0, 0]
    return (weight.square().sum(dim=0) / slope).cpu().numpy()


def padded_unit(pixels: np.ndarray, block: int) -> torch.Tensor:
    """(H, W, 3) uint8 pixels as the model's input: (1, 3, H', W') in [-0.5, 0.5], edges
    replicated to whole ``block``s (only the true size is stored, so padding costs little)."""
    x = torch.tensor(pixels).permute(2, 0, 1)[None].float() / 255 - 0.5
    pad = (0, -x.shape[3] % block, 0, -x.shape[2] % block)
    return F.pad(x, pad, mode="replicate") if any(pad) else x


class WaveletImageCodec(nn.Module):
    """Image in [-0.5, 0.5] (N, C, H, W with H, W multiples of ``config.block``) <-> latent."""

    def __init__(self, config: ImageCodecConfig) -> None:
        super().__init__()
        self.config = config
        self.analysis = nn.Conv2d(config.bands, config.latent_channels, 1)
        self.synthesis = nn.Conv2d(config.latent_channels, config.bands, 1)
        self.refiner = BandRefiner(
            config.latent_channels,
            config.bands,
            config.decoder_width,
            config.decoder_blocks,
            len(config.gains) if config.decoder_conditioned else 0,
        )
        self.log_gains = nn.Parameter(torch.log(torch.tensor(config.gains)))
        self.entropy_models = nn.ModuleList(
            BlockAdaptiveEntropyModel(
                config.latent_channels, config.entropy_classes, config.entropy_block, DEAD_ZONE
            )
            for _ in config.gains
        )

    @property
    def qualities(self) -> int:
        return len(self.config.gains)

    def encode_latent(self, x: torch.Tensor, quality: int) -> torch.Tensor:
        """Unrounded latent at ``quality``'s scale: ``quantize`` it to get the coded symbols.
        The packet transform and the linear encoder run as one strided convolution on the
        pixels."""
        block = self.config.block
        if x.shape[-2] % block or x.shape[-1] % block:
            raise ValueError(f"image size {tuple(x.shape[-2:])} is not a multiple of {block}")
        weight = pixel_weights(self.analysis.weight, self.config.levels)
        latent = F.conv2d(x, weight, self.analysis.bias, stride=block)
        return latent * self.log_gains[quality].exp()

    @staticmethod
    def quantize(latent: torch.Tensor) -> torch.Tensor:
        """Symbols for an unrounded latent without integer tables to weigh them by: rounded,
        except that magnitudes below ``0.5 + DEAD_ZONE`` become 0 (the cheapest symbol, for a
        small error)."""
        return torch.where(latent.abs() < 0.5 + DEAD_ZONE, 0.0, torch.round(latent))

    def error_bits(self) -> np.ndarray:
        """See the function ``error_bits``."""
        return error_bits(self.synthesis, RD_SLOPE)

    def symbols(self, latent: torch.Tensor, quality: int) -> torch.Tensor:
        """The symbols the encoder codes for an unrounded latent: rate-distortion optimized
        under the level's integer tables (see ``error_bits``), or, before it has tables
        (R-D training), ``quantize``'s."""
        entropy_model = self.entropy_models[quality]
        if not entropy_model.densities[0].finalized:
            return self.quantize(latent)
        return entropy_model.encode(latent.cpu(), self.error_bits())[0].to(latent.device)

    def decode_latent(self, latent: torch.Tensor, quality: int) -> torch.Tensor:
        """Reconstruct the image from (rounded) latent symbols."""
        scaled = latent / self.log_gains[quality].exp()
        bands = self.synthesis(scaled) + self.refiner(scaled, quality)
        return packet_inverse(bands, self.config.levels)

    def forward(self, x: torch.Tensor, quality: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass: (reconstruction, likelihoods of the noisy latent) for an R-D loss."""
        latent_hat, likelihoods = self.entropy_models[quality](self.encode_latent(x, quality))
        return self.decode_latent(latent_hat, quality), likelihoods
