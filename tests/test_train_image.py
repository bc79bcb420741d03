"""`nvcodec train image` end to end on a tiny run: PCA start, R-D steps, resume, export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from nvcodec.cli.main import app
from nvcodec.codecs.image import ImageCodec
from nvcodec.io.image import read_image, write_image
from nvcodec.models.image_codec import BandRefiner
from nvcodec.models.store import load_model


def test_train_resume_export_and_use(tmp_path: Path, samples_dir: Path) -> None:
    data = tmp_path / "photos"
    data.mkdir()
    photo = read_image(samples_dir / "kodim23.png")
    for i in range(3):
        write_image(data / f"{i}.png", photo[i * 100 : i * 100 + 96, i * 200 : i * 200 + 160])
    out = tmp_path / "run"
    args = [
        "train",
        "image",
        "--data",
        str(data),
        "--out",
        str(out),
        "--crop",
        "32",
        "--batch",
        "2",
    ]
    result = CliRunner().invoke(app, [*args, "--steps", "2", "--model-id", "tiny"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, [*args, "--steps", "4", "--resume", "--model-id", "tiny"])
    assert result.exit_code == 0, result.output

    stored = load_model("tiny", search=[out])
    assert stored.manifest.recipe["steps"] == 4 and stored.manifest.recipe["seed"] == 0
    codec = ImageCodec(stored)
    crop = photo[:40, :56]
    decoded = codec.decode(codec.encode(crop, 5)).pixels
    assert decoded.shape == crop.shape
    assert np.mean((decoded.astype(float) - crop) ** 2) < 255**2 / 10 ** (20 / 10)


def _one_photo(tmp_path: Path, samples_dir: Path) -> tuple[Path, np.ndarray]:
    """A training folder holding one 192x128 crop of the sample photo, and the photo."""
    data = tmp_path / "photos"
    data.mkdir()
    photo = read_image(samples_dir / "kodim23.png")
    write_image(data / "0.png", photo[:128, :192])
    return data, photo


def test_refit_shipped_model_with_classes_and_new_levels(tmp_path: Path, samples_dir: Path) -> None:
    data, photo = _one_photo(tmp_path, samples_dir)
    out = tmp_path / "refit"
    args = ["train", "image", "--data", str(data), "--out", str(out), "--crop", "32"]
    args += ["--init", "image-wavelet", "--classes", "2", "--gains", "1.5,6"]
    args += ["--lmbdas", "0.002,0.03", "--steps", "1", "--batch", "2"]
    args += ["--decoder-width", "32", "--decoder-blocks", "1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output

    stored = load_model("image-wavelet", search=[out])
    assert stored.manifest.recipe["lmbdas"] == [0.002, 0.03]
    assert stored.manifest.recipe["init_model"]["recipe"]["classes"] == 4
    codec = ImageCodec(stored)
    assert codec.config.entropy_classes == 2 and codec.model.qualities == 2
    # A new, smaller refiner (from zero) behind the shipped encoder and linear decoder.
    assert (codec.config.decoder_width, codec.config.decoder_blocks) == (32, 1)
    assert codec.model.refiner.tail.weight.shape[1] == 32
    crop = photo[200:264, 300:380]
    low, high = codec.encode(crop, 0), codec.encode(crop, 1)
    assert len(low) < len(high)
    assert codec.decode(high).pixels.shape == crop.shape


def test_context_tables_are_refit_after_training(tmp_path: Path, samples_dir: Path) -> None:
    """The shipped model has neighbour contexts; one more step of training from it refits
    them on the new latents for as many channels and leaders per level, and the result codes
    exactly."""
    shipped = ImageCodec.load()
    data, photo = _one_photo(tmp_path, samples_dir)
    out = tmp_path / "more"
    args = ["train", "image", "--data", str(data), "--out", str(out), "--crop", "32"]
    args += ["--init", "image-wavelet", "--classes", "4", "--steps", "1", "--batch", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output

    codec = ImageCodec(load_model("image-wavelet", search=[out]))
    for refit, own in zip(codec.model.entropy_models, shipped.model.entropy_models, strict=True):
        assert len(own.contexts.modelled) >= 40
        assert 0 < len(refit.contexts.modelled) <= len(own.contexts.modelled)
        assert len(refit.contexts.context_leaders) <= len(own.contexts.context_leaders)
    crop = photo[200:264, 300:380]
    latent = codec.latents(crop, 3)
    entropy_model = codec.model.entropy_models[3]
    assert torch.equal(
        entropy_model.decompress(entropy_model.compress(latent), latent.shape), latent
    )
    assert codec.decode(codec.encode(crop, 3)).pixels.shape == crop.shape


def test_context_options_per_level(tmp_path: Path, samples_dir: Path) -> None:
    """--context-channels and --context-leaders take one number or one per level."""
    data, photo = _one_photo(tmp_path, samples_dir)
    out = tmp_path / "levels"
    args = ["train", "image", "--data", str(data), "--out", str(out), "--init", "image-wavelet"]
    args += ["--classes", "4", "--steps", "0", "--context-channels", "6"]
    result = CliRunner().invoke(app, [*args, "--context-leaders", "0,0,0,0,0,0,2,3"])
    assert result.exit_code == 0, result.output
    codec = ImageCodec(load_model("image-wavelet", search=[out]))
    contexts = [m.contexts for m in codec.model.entropy_models]
    assert [len(c.modelled) for c in contexts] == [6] * 8
    assert [len(c.context_leaders) for c in contexts] == [0] * 6 + [2, 3]
    crop = photo[200:264, 300:380]
    assert codec.decode(codec.encode(crop, 7)).pixels.shape == crop.shape
    for leaders in ("1,2", "x", "-1", "7"):
        result = CliRunner().invoke(app, [*args, "--context-leaders", leaders])
        assert result.exit_code == 2 and "--context-leaders" in result.output, leaders


def test_grown_refiner_computes_the_same_function() -> None:
    torch.manual_seed(0)
    refiner = BandRefiner(latent_channels=12, bands=12, width=8, blocks=2)
    for parameter in refiner.parameters():  # a trained refiner: nothing is zero
        torch.nn.init.normal_(parameter, std=0.1)
    latent = torch.randn(2, 12, 9, 7)
    for width, blocks in ((20, 2), (8, 3), (20, 3)):
        grown = refiner.grown(width, blocks)
        assert (grown.head.out_channels, len(grown.blocks)) == (width, blocks)
        assert torch.allclose(grown(latent), refiner(latent), atol=1e-6)
    assert grown.blocks[2].body[0].weight.abs().min() > 0  # the new block can learn
    with pytest.raises(ValueError, match="cannot grow"):
        refiner.grown(4, 2)
    with pytest.raises(ValueError, match="cannot grow"):
        refiner.grown(8, 1)


def test_a_refiner_conditioned_on_levels_grows_from_an_unconditioned_one() -> None:
    """Conditioning starts as the identity at every level, and then tells the levels apart."""
    torch.manual_seed(0)
    refiner = BandRefiner(latent_channels=12, bands=12, width=8, blocks=2)
    for parameter in refiner.parameters():
        torch.nn.init.normal_(parameter, std=0.1)
    latent = torch.randn(2, 12, 9, 7)
    conditioned = refiner.grown(10, 3, levels=4)
    assert conditioned.level_scale.shape == (4, 10)
    for level in range(4):
        assert torch.allclose(conditioned(latent, level), refiner(latent), atol=1e-6)
    with torch.no_grad():
        conditioned.level_bias[2] = 0.5
    assert not torch.allclose(conditioned(latent, 2), conditioned(latent, 1))
    wider = conditioned.grown(16, 3)  # keeps its conditioning
    assert torch.allclose(wider(latent, 2), conditioned(latent, 2), atol=1e-6)
    with pytest.raises(ValueError, match="quality level"):
        conditioned(latent)
    with pytest.raises(ValueError, match="cannot grow"):
        conditioned.grown(10, 3, levels=5)


def test_decoder_only_training_keeps_the_encoder_and_its_tables(
    tmp_path: Path, samples_dir: Path
) -> None:
    """Widen the shipped model's refiner, condition it on the level, and train the decoder
    alone: the encoder, gains and class densities stay bit for bit (the rates do not move),
    the decoder changes, and the refiner is stored in float16."""
    data, photo = _one_photo(tmp_path, samples_dir)
    out = tmp_path / "decoder"
    args = ["train", "image", "--data", str(data), "--out", str(out), "--crop", "32"]
    args += ["--init", "image-wavelet", "--classes", "4", "--decoder-only"]
    args += ["--decoder-width", "200", "--decoder-conditioned", "--steps", "2", "--batch", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output

    shipped = ImageCodec.load().model.state_dict()
    stored = load_model("image-wavelet", search=[out])
    assert stored.tensors["refiner.head.weight"].dtype == torch.float16  # half the file
    trained = ImageCodec(stored).model.state_dict()
    assert trained["refiner.head.weight"].shape[0] == 200
    assert trained["refiner.level_scale"].shape == (8, 200)
    kept = [k for k in shipped if k.startswith(("analysis.", "log_gains", "entropy_models."))]
    assert all(torch.equal(trained[k], shipped[k]) for k in kept if ".contexts." not in k)
    assert not torch.equal(trained["synthesis.weight"], shipped["synthesis.weight"])
    crop = photo[200:264, 300:380]
    codec = ImageCodec(load_model("image-wavelet", search=[out]))
    assert codec.decode(codec.encode(crop, 3)).pixels.shape == crop.shape


def test_decoder_only_needs_a_model_to_start_from(tmp_path: Path, samples_dir: Path) -> None:
    data, _ = _one_photo(tmp_path, samples_dir)
    args = ["train", "image", "--data", str(data), "--out", str(tmp_path / "x"), "--decoder-only"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and "--init" in result.output
