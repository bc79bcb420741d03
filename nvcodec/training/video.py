"""Training the video codec's inter model on frame pairs.

The recipe (``nvcodec train video`` runs it; every step is seeded):
1. Start as residual coding with the shipped image model
   (``InterFrameCodec.start_from_image_model``) and fit every level's densities to the latents
   of real residuals (far sparser than images).
2. Rate-distortion training on short runs of frames: the first is coded by the image model at
   the step's quality, and each later one is predicted from the one before *as this model
   decoded it* (block motion searched exactly as the encoder does), then coded given that
   prediction; loss = mean over the inter frames of lambda_q * 255^2 * MSE + bpp. Training on
   single pairs (an intra-coded reference only) learned to smooth the prediction, which
   compounds along a group of frames: on HEVC class D, q3 drifted from 28.3 to 25.9 dB in 32
   frames. Runs of 3 frames teach the model its own references.
3. Export: integer tables per level, safetensors + manifest naming the image model it needs.

Runs come from real clips (consecutive or every-other frames) and from photos panned at a
random sub-pixel velocity, which gives the motion search varied, honest work.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from nvcodec.io.image import read_image, to_rgb
from nvcodec.io.video import VIDEO_SUFFIXES, read_video
from nvcodec.models.image_codec import WaveletImageCodec
from nvcodec.models.store import Manifest
from nvcodec.models.video_codec import ARCHITECTURE, InterFrameCodec, VideoCodecConfig
from nvcodec.training.image import DEFAULT_LMBDAS, fit_level_densities, image_paths
from nvcodec.training.rate_distortion import export_levels, train_levels
from nvcodec.transforms.motion import compensate, estimate_motion


@dataclass(frozen=True)
class VideoTrainSettings:
    clips: tuple[str, ...]
    photos: tuple[str, ...]
    steps: int = 3000
    batch: int = 8
    crop: int = 128
    lr: float = 1e-4
    seed: int = 0
    init: str | None = None
    frames: int = 3
    fit_crops: int = 32
    lmbdas: tuple[float, ...] = DEFAULT_LMBDAS


def clip_paths(directories: Sequence[str | Path]) -> list[Path]:
    paths = sorted(
        p for d in directories for p in Path(d).rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES
    )
    if not paths:
        raise FileNotFoundError(f"no video files under {', '.join(map(str, directories))}")
    return paths


class FrameSequenceSampler:
    """Random runs of ``frames`` crops: from clips, or a photo panned at a random sub-pixel
    velocity (each frame a bilinear crop of it)."""

    MAX_SPEED = 8.0  # pixels per frame, each axis

    def __init__(
        self,
        clips: Sequence[np.ndarray],
        photos: Sequence[np.ndarray],
        crop: int,
        frames: int,
        seed: int,
    ) -> None:
        if frames < 2:
            raise ValueError("a training run needs at least 2 frames (a key frame and one more)")
        self.frames, self.crop = frames, crop
        self.travel = int(self.MAX_SPEED * (frames - 1)) + 2
        self.clips = [c for c in clips if c.shape[0] > 2 * frames and min(c.shape[1:3]) >= crop]
        self.photos = [to_rgb(p) for p in photos if min(p.shape[:2]) >= crop + 2 * self.travel]
        if not self.clips and not self.photos:
            raise ValueError(f"no clip or photo is large enough for {crop}-pixel crops")
        self.rng = random.Random(seed)

    def batch(self, size: int) -> np.ndarray:
        """(size, frames, crop, crop, 3) uint8."""
        runs = [
            self._from_clip()
            if not self.photos or (self.clips and self.rng.random() < 0.5)
            else self._from_photo()
            for _ in range(size)
        ]
        return np.stack(runs)

    def _from_clip(self) -> np.ndarray:
        clip = self.clips[self.rng.randrange(len(self.clips))]
        gap = self.rng.choice((1, 1, 2))
        first = self.rng.randrange(clip.shape[0] - gap * (self.frames - 1))
        top = self.rng.randrange(clip.shape[1] - self.crop + 1)
        left = self.rng.randrange(clip.shape[2] - self.crop + 1)
        run = clip[
            first : first + gap * (self.frames - 1) + 1 : gap,
            top : top + self.crop,
            left : left + self.crop,
        ]
        return np.ascontiguousarray(run[:, :, ::-1] if self.rng.random() < 0.5 else run)

    def _from_photo(self) -> np.ndarray:
        photo = self.photos[self.rng.randrange(len(self.photos))]
        top = self.rng.randrange(self.travel, photo.shape[0] - self.crop - self.travel)
        left = self.rng.randrange(self.travel, photo.shape[1] - self.crop - self.travel)
        vy = self.rng.uniform(-self.MAX_SPEED, self.MAX_SPEED)
        vx = self.rng.uniform(-self.MAX_SPEED, self.MAX_SPEED)
        return np.stack(
            [
                _shifted_crop(photo, top + k * vy, left + k * vx, self.crop)
                for k in range(self.frames)
            ]
        )


def _shifted_crop(image: np.ndarray, top: float, left: float, size: int) -> np.ndarray:
    """A ``size`` square of ``image`` starting at a fractional position (bilinear)."""
    y0, x0 = math.floor(top), math.floor(left)
    fy, fx = top - y0, left - x0
    patch = image[y0 : y0 + size + 1, x0 : x0 + size + 1].astype(np.float32)
    rows = patch[:-1] * (1 - fy) + patch[1:] * fy
    mixed = rows[:, :-1] * (1 - fx) + rows[:, 1:] * fx
    return np.clip(np.round(mixed), 0, 255).astype(np.uint8)


def load_clips(paths: Sequence[Path]) -> list[np.ndarray]:
    return [read_video(p).frames for p in paths]


def load_photos(directories: Sequence[str | Path]) -> list[np.ndarray]:
    return [read_image(p) for p in image_paths(directories)]


def _as_unit(frames: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [0, 1]."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8."""
    return torch.round(x.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


@torch.no_grad()
def key_frames(intra: WaveletImageCodec, frames: np.ndarray, quality: int) -> np.ndarray:
    """(B, H, W, 3) uint8 frames as the image model decodes them at ``quality``."""
    x = _as_unit(frames) - 0.5
    return _to_uint8(
        intra.decode_latent(intra.symbols(intra.encode_latent(x, quality), quality), quality) + 0.5
    )


def predictions(
    references: np.ndarray, current: np.ndarray, quality: int, config: VideoCodecConfig
) -> np.ndarray:
    """What the decoder predicts each current frame from: motion compensation from its
    reference, with the vectors the encoder would choose at ``quality``."""
    motion = (config.motion_block, config.motion_search, config.motion_costs[quality])
    return np.stack(
        [
            compensate(
                ref, estimate_motion(cur, ref, *motion), config.motion_block, overlapped=True
            )
            for ref, cur in zip(references, current, strict=True)
        ]
    )


def rd_loss(
    model: InterFrameCodec,
    prediction: np.ndarray,
    current: np.ndarray,
    quality: int,
    lmbda: float,
) -> tuple[torch.Tensor, float, float, np.ndarray]:
    """(loss, bpp, psnr, decoded uint8 frames) of coding ``current`` given its prediction."""
    pred, cur = _as_unit(prediction), _as_unit(current)
    decoded, likelihoods = model(cur - 0.5, pred - 0.5, quality)
    pixels = cur.shape[0] * cur.shape[2] * cur.shape[3]
    bpp = -torch.log2(likelihoods).sum() / pixels
    mse = F.mse_loss(decoded + 0.5, cur)
    psnr = -10 * math.log10(max(mse.item(), 1e-12))
    return lmbda * 255**2 * mse + bpp, bpp.item(), psnr, _to_uint8(decoded.detach() + 0.5)


@torch.no_grad()
def fit_inter_densities(
    model: InterFrameCodec,
    intra: WaveletImageCodec,
    sampler: FrameSequenceSampler,
    crops: int = 32,
    steps: int = 150,
) -> None:
    """Fit every level's densities to the latents of real frame pairs at that level (the
    second frame of each run, predicted from the first as a key frame)."""
    for quality, entropy_model in enumerate(model.entropy_models):
        run = sampler.batch(crops)
        current = run[:, 1]
        references = key_frames(intra, run[:, 0], quality)
        prediction = predictions(references, current, quality, model.config)
        latent = model.encode_latent(_as_unit(current) - 0.5, _as_unit(prediction) - 0.5, quality)
        fit_level_densities(entropy_model, latent, steps)


def train(
    model: InterFrameCodec,
    intra: WaveletImageCodec,
    sampler: FrameSequenceSampler,
    settings: VideoTrainSettings,
    checkpoint: Path,
    *,
    start_step: int = 0,
    optimizer_state: dict[str, Any] | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    checkpoint_every: int = 100,
) -> None:
    """Rate-distortion training on runs of frames from ``start_step`` (resumable)."""

    def step_loss(quality: int, lmbda: float) -> tuple[torch.Tensor, float, float]:
        run = sampler.batch(settings.batch)
        # The first frame is a key frame; each later one is predicted from the one before as
        # decoded (the chain a decoder runs, so the model learns not to drift along it).
        reference = key_frames(intra, run[:, 0], quality)
        loss, bpp, psnr = torch.zeros(()), 0.0, 0.0
        for k in range(1, run.shape[1]):
            prediction = predictions(reference, run[:, k], quality, model.config)
            frame_loss, frame_bpp, frame_psnr, reference = rd_loss(
                model, prediction, run[:, k], quality, lmbda
            )
            loss, bpp, psnr = loss + frame_loss, bpp + frame_bpp, psnr + frame_psnr
        inter_frames = run.shape[1] - 1
        return loss / inter_frames, bpp / inter_frames, psnr / inter_frames

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
        warmup=100,
    )


def export(
    model: InterFrameCodec,
    directory: Path,
    model_id: str,
    recipe: dict[str, Any],
    *,
    overwrite: bool = False,
) -> Manifest:
    """Finalize every level's integer tables and write the model to the store."""
    return export_levels(model, ARCHITECTURE, directory, model_id, recipe, overwrite=overwrite)
