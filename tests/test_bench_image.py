"""The image bench end to end: real codecs on real photos, datasets, outputs, errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nvcodec.bench import datasets, registry, runner
from nvcodec.bench.base import MediaItem
from nvcodec.bench.image_metrics import psnr
from nvcodec.bench.report import REFERENCE_DIR
from nvcodec.cli.main import app
from nvcodec.io.image import read_image, write_image

IMAGE = registry.MEDIA["image"]
KODAK = datasets.DATASETS["kodak"]


def kodak_folder() -> Path:
    try:
        return datasets.locate(KODAK)
    except Exception:
        pytest.skip("the Kodak dataset is not on this machine")


@pytest.fixture(scope="module")
def photo(samples_dir: Path) -> MediaItem:
    return IMAGE.load(samples_dir / "kodim23.png", "kodim23")


@pytest.mark.parametrize("name", list(IMAGE.codecs))
def test_every_codec_codes_real_bytes_at_rising_rates(name: str, photo: MediaItem) -> None:
    codec = registry.make_codec(IMAGE, name, threads=1)
    low, high = codec.settings[0], codec.settings[-1]
    coded = [codec.code(photo, setting) for setting in (low, high)]
    for result in coded:
        assert result.decoded.shape == photo.data.shape and result.decoded.dtype == np.uint8
        assert result.num_bytes > 100 and result.encode_seconds > 0 < result.decode_seconds
    rates = [IMAGE.rate(photo, c.num_bytes) for c in coded]
    qualities = [psnr(photo.data, c.decoded) for c in coded]
    assert rates[0] < 0.5 < rates[1] < 4 and 20 < qualities[0] < qualities[1]


def test_nvcodec_rate_is_the_whole_container(photo: MediaItem, tmp_path: Path) -> None:
    from nvcodec.codecs.files import encode_file

    codec = registry.make_codec(IMAGE, "nvcodec", threads=1)
    coded = codec.code(photo, 3)
    report = encode_file(photo.path, tmp_path / "photo.nvc", quality=3)
    assert coded.num_bytes == report.bytes


def test_jpeg_reproduces_compressai_kodak_curve() -> None:
    """Pillow's JPEG (libjpeg-turbo) gives CompressAI's stored Kodak bpp to 3 decimals."""
    folder = kodak_folder()
    stored = json.loads((REFERENCE_DIR / "kodak" / "jpeg.json").read_text())
    _, items = runner.load_dataset(IMAGE, "kodak", folder, None)
    jpeg = registry.make_codec(IMAGE, "jpeg", threads=1)
    for quality in (5, 10, 15, 20):
        coded = [(item, jpeg.code(item, quality)) for item in items]
        bpp = np.mean([IMAGE.rate(item, c.num_bytes) for item, c in coded])
        quality_db = np.mean([psnr(item.data, c.decoded) for item, c in coded])
        expected = stored["settings"].index(quality)
        assert bpp == pytest.approx(stored["results"]["bpp"][expected], abs=5e-4)
        # Today's decoder reconstructs ~0.1 dB better than Pillow 7.1.2's did (same bytes).
        assert quality_db == pytest.approx(stored["results"]["psnr-rgb"][expected], abs=0.15)


@pytest.mark.slow
def test_jpeg_reproduces_compressai_kodak_curve_at_every_setting() -> None:
    """All 19 stored settings: bpp within 0.3% (3 decimals up to q40), PSNR within 0.15 dB."""
    folder = kodak_folder()
    stored = json.loads((REFERENCE_DIR / "kodak" / "jpeg.json").read_text())
    _, items = runner.load_dataset(IMAGE, "kodak", folder, None)
    qualities = tuple(stored["settings"])
    jpeg = registry.make_codec(IMAGE, "jpeg", threads=1)
    measured = runner.run_codec(IMAGE, jpeg, items, qualities).summary(IMAGE)
    for index, quality in enumerate(qualities):
        bpp = stored["results"]["bpp"][index]
        tolerance = 5e-4 if quality <= 40 else 3e-3 * bpp
        assert measured["bpp"][index] == pytest.approx(bpp, abs=tolerance)
        assert measured["psnr-rgb"][index] == pytest.approx(
            stored["results"]["psnr-rgb"][index], abs=0.15
        )


def test_kodak_copy_matches_the_registry() -> None:
    folder = kodak_folder()
    paths = datasets.item_paths(KODAK, folder)
    assert len(paths) == KODAK.files
    assert sum(p.stat().st_size for p in paths) == KODAK.total_bytes
    assert datasets.digest(paths, folder) == KODAK.sha256


def test_every_dataset_names_its_origin_and_digest() -> None:
    for dataset in datasets.DATASETS.values():
        assert dataset.origin and dataset.license and len(dataset.sha256) == 64
        assert dataset.files > 0 and dataset.total_bytes > 0
    assert {d.kind for d in datasets.DATASETS.values()} == {"image", "video", "audio"}


@pytest.fixture
def photo_folder(tmp_path: Path, samples_dir: Path) -> Path:
    """Two real photos, one of them with odd sides (a 768x512 and a 333x501 crop)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    pixels = read_image(samples_dir / "kodim23.png")
    write_image(folder / "a.png", pixels)
    write_image(folder / "b.png", pixels[100:433, 150:651])
    return folder


