"""What every training recipe shares: checkpoints and the record a manifest keeps."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nvcodec.utils.files import atomic_output


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
