"""Image files in every mode Pillow hands us come out as (H, W, 1..4) uint8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nvcodec.errors import NvcodecError
from nvcodec.io.image import read_image, write_image


def test_16_bit_gray_is_converted_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    ramp = (np.arange(64 * 32, dtype=np.uint16).reshape(32, 64) * 32).astype(np.uint16)
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    with pytest.warns(UserWarning, match="converted to 8 bits"):
        pixels = read_image(path)
    assert pixels.shape == (32, 64, 1) and pixels.dtype == np.uint8
    assert pixels[-1, -1, 0] == round(int(ramp[-1, -1]) * 255 / 65535)


def test_palette_with_transparency_becomes_rgba(tmp_path: Path) -> None:
    path = tmp_path / "palette.png"
    image = Image.new("P", (8, 4))
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.info["transparency"] = 0
    image.save(path, transparency=0)
    assert read_image(path).shape == (4, 8, 4)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tiff", ".webp"])
def test_lossless_formats_round_trip(tmp_path: Path, suffix: str) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    path = tmp_path / f"image{suffix}"
    if suffix == ".webp":
        Image.fromarray(pixels).save(path, lossless=True)
    else:
        write_image(path, pixels)
    assert np.array_equal(read_image(path), pixels)


def test_unreadable_and_unknown_files_are_clear_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(NvcodecError, match=r"junk\.png: cannot read image"):
        read_image(junk)
    with pytest.raises(NvcodecError, match="no such file"):
        read_image(tmp_path / "absent.png")
    with pytest.raises(NvcodecError, match="unknown image extension"):
        write_image(tmp_path / "out.xyz", np.zeros((2, 2, 3), dtype=np.uint8))
