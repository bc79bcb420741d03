"""What every training recipe shares: checkpoints and the record a manifest keeps."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from nvcodec.utils.files import atomic_output

Model = TypeVar("Model", bound=nn.Module)


def save_checkpoint(path: Path, model: nn.Module, step: int, optimizer: Any) -> None:
    """Checkpoints hold tensors and plain values only (torch.save of a dict, no pickled code);
    ``model.config`` rebuilds the network on resume."""
    state = {
        "step": step,
        "config": model.config.to_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, overwrite=True) as f:
        torch.save(state, f)


def load_checkpoint(
    path: Path, build: Callable[[dict[str, Any]], Model]
) -> tuple[Model, int, dict[str, Any]]:
    """(model, step, optimizer state) from ``save_checkpoint``'s file; ``build`` makes the
    network from its config dict. Tensors land on the CPU whatever device wrote them."""
    state = torch.load(path, weights_only=True, map_location="cpu")
    model = build(state["config"])
    model.load_state_dict(state["model"])
    return model, state["step"], state["optimizer"]


def recipe_of(settings: Any, seconds: float) -> dict[str, Any]:
    """What a manifest records: the settings (a dataclass), time, software and machine."""
    return {
        **asdict(settings),
        "seconds": round(seconds, 1),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
