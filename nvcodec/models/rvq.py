"""Residual vector quantizer with low-dimensional, l2-normalized codes (as in DAC).

Each stage projects the residual to ``code_dim`` dimensions, picks the nearest unit-norm code
(cosine distance) and projects back. Low-dimensional normalized codes keep every entry of a
1024-code book in use without k-means or EMA; ``restart_dead_codes`` re-seeds the few that
still die from current encoder outputs (and seeds all of them at the first step).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class QuantizerStage(nn.Module):
    def __init__(self, dim: int, size: int, code_dim: int) -> None:
        super().__init__()
        self.project_in = nn.Linear(dim, code_dim)
        self.project_out = nn.Linear(code_dim, dim)
        self.codebook = nn.Parameter(torch.randn(size, code_dim))

    def codes(self) -> torch.Tensor:
        return F.normalize(self.codebook, dim=1)

    def nearest(self, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices (B, T), normalized projections (B, T, code_dim)) of a (B, T, dim) residual."""
        projected = F.normalize(self.project_in(residual), dim=-1)
        return (projected @ self.codes().T).argmax(dim=-1), projected

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        return self.project_out(self.codes()[indices])


class ResidualVectorQuantizer(nn.Module):
    """(B, dim, T) latents <-> (B, T, stages) integer indices."""

    def __init__(self, dim: int, stages: int, size: int, code_dim: int) -> None:
        super().__init__()
        self.stages = nn.ModuleList(QuantizerStage(dim, size, code_dim) for _ in range(stages))
        self.size = size

    def forward(
        self, latent: torch.Tensor, active: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Training pass with ``active[b]`` stages used for item b (quantizer dropout).

        Returns (quantized latent (B, dim, T) with straight-through gradients, indices
        (B, T, stages), the commitment + codebook loss, each stage's projections).
        """
        residual = latent.transpose(1, 2)
        quantized = torch.zeros_like(residual)
        indices, projections, loss = [], [], latent.new_zeros(())
        for k, stage in enumerate(self.stages):
            mask = (active > k).to(latent.dtype)[:, None, None]
            index, projected = stage.nearest(residual)
            code = stage.codes()[index]
            weight = mask.expand_as(projected)
            loss = loss + (
                F.mse_loss(projected * weight, code.detach() * weight) * 0.25
                + F.mse_loss(code * weight, projected.detach() * weight)
            )
            step = stage.project_out(projected + (code - projected).detach()) * mask
            quantized = quantized + step
            residual = residual - step
            indices.append(index)
            projections.append(projected.detach())
        return quantized.transpose(1, 2), torch.stack(indices, dim=-1), loss, projections

    @torch.no_grad()
    def quantize(self, latent: torch.Tensor, stages: int) -> torch.Tensor:
        """Indices (B, T, stages) of the first ``stages`` codebooks."""
        residual = latent.transpose(1, 2)
        indices = []
        for stage in self.stages[:stages]:
            index, _ = stage.nearest(residual)
            residual = residual - stage.lookup(index)
            indices.append(index)
        return torch.stack(indices, dim=-1)

    def dequantize(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, T, k) indices of the first k codebooks -> (B, dim, T) latent."""
        total = sum(
            stage.lookup(indices[..., k])
            for k, stage in enumerate(self.stages[: indices.shape[-1]])
        )
        return total.transpose(1, 2)

    @torch.no_grad()
    def restart_dead_codes(
        self, usage: torch.Tensor, projections: list[torch.Tensor], generator: torch.Generator
    ) -> int:
        """Move every code with ``usage == 0`` (stages, size) onto a random recent projection."""
        restarted = 0
        for stage, counts, samples in zip(self.stages, usage, projections, strict=True):
            dead = torch.nonzero(counts == 0).flatten().to(stage.codebook.device)
            pool = samples.reshape(-1, samples.shape[-1])
            if len(dead) and len(pool):
                # Drawn on the CPU generator, so a GPU run re-seeds the same codes as a CPU run.
                picks = torch.randint(len(pool), (len(dead),), generator=generator)
                noise = 0.01 * torch.randn(len(dead), pool.shape[1], generator=generator)
                stage.codebook[dead] = pool[picks.to(pool.device)] + noise.to(pool.device)
                restarted += len(dead)
        return restarted
