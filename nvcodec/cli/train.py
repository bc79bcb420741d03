"""``nvcodec train``: reproduce (or extend) the shipped models from the data they were made with."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import torch
import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from nvcodec.cli.errors import user_errors
from nvcodec.models.image_codec import ImageCodecConfig, WaveletImageCodec
from nvcodec.models.store import Manifest
from nvcodec.training.common import load_checkpoint, recipe_of

train_app = typer.Typer(help="Train models.", no_args_is_help=True)


def _progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[stats]}"),
        TimeRemainingColumn(),
    )


_DEVICE_OPTION = typer.Option(help="Where the networks train: cpu, or cuda on a GPU machine.")


def _full_float32(device: str) -> None:
    """Full float32 on the GPU: TF32 products (10-bit mantissas) are torch's default for
    convolutions and a suspect in the first GPU image runs' losses (weights/README.md)."""
    if device.startswith("cuda"):
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def _recipe(settings: Any, began: float, base: Manifest | None) -> dict[str, Any]:
    """The manifest's recipe; a model made from another carries that model's recipe, so the
    chain stays reproducible."""
    made = recipe_of(settings, time.monotonic() - began)
    if base is not None:
        made["init_model"] = {"sha256": base.sha256, "recipe": base.recipe}
    return made


@train_app.command("image")
@user_errors
def train_image(
    data: Annotated[list[Path], typer.Option("--data", help="Folder(s) of training images.")],
    out: Annotated[Path, typer.Option(help="Folder for checkpoints and the model.")] = Path(
        "runs/image"
    ),
    model_id: Annotated[str, typer.Option(help="Id of the exported model.")] = "image-wavelet",
    steps: Annotated[int, typer.Option(min=0, help="Rate-distortion training steps.")] = 2000,
    batch: Annotated[int, typer.Option(min=1)] = 8,
    crop: Annotated[int, typer.Option(min=16, help="Crop side, a multiple of 8.")] = 128,
    lr: Annotated[float, typer.Option()] = 1e-4,
    seed: Annotated[int, typer.Option()] = 0,
    init: Annotated[
        str | None,
        typer.Option(
            help="Start from this installed model instead of PCA (with --resume: the model "
            "the run started from, for the recipe)."
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from OUT/checkpoint.pt if present.")
    ] = False,
    val: Annotated[
        Path | None, typer.Option(help="Folder of validation images (e.g. Kodak).")
    ] = None,
    val_every: Annotated[int, typer.Option(min=1)] = 1000,
    classes: Annotated[
        int, typer.Option(min=1, help="Entropy density classes chosen per latent block.")
    ] = 1,
    gains: Annotated[
        str | None,
        typer.Option(help="With --init: new quality levels as comma-separated latent gains."),
    ] = None,
    lmbdas: Annotated[
        str | None,
        typer.Option(
            help="Distortion weight per level, comma-separated (default: CompressAI's 8)."
        ),
    ] = None,
    decoder_width: Annotated[
        int | None,
        typer.Option(
            min=8,
            help="Refiner width (with --init: wider, and not shallower, grows the trained "
            "refiner; narrower starts a new one from zero).",
        ),
    ] = None,
    decoder_blocks: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Refiner blocks (with --init: more, and not narrower, grows the trained "
            "refiner; fewer starts a new one from zero).",
        ),
    ] = None,
    decoder_conditioned: Annotated[
        bool | None,
        typer.Option(
            "--decoder-conditioned/--decoder-unconditioned",
            help="Scale and shift the refiner's features per quality level (with --init: "
            "added to the trained refiner, starting as the identity).",
        ),
    ] = None,
    decoder_only: Annotated[
        bool,
        typer.Option(
            "--decoder-only",
            help="With --init: train only the decoder, on the symbols the encoder codes "
            "(rates stay; loss: distortion in dB).",
        ),
    ] = False,
    device: Annotated[str, _DEVICE_OPTION] = "cpu",
    context_channels: Annotated[
        str | None,
        typer.Option(
            help="Neighbour-context tables for this many of each level's busiest latent "
            "channels: one number, or one per level (comma-separated), counted on the training "
            "images at export (default: the --init model's own).",
        ),
    ] = None,
    context_leaders: Annotated[
        str | None,
        typer.Option(
            help="Of those, the busiest coded first in each context step (the others' "
            "contexts see their magnitudes at the same position): one number, or one per "
            "level (default: the --init model's own).",
        ),
    ] = None,
) -> None:
    """Train the wavelet image codec: PCA start, R-D training, integer tables, safetensors."""
    from nvcodec.models.store import load_model
    from nvcodec.training import image as recipe

    if decoder_only and init is None:
        raise typer.BadParameter("--decoder-only trains the decoder of a model: give --init")
    began = time.monotonic()  # the recipe's time covers data loading and density fits too
    gain_values = [float(g) for g in gains.split(",")] if gains is not None else None
    settings = recipe.TrainSettings(
        data=tuple(str(d) for d in data),
        steps=steps,
        batch=batch,
        crop=crop,
        lr=lr,
        seed=seed,
        init=init,
        classes=classes,
        gains=gains,
        **({"lmbdas": tuple(float(v) for v in lmbdas.split(","))} if lmbdas else {}),
        decoder_width=decoder_width,
        decoder_blocks=decoder_blocks,
        decoder_conditioned=decoder_conditioned,
        device=device,
        context_channels=context_channels,
        context_leaders=context_leaders,
        decoder_only=decoder_only,
    )
    sampler = recipe.CropSampler(recipe.image_paths(data), crop, seed)
    refiner = {
        name: value
        for name, value in (
            ("decoder_width", decoder_width),
            ("decoder_blocks", decoder_blocks),
            ("decoder_conditioned", decoder_conditioned),
        )
        if value is not None
    }
    checkpoint = out / "checkpoint.pt"
    start, optimizer_state, base = 0, None, None
    if resume and checkpoint.exists():
        model, start, optimizer_state = load_checkpoint(
            checkpoint, lambda config: WaveletImageCodec(ImageCodecConfig.from_dict(config))
        )
        if init is not None:  # the model the run started from: its recipe heads the chain
            base = load_model(init).manifest
    elif init is not None:
        stored = load_model(init)
        base = stored.manifest
        model = WaveletImageCodec(ImageCodecConfig.from_dict(base.config))
        model.load_state_dict(stored.tensors)
        densities = classes != model.config.entropy_classes or gain_values is not None
        if densities or refiner:
            # New density classes (fit to flat ... busy blocks), quality levels or refiner.
            model = recipe.reconfigured(model, classes, gain_values, refiner).to(device)
        if densities:
            recipe.fit_densities(model, sampler, crops=32, steps=150)
    else:
        config = ImageCodecConfig(entropy_classes=classes, **refiner)
        model = recipe.new_model(config, sampler, seed)
    # Checked before training; the tables are counted after it.
    contexts = [m.contexts for m in model.entropy_models]
    channels = _per_level(context_channels, "--context-channels", len(contexts), low=1) or [
        len(c.modelled) if c.fitted else 0 for c in contexts
    ]
    leaders = _per_level(context_leaders, "--context-leaders", len(contexts), low=0) or [
        len(c.context_leaders) for c in contexts
    ]
    if any(leading > modelled for leading, modelled in zip(leaders, channels, strict=True)):
        raise typer.BadParameter("--context-leaders: more leaders than context channels")
    _full_float32(device)
    model.to(device)
    validation = recipe.load_validation(val) if val is not None else []
    with _progress_bar() as bar:
        task = bar.add_task("train image", total=steps, completed=start, stats="")

        def report(step: int, stats: dict[str, float]) -> None:
            rate = "" if decoder_only else f" {stats['bpp']:.3f} bpp"  # fixed: not measured
            text = f"q{stats['quality']:.0f}{rate} {stats['psnr']:.2f} dB"
            bar.update(task, completed=step, stats=text)
            if validation and step % val_every == 0:
                points = recipe.validate(model, validation, (1, 3, 5))
                line = "  ".join(f"q{q}: {b:.3f} bpp {p:.2f} dB" for q, (b, p) in points.items())
                bar.console.print(f"step {step} val {line}")

        recipe.train(
            model,
            sampler,
            settings,
            checkpoint,
            start_step=start,
            optimizer_state=optimizer_state,
            progress=report,
        )
    if all(channels):
        recipe.fit_contexts(model, recipe.image_paths(data), channels, leaders)
    made = _recipe(settings, began, base)
    manifest = recipe.export(model, out, model_id, made, overwrite=True)
    typer.echo(f"{out / model_id}.safetensors: sha256 {manifest.sha256}")


