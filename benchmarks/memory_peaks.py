"""Peak memory (RSS) of ``nvcodec encode`` and ``nvcodec decode`` on long inputs: the kernel's
figure for the child process (``os.wait4``, what ``/usr/bin/time -v`` prints as "Maximum
resident set size"), around the command-line tool (docs/reliability.md).

Run:  nice -n 19 .venv/bin/python benchmarks/memory_peaks.py [--minutes 60] [--image 8000x6000]
      [--video 1280x720 --video-seconds 2 8 [--video-rate 5]]
      (add --json peaks.json to save the figures; --work DIR keeps the generated files)

Audio: real speech (samples/LJ001-0004.wav, resampled) repeated to the length with a varying
gain, written block by block as 48 kHz FLAC, so the input itself never sits in memory; decoded
back to FLAC. Image: samples/kodim23.png resized to the given size (PNG), decoded back to PNG.
Video: samples/bigbuckbunny_360p.mp4 (3 s with stereo sound) scaled to the given size and looped
to each length, written frame by frame as H.264 + AAC mp4; decoded back to mp4 with its sound.
tests/test_cli_process.py runs the audio part at 30 s and 3 min: memory must not grow with
the length.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
NVCODEC = Path(sys.executable).parent / "nvcodec"


def peak_rss(args: list[str | Path]) -> tuple[float, float]:
    """Run ``nvcodec --threads 1 ARGS``: (its peak RSS in MiB, seconds)."""
    command = [str(c) for c in (NVCODEC, "--threads", "1", *args)]
    start = time.perf_counter()
    with tempfile.TemporaryFile() as stderr:
        child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        if child.returncode:
            stderr.seek(0)
            message = stderr.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{message}")
    return usage.ru_maxrss / 1024, seconds  # Linux reports KiB


def encode_and_decode(source: Path, coded: Path, back: Path) -> dict[str, dict[str, float]]:
    """``nvcodec encode SOURCE CODED`` then ``decode CODED BACK``: peak RSS and time of each."""
    figures = {}
    for step, args in (
        ("encode", ["encode", source, coded, "--force"]),
        ("decode", ["decode", coded, back, "--force"]),
    ):
        mib, wall = peak_rss(args)
        figures[step] = {"peak_rss_mib": round(mib, 1), "seconds": round(wall, 1)}
    return figures


def write_speech(path: Path, seconds: float, rate: int = 48000, channels: int = 1) -> None:
    """``seconds`` of real speech at ``rate``, written a few seconds at a time."""
    from nvcodec.io.audio import AudioWriter, read_audio

    speech = read_audio(SAMPLES / "LJ001-0004.wav", rate).samples[0]
    total = round(seconds * rate)
    with AudioWriter(path, rate=rate, channels=channels, overwrite=True) as writer:
        for start in range(0, total, speech.size):
            gain = 0.4 + 0.5 * abs(np.sin(start / rate / 37.0))  # not quite periodic
            block = gain * speech[: min(speech.size, total - start)]
            writer.write(np.repeat(block[None], channels, axis=0))


def measure_audio(work: Path, seconds: float, channels: int = 1) -> dict[str, dict[str, float]]:
    """Encode and decode ``seconds`` of 48 kHz speech: peak RSS and time of each."""
    source, coded = work / f"speech-{seconds:g}s.flac", work / f"speech-{seconds:g}s.nvc"
    write_speech(source, seconds, channels=channels)
    return encode_and_decode(source, coded, work / f"speech-{seconds:g}s-back.flac")


def measure_image(work: Path, width: int, height: int) -> dict[str, dict[str, float]]:
    """Encode and decode kodim23 resized to ``width`` x ``height``: peak RSS and time of each."""
    from PIL import Image

    source, coded = work / f"photo-{width}x{height}.png", work / f"photo-{width}x{height}.nvc"
    with Image.open(SAMPLES / "kodim23.png") as photo:
        photo.convert("RGB").resize((width, height), Image.Resampling.LANCZOS).save(source)
    return encode_and_decode(source, coded, work / f"photo-{width}x{height}-back.png")


def write_video_clip(
    path: Path, seconds: float, width: int, height: int, frame_rate: int | None = None
) -> None:
    """The bundled Bunny clip scaled to ``width`` x ``height`` and looped to ``seconds``, frames
    and sound generated a block at a time (the clip itself never sits in memory whole). With
    ``frame_rate`` below the clip's (25), every k-th frame is kept: fewer frames to code for
    the same length, which is what a long run on this CPU can afford."""
    from PIL import Image

    from nvcodec.io.audio import read_audio
    from nvcodec.io.video import Soundtrack, VideoReader, write_video

    source = SAMPLES / "bigbuckbunny_360p.mp4"
    with VideoReader(source) as reader:
        source_rate = reader.info.rate
    rate = source_rate if frame_rate is None else frame_rate
    step = max(1, round(source_rate / rate))
    sound = read_audio(source)
    count = round(seconds * rate)

    def frames() -> Iterator[np.ndarray]:
        made = 0
        while made < count:
            with VideoReader(source) as reader:
                for position, frame in enumerate(reader):
                    if made == count:
                        return
                    if position % step:
                        continue
                    scaled = Image.fromarray(frame).resize(
                        (width, height), Image.Resampling.BILINEAR
                    )
                    yield np.asarray(scaled)
                    made += 1

    loops = -(-count * step // 75) + 1
    blocks = (sound.samples for _ in range(loops))
    length = round(count / rate * sound.rate)
    soundtrack = Soundtrack(blocks, sound.rate, sound.samples.shape[0], length=length)
    write_video(path, frames(), rate, soundtrack=soundtrack, overwrite=True)


def measure_video(
    work: Path, seconds: float, width: int, height: int, frame_rate: int | None = None
) -> dict[str, dict[str, float]]:
    """Encode and decode ``seconds`` of ``width`` x ``height`` video with sound."""
    name = f"video-{width}x{height}-{seconds:g}s"
    source, coded = work / f"{name}.mp4", work / f"{name}.nvc"
    write_video_clip(source, seconds, width, height, frame_rate)
    return encode_and_decode(source, coded, work / f"{name}-back.mp4")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs="*", default=[60.0])
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--image", default="8000x6000", help="WIDTHxHEIGHT, or 'none'")
    parser.add_argument("--video", default="none", help="WIDTHxHEIGHT, or 'none'")
    parser.add_argument("--video-seconds", type=float, nargs="*", default=[2.0, 8.0])
    parser.add_argument("--video-rate", type=int, help="frames/s (default: the clip's 25)")
    parser.add_argument("--work", type=Path, help="keep the generated files here")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict[str, object] = {"machine_load_1min": round(_load(), 2)}
    with tempfile.TemporaryDirectory() as temp:
        work = args.work or Path(temp)
        work.mkdir(parents=True, exist_ok=True)
        for minutes in args.minutes:
            key = f"audio {minutes:g} min, 48 kHz, {args.channels} ch"
            results[key] = measure_audio(work, minutes * 60, args.channels)
            print(key, results[key], flush=True)
        if args.image != "none":
            width, height = (int(v) for v in args.image.split("x"))
            results[f"image {args.image}"] = measure_image(work, width, height)
            print(f"image {args.image}", results[f"image {args.image}"], flush=True)
        if args.video != "none":
            width, height = (int(v) for v in args.video.split("x"))
            for seconds in args.video_seconds:
                rate = f"{args.video_rate} fps" if args.video_rate else "25 fps"
                key = f"video {args.video}, {seconds:g} s, {rate}, stereo sound"
                results[key] = measure_video(work, seconds, width, height, args.video_rate)
                print(key, results[key], flush=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


def _load() -> float:
    """The 1-minute load average: other jobs on the machine slow the timings, not the peaks."""
    return float(Path("/proc/loadavg").read_text().split()[0])


if __name__ == "__main__":
    main()
