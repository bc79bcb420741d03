"""Training the image codec: PCA start, density fit, rate-distortion training, export.

The recipe, in order (``nvcodec train image`` runs it; every step is seeded):
1. ``pca_init``: the shallow encoder starts as the PCA of the wavelet bands of random crops, the
   linear decoder as its transpose (a working codec before any gradient step).
2. ``train``: end-to-end rate-distortion training, loss = lambda_q * 255^2 * MSE + bpp, a random
   quality level per step, with checkpoints to resume from. With ``decoder_only`` the encoder,
   gains and densities stay as they are and the decoder alone learns from the symbols the
   encoder really codes (``decoder_loss``).
3. ``export``: every level's density is finalized into integer CDF tables, then the weights go to
   the store as safetensors + manifest with the recipe.

A trained model can be refit without touching its transforms (``reconfigured`` +
``fit_densities``): new quality levels (gains) and/or several density classes per level.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nvcodec.entropy import fit_density
from nvcodec.entropy.adaptive import BlockAdaptiveEntropyModel
from nvcodec.io.image import IMAGE_SUFFIXES, read_image, to_rgb
from nvcodec.models.image_codec import (
    ARCHITECTURE,
    ImageCodecConfig,
    WaveletImageCodec,
    padded_unit,
)
from nvcodec.models.store import Manifest
from nvcodec.training.rate_distortion import export_levels, train_levels
from nvcodec.transforms.wavelet import packet_forward

# Distortion weight per quality level: CompressAI's eight lambdas, matched to the default gains.
DEFAULT_LMBDAS = (0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483, 0.0932, 0.18)


@dataclass(frozen=True)
class TrainSettings:
    data: tuple[str, ...]
    steps: int = 2000
    batch: int = 8
    crop: int = 128
    lr: float = 1e-4
    seed: int = 0
    init: str | None = None
    classes: int = 1
    gains: str | None = None
    lmbdas: tuple[float, ...] = DEFAULT_LMBDAS
    decoder_width: int | None = None
    decoder_blocks: int | None = None
    decoder_conditioned: bool | None = None
    device: str = "cpu"
    context_channels: str | None = None  # as given: one number, or one per level
    context_leaders: str | None = None
    decoder_only: bool = False


def image_paths(directories: Sequence[str | Path], *, allow_kodak: bool = False) -> list[Path]:
    """Image files under the folders; Kodak is the benchmark, so training refuses it."""
    paths = sorted(
        p
        for d in directories
        for p in Path(d).rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and (allow_kodak or "kodak" not in p.parts)
    )
    if not paths:
        raise FileNotFoundError(f"no training images under {', '.join(map(str, directories))}")
    return paths


class CropSampler:
    """Random RGB crops in [-0.5, 0.5] from images held in memory as uint8."""

    def __init__(self, paths: Sequence[Path], crop: int, seed: int) -> None:
        self.images = [
            img
            for img in (read_image(p) for p in paths)
            if img.shape[0] >= crop and img.shape[1] >= crop
        ]
        self.crop = crop
        self.rng = random.Random(seed)

    def batch(self, size: int) -> torch.Tensor:
        crops = []
        for _ in range(size):
            img = self.images[self.rng.randrange(len(self.images))]
            top = self.rng.randrange(img.shape[0] - self.crop + 1)
            left = self.rng.randrange(img.shape[1] - self.crop + 1)
            patch = img[top : top + self.crop, left : left + self.crop]
            color = to_rgb(patch)
            if self.rng.random() < 0.5:
                color = color[:, ::-1]
            crops.append(torch.from_numpy(np.ascontiguousarray(color)).permute(2, 0, 1))
        return torch.stack(crops).float() / 255.0 - 0.5


@torch.no_grad()
def pca_init(model: WaveletImageCodec, sampler: CropSampler, crops: int = 512) -> None:
    """Set the encoder to the PCA of the bands and the linear decoder to its transpose."""
    bands = packet_forward(sampler.batch(crops), model.config.levels).double()
    vectors = bands.permute(0, 2, 3, 1).reshape(-1, bands.shape[1])
    eigenvalues, eigenvectors = torch.linalg.eigh(vectors.T @ vectors / len(vectors))
    basis = eigenvectors[:, torch.argsort(eigenvalues, descending=True)]
    basis = basis[:, : model.config.latent_channels].float()
    model.analysis.weight.copy_(basis.T[:, :, None, None])
    model.analysis.bias.zero_()
    model.synthesis.weight.copy_(basis[:, :, None, None])
    model.synthesis.bias.zero_()


def rd_loss(
    model: WaveletImageCodec, x: torch.Tensor, quality: int, lmbda: float
) -> tuple[torch.Tensor, float, float]:
    """(loss, bpp, psnr) for one batch at one quality level."""
    x_hat, likelihoods = model(x, quality)
    pixels = x.shape[0] * x.shape[2] * x.shape[3]
    bpp = -torch.log2(likelihoods).sum() / pixels
    mse = F.mse_loss(x_hat, x)
    psnr = -10 * math.log10(max(mse.item(), 1e-12))
    return lmbda * 255**2 * mse + bpp, bpp.item(), psnr


def decoder_loss(
    model: WaveletImageCodec, x: torch.Tensor, quality: int
) -> tuple[torch.Tensor, float, float]:
    """(loss, bpp (0: not measured), psnr) for training the decoder alone: it sees the symbols
    the encoder codes (``symbols``: rate-distortion optimized), where R-D training feeds it
    noisy latents. The rate is fixed, so the loss is the distortion in dB, which weighs every
    level's dB alike (as a BD-rate does)."""
    with torch.no_grad():
        symbols = model.symbols(model.encode_latent(x, quality), quality)
    mse = F.mse_loss(model.decode_latent(symbols, quality), x)
    return 10 * torch.log10(mse), 0.0, -10 * math.log10(max(mse.item(), 1e-12))


