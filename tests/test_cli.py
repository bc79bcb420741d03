"""The command line end to end: real files in, real files out, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nvcodec.cli.main import app
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


def test_missing_input_is_one_line(tmp_path: Path) -> None:
    code, _, err = run("info", tmp_path / "absent.nvc")
    assert_one_line_error(code, err, "absent.nvc")
    code, _, err = run("encode", tmp_path / "absent.png", tmp_path / "x.nvc")
    assert_one_line_error(code, err, "absent.png")


def test_not_a_container_is_one_line(tmp_path: Path, small_png: Path) -> None:
    code, _, err = run("info", small_png)
    assert_one_line_error(code, err, str(small_png), "not an nvcodec file")


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
    cut.write_bytes(coded.read_bytes()[:-40])  # the index is gone, the packet is whole
    code, _, err = run("decode", cut, tmp_path / "out.png")
    assert code == 0 and err.startswith("warning: ") and str(cut) in err
    assert read_image(tmp_path / "out.png").shape == (128, 192, 3)


def test_unsupported_media_is_refused_clearly(tmp_path: Path, samples_dir: Path) -> None:
    code, _, err = run("encode", samples_dir / "LJ001-0004.wav", tmp_path / "a.nvc")
    assert_one_line_error(code, err, "LJ001-0004.wav", "not implemented yet")


def test_bad_options_and_data_are_one_line(tmp_path: Path, small_png: Path) -> None:
    code, _, err = run("encode", small_png, tmp_path / "x.nvc", "--quality", "99")
    assert_one_line_error(code, err, "--quality must be 0..")
    code, _, err = run("train", "image", "--data", tmp_path / "empty", "--out", tmp_path / "r")
    assert_one_line_error(code, err, "no training images")
    assert not (tmp_path / "x.nvc").exists()


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--debug", "info", str(tmp_path / "absent.nvc")])
    assert result.exit_code != 0 and result.exception is not None
