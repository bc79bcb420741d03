"""Kodak rate-distortion and speed of the learned image codec, side by side with WebP and JPEG.

Rates are real bytes: the whole .nvc file for nvcodec (header and index included), the whole
file for WebP (Pillow, method 6) and JPEG (Pillow, libjpeg-turbo). PSNR-RGB on 8-bit output,
averaged over images per setting (CompressAI's convention). BD-rate (Bjontegaard, PCHIP on
log-rate over the overlapping PSNR range) is against WebP. Speed excludes model loading.

    python benchmarks/image_kodak.py --data ../shared/datasets/kodak [--threads 2] [--limit N]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.interpolate import PchipInterpolator

from nvcodec.codecs.files import write_image_container
from nvcodec.codecs.image import ImageCodec
from nvcodec.io.image import read_image
from nvcodec.models.store import load_model

Curve = list[tuple[float, float]]  # (bpp, psnr) per setting, ascending rate


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / mse)


def pillow_codec(
    fmt: str, **options: object
) -> Callable[[np.ndarray, int], tuple[int, np.ndarray]]:
    def run(pixels: np.ndarray, quality: int) -> tuple[int, np.ndarray]:
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=fmt, quality=quality, **options)
        return buffer.tell(), np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))

    return run


def bd_rate(anchor: Curve, test: Curve) -> float:
    """Average bitrate difference (%) of ``test`` vs ``anchor`` at equal PSNR."""

    def fit(curve: Curve) -> PchipInterpolator:
        points = sorted(curve, key=lambda p: p[1])
        return PchipInterpolator([p[1] for p in points], [np.log(p[0]) for p in points])

    low = max(min(p[1] for p in anchor), min(p[1] for p in test))
    high = min(max(p[1] for p in anchor), max(p[1] for p in test))
    if low >= high:
        return float("nan")
    a, t = fit(anchor), fit(test)
    diff = (t.integrate(low, high) - a.integrate(low, high)) / (high - low)
    return (np.exp(diff) - 1) * 100


def nvcodec_point(codec: ImageCodec, images: list[np.ndarray], quality: int, scratch: Path):
    bpps, psnrs, enc, dec = [], [], [], []
    for pixels in images:
        t0 = time.perf_counter()
        payload = codec.encode(pixels, quality)
        t1 = time.perf_counter()
        decoded = codec.decode(payload).pixels
        t2 = time.perf_counter()
        size = write_image_container(
            scratch / "image.nvc", codec, pixels.shape, payload, overwrite=True
        )
        megapixels = pixels.shape[0] * pixels.shape[1] / 1e6
        bpps.append(size * 8 / (megapixels * 1e6))
        psnrs.append(psnr(decoded, pixels))
        enc.append(megapixels / (t1 - t0))
        dec.append(megapixels / (t2 - t1))
    return (
        float(np.mean(bpps)),
        float(np.mean(psnrs)),
        statistics.median(enc),
        statistics.median(dec),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets/kodak"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="use only the first N images")
    parser.add_argument("--model", default="image-wavelet")
    parser.add_argument(
        "--models", type=Path, help="look for the model here before the bundled ones"
    )
    parser.add_argument("--every", type=int, default=1, help="use every N-th image")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = sorted(args.data.glob("*.png"))[:: args.every][: args.limit or None]
    images = [read_image(p)[..., :3] for p in paths]
    codec = ImageCodec(load_model(args.model, search=[args.models] if args.models else []))

    curves: dict[str, Curve] = {"nvcodec": []}
    print(f"{len(images)} images from {args.data}, {args.threads} torch threads\n")
    print("codec     setting    bpp     PSNR   enc MP/s  dec MP/s")
    with tempfile.TemporaryDirectory() as scratch:
        for quality in range(codec.model.qualities):
            bpp, quality_db, enc, dec = nvcodec_point(codec, images, quality, Path(scratch))
            curves["nvcodec"].append((bpp, quality_db))
            print(f"nvcodec   q{quality:<8} {bpp:6.3f}  {quality_db:6.2f}  {enc:8.2f}  {dec:8.2f}")
    baselines = {
        "webp": (pillow_codec("WEBP", method=6), [5, 10, 20, 30, 45, 60, 75, 85, 92]),
        "jpeg": (pillow_codec("JPEG"), [5, 10, 20, 30, 45, 60, 75, 85, 92]),
    }
    for name, (run, settings) in baselines.items():
        curves[name] = []
        for setting in settings:
            results = [run(pixels, setting) for pixels in images]
            bpp = float(
                np.mean(
                    [
                        size * 8 / p.shape[0] / p.shape[1]
                        for (size, _), p in zip(results, images, strict=True)
                    ]
                )
            )
            quality_db = float(
                np.mean([psnr(out, p) for (_, out), p in zip(results, images, strict=True)])
            )
            curves[name].append((bpp, quality_db))
            print(f"{name:9} q{setting:<8} {bpp:6.3f}  {quality_db:6.2f}")
    print("\nBD-rate vs WebP (negative = fewer bits at equal PSNR):")
    for name in ("nvcodec", "jpeg"):
        print(f"  {name:8} {bd_rate(curves['webp'], curves[name]):+.1f}%")


if __name__ == "__main__":
    main()