def decoder_parameters_only(model: WaveletImageCodec) -> None:
    """Freeze everything but the decoder (linear synthesis and refiner) for ``decoder_loss``."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith(("synthesis.", "refiner.")))


def train(
    model: WaveletImageCodec,
    sampler: CropSampler,
    settings: TrainSettings,
    checkpoint: Path,
    *,
    start_step: int = 0,
    optimizer_state: dict[str, Any] | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    checkpoint_every: int = 200,
) -> None:
    """Rate-distortion training (or, with ``settings.decoder_only``, decoder training) on
    random crops from ``start_step`` (resumable)."""
    if settings.decoder_only:
        decoder_parameters_only(model)

    def step_loss(quality: int, lmbda: float) -> tuple[torch.Tensor, float, float]:
        batch = sampler.batch(settings.batch).to(settings.device, non_blocking=True)
        if settings.decoder_only:
            return decoder_loss(model, batch, quality)
        return rd_loss(model, batch, quality, lmbda)

    train_levels(
        model,
        step_loss,
        steps=settings.steps,
        lr=settings.lr,
        seed=settings.seed,
        lmbdas=settings.lmbdas,
        checkpoint=checkpoint,
        start_step=start_step,
        optimizer_state=optimizer_state,
        progress=progress,
        checkpoint_every=checkpoint_every,
    )


def export(
    model: WaveletImageCodec,
    directory: Path,
    model_id: str,
    recipe: dict[str, Any],
    *,
    overwrite: bool = False,
) -> Manifest:
    """Finalize every level's integer tables and write the model to the store, the refiner in
    float16: two thirds of the file otherwise; on Kodak it moves PSNR by under 0.0001 dB."""
    return export_levels(
        model,
        ARCHITECTURE,
        directory,
        model_id,
        recipe,
        overwrite=overwrite,
        half_precision=("refiner.",),
    )


def block_classes_by_activity(
    latent: torch.Tensor, entropy_model: BlockAdaptiveEntropyModel
) -> torch.Tensor:
    """Class map (B, h, w) by the activity quantile of each block: flat blocks class 0."""
    activity = entropy_model.block_sums(latent.abs().mean(dim=1, keepdim=True))[:, 0]
    quantiles = torch.linspace(0, 1, entropy_model.classes + 1, device=latent.device)[1:-1]
    return torch.bucketize(activity, torch.quantile(activity.flatten(), quantiles))


@torch.no_grad()
def fit_densities(
    model: WaveletImageCodec,
    sampler: CropSampler,
    crops: int = 8,
    steps: int = 200,
    rounds: int = 2,
) -> None:
    """Fit each level's densities to the latents of fresh crops at that level's gain.

    With several classes this is hard EM: class k first fits the k-th activity quantile of the
    blocks; each later round reassigns every block to the class the encoder would pick (fewest
    bits under the finalized tables) and refits on that.
    """
    x = sampler.batch(crops).to(model.log_gains.device)
    for quality, entropy_model in enumerate(model.entropy_models):
        fit_level_densities(entropy_model, model.encode_latent(x, quality), steps, rounds)


@torch.no_grad()
def fit_level_densities(
    entropy_model: BlockAdaptiveEntropyModel, latent: torch.Tensor, steps: int, rounds: int = 2
) -> None:
    """Fit one level's densities (hard EM over its classes, see ``fit_densities``) to
    ``latent`` (B, C, H, W); the video codec's inter model uses it on residual latents too."""
    class_map = block_classes_by_activity(latent, entropy_model)
    for round_ in range(rounds if entropy_model.classes > 1 else 1):
        if round_:
            entropy_model.finalize()
            class_map = entropy_model.choose_classes(latent)
        positions = entropy_model.expand_blocks(class_map, *latent.shape[-2:])
        for k, density in enumerate(entropy_model.densities):
            samples = latent.transpose(0, 1)[:, positions == k][None]
            if samples.shape[-1]:
                with torch.enable_grad():
                    fit_density(density, samples, steps=steps // (1 + round_))


def reconfigured(
    model: WaveletImageCodec,
    classes: int,
    gains: Sequence[float] | None = None,
    refiner: Mapping[str, int | bool] | None = None,
) -> WaveletImageCodec:
    """A copy of ``model`` with other density classes and/or quality gains, for a density refit,
    and/or another refiner (``refiner``: ``decoder_width``, ``decoder_blocks``,
    ``decoder_conditioned``): a wider, deeper or newly conditioned one grows from the trained
    one (``BandRefiner.grown``), a smaller one starts from zero.

    The encoder and the linear decoder are kept, and with the same classes and gains the
    densities and tables too. Otherwise each new level starts from the densities of the trained
    level with the nearest gain, and every class from that level's first class;
    ``fit_densities`` then fits them to their own latents.
    """
    gains = tuple(gains) if gains is not None else model.config.gains
    trained = model.log_gains.detach().exp()
    config = replace(model.config, entropy_classes=classes, gains=gains, **(refiner or {}))
    grown = WaveletImageCodec(config)
    shape = ("decoder_width", "decoder_blocks", "decoder_conditioned")
    new_refiner = any(getattr(config, name) != getattr(model.config, name) for name in shape)
    new_densities = (classes, gains) != (model.config.entropy_classes, model.config.gains)
    dropped = ("entropy_models.",) if new_densities else ()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith(dropped)}
    if new_refiner:
        refiner_module = grown.refiner
        if (
            config.decoder_blocks >= model.config.decoder_blocks
            and config.decoder_width >= model.config.decoder_width
            and model.refiner.levels in (0, grown.refiner.levels)
        ):
            refiner_module = model.refiner.grown(
                config.decoder_width, config.decoder_blocks, grown.refiner.levels
            )
        state = {k: v for k, v in state.items() if not k.startswith("refiner.")}
        state.update({f"refiner.{k}": v for k, v in refiner_module.state_dict().items()})
    if not new_densities:
        grown.load_state_dict(state)
        return grown
    state["log_gains"] = torch.log(torch.tensor(gains))
    for level, gain in enumerate(gains):
        source = int(torch.argmin((trained.log() - math.log(gain)).abs()))
        density = model.entropy_models[source].densities[0].state_dict()
        for k in range(classes):
            state.update(
                {f"entropy_models.{level}.densities.{k}.{n}": v for n, v in density.items()}
            )
    grown.load_state_dict(state)
    return grown


