"""``nvcodec info``: describe a container as a plain dict (the ``--json`` schema) and render it."""

from __future__ import annotations

from fractions import Fraction
from itertools import pairwise
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from nvcodec.container import ContainerReader, StreamInfo, StreamKind, StreamSummary

INFO_SCHEMA_VERSION = 1


def _fraction_text(value: Fraction | None) -> str | None:
    return None if value is None else f"{value.numerator}/{value.denominator}"


def _describe_stream(
    index: int, stream: StreamInfo, summary: StreamSummary, keyframes: list[int]
) -> dict[str, Any]:
    """One stream's entry; ``keyframes`` (pts) give a video's key frame count and longest
    group of frames (from a key frame to the next, or to the end)."""
    ticks = stream.duration or summary.end_pts
    timed = stream.kind != StreamKind.IMAGE
    duration_s = float(ticks * stream.time_base) if ticks > 0 and timed else None
    pixels = stream.width * stream.height
    # Images have no duration: their rate is bits per pixel, the others' kilobits per second.
    bitrate_kbps = summary.payload_bytes * 8 / duration_s / 1000 if duration_s else None
    bpp = (
        summary.payload_bytes * 8 / (pixels * max(summary.packet_count, 1))
        if stream.kind == StreamKind.IMAGE and pixels
        else None
    )
    video = stream.kind == StreamKind.VIDEO
    bounds = [*keyframes, summary.end_pts]
    return {
        "index": index,
        "kind": stream.kind.name.lower(),
        "codec": stream.codec,
        "model_id": stream.model_id or None,
        "model_sha256": stream.model_sha256.hex() or None,
        "time_base": _fraction_text(stream.time_base),
        "width": stream.width or None,
        "height": stream.height or None,
        "frame_rate": _fraction_text(stream.frame_rate),
        "sample_rate": stream.sample_rate or None,
        "channels": stream.channels or None,
        "duration_s": duration_s,
        "frames": summary.packet_count if video else None,
        "keyframes": len(keyframes) if video else None,
        "longest_gop": max(b - a for a, b in pairwise(bounds)) if keyframes and video else None,
        "packets": summary.packet_count,
        "payload_bytes": summary.payload_bytes,
        "bitrate_kbps": bitrate_kbps,
        "bpp": bpp,
    }


def describe_container(path: Path) -> dict[str, Any]:
    """Everything ``info`` shows, as JSON-ready values (schema version ``INFO_SCHEMA_VERSION``)."""
    with ContainerReader(path) as reader:
        summaries = {s.stream: s for s in reader.summaries()}
        streams = [
            _describe_stream(
                i,
                stream,
                summaries.get(i, StreamSummary(i, 0, 0, 0)),
                reader.keyframes(i) if stream.kind == StreamKind.VIDEO else [],
            )
            for i, stream in enumerate(reader.streams)
        ]
        return {
            "schema": INFO_SCHEMA_VERSION,
            "file": str(path),
            "format_version": "{}.{}".format(*reader.version),
            "size_bytes": path.stat().st_size,
            "indexed": reader.has_index,
            "metadata": dict(reader.metadata),
            "streams": streams,
        }


def _geometry(s: dict[str, Any]) -> str:
    parts = []
    if s["width"]:
        parts.append(f"{s['width']}x{s['height']}")
    if s["frame_rate"]:
        parts.append(f"{float(Fraction(s['frame_rate'])):.3g} fps")
    if s["sample_rate"]:
        parts.append(f"{s['sample_rate']} Hz x{s['channels'] or 1}")
    return ", ".join(parts) or "-"


def _keyframes(s: dict[str, Any]) -> str:
    if s["keyframes"] is None:
        return "-"
    gop = f" (GOP up to {s['longest_gop']})" if s["longest_gop"] is not None else ""
    return f"{s['keyframes']:,}{gop}"


def _rate(s: dict[str, Any]) -> str:
    if s["bpp"] is not None:
        return f"{s['bpp']:.4f} bpp"
    if s["bitrate_kbps"] is not None:
        return f"{s['bitrate_kbps']:.2f} kb/s"
    return "-"


def _shown(text: str) -> Text:
    """A string from a file, as the terminal must show it: no markup, and control characters
    (an escape sequence could clear the screen or retitle the window) spelled out."""
    return Text("".join(c if c.isprintable() else repr(c)[1:-1] for c in text))


def render_description(d: dict[str, Any], console: Console) -> None:
    """Print a header line, the metadata and a table with one column per stream (fits 80
    columns for the usual one to three streams)."""
    index_note = "indexed" if d["indexed"] else "no index (streamed or cut short)"
    header = _shown(d["file"])
    header.stylize("bold")
    console.print(header + f": nvc {d['format_version']}, {d['size_bytes']:,} bytes, {index_note}")
    for key, value in d["metadata"].items():
        console.print(Text("  ") + _shown(key) + ": " + _shown(value))
    table = Table(box=None, show_edge=False, padding=(0, 2))
    table.add_column("")
    for s in d["streams"]:
        table.add_column(f"stream {s['index']}", overflow="fold")
    rows = {
        "kind": lambda s: s["kind"],
        "codec": lambda s: _shown(s["codec"]),
        "model": lambda s: _shown(s["model_id"] or "-"),
        "model sha256": lambda s: f"{s['model_sha256'][:16]}..." if s["model_sha256"] else "-",
        "geometry": _geometry,
        "duration": lambda s: f"{s['duration_s']:.3f} s" if s["duration_s"] is not None else "-",
        "frames": lambda s: f"{s['frames']:,}" if s["frames"] is not None else "-",
        "key frames": _keyframes,
        "packets": lambda s: f"{s['packets']:,}",
        "bytes": lambda s: f"{s['payload_bytes']:,}",
        "rate": _rate,
    }
    for name, cell in rows.items():
        table.add_row(
            name, *(cell(s) for s in d["streams"]), style="bold" if name == "rate" else None
        )
    console.print(table)
