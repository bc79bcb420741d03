"""The command line end to end: real files in, real files out, one-line errors."""

from __future__ import annotations

import json
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nvcodec.cli.main import app
from nvcodec.codecs.files import encode_file
from nvcodec.fuzz import parse, rebuild
from nvcodec.io.image import read_image, write_image

runner = CliRunner()


def run(*args: str | Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def assert_one_line_error(code: int, stderr: str, *needles: str) -> None:
    assert code == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0]


def without_index(data: bytes) -> bytes:
    """The file cut 6 bytes into its index (whose length the last 8 bytes give): the packets
    are whole, the index and trailer gone."""
    (index_length,) = struct.unpack_from("<I", data, len(data) - 8)
    return data[: len(data) - 8 - index_length + 6]


@pytest.fixture
def small_png(tmp_path: Path, samples_dir: Path) -> Path:
    path = tmp_path / "photo.png"
    write_image(path, read_image(samples_dir / "kodim23.png")[100:228, 300:492])
    return path


def test_help_lists_the_commands() -> None:
    code, out, _ = run("--help")
    assert code == 0
    for command in ("encode", "decode", "info", "models", "train"):
        assert command in out


def test_encode_info_decode(tmp_path: Path, small_png: Path) -> None:
    coded, decoded = tmp_path / "photo.nvc", tmp_path / "back.png"
    code, out, _ = run("encode", small_png, coded, "--quality", "4")
    assert code == 0 and "quality 4" in out
    code, out, _ = run("info", coded)
    assert code == 0 and "nvc-image-wavelet" in out and "192x128" in out
    code, out, _ = run("info", coded, "--json")
    info = json.loads(out)
    stream = info["streams"][0]
    assert info["size_bytes"] == coded.stat().st_size and info["indexed"]
    assert stream["kind"] == "image" and (stream["width"], stream["height"]) == (192, 128)
    assert stream["bpp"] == pytest.approx(stream["payload_bytes"] * 8 / (192 * 128))
    assert len(stream["model_sha256"]) == 64
    code, _, _ = run("decode", coded, decoded)
    assert code == 0
    original, back = read_image(small_png), read_image(decoded)
    assert back.shape == original.shape
    mse = np.mean((back.astype(float) - original) ** 2)
    assert 10 * np.log10(255**2 / mse) > 28


def test_target_bpp_picks_a_level_within_it(tmp_path: Path, small_png: Path) -> None:
    coded = tmp_path / "photo.nvc"
    code, _, _ = run("encode", small_png, coded, "--bpp", "0.6")
    assert code == 0
    payload_bits = json.loads(run("info", coded, "--json")[1])["streams"][0]["payload_bytes"] * 8
    assert payload_bits / (192 * 128) <= 0.6
    code, out, _ = run("encode", small_png, coded, "--bpp", "0.001", "--force")
    assert code == 0 and "quality 0" in out  # nothing fits: the smallest level


