"""Training the audio codec: spectral + mel + waveform losses, quantizer dropout, export.

The recipe (``nvcodec train audio`` runs it; every step is seeded):
1. Clips: every training file decoded once at the model rate, mono (each channel a clip).
2. ``train``: random 1 s segments at a random level; each item uses 2, 4, 8 or all codebooks
   (quantizer dropout, so one model serves every bitrate); dead codes are re-seeded from
   current encoder outputs every ``restart_every`` steps (all of them at the first step).
3. ``export``: the index frequency tables are counted on the training clips, then weights and
   tables go to the store as safetensors + manifest with the recipe.
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

from nvcodec.entropy.index_coder import IndexCoder
from nvcodec.io.audio import AUDIO_SUFFIXES, read_audio
from nvcodec.models.audio_codec import ARCHITECTURE, SpectralAudioCodec
from nvcodec.models.store import Manifest, save_model
from nvcodec.training.common import save_checkpoint
from nvcodec.transforms.spectral import mel_distance

# Codebooks per training item and their odds: 1.5, 3, 6 (the main target) and 12 kbps.
STAGE_CHOICES = ((2, 0.2), (4, 0.2), (8, 0.35), (16, 0.25))


@dataclass(frozen=True)
class AudioTrainSettings:
    data: tuple[str, ...]
    steps: int = 8000
    batch: int = 16
    seconds: float = 1.0
    lr: float = 5e-4
    seed: int = 0
    init: str | None = None
    restart_every: int = 100
    device: str = "cpu"


def audio_paths(directories: Sequence[str | Path]) -> list[Path]:
    paths = sorted(
        p for d in directories for p in Path(d).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES
    )
    if not paths:
        raise FileNotFoundError(f"no audio files under {', '.join(map(str, directories))}")
    return paths


def load_clips(paths: Sequence[Path], rate: int) -> list[np.ndarray]:
    """Every channel of every file at ``rate`` Hz as a float32 mono clip."""
    return [row for p in paths for row in read_audio(p, rate).samples]


class SegmentSampler:
    """Random non-silent segments at a random level (-10 to +6 dB, peaks kept below 1)."""

    def __init__(self, clips: Sequence[np.ndarray], length: int, seed: int) -> None:
        self.clips = [c for c in clips if len(c) >= length]
        if not self.clips:
            raise ValueError(f"no clip is {length} samples long")
        self.length = length
        self.rng = random.Random(seed)

    def segment(self) -> np.ndarray:
        for _ in range(20):
            clip = self.clips[self.rng.randrange(len(self.clips))]
            start = self.rng.randrange(len(clip) - self.length + 1)
            piece = clip[start : start + self.length]
            if np.sqrt(np.mean(piece**2)) > 10 ** (-50 / 20):
                break
        gain = 10 ** (self.rng.uniform(-10, 6) / 20)
        peak = float(np.abs(piece).max()) * gain
        return piece * (gain * min(1.0, 0.99 / peak) if peak > 0 else 1.0)

    def batch(self, size: int) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.segment() for _ in range(size)])).float()


def losses(model: SpectralAudioCodec, wave: torch.Tensor, active: torch.Tensor) -> dict[str, Any]:
    decoded, features, target, vq_loss, projections = model(wave, active)
    bins = model.spectrum.bins
    magnitude = torch.hypot(*features.split(bins, dim=1))
    target_magnitude = torch.hypot(*target.split(bins, dim=1))
    parts = {
        "mel": mel_distance(wave, decoded, model.config.sample_rate),
        "complex": F.mse_loss(features, target),
        "magnitude": F.mse_loss(magnitude, target_magnitude),
        "wave": F.l1_loss(decoded, wave),
        "vq": vq_loss,
    }
    # The spectral terms carry the phase: weighted up to match the mel term's pull.
    spectral = 5 * (parts["complex"] + parts["magnitude"])
    total = parts["mel"] + spectral + parts["wave"] + parts["vq"]
    return {"loss": total, "parts": parts, "projections": projections}


def cosine_learning_rate(step: int, steps: int, warmup: int = 500) -> float:
    """Linear warm-up, cosine decay to a tenth."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, progress)))