# Training images are cut to their central crop of at most this side for the context counts.
CONTEXT_CROP = 512


@torch.no_grad()
def fit_contexts(
    model: WaveletImageCodec, paths: Sequence[Path], channels: Sequence[int], leaders: Sequence[int]
) -> None:
    """Every level's neighbour-context tables (``entropy.context``) for its ``channels``
    busiest channels (its ``leaders`` busiest coded first), counted on the symbols the encoder
    codes for the training images (central crops of at most ``CONTEXT_CROP`` pixels a side;
    chosen under the model's current contexts), after the level's own tables are final: the
    contexts span their ranges."""
    model.cpu()
    crops = [_central_crop(to_rgb(read_image(p)), CONTEXT_CROP) for p in paths]
    block = model.config.block
    for quality, entropy_model in enumerate(model.entropy_models):
        entropy_model.finalize()
        latents = (
            model.symbols(model.encode_latent(padded_unit(crop, block), quality), quality)
            for crop in crops
        )
        entropy_model.fit_contexts(latents, channels[quality], leaders=leaders[quality])


def _central_crop(image: np.ndarray, side: int) -> np.ndarray:
    top, left = max(0, (image.shape[0] - side) // 2), max(0, (image.shape[1] - side) // 2)
    return image[top : top + side, left : left + side]


def load_validation(directory: Path, count: int = 4) -> list[torch.Tensor]:
    """The first ``count`` images of a folder (Kodak) as (1, 3, H, W) tensors in [-0.5, 0.5]."""
    images = [read_image(p) for p in image_paths([directory], allow_kodak=True)[:count]]
    return [
        torch.from_numpy(to_rgb(img).copy()).permute(2, 0, 1)[None] / 255.0 - 0.5 for img in images
    ]


@torch.no_grad()
def validate(
    model: WaveletImageCodec, images: Sequence[torch.Tensor], qualities: Sequence[int]
) -> dict[int, tuple[float, float]]:
    """Mean (estimated bpp, PSNR of 8-bit output) per quality, with rounded latents."""
    was_training = model.training
    model.eval()
    results = {}
    device = model.log_gains.device
    for quality in qualities:
        bpps, psnrs = [], []
        for x in images:
            x = x.to(device)
            x_hat, likelihoods = model(x, quality)
            bpps.append(-torch.log2(likelihoods).sum().item() / (x.shape[2] * x.shape[3]))
            pixels = torch.round((x_hat.clamp(-0.5, 0.5) + 0.5) * 255)
            mse = F.mse_loss(pixels, torch.round((x + 0.5) * 255)).item()
            psnrs.append(10 * math.log10(255**2 / max(mse, 1e-12)))
        results[quality] = (sum(bpps) / len(bpps), sum(psnrs) / len(psnrs))
    model.train(was_training)
    return results


def new_model(config: ImageCodecConfig, sampler: CropSampler, seed: int) -> WaveletImageCodec:
    """A working codec before any R-D step: PCA transforms and densities fit to their latents."""
    torch.manual_seed(seed)
    model = WaveletImageCodec(config)
    pca_init(model, sampler)
    fit_densities(model, sampler)
    return model
