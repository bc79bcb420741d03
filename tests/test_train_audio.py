"""`nvcodec train audio` end to end on a tiny run: steps, resume, validation, export, use."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from nvcodec.cli.main import app
from nvcodec.codecs.audio import AudioCodec
from nvcodec.io.audio import read_audio
from nvcodec.models.rvq import ResidualVectorQuantizer
from nvcodec.models.store import load_model


def test_train_resume_export_and_use(tmp_path: Path, samples_dir: Path) -> None:
    data = tmp_path / "speech"
    data.mkdir()
    shutil.copy(samples_dir / "LJ001-0004.wav", data)
    out = tmp_path / "run"
    args = ["train", "audio", "--data", str(data), "--out", str(out), "--model-id", "tiny"]
    args += ["--batch", "2", "--seconds", "0.5", "--val", str(data), "--val-every", "2"]
    result = CliRunner().invoke(app, [*args, "--steps", "2"])
    assert result.exit_code == 0, result.output
    assert "val 2 books: mel" in result.output
    result = CliRunner().invoke(app, [*args, "--steps", "3", "--resume"])
    assert result.exit_code == 0, result.output
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 3

    result = CliRunner().invoke(
        app, [*args[:-4], "--init", "audio-rvq", "--steps", "1", "--out", str(tmp_path / "more")]
    )
    assert result.exit_code == 0, result.output
    continued = load_model("tiny", search=[tmp_path / "more"]).manifest.recipe
    assert continued["init"] == "audio-rvq" and "init_model" in continued

    stored = load_model("tiny", search=[out])
    assert stored.manifest.recipe["steps"] == 3
    assert all(t.dtype == torch.float16 for k, t in stored.tensors.items() if "index" not in k)
    codec = AudioCodec(stored)
    speech = read_audio(samples_dir / "LJ001-0004.wav", codec.rate).samples
    tokens = codec.tokenize(speech, 4)
    assert tokens.shape == (1, codec.frames_for(speech.shape[1]), 4)
    assert codec.detokenize(tokens, speech.shape[1]).shape == speech.shape


def test_dead_codes_restart_on_encoder_outputs() -> None:
    quantizer = ResidualVectorQuantizer(dim=16, stages=2, size=32, code_dim=4)
    latent = torch.randn(2, 16, 50)
    _, _, _, projections = quantizer(latent, torch.tensor([2, 2]))
    usage = torch.zeros(2, 32)
    usage[:, :3] = 1  # all but three codes of each book unused
    restarted = quantizer.restart_dead_codes(usage, projections, torch.Generator().manual_seed(0))
    assert restarted == 2 * 29
    indices = quantizer.quantize(latent, 2)
    assert len(np.unique(indices[..., 0].numpy())) > 3  # the moved codes get used


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_train_on_gpu_exports_a_cpu_model(tmp_path: Path, samples_dir: Path) -> None:
    """--device cuda: batches, quantizer statistics, dead-code restarts and validation on the
    GPU; the index tables are counted and the weights written from the CPU."""
    data = tmp_path / "speech"
    data.mkdir()
    shutil.copy(samples_dir / "LJ001-0004.wav", data)
    args = ["train", "audio", "--data", str(data), "--out", str(tmp_path / "run")]
    args += ["--model-id", "tiny", "--batch", "2", "--seconds", "0.5", "--steps", "2"]
    args += ["--val", str(data), "--val-every", "2", "--device", "cuda"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "val 2 books: mel" in result.output
    stored = load_model("tiny", search=[tmp_path / "run"])
    assert stored.manifest.recipe["device"] == "cuda"