def test_outputs_are_never_overwritten_without_force(tmp_path: Path, small_png: Path) -> None:
    coded = tmp_path / "photo.nvc"
    coded.write_bytes(b"precious")
    code, _, err = run("encode", small_png, coded)
    assert_one_line_error(code, err, str(coded), "already exists")
    assert coded.read_bytes() == b"precious"
    assert run("encode", small_png, coded, "--force")[0] == 0
    code, _, err = run("decode", coded, small_png)
    assert_one_line_error(code, err, str(small_png))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_truncated_container_is_one_line(tmp_path: Path, small_png: Path) -> None:
    coded = tmp_path / "photo.nvc"
    run("encode", small_png, coded)
    data = coded.read_bytes()
    cut = tmp_path / "cut.nvc"
    cut.write_bytes(data[: len(data) // 2])
    code, _, err = run("decode", cut, tmp_path / "out.png")
    assert_one_line_error(code, err, str(cut), "truncated")
    assert not (tmp_path / "out.png").exists()


def test_damage_after_an_intact_image_is_reported_not_fatal(
    tmp_path: Path, small_png: Path
) -> None:
    coded = tmp_path / "photo.nvc"
    run("encode", small_png, coded)
    cut = tmp_path / "cut.nvc"
    cut.write_bytes(without_index(coded.read_bytes()))
    code, _, err = run("decode", cut, tmp_path / "out.png")
    assert code == 0 and err.startswith("warning: ") and str(cut) in err
    assert read_image(tmp_path / "out.png").shape == (128, 192, 3)


def test_bad_training_data_is_one_line(tmp_path: Path) -> None:
    code, _, err = run("train", "image", "--data", tmp_path / "empty", "--out", tmp_path / "r")
    assert_one_line_error(code, err, "no training images")


def test_an_image_behind_inserted_garbage_decodes_with_a_warning(
    tmp_path: Path, coded: Path
) -> None:
    data = coded.read_bytes()
    first = data.index(b"NvPk")
    garbled = tmp_path / "garbled.nvc"
    garbled.write_bytes(data[:first] + b"NvPk noise" * 8 + data[first:])
    code, _, err = run("decode", garbled, tmp_path / "out.png")
    assert code == 0 and err.startswith("warning: ") and "packet header CRC mismatch" in err
    assert read_image(tmp_path / "out.png").shape == (128, 192, 3)
    code, _, err = run("decode", garbled, tmp_path / "strict.png", "--strict")
    assert_one_line_error(code, err, str(garbled), "packet header CRC mismatch")


def test_info_shows_strings_from_the_file_inert(tmp_path: Path, coded: Path) -> None:
    """Markup and escape sequences in a file's strings are shown, never acted on."""
    hostile = with_stream(coded, tmp_path / "hostile.nvc", codec="x[/]\x1b[2J\x1b]0;title\x07")
    code, out, _ = run("info", hostile)
    assert code == 0 and "\x1b" not in out
    assert "x[/]\\x1b[2J\\x1b]0;title\\x07" in out


@pytest.fixture
def coded(tmp_path: Path, small_png: Path) -> Path:
    path = tmp_path / "photo.nvc"
    encode_file(small_png, path, quality=1)
    return path


def with_stream(source: Path, target: Path, **changes: object) -> Path:
    """A copy of ``source`` whose first stream has ``changes``: valid CRCs, other values."""
    parsed = parse(source.read_bytes())
    parsed.streams[0] = replace(parsed.streams[0], **changes)  # type: ignore[arg-type]
    target.write_bytes(rebuild(parsed))
    return target


# command (with {dir}, {png}, {nvc}, {wav}, {txt} for the fixture's files), what the line names
FAILURES = {
    "missing input to info": (["info", "{dir}/absent.nvc"], ["absent.nvc", "No such file"]),
    "missing input to decode": (["decode", "{dir}/absent.nvc", "{dir}/o.png"], ["absent.nvc"]),
    "missing image": (["encode", "{dir}/absent.png", "{dir}/o.nvc"], ["absent.png"]),
    "missing audio": (["encode", "{dir}/absent.wav", "{dir}/o.nvc"], ["absent.wav"]),
    "directory to decode": (["decode", "{dir}", "{dir}/o.png"], ["{dir}", "Is a directory"]),
    "text to encode": (["encode", "{txt}", "{dir}/o.nvc"], ["{txt}", "not a readable audio"]),
    "image to decode": (["decode", "{png}", "{dir}/o.png"], ["{png}", "not an nvcodec file"]),
    "model not installed": (
        ["decode", "{dir}/unknown.nvc", "{dir}/o.png"],
        ["unknown.nvc", "model 'not-installed'", "is not installed"],
    ),
    "other model version": (
        ["decode", "{dir}/other.nvc", "{dir}/o.png"],
        ["other.nvc", "needs model 'image-wavelet' with sha256 0000000000000000"],
    ),
    "quality out of range": (["encode", "{png}", "{dir}/o.nvc", "-q", "99"], ["--quality must"]),
    "unknown bitrate": (["encode", "{wav}", "{dir}/o.nvc", "-b", "7k"], ["--bitrate must"]),
    "bitrate for an image": (["encode", "{png}", "{dir}/o.nvc", "-b", "6k"], ["{png}", "audio"]),
    "quality for audio": (["encode", "{wav}", "{dir}/o.nvc", "-q", "2"], ["{wav}", "images"]),
    "pickled tokens": (["detokenize", "{dir}/pickle.npy", "{dir}/o.wav"], ["pickle.npy"]),
    "tokens past the file's end": (
        ["detokenize", "{dir}/huge.npy", "{dir}/o.wav"],
        ["huge.npy", "declares (1, 100000000000, 8) int16 (1600000000000 bytes) but holds 16"],
    ),
    "output exists": (["decode", "{nvc}", "{png}"], ["{png}", "already exists"]),
    "output is the input": (["encode", "{png}", "{png}", "--force"], ["{png}", "is also an input"]),
    "unknown output format": (["decode", "{nvc}", "{dir}/o.xyz"], ["o.xyz", "unknown image"]),
    "output folder missing": (
        ["decode", "{nvc}", "{dir}/no/o.png"],
        ["{dir}/no/o.png", "cannot be written"],
    ),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_failures_are_one_line_naming_the_file(
    tmp_path: Path, small_png: Path, coded: Path, samples_dir: Path, case: str
) -> None:
    (tmp_path / "notes.txt").write_text("not media")
    np.save(tmp_path / "pickle.npy", np.array([{"code": "runs on load"}]), allow_pickle=True)
    with (tmp_path / "huge.npy").open("wb") as file:
        header = {"descr": "<i2", "fortran_order": False, "shape": (1, 10**11, 8)}
        np.lib.format.write_array_header_1_0(file, header)
        file.write(bytes(16))
    with_stream(coded, tmp_path / "unknown.nvc", model_id="not-installed")
    with_stream(coded, tmp_path / "other.nvc", model_sha256=bytes(32))
    names = {
        "dir": str(tmp_path),
        "png": str(small_png),
        "nvc": str(coded),
        "wav": str(samples_dir / "LJ001-0004.wav"),
        "txt": str(tmp_path / "notes.txt"),
    }
    before = sorted(tmp_path.iterdir())
    args, needles = FAILURES[case]
    code, _, err = run(*(a.format(**names) for a in args))
    assert_one_line_error(code, err, *(n.format(**names) for n in needles))
    assert sorted(tmp_path.iterdir()) == before  # nothing written, no temp file left


@pytest.mark.parametrize("kind", ["image", "audio"])
def test_strict_fails_on_damage_that_is_otherwise_a_warning(
    tmp_path: Path, small_png: Path, samples_dir: Path, kind: str
) -> None:
    source = small_png if kind == "image" else samples_dir / "LJ001-0004.wav"
    suffix = ".png" if kind == "image" else ".wav"
    encode_file(source, tmp_path / "whole.nvc")
    cut = tmp_path / "cut.nvc"
    cut.write_bytes(without_index((tmp_path / "whole.nvc").read_bytes()))
    code, _, err = run("decode", cut, tmp_path / f"out{suffix}", "--strict")
    assert_one_line_error(code, err, str(cut), "index declares", "but only 6 remain")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.nvc", "photo.png", "whole.nvc"]
    code, _, err = run("decode", cut, tmp_path / f"out{suffix}")
    assert code == 0 and err.startswith("warning: ") and str(cut) in err
    assert (tmp_path / f"out{suffix}").exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--debug", "info", str(tmp_path / "absent.nvc")])
    assert result.exit_code != 0 and result.exception is not None
