"""A finished bench as tables, JSON (schema in docs/bench.md), CSV and an RD plot.

Published reference curves (``reference/<dataset>/*.json``, numbers copied from their cited
source) join the BD-rate table and the plot when the bench ran on the full registered dataset
they were measured on; they never enter a measured row.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from nvcodec.bench.registry import MediaBench
from nvcodec.bench.runner import SCHEMA, BenchRun, bd_table, machine

REFERENCE_DIR = Path(__file__).parent / "reference"

Curves = dict[str, dict[str, list[float]]]


def references(run: BenchRun, bench: MediaBench) -> list[dict]:
    """The published curves comparable with this run (same full dataset), derived values added."""
    if run.dataset.name is None or not run.dataset.matches_registry:
        return []
    found = []
    for path in sorted((REFERENCE_DIR / run.dataset.name).glob("*.json")):
        reference = json.loads(path.read_text(encoding="utf-8"))
        results = reference["results"]
        columns = zip(*results.values(), strict=True)
        points = [dict(zip(results, values, strict=True)) for values in columns]
        for key in bench.derived(points[0]):
            results[key] = [bench.derived(point)[key] for point in points]
        found.append(reference)
    return found


def curves(run: BenchRun, bench: MediaBench, refs: Sequence[dict]) -> Curves:
    measured = {codec.name: codec.summary(bench) for codec in run.codecs}
    return measured | {ref["name"]: ref["results"] for ref in refs}


def _finite(value: object) -> object:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def to_json(run: BenchRun, bench: MediaBench) -> dict:
    refs = references(run, bench)
    dataset = run.dataset
    document = {
        "schema": SCHEMA,
        "kind": run.kind,
        "dataset": {
            "name": dataset.name,
            "folder": str(dataset.folder),
            "items": dataset.items,
            "sha256": dataset.sha256,
            "registered_sha256": dataset.registered_sha256,
            "matches_registry": dataset.matches_registry,
        },
        "rate_unit": bench.rate_unit,
        "speed_unit": bench.speed_unit,
        "quality_metrics": list(bench.quality_metrics),
        "anchors": list(run.anchors),
        "quick": run.quick,
        "threads": run.threads,
        "machine": machine(),
        "started": run.started,
        "wall_seconds": run.wall_seconds,
        "codecs": [
            {
                "name": codec.name,
                "description": codec.description,
                "settings": list(codec.settings),
                "results": codec.summary(bench),
                "items": [
                    {
                        "item": r.item,
                        "setting": r.setting,
                        "bytes": r.num_bytes,
                        bench.rate_unit: r.rate,
                        **r.values,
                        "encoding_time": r.encode_seconds,
                        "decoding_time": r.decode_seconds,
                    }
                    for r in codec.items
                ],
            }
            for codec in run.codecs
        ],
        "references": refs,
        "bd_rate": bd_table(
            curves(run, bench, refs), run.anchors, bench.quality_metrics, bench.rate_unit
        ),
    }
    return _finite(document)


def to_csv(run: BenchRun, bench: MediaBench) -> str:
    """One row per item and setting, then one ``mean`` row per setting."""
    metrics = list(run.codecs[0].items[0].values)
    columns = ["codec", "setting", "item", "bytes", bench.rate_unit, *metrics]
    columns += ["encoding_time", "decoding_time"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for codec in run.codecs:
        for r in codec.items:
            writer.writerow(
                [codec.name, r.setting, r.item, r.num_bytes, r.rate]
                + [r.values[m] for m in metrics]
                + [r.encode_seconds, r.decode_seconds]
            )
        summary = codec.summary(bench)
        for index, setting in enumerate(codec.settings):
            writer.writerow(
                [codec.name, setting, "mean", "", summary[bench.rate_unit][index]]
                + [summary[m][index] for m in metrics]
                + [summary["encoding_time"][index], summary["decoding_time"][index]]
            )
    return out.getvalue()


def _number(value: float, digits: int) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def render(run: BenchRun, bench: MediaBench, console: Console) -> None:
    """The RD points and speeds per codec and setting, then the BD-rates."""
    dataset = run.dataset
    title = (
        f"{dataset.name or dataset.folder}: {dataset.items} {bench.kind} items"
        f"{' (quick)' if run.quick else ''}, {run.threads} CPU threads"
    )
    metrics = list(run.codecs[0].items[0].values)
    table = Table(title=title)
    for column in ["codec", "setting", bench.rate_unit, *metrics]:
        justify = "left" if column in ("codec", "setting") else "right"
        table.add_column(column, justify=justify, no_wrap=True)
    table.add_column(f"enc {bench.speed_unit}", justify="right")
    table.add_column(f"dec {bench.speed_unit}", justify="right")
    for codec in run.codecs:
        summary = codec.summary(bench)
        for index, setting in enumerate(codec.settings):
            values = [summary[bench.rate_unit][index]] + [summary[m][index] for m in metrics]
            digits = [3] + [4 if m == "ms-ssim" else 2 for m in metrics]
            speeds = [summary["encode_speed"][index], summary["decode_speed"][index]]
            table.add_row(
                codec.name if index == 0 else "",
                str(setting),
                *(_number(v, d) for v, d in zip(values, digits, strict=True)),
                *(_number(v, 2) for v in speeds),
                end_section=index == len(codec.settings) - 1,
            )
    console.print(table)

    refs = references(run, bench)
    bd = bd_table(curves(run, bench, refs), run.anchors, bench.quality_metrics, bench.rate_unit)
    columns = [(anchor, metric) for anchor in bd for metric in bd[anchor]]
    table = Table(title="BD-rate % (negative: fewer bits at equal quality)")
    table.add_column("codec", no_wrap=True)
    for anchor, metric in columns:
        table.add_column(f"vs {anchor}\n{metric}", justify="right")
    names = [codec.name for codec in run.codecs] + [ref["name"] for ref in refs]
    for name in names:
        cells = [bd[anchor][metric].get(name) for anchor, metric in columns]
        table.add_row(name, *("anchor" if cell is None else f"{cell:+.1f}" for cell in cells))
    console.print(table)
    console.print(f"wall time {run.wall_seconds:.0f} s")


def plot(run: BenchRun, bench: MediaBench) -> bytes:
    """PNG of quality against rate: a line per codec, published references dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    refs = references(run, bench)
    reference_names = {ref["name"] for ref in refs}
    metrics = bench.quality_metrics
    all_curves = curves(run, bench, refs)
    # Published curves are cut to the measured rate range, so they do not set the axes.
    top = 1.1 * max(max(all_curves[c.name][bench.rate_unit]) for c in run.codecs)
    # Measured codecs take tab10's colours, published curves Dark2's: no two lines share one.
    measured, published_colors = plt.get_cmap("tab10"), plt.get_cmap("Dark2")
    colors = {
        name: published_colors(i % 8) if name in reference_names else measured(i % 10)
        for names in ([c.name for c in run.codecs], [ref["name"] for ref in refs])
        for i, name in enumerate(names)
    }
    figure, axes = plt.subplots(1, len(metrics), figsize=(6.5 * len(metrics), 5), squeeze=False)
    for axis, metric in zip(axes[0], metrics, strict=True):
        for name, curve in all_curves.items():
            if metric not in curve:
                continue
            published = name in reference_names
            points = [
                (rate, value)
                for rate, value in zip(curve[bench.rate_unit], curve[metric], strict=True)
                if not published or rate <= top
            ]
            axis.plot(
                [rate for rate, _ in points],
                [value for _, value in points],
                linestyle="--" if published else "-",
                marker=None if published else "o",
                markersize=3,
                linewidth=1 if published else 1.5,
                color=colors[name],
                label=f"{name}, published" if published else name,
            )
        axis.set_xlabel(bench.rate_unit)
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    quick = ", quick" if run.quick else ""
    figure.suptitle(f"{run.dataset.name or run.dataset.folder} ({run.dataset.items} items{quick})")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def to_json_text(run: BenchRun, bench: MediaBench) -> str:
    return json.dumps(to_json(run, bench), indent=1) + "\n"
