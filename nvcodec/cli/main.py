"""The ``nvcodec`` command line: one typer app, one function per command.

Every :class:`~nvcodec.errors.NvcodecError` (and unreadable files) becomes one line on stderr
and exit code 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from nvcodec import __version__
from nvcodec.cli.bench import bench
from nvcodec.cli.errors import settings, stderr, user_errors, warn
from nvcodec.cli.info import describe_container, render_description
from nvcodec.cli.train import train_app
from nvcodec.models.store import list_models
from nvcodec.utils.interrupts import handle_interrupts

app = typer.Typer(
    name="nvcodec",
    help="Learned codecs for images, video and audio, with real bitstreams in .nvc files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(train_app, name="train")
app.command("bench")(bench)


def _version(value: bool) -> None:
    if value:
        print(f"nvcodec {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="CPU threads for torch (training and benches)."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    """Learned codecs for images, video and audio."""
    settings["debug"] = debug
    handle_interrupts()
    if threads:
        import torch

        torch.set_num_threads(threads)


@app.command()
@user_errors
def info(
    file: Annotated[Path, typer.Argument(help="An .nvc file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Show the streams of an .nvc file: codecs, models, durations, sizes and bitrates."""
    description = describe_container(file)
    if as_json:
        json.dump(description, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        render_description(description, Console())


@app.command()
@user_errors
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """List the installed models (bundled weights) with their hashes."""
    manifests = list_models()
    if as_json:
        rows = [
            {"model_id": m.model_id, "architecture": m.architecture, "sha256": m.sha256}
            for m in manifests
        ]
        json.dump(rows, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    console = Console()
    if not manifests:
        console.print("no models installed")
    for m in manifests:
        console.print(f"{m.model_id:24} {m.architecture:24} sha256 {m.sha256[:16]}...")


class _FpsColumn(ProgressColumn):
    """Frames per second, as rich estimates them (over the last 30 s)."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.1f} fps" if task.speed else "")


@contextmanager
def _frame_progress(description: str) -> Iterator[Callable[[int, int | None], None]]:
    """A progress callback (frames done, frames in all) drawing a transient bar with fps and
    ETA on stderr, if that is a terminal; the bar starts at the first frame, so images and
    audio show none."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _FpsColumn(),
        TimeRemainingColumn(),
    )
    with ExitStack() as stack:
        bar: Progress | None = None
        task: TaskID | None = None

        def update(done: int, total: int | None) -> None:
            nonlocal bar, task
            if not stderr.is_terminal:
                return
            if bar is None or task is None:
                bar = stack.enter_context(Progress(*columns, console=stderr, transient=True))
                task = bar.add_task(description, total=total)
            bar.update(task, completed=done, total=total)

        yield update


@app.command()
@user_errors
def encode(
    source: Annotated[
        Path, typer.Argument(help="Input image, audio or video file, or a folder of frames.")
    ],
    output: Annotated[Path, typer.Argument(help="Output .nvc file.")],
    quality: Annotated[
        int | None,
        typer.Option("--quality", "-q", min=0, help="Image or video quality level (0 = smallest)."),
    ] = None,
    bpp: Annotated[
        float | None,
        typer.Option("--bpp", min=0.0, help="Image: pick the level that fits this bpp."),
    ] = None,
    bitrate: Annotated[
        str | None,
        typer.Option(
            "--bitrate",
            "-b",
            help="Video: target rate (e.g. 600k), the level picked on the first GOP. "
            "Audio: 1.5k, 3k, 6k (default) or 12k per channel.",
        ),
    ] = None,
    audio_bitrate: Annotated[
        str | None,
        typer.Option("--audio-bitrate", help="A video's sound: 1.5k, 3k, 6k (default) or 12k."),
    ] = None,
    gop: Annotated[
        int | None,
        typer.Option("--gop", min=1, help="Video: a key frame every this many frames (32)."),
    ] = None,
    audio_only: Annotated[
        bool, typer.Option("--audio-only", help="Code only the sound of a video.")
    ] = False,
    model: Annotated[
        str | None, typer.Option(help="Model id from `nvcodec models` (default: the kind's).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
) -> None:
    """Encode an image, audio or video file (with its sound) into an .nvc container."""
    from nvcodec.codecs.audio import parse_bitrate
    from nvcodec.codecs.files import encode_file, media_kind
    from nvcodec.codecs.video_files import parse_video_bitrate

    if quality is not None and bpp is not None:
        raise typer.BadParameter("give --quality or --bpp, not both")
    video = not audio_only and media_kind(source) == "video"
    parse = parse_video_bitrate if video else parse_bitrate
    with _frame_progress(f"encode {source.name}") as progress:
        report = encode_file(
            source,
            output,
            quality=quality,
            target_bpp=bpp,
            bitrate=None if bitrate is None else parse(bitrate),
            audio_bitrate=None if audio_bitrate is None else parse_bitrate(audio_bitrate),
            gop=gop,
            audio_only=audio_only,
            model_id=model,
            overwrite=force,
            progress=progress,
        )
    Console().print(f"{report.output}: {report.bytes:,} bytes, {report.setting}, {report.rate}")


@app.command()
@user_errors
def decode(
    source: Annotated[Path, typer.Argument(help="An .nvc file.")],
    output: Annotated[
        Path,
        typer.Argument(
            help="Output media file (format from extension); for a video: .mp4, .mkv, .y4m, "
            "no suffix for a folder of PNG frames, or an audio extension for its sound."
        ),
    ],
    start: Annotated[
        float | None,
        typer.Option("--start", min=0.0, help="Video or audio: begin at this time (seconds)."),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option("--duration", min=0.0, help="... and write this many seconds."),
    ] = None,
    lossless_out: Annotated[
        bool,
        typer.Option("--lossless-out", help="Video: FFV1 in .mkv, the decoded frames exactly."),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Fail on any damage instead of decoding up to it with a warning."
        ),
    ] = False,
) -> None:
    """Decode an .nvc container back to a media file."""
    from nvcodec.codecs.files import decode_file

    with _frame_progress(f"decode {source.name}") as progress:
        report = decode_file(
            source,
            output,
            overwrite=force,
            strict=strict,
            start=start,
            duration=duration,
            lossless=lossless_out,
            progress=progress,
        )
    if report.damage:
        warn(report.damage)
    Console().print(f"{report.output}: written" + (f" ({report.note})" if report.note else ""))


@app.command()
@user_errors
def tokenize(
    source: Annotated[Path, typer.Argument(help="Input audio file (or a video's audio track).")],
    output: Annotated[Path, typer.Argument(help="Output .npy of tokens.")],
    codebooks: Annotated[
        int, typer.Option("--codebooks", "-k", min=1, help="Codebooks per frame (8 = 6 kbps).")
    ] = 8,
    model: Annotated[str, typer.Option(help="Audio model id.")] = "audio-rvq",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
) -> None:
    """Audio -> integer RVQ tokens for language models: an int16 .npy of shape
    (channels, frames, codebooks) at 75 frames/s (24 kHz, hop 320)."""
    from nvcodec.codecs.tokens import tokenize_file

    tokens = tokenize_file(source, output, codebooks=codebooks, model_id=model, overwrite=force)
    Console().print(f"{output}: tokens {tuple(tokens.shape)} (channels, frames, codebooks)")


@app.command()
@user_errors
def detokenize(
    source: Annotated[Path, typer.Argument(help="A .npy of tokens from `nvcodec tokenize`.")],
    output: Annotated[Path, typer.Argument(help="Output audio file (24 kHz; format from ext).")],
    model: Annotated[str, typer.Option(help="Audio model id.")] = "audio-rvq",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
) -> None:
    """Integer RVQ tokens -> audio at the model rate (24 kHz)."""
    from nvcodec.codecs.tokens import detokenize_file

    detokenize_file(source, output, model_id=model, overwrite=force)
    Console().print(f"{output}: written")


def run() -> None:
    """The `nvcodec` command: the app, with command-line syntax errors (an unknown command or
    option, a value out of range) as one line and exit code 2, like every other error."""
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as e:  # click's exceptions, as typer exposes them
        where = f" (see '{e.ctx.command_path} --help')" if getattr(e, "ctx", None) else ""
        stderr.print(f"[bold red]error:[/] {escape(e.format_message() + where)}", soft_wrap=True)
        sys.exit(e.exit_code)
    except typer.Abort:
        stderr.print("[bold red]error:[/] stopped", soft_wrap=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
