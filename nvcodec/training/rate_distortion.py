"""The training loop the image codec and the video codec's inter model share: one random
quality level per step, loss = lambda_q * 255^2 * MSE + bpp, resumable checkpoints, and the
export that turns every level's densities into integer tables."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from nvcodec.models.image_codec import WaveletImageCodec
from nvcodec.models.store import Manifest, save_model
from nvcodec.models.video_codec import InterFrameCodec
from nvcodec.training.common import save_checkpoint

# One step at one level: (quality, lambda) -> (loss, bpp, psnr).
StepLoss = Callable[[int, float], tuple[torch.Tensor, float, float]]
LeveledModel = WaveletImageCodec | InterFrameCodec


def stepped_learning_rate(step: int, steps: int, warmup: int = 500) -> float:
    """Linear warm-up (Adam's first steps would otherwise kick the zero-initialised refiner
    far off), then constant, then a tenth for the last 10% of the steps."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.1 if step >= 0.9 * steps else 1.0


def train_levels(
    model: LeveledModel,
    step_loss: StepLoss,
    *,
    steps: int,
    lr: float,
    seed: int,
    lmbdas: Sequence[float],
    checkpoint: Path,
    start_step: int = 0,
    optimizer_state: dict[str, Any] | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    checkpoint_every: int = 200,
    warmup: int = 500,
) -> None:
    """Rate-distortion training from ``start_step`` to ``steps`` (resumable)."""
    if steps > start_step and len(lmbdas) != model.qualities:
        raise ValueError(f"need {model.qualities} lambdas, got {len(lmbdas)}")
    torch.manual_seed(seed + start_step)
    rng = random.Random(seed * 7919 + start_step)
    # The densities learn ten times faster than the transforms, as CompressAI's aux optimizer.
    density = [p for b in model.entropy_models for p in b.parameters()]
    density_ids = {id(p) for p in density}
    transforms = [p for p in model.parameters() if id(p) not in density_ids]
    optimizer = torch.optim.Adam(
        [{"params": transforms, "lr": lr}, {"params": density, "lr": lr * 10}]
    )
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    model.train()
    for step in range(start_step, steps):
        for group, base in zip(optimizer.param_groups, (lr, lr * 10), strict=True):
            group["lr"] = base * stepped_learning_rate(step, steps, warmup)
        quality = rng.randrange(model.qualities)
        loss, bpp, psnr = step_loss(quality, lmbdas[quality])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if progress is not None:
            progress(step + 1, {"quality": quality, "bpp": bpp, "psnr": psnr})
        if (step + 1) % checkpoint_every == 0 or step + 1 == steps:
            save_checkpoint(checkpoint, model, step + 1, optimizer)
    model.eval()


def export_levels(
    model: LeveledModel,
    architecture: str,
    directory: Path,
    model_id: str,
    recipe: dict[str, Any],
    *,
    overwrite: bool = False,
    half_precision: tuple[str, ...] = (),
) -> Manifest:
    """Finalize every level's integer tables (on the CPU, wherever the model trained) and write
    the model to the store. Weights named under a ``half_precision`` prefix are stored as
    float16 (loading casts them back); the model keeps those rounded values, so it goes on
    computing exactly what the stored one will."""
    model.cpu()
    for entropy_model in model.entropy_models:
        entropy_model.finalize()
    state = model.state_dict()
    with torch.no_grad():
        for name, tensor in state.items():
            if name.startswith(half_precision) and tensor.is_floating_point():
                tensor.copy_(tensor.half())
                state[name] = tensor.half()
    return save_model(
        directory,
        model_id,
        architecture,
        model.config.to_dict(),
        state,
        recipe,
        overwrite=overwrite,
    )