def _per_level(text: str | None, option: str, levels: int, low: int) -> list[int] | None:
    """``option``'s value: one integer for every level, or one per level (comma-separated)."""
    if text is None:
        return None
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise typer.BadParameter(
            f"{option}: {text!r} is not integers separated by commas"
        ) from None
    if len(values) not in (1, levels) or min(values) < low:
        raise typer.BadParameter(
            f"{option}: give one number >= {low}, or {levels} (one per level), not {text!r}"
        )
    return values * levels if len(values) == 1 else values


@train_app.command("audio")
@user_errors
def train_audio(
    data: Annotated[list[Path], typer.Option("--data", help="Folder(s) of training audio.")],
    out: Annotated[Path, typer.Option(help="Folder for checkpoints and the model.")] = Path(
        "runs/audio"
    ),
    model_id: Annotated[str, typer.Option(help="Id of the exported model.")] = "audio-rvq",
    steps: Annotated[int, typer.Option(min=0, help="Training steps.")] = 8000,
    batch: Annotated[int, typer.Option(min=1)] = 16,
    seconds: Annotated[float, typer.Option(min=0.1, help="Segment length.")] = 1.0,
    lr: Annotated[float, typer.Option()] = 5e-4,
    seed: Annotated[int, typer.Option()] = 0,
    init: Annotated[
        str | None,
        typer.Option(help="Start from this installed model (e.g. the shipped audio-rvq)."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from OUT/checkpoint.pt if present.")
    ] = False,
    val: Annotated[
        Path | None, typer.Option(help="Folder of held-out audio (first 4 files are used).")
    ] = None,
    val_every: Annotated[int, typer.Option(min=1)] = 500,
    device: Annotated[str, _DEVICE_OPTION] = "cpu",
) -> None:
    """Train the RVQ audio codec: spectral + mel losses, quantizer dropout, index tables."""
    from nvcodec.models.audio_codec import AudioCodecConfig, SpectralAudioCodec
    from nvcodec.training import audio as recipe

    began = time.monotonic()
    settings = recipe.AudioTrainSettings(
        data=tuple(str(d) for d in data),
        steps=steps,
        batch=batch,
        seconds=seconds,
        lr=lr,
        seed=seed,
        init=init,
        device=device,
    )
    checkpoint = out / "checkpoint.pt"
    start, optimizer_state, base = 0, None, None
    if resume and checkpoint.exists():
        model, start, optimizer_state = load_checkpoint(
            checkpoint, lambda config: SpectralAudioCodec(AudioCodecConfig.from_dict(config))
        )
    elif init is not None:
        from nvcodec.codecs.audio import AudioCodec

        shipped = AudioCodec.load(init)
        model, base = shipped.model, shipped.manifest
    else:
        torch.manual_seed(seed)
        model = SpectralAudioCodec(AudioCodecConfig())
    rate = model.config.sample_rate
    clips = recipe.load_clips(recipe.audio_paths(data), rate)
    hop = model.config.hop
    sampler = recipe.SegmentSampler(clips, max(1, round(seconds * rate / hop)) * hop, seed + start)
    validation = recipe.load_clips(recipe.audio_paths([val])[:4], rate) if val else []
    _full_float32(device)
    model.to(device)
    with _progress_bar() as bar:
        task = bar.add_task("train audio", total=steps, completed=start, stats="")

        def report(step: int, stats: dict[str, float]) -> None:
            text = " ".join(f"{k} {v:.3f}" for k, v in stats.items())
            bar.update(task, completed=step, stats=text)
            if validation and step % val_every == 0:
                points = recipe.validate(model, validation, (2, 8, 16))
                line = "  ".join(f"{k} books: mel {m:.3f}" for k, m in points.items())
                bar.console.print(f"step {step} val {line}")

        recipe.train(
            model,
            sampler,
            settings,
            checkpoint,
            start_step=start,
            optimizer_state=optimizer_state,
            progress=report,
        )
    model.to("cpu")  # the index tables are counted where files are encoded
    index_coder = recipe.fit_index_coder(model, clips)
    made = _recipe(settings, began, base)
    manifest = recipe.export(model, index_coder, out, model_id, made, overwrite=True)
    typer.echo(f"{out / model_id}.safetensors: sha256 {manifest.sha256}")


@train_app.command("video")
@user_errors
def train_video(
    clips: Annotated[list[Path], typer.Option("--clips", help="Folder(s) of training videos.")],
    photos: Annotated[
        list[Path] | None,
        typer.Option("--photos", help="Folder(s) of photos, moved to make extra frame pairs."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for checkpoints and the model.")] = Path(
        "runs/video"
    ),
    model_id: Annotated[str, typer.Option(help="Id of the exported model.")] = "video-wavelet",
    intra: Annotated[
        str, typer.Option(help="The installed image model that codes key frames.")
    ] = "image-wavelet",
    steps: Annotated[int, typer.Option(min=0, help="Rate-distortion training steps.")] = 3000,
    batch: Annotated[int, typer.Option(min=1)] = 8,
    crop: Annotated[int, typer.Option(min=32, help="Crop side, a multiple of 16.")] = 128,
    lr: Annotated[float, typer.Option()] = 1e-4,
    seed: Annotated[int, typer.Option()] = 0,
    init: Annotated[
        str | None,
        typer.Option(help="Start from this installed video model instead of the image model."),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from OUT/checkpoint.pt if present.")
    ] = False,
    frames: Annotated[
        int, typer.Option(min=2, help="Frames per training run (a key frame, then inter frames).")
    ] = 3,
    fit_crops: Annotated[
        int, typer.Option(min=1, help="Frame pairs per level for the first density fit.")
    ] = 32,
) -> None:
    """Train the video codec's inter model on frame pairs (key frames use the image model)."""
    from nvcodec.codecs.image import ImageCodec
    from nvcodec.models.store import load_model
    from nvcodec.models.video_codec import InterFrameCodec, VideoCodecConfig
    from nvcodec.training import video as recipe

    began = time.monotonic()
    if crop % 16:
        raise typer.BadParameter(f"--crop must be a multiple of 16, got {crop}")
    settings = recipe.VideoTrainSettings(
        clips=tuple(str(c) for c in clips),
        photos=tuple(str(p) for p in photos or ()),
        steps=steps,
        batch=batch,
        crop=crop,
        lr=lr,
        seed=seed,
        init=init,
        frames=frames,
        fit_crops=fit_crops,
    )
    sampler = recipe.FrameSequenceSampler(
        recipe.load_clips(recipe.clip_paths(clips)),
        recipe.load_photos(photos) if photos else [],
        crop,
        frames,
        seed,
    )
    checkpoint = out / "checkpoint.pt"
    start, optimizer_state, base = 0, None, None
    if resume and checkpoint.exists():
        model, start, optimizer_state = load_checkpoint(
            checkpoint, lambda config: InterFrameCodec(VideoCodecConfig.from_dict(config))
        )
    elif init is not None:
        stored = load_model(init)
        base = stored.manifest
        model = InterFrameCodec(VideoCodecConfig.from_dict(base.config))
        model.load_state_dict(stored.tensors)
    else:
        image = ImageCodec.load(intra)
        model = InterFrameCodec(
            VideoCodecConfig(
                intra_model=image.manifest.model_id,
                intra_sha256=image.manifest.sha256,
                gains=tuple(image.model.log_gains.detach().exp().tolist()),
                # The refiner starts as the image model's: the same shape.
                decoder_width=image.config.decoder_width,
                decoder_blocks=image.config.decoder_blocks,
            )
        )
        model.start_from_image_model(image.model)
    intra_codec = ImageCodec.load(
        model.config.intra_model, expected_sha256=bytes.fromhex(model.config.intra_sha256)
    )
    if start == 0 and init is None:
        recipe.fit_inter_densities(model, intra_codec.model, sampler, crops=fit_crops)
    with _progress_bar() as bar:
        task = bar.add_task("train video", total=steps, completed=start, stats="")

        def report(step: int, stats: dict[str, float]) -> None:
            text = f"q{stats['quality']:.0f} {stats['bpp']:.3f} bpp {stats['psnr']:.2f} dB"
            bar.update(task, completed=step, stats=text)
            if step % 50 == 0 and not bar.console.is_terminal:
                bar.console.print(f"step {step} {text}")

        recipe.train(
            model,
            intra_codec.model,
            sampler,
            settings,
            checkpoint,
            start_step=start,
            optimizer_state=optimizer_state,
            progress=report,
        )
    made = _recipe(settings, began, base)
    manifest = recipe.export(model, out, model_id, made, overwrite=True)
    typer.echo(f"{out / model_id}.safetensors: sha256 {manifest.sha256}")
