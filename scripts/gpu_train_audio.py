"""`nvcodec train audio` on a lent GPU machine, which has torch but neither PyAV nor the data.

`scripts/gpu_train_audio.sh prepare` packs the training clips already decoded at the model rate
by nvcodec's own reader, as 16-bit FLAC; here soundfile reads them back in place of PyAV and the
unchanged training command runs on them.

    python scripts/gpu_train_audio.py probe BATCH DEVICE   # seconds per training step
    python scripts/gpu_train_audio.py train ARGS...         # `nvcodec train audio ARGS...`
"""

from __future__ import annotations

import random
import sys
import time
import types
from collections.abc import Sequence
from pathlib import Path

# nvcodec.io.audio imports PyAV at module level; nothing run here calls it.
sys.modules.setdefault("av", types.ModuleType("av"))

import numpy as np  # noqa: E402
import soundfile  # noqa: E402
import torch  # noqa: E402

from nvcodec.training import audio as recipe  # noqa: E402

DATA = Path(".gpu/audio")


def read_clips(paths: Sequence[Path], rate: int) -> list[np.ndarray]:
    """Every channel of every packed file, which `prepare` wrote at the model rate."""
    clips = []
    for path in paths:
        samples, file_rate = soundfile.read(path, dtype="float32", always_2d=True)
        if file_rate != rate:
            raise ValueError(f"{path}: {file_rate} Hz, the model takes {rate} Hz")
        clips.extend(np.ascontiguousarray(channel) for channel in samples.T)
    return clips


def probe(batch: int, device: str, steps: int = 20) -> float:
    """Seconds per training step (after 5 warm-up steps) of the shipped model at ``batch``."""
    from nvcodec.codecs.audio import AudioCodec

    model = AudioCodec.load("audio-rvq").model.to(device).train()
    rate, hop = model.config.sample_rate, model.config.hop
    clips = read_clips(recipe.audio_paths([DATA / "train"]), rate)
    sampler = recipe.SegmentSampler(clips, rate // hop * hop, 0)
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    stages = random.Random(0)
    for step in range(5 + steps):
        if step == 5:
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            began = time.perf_counter()
        wave = sampler.batch(batch).to(device)
        active = torch.tensor(stages.choices((2, 4, 8, 16), k=batch), device=device)
        result = recipe.losses(model, wave, active)
        optimizer.zero_grad(set_to_none=True)
        result["loss"].backward()
        optimizer.step()
        result["loss"].item()  # waits for the step
    return (time.perf_counter() - began) / steps


def main() -> None:
    recipe.load_clips = read_clips
    if sys.argv[1] == "probe":
        print(f"{probe(int(sys.argv[2]), sys.argv[3]):.4f}")
    elif sys.argv[1] == "train":
        from nvcodec.cli.train import train_app

        train_app(["audio", *sys.argv[2:]], prog_name="nvcodec train")
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
