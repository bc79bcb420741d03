"""Sweep codecs over their settings on real items, measure, and summarize (any media kind).

Every item is encoded and decoded for real at every setting; rates come from whole-file bytes.
Per setting, rate and each quality value are averaged over items (CompressAI's convention),
then ``MediaBench.derived`` values are computed from those means. Speed is the amount of media
(megapixels, seconds, ...) over the summed encode or decode time at that setting, loading and
metric time excluded.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nvcodec import __version__
from nvcodec.bench import datasets
from nvcodec.bench.base import BenchCodec, CodedItem, MediaItem, Setting
from nvcodec.bench.bdrate import bd_rate
from nvcodec.bench.registry import MediaBench
from nvcodec.errors import NvcodecError

SCHEMA = "nvcodec-bench/1"
QUICK_ITEMS = 2


@dataclass(frozen=True)
class ItemResult:
    item: str
    setting: Setting
    num_bytes: int
    rate: float
    values: dict[str, float]  # quality metrics, derived ones included
    encode_seconds: float
    decode_seconds: float
    size: float  # megapixels, seconds, ... (what speed is measured in)


@dataclass
class CodecResult:
    name: str
    description: str
    settings: tuple[Setting, ...]
    items: list[ItemResult] = field(default_factory=list)

    def summary(self, bench: MediaBench) -> dict[str, list[float]]:
        """Per-setting means, CompressAI's ``results`` layout plus speed."""
        results: dict[str, list[float]] = {}
        for setting in self.settings:
            rows = [r for r in self.items if r.setting == setting]
            means = {bench.rate_unit: float(np.mean([r.rate for r in rows]))}
            for metric in rows[0].values:
                if metric not in bench.derived(rows[0].values):
                    means[metric] = float(np.mean([r.values[metric] for r in rows]))
            means |= bench.derived(means)
            size = sum(r.size for r in rows)
            encode = sum(r.encode_seconds for r in rows)
            decode = sum(r.decode_seconds for r in rows)
            means |= {
                "encoding_time": encode / len(rows),
                "decoding_time": decode / len(rows),
                "encode_speed": size / encode if encode > 0 else math.inf,
                "decode_speed": size / decode if decode > 0 else math.inf,
            }
            for key, value in means.items():
                results.setdefault(key, []).append(value)
        return results


@dataclass(frozen=True)
class DatasetInfo:
    name: str | None
    folder: Path
    items: int
    sha256: str
    registered_sha256: str | None

    @property
    def matches_registry(self) -> bool | None:
        return None if self.registered_sha256 is None else self.sha256 == self.registered_sha256


@dataclass(frozen=True)
class BenchRun:
    """One finished bench: what ran, on what, and every measurement."""

    kind: str
    dataset: DatasetInfo
    codecs: list[CodecResult]
    anchors: tuple[str, ...]
    quick: bool
    threads: int
    started: str
    wall_seconds: float


def load_dataset(
    bench: MediaBench, name: str | None, folder: Path | None, limit: int | None
) -> tuple[DatasetInfo, list[MediaItem]]:
    """Items of a registered dataset (found on the search path or in ``folder``) or of any
    folder. The digest covers the items loaded, so it matches the registry only for the full set.
    """
    dataset = datasets.get_dataset(name) if name is not None else None
    if dataset is not None and dataset.kind != bench.kind:
        raise NvcodecError(f"dataset {dataset.name!r} holds {dataset.kind}, not {bench.kind}")
    if folder is None:
        if dataset is None:
            raise NvcodecError("give --dataset NAME or --data DIR")
        folder = datasets.locate(dataset)
    elif not folder.is_dir():
        raise NvcodecError(f"{folder}: not a folder")
    paths = datasets.item_paths(dataset, folder) if dataset else bench.discover(folder)
    if not paths:
        raise NvcodecError(f"{folder}: no {bench.kind} items found")
    paths = paths[:limit] if limit else paths
    items = [bench.load(p, p.relative_to(folder).with_suffix("").as_posix()) for p in paths]
    info = DatasetInfo(
        name=dataset.name if dataset else None,
        folder=folder,
        items=len(items),
        sha256=datasets.digest(paths, folder),
        registered_sha256=dataset.sha256 if dataset else None,
    )
    return info, items


def quick_settings(settings: Sequence[Setting]) -> tuple[Setting, ...]:
    """Lowest, middle and highest rate: enough points for a curve and a BD-rate."""
    if len(settings) <= 3:
        return tuple(settings)
    return (settings[0], settings[len(settings) // 2], settings[-1])


def run_codec(
    bench: MediaBench,
    codec: BenchCodec,
    items: Sequence[MediaItem],
    settings: Sequence[Setting],
    advance: Callable[[], None] = lambda: None,
) -> CodecResult:
    """Code every item at every setting and measure it.

    One untimed coding first: lazy initialisation (tables, thread pools) is not speed.
    """
    description = getattr(codec, "description", codec.name)
    result = CodecResult(codec.name, description, tuple(settings))

    def code(item: MediaItem, setting: Setting) -> CodedItem:
        try:
            return codec.code(item, setting)
        except (RuntimeError, ValueError, OSError) as e:
            raise NvcodecError(
                f"{codec.name} failed on {item.name} at setting {setting}: {e}"
            ) from None

    code(items[0], settings[0])
    for setting in settings:
        for item in items:
            coded = code(item, setting)
            if coded.decoded.shape != item.data.shape:
                raise NvcodecError(
                    f"{codec.name} decoded {item.name} to shape {coded.decoded.shape}, "
                    f"expected {item.data.shape}"
                )
            values = bench.metrics(item, coded.decoded)
            values |= bench.derived(values)
            result.items.append(
                ItemResult(
                    item=item.name,
                    setting=setting,
                    num_bytes=coded.num_bytes,
                    rate=bench.rate(item, coded.num_bytes),
                    values=values,
                    encode_seconds=coded.encode_seconds,
                    decode_seconds=coded.decode_seconds,
                    size=bench.size(item),
                )
            )
            advance()
    return result


def bd_table(
    curves: dict[str, dict[str, list[float]]],
    anchors: Sequence[str],
    metrics: Sequence[str],
    rate_unit: str,
) -> dict[str, dict[str, dict[str, float]]]:
    """``{anchor: {metric: {codec: BD-rate %}}}`` for every curve that has the metric."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for anchor in anchors:
        table[anchor] = {}
        for metric in metrics:
            if metric not in curves[anchor]:
                continue
            table[anchor][metric] = {
                name: bd_rate(
                    curves[anchor][rate_unit],
                    curves[anchor][metric],
                    curve[rate_unit],
                    curve[metric],
                )
                for name, curve in curves.items()
                if name != anchor and metric in curve
            }
    return table


def machine() -> dict[str, object]:
    """What the speeds were measured on."""
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "nvcodec": __version__,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