def train(
    model: SpectralAudioCodec,
    sampler: SegmentSampler,
    settings: AudioTrainSettings,
    checkpoint: Path,
    *,
    start_step: int = 0,
    optimizer_state: dict[str, Any] | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    checkpoint_every: int = 200,
) -> None:
    """Train from ``start_step`` to ``settings.steps`` (resumable from ``checkpoint``)."""
    torch.manual_seed(settings.seed + start_step)
    rng = random.Random(settings.seed * 7919 + start_step)
    generator = torch.Generator().manual_seed(settings.seed + start_step)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, betas=(0.8, 0.99))
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    stages, odds = zip(*STAGE_CHOICES, strict=True)
    config = model.config
    usage = torch.zeros(config.codebooks, config.codebook_size, device=settings.device)
    model.train()
    for step in range(start_step, settings.steps):
        for group in optimizer.param_groups:
            group["lr"] = settings.lr * cosine_learning_rate(step, settings.steps)
        wave = sampler.batch(settings.batch).to(settings.device, non_blocking=True)
        active = torch.tensor(rng.choices(stages, odds, k=settings.batch), device=settings.device)
        result = losses(model, wave, active)
        optimizer.zero_grad(set_to_none=True)
        result["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            indices = model.quantizer.quantize(model.encode_latent(wave[:4]), config.codebooks)
            for k in range(config.codebooks):
                usage[k] += torch.bincount(indices[..., k].flatten(), minlength=usage.shape[1])
        if step == start_step or (step + 1) % settings.restart_every == 0:
            model.quantizer.restart_dead_codes(usage, result["projections"], generator)
            usage.zero_()
        if progress is not None:
            stats = {k: float(v.detach()) for k, v in result["parts"].items()}
            progress(step + 1, stats)
        if (step + 1) % checkpoint_every == 0 or step + 1 == settings.steps:
            save_checkpoint(checkpoint, model, step + 1, optimizer)
    model.eval()


def _whole_hops(clip: np.ndarray, hop: int) -> torch.Tensor:
    """A clip as a (1, N) tensor cut to whole hops, the length the network takes."""
    return torch.from_numpy(clip[: len(clip) // hop * hop])[None]


@torch.no_grad()
def validate(
    model: SpectralAudioCodec, clips: Sequence[np.ndarray], stages: Sequence[int]
) -> dict[int, float]:
    """Mean multi-scale mel distance per number of codebooks over whole clips."""
    was_training = model.training
    model.eval()
    hop, device = model.config.hop, next(model.parameters()).device
    results = {}
    for count in stages:
        distances = []
        for clip in clips:
            wave = _whole_hops(clip, hop).to(device)
            decoded = model.decode(model.encode(wave, count))
            distances.append(float(mel_distance(wave, decoded, model.config.sample_rate)))
        results[count] = sum(distances) / len(distances)
    model.train(was_training)
    return results


@torch.no_grad()
def fit_index_coder(model: SpectralAudioCodec, clips: Sequence[np.ndarray]) -> IndexCoder:
    """Frequency tables of every codebook's indices over the training clips."""
    hop, config = model.config.hop, model.config
    rows = [model.encode(_whole_hops(c, hop), config.codebooks)[0] for c in clips if len(c) >= hop]
    indices = torch.cat(rows).numpy()
    return IndexCoder.fit(indices, [config.codebook_size] * config.codebooks)


def export(
    model: SpectralAudioCodec,
    index_coder: IndexCoder,
    directory: Path,
    model_id: str,
    recipe: dict[str, Any],
    *,
    overwrite: bool = False,
) -> Manifest:
    """Weights (float16 storage: the decoder computes in float32) and index tables to the store."""
    tensors: dict[str, Any] = {k: v.half() for k, v in model.state_dict().items()}
    tensors.update(index_coder.export_tables())
    return save_model(
        directory,
        model_id,
        ARCHITECTURE,
        model.config.to_dict(),
        tensors,
        recipe,
        overwrite=overwrite,
    )
