"""The installed ``nvcodec`` as a separate process: Ctrl-C and SIGTERM leave no output and no
temp file, outputs do not depend on the process or ``--threads``, and memory does not grow
with the length of the audio (the scaled-down benchmarks/memory_peaks.py)."""

from __future__ import annotations

import importlib.util
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from nvcodec.codecs.files import decode_file, encode_file
from nvcodec.io.image import read_image, write_image

NVCODEC = Path(sys.executable).parent / "nvcodec"
BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def benchmark(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


memory_peaks = benchmark("memory_peaks")


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """6 minutes of 48 kHz speech (FLAC) and its .nvc: seconds of work for the CLI, so a
    signal sent once the output is open lands mid-way even on a busy machine."""
    work = tmp_path_factory.mktemp("speech")
    memory_peaks.write_speech(work / "speech.flac", 360.0)
    encode_file(work / "speech.flac", work / "speech.nvc")
    return work / "speech.flac", work / "speech.nvc"


@pytest.mark.parametrize(
    ("command", "signum"),
    [("encode", signal.SIGINT), ("decode", signal.SIGTERM)],
    ids=["encode-SIGINT", "decode-SIGTERM"],
)
def test_a_signal_mid_way_leaves_no_output_and_no_temp_file(
    tmp_path: Path, speech: tuple[Path, Path], command: str, signum: signal.Signals
) -> None:
    source, output = (speech[0], tmp_path / "out.nvc")
    if command == "decode":
        source, output = (speech[1], tmp_path / "out.flac")
    process = subprocess.Popen(
        [NVCODEC, "--threads", "1", command, source, output],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(f".{output.name}.*.tmp")):  # the output is being written
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.1)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signum
    assert err.strip() == f"error: stopped by {signum.name}"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["image", "audio"])
def test_outputs_do_not_depend_on_the_process_or_threads(
    tmp_path: Path, samples_dir: Path, kind: str
) -> None:
    """This process (one torch thread) and a fresh ``nvcodec --threads 2`` process (its own
    hash seed) write the same .nvc bytes and decode to the same bytes."""
    if kind == "image":
        source, suffix = tmp_path / "photo.png", ".png"
        write_image(source, read_image(samples_dir / "kodim23.png")[:200, :300])
    else:
        source, suffix = samples_dir / "LJ001-0004.wav", ".wav"
    encode_file(source, tmp_path / "here.nvc")
    decode_file(tmp_path / "here.nvc", tmp_path / f"here{suffix}")
    for args in (
        ["encode", source, tmp_path / "there.nvc"],
        ["decode", tmp_path / "here.nvc", tmp_path / f"there{suffix}"],
    ):
        done = subprocess.run([NVCODEC, "--threads", "2", *args], capture_output=True)
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "there.nvc").read_bytes() == (tmp_path / "here.nvc").read_bytes()
    assert (tmp_path / f"there{suffix}").read_bytes() == (tmp_path / f"here{suffix}").read_bytes()


def test_audio_memory_does_not_grow_with_length(tmp_path: Path) -> None:
    """Six times the audio, about the same peak: held at once, 3 minutes' spectra and network
    activations would add hundreds of MiB (the input alone, 33 MiB as float32)."""
    short = memory_peaks.measure_audio(tmp_path, 30.0)
    long = memory_peaks.measure_audio(tmp_path, 180.0)
    for step in ("encode", "decode"):
        assert long[step]["peak_rss_mib"] < short[step]["peak_rss_mib"] + 40, (short, long)


def test_video_memory_does_not_grow_with_length(tmp_path: Path) -> None:
    """Eight times the frames, about the same peak, encoding and decoding (to y4m: the mp4
    writer's own growth is documented in docs/reliability.md): the codec holds one reference
    frame, not the video (600 frames of 176x96 RGB alone are 30 MiB)."""
    peaks = {}
    for seconds in (3.0, 24.0):
        name = f"clip-{seconds:g}s"
        source, coded = tmp_path / f"{name}.mp4", tmp_path / f"{name}.nvc"
        memory_peaks.write_video_clip(source, seconds, 176, 96)
        peaks[seconds] = [
            memory_peaks.peak_rss(["encode", source, coded, "--quality", "1"])[0],
            memory_peaks.peak_rss(["decode", coded, tmp_path / f"{name}.y4m"])[0],
        ]
    for short, long in zip(peaks[3.0], peaks[24.0], strict=True):
        assert long < short + 40, peaks


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["encode", "--quality", "-1", "a.png", "a.nvc"], "Invalid value for '--quality'"),
        (["encodee", "a.png"], "No such command 'encodee'"),
        (["decode", "--bogus", "a.nvc", "a.png"], "No such option: --bogus"),
        (["train", "image"], "Missing option '--data'"),
    ],
)
def test_command_line_syntax_errors_are_one_line(args: list[str], message: str) -> None:
    done = subprocess.run([NVCODEC, *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert message in done.stderr and "--help'" in done.stderr
