"""The ``nvcodec`` command line: one typer app, one function per command.

Every :class:`~nvcodec.errors.NvcodecError` (and unreadable files) becomes one line on stderr
and exit code 1; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from nvcodec import __version__
from nvcodec.cli.errors import settings, user_errors, warn
from nvcodec.cli.info import describe_container, render_description
from nvcodec.cli.train import train_app
from nvcodec.models.store import list_models

app = typer.Typer(
    name="nvcodec",
    help="Learned codecs for images, video and audio, with real bitstreams in .nvc files.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(train_app, name="train")


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


@app.command()
@user_errors
def encode(
    source: Annotated[Path, typer.Argument(help="Input media file (image so far).")],
    output: Annotated[Path, typer.Argument(help="Output .nvc file.")],
    quality: Annotated[
        int | None, typer.Option("--quality", "-q", min=0, help="Quality level (0 = smallest).")
    ] = None,
    bpp: Annotated[
        float | None, typer.Option("--bpp", min=0.0, help="Pick the level that fits this bpp.")
    ] = None,
    model: Annotated[str, typer.Option(help="Model id from `nvcodec models`.")] = "image-wavelet",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
) -> None:
    """Encode a media file into an .nvc container."""
    from nvcodec.codecs.files import encode_file

    if quality is not None and bpp is not None:
        raise typer.BadParameter("give --quality or --bpp, not both")
    report = encode_file(
        source, output, quality=quality, target_bpp=bpp, model_id=model, overwrite=force
    )
    Console().print(
        f"{report.output}: {report.bytes:,} bytes, quality {report.quality}, "
        f"{report.bpp:.4f} bpp (whole file)"
    )


@app.command()
@user_errors
def decode(
    source: Annotated[Path, typer.Argument(help="An .nvc file.")],
    output: Annotated[Path, typer.Argument(help="Output media file (format from extension).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
) -> None:
    """Decode an .nvc container back to a media file."""
    from nvcodec.codecs.files import decode_file

    report = decode_file(source, output, overwrite=force)
    if report.damage:
        warn(report.damage)
    Console().print(f"{report.output}: written")