cli = CliRunner()


def bench(*args: str | Path) -> tuple[int, str, str]:
    result = cli.invoke(
        app, ["--threads", "1", "bench", *(str(a) for a in args)], env={"COLUMNS": "200"}
    )
    return result.exit_code, result.stdout, result.stderr


def test_cli_quick_bench_writes_table_json_csv_and_plot(photo_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = bench(
        "image",
        "--data",
        photo_folder,
        "--codecs",
        "nvcodec,jpeg",
        "--codecs",
        "webp",
        "--anchor",
        "jpeg",
        "--quick",
        "--json",
        out / "r.json",
        "--csv",
        out / "r.csv",
        "--plot",
        out / "r.png",
    )
    assert code == 0, stderr
    assert "BD-rate" in stdout and "vs jpeg" in stdout
    result = json.loads((out / "r.json").read_text())
    assert result["schema"] == runner.SCHEMA and result["kind"] == "image"
    assert result["dataset"]["items"] == 2 and result["dataset"]["name"] is None
    assert result["threads"] == 1 and result["quick"] and result["anchors"] == ["jpeg"]
    assert [c["name"] for c in result["codecs"]] == ["nvcodec", "jpeg", "webp"]
    nvcodec = result["codecs"][0]
    assert nvcodec["settings"] == [0, 4, 7]
    assert set(nvcodec["results"]) >= {"bpp", "psnr-rgb", "ms-ssim", "ms-ssim-db"}
    assert len(nvcodec["items"]) == 6 and nvcodec["items"][0]["bytes"] > 0
    for codec in result["codecs"]:
        assert codec["results"]["bpp"] == sorted(codec["results"]["bpp"])
        for index, setting in enumerate(codec["settings"]):
            rows = [r for r in codec["items"] if r["setting"] == setting]
            assert codec["results"]["bpp"][index] == pytest.approx(
                np.mean([r["bpp"] for r in rows])
            )
            assert codec["results"]["ms-ssim-db"][index] == pytest.approx(
                -10 * np.log10(1 - np.mean([r["ms-ssim"] for r in rows]))
            )
    bd = result["bd_rate"]["jpeg"]["psnr-rgb"]
    assert set(bd) == {"nvcodec", "webp"} and bd["webp"] < 0
    assert result["references"] == []  # not the registered Kodak set
    rows = list(csv.DictReader((out / "r.csv").open()))
    assert len(rows) == 3 * 3 * 3 and {r["item"] for r in rows} == {"a", "b", "mean"}
    assert (out / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, _, stderr = bench("image", "--data", photo_folder, "--json", out / "r.json")
    assert code == 1 and "already exists" in stderr


def test_cli_bench_errors_are_one_line(photo_folder: Path) -> None:
    cases = [
        (("image", "--data", photo_folder, "--codecs", "nope"), "unknown image codec 'nope'"),
        (("image", "--data", photo_folder, "--codecs", "jpeg:x"), "takes no option"),
        (("image", "--data", photo_folder, "--codecs", "jpeg", "--anchor", "webp"), "anchor"),
        (("image", "--dataset", "nope"), "unknown dataset 'nope'"),
        (("image", "--dataset", "ljspeech", "--data", photo_folder), "holds audio"),
        (("image", "--data", photo_folder / "missing"), "not a folder"),
    ]
    for args, needle in cases:
        code, _, stderr = bench(*args)
        lines = stderr.strip().splitlines()
        assert code == 1 and len(lines) == 1 and needle in lines[0], (args, stderr)


def test_nvcodec_spec_loads_a_weights_folder(photo: MediaItem, tmp_path: Path) -> None:
    import shutil

    from nvcodec.models.store import BUNDLED_DIR

    for suffix in (".json", ".safetensors"):
        shutil.copy(BUNDLED_DIR / f"image-wavelet{suffix}", tmp_path / f"image-wavelet{suffix}")
    codec = registry.make_codec(IMAGE, f"nvcodec:{tmp_path}", threads=1)
    assert codec.name == f"nvcodec:{tmp_path}"
    assert codec.code(photo, 0).num_bytes > 0
