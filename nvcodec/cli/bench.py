"""``nvcodec bench image|video|audio``: real encode/decode sweeps, RD points, BD-rates, speed."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from nvcodec.cli.errors import user_errors
from nvcodec.errors import NvcodecError
from nvcodec.utils.files import atomic_output, check_target


class Kind(StrEnum):
    image = "image"
    video = "video"
    audio = "audio"


def _split(values: list[str] | None) -> list[str]:
    """Comma-separated and/or repeated options as one list."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


@user_errors
def bench(
    kind: Annotated[Kind, typer.Argument(help="Media kind: image, video or audio.")],
    dataset: Annotated[
        str | None,
        typer.Option(help="Registered dataset (default: the kind's standard set, e.g. kodak)."),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(help="Folder with the dataset (or any folder of media) instead of search."),
    ] = None,
    codecs: Annotated[
        list[str] | None,
        typer.Option(help="Codecs, comma-separated; name:option for one, e.g. nvcodec:DIR."),
    ] = None,
    anchor: Annotated[
        list[str] | None, typer.Option(help="BD-rate anchor codec(s), comma-separated.")
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="2 items, 3 settings per codec: a smoke test.")
    ] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N items.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write results JSON.")] = None,
    csv_out: Annotated[Path | None, typer.Option("--csv", help="Write per-item CSV.")] = None,
    plot_out: Annotated[Path | None, typer.Option("--plot", help="Write an RD plot (PNG).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing outputs.")] = False,
) -> None:
    """Sweep codecs over their settings on a dataset; print RD points, BD-rates and speed."""
    import torch

    from nvcodec.bench import report, runner
    from nvcodec.bench.registry import make_codec, media_bench

    media = media_bench(kind.value)
    outputs = [p for p in (json_out, csv_out, plot_out) if p is not None]
    for path in outputs:  # before minutes of work, not after
        check_target(path, force, [])
    names = _split(codecs) or list(media.default_codecs)
    anchors = _split(anchor)
    for name in anchors:
        if name not in names:
            raise NvcodecError(f"anchor {name!r} is not among the codecs ({', '.join(names)})")
    anchors = anchors or [a for a in media.default_anchors if a in names] or names[:1]
    if dataset is None and data is None:
        dataset = media.default_dataset
    info, items = runner.load_dataset(
        media, dataset, data, runner.QUICK_ITEMS if quick and not limit else limit
    )
    threads = torch.get_num_threads()
    coders = [make_codec(media, name, threads) for name in names]  # loading is not timed
    sweeps = {c.name: runner.quick_settings(c.settings) if quick else c.settings for c in coders}
    console = Console()
    if not console.is_terminal:  # a log file: wide enough for the tables
        console = Console(width=120)
    started, began = runner.now(), time.monotonic()
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    results = []
    with Progress(*columns, console=console, transient=True) as progress:
        total = sum(len(s) for s in sweeps.values()) * len(items)
        task = progress.add_task(f"bench {kind.value}", total=total)
        for coder in coders:
            progress.update(task, description=coder.name)
            start = time.monotonic()
            results.append(
                runner.run_codec(
                    media,
                    coder,
                    items,
                    sweeps[coder.name],
                    lambda: progress.advance(task),
                )
            )
            progress.console.print(
                f"{coder.name}: {len(sweeps[coder.name])} settings x {len(items)} items, "
                f"{time.monotonic() - start:.0f} s"
            )
    run = runner.BenchRun(
        kind=kind.value,
        dataset=info,
        codecs=results,
        anchors=tuple(anchors),
        quick=quick,
        threads=threads,
        started=started,
        wall_seconds=time.monotonic() - began,
    )
    if info.matches_registry is False and not limit and not quick:
        console.print(f"[yellow]note:[/] {info.folder} differs from the registered {info.name}")
    report.render(run, media, console)
    written = {
        json_out: lambda: report.to_json_text(run, media).encode(),
        csv_out: lambda: report.to_csv(run, media).encode(),
        plot_out: lambda: report.plot(run, media),
    }
    for path, content in written.items():
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(path, overwrite=force) as f:
                f.write(content())
            console.print(f"{path}: written")
