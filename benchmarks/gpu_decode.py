"""Decode CPU-encoded .nvc files with the networks on a GPU and compare with the CPU decode.

Issue 7 asks for this whenever a GPU session is available. Entropy decoding (and motion
compensation) always run on the CPU, so the symbols are the same anywhere; what can differ is
the float arithmetic of the synthesis networks, which rounds to 8 bits. This script measures
how often and by how much, per image and per video frame (where a difference can carry along
a group of frames through the reference).

    python benchmarks/gpu_decode.py a.nvc b.nvc --device cuda --json gpu_decode.json

With ``--hashes FILE`` it only decodes on ``--device`` and writes each frame's SHA-256: run it
on two machines and compare the files (a cross-machine CPU check).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nvcodec.codecs.image import CODEC_ID as IMAGE_CODEC_ID
from nvcodec.codecs.image import ImageCodec
from nvcodec.codecs.video import CODEC_ID as VIDEO_CODEC_ID
from nvcodec.codecs.video import VideoCodec
from nvcodec.container import ContainerReader


def _compare(cpu: np.ndarray, gpu: np.ndarray) -> dict[str, float]:
    diff = np.abs(cpu.astype(np.int16) - gpu.astype(np.int16))
    mse = float(np.mean(diff.astype(np.float64) ** 2))
    return {
        "identical": bool(not diff.any()),
        "max_abs_diff": int(diff.max()),
        "differing_samples": float(np.mean(diff > 0)),
        "psnr_cpu_vs_gpu": float("inf") if mse == 0 else 10 * np.log10(255**2 / mse),
    }


def _decode_all(path: Path, device: str) -> tuple[str, list[np.ndarray], float]:
    """(stream kind, decoded frames, seconds) of the file's first image or video stream."""
    with ContainerReader(path) as reader:
        for index, stream in enumerate(reader.streams):
            if stream.codec == IMAGE_CODEC_ID:
                codec = ImageCodec.load(stream.model_id, stream.model_sha256).to(device)
                packet = next(reader.packets(index))
                began = time.perf_counter()
                pixels = codec.decode(packet.payload).pixels
                return "image", [pixels], time.perf_counter() - began
            if stream.codec == VIDEO_CODEC_ID:
                video = VideoCodec.load(stream.model_id, stream.model_sha256).to(device)
                decoder = video.decoder(stream.height, stream.width)
                began = time.perf_counter()
                frames = [decoder.decode(p.payload) for p in reader.packets(index)]
                return "video", frames, time.perf_counter() - began
    raise SystemExit(f"{path}: no image or video stream")


def check(path: Path, device: str) -> dict[str, Any]:
    kind, cpu, cpu_seconds = _decode_all(path, "cpu")
    _, gpu, gpu_seconds = _decode_all(path, device)
    per_frame = [_compare(a, b) for a, b in zip(cpu, gpu, strict=True)]
    return {
        "file": path.name,
        "kind": kind,
        "frames": len(cpu),
        "identical_frames": sum(f["identical"] for f in per_frame),
        "max_abs_diff": max(f["max_abs_diff"] for f in per_frame),
        "differing_samples": float(np.mean([f["differing_samples"] for f in per_frame])),
        "min_psnr_cpu_vs_gpu": min(f["psnr_cpu_vs_gpu"] for f in per_frame),
        "cpu_seconds": round(cpu_seconds, 3),
        "gpu_seconds": round(gpu_seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--hashes", type=Path, help="write per-frame SHA-256 here, and stop")
    args = parser.parse_args()
    if args.hashes is not None:
        digests = {
            path.name: [
                hashlib.sha256(f.tobytes()).hexdigest() for f in _decode_all(path, args.device)[1]
            ]
            for path in args.files
        }
        args.hashes.write_text(json.dumps(digests, indent=1))
        return
    results = {
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
        "torch": torch.__version__,
        "files": [check(path, args.device) for path in args.files],
    }
    for row in results["files"]:
        print(json.dumps(row))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
