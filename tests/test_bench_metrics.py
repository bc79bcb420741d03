"""The bench's image metrics and BD-rate against independent implementations and known values."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import bjontegaard
import numpy as np
import pytest
import torch
from PIL import Image
from pytorch_msssim import ms_ssim as reference_ms_ssim
from skimage.metrics import peak_signal_noise_ratio

from nvcodec.bench.bdrate import bd_rate
from nvcodec.bench.image_metrics import MS_SSIM_MIN_SIDE, ms_ssim, ms_ssim_db, psnr
from nvcodec.bench.report import REFERENCE_DIR
from nvcodec.io.image import read_image


def jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


@pytest.fixture(scope="module")
def photo(samples_dir: Path) -> np.ndarray:
    return read_image(samples_dir / "kodim23.png")[..., :3]


def as_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.tensor(pixels, dtype=torch.float64).permute(2, 0, 1)[None] / 255.0


@pytest.mark.parametrize("quality", [5, 30, 90])
def test_psnr_and_ms_ssim_agree_with_independent_implementations(
    photo: np.ndarray, quality: int
) -> None:
    decoded = jpeg(photo, quality)
    assert psnr(photo, decoded) == pytest.approx(
        peak_signal_noise_ratio(photo, decoded, data_range=255), abs=1e-9
    )
    expected = reference_ms_ssim(as_tensor(photo), as_tensor(decoded), data_range=1.0).item()
    assert ms_ssim(photo, decoded) == pytest.approx(expected, abs=5e-6)


def test_ms_ssim_on_odd_sizes_and_small_images(photo: np.ndarray) -> None:
    crop = photo[:333, :501]  # odd sides: the pooling pads, as pytorch_msssim does
    decoded = jpeg(crop, 20)
    expected = reference_ms_ssim(as_tensor(crop), as_tensor(decoded), data_range=1.0).item()
    assert ms_ssim(crop, decoded) == pytest.approx(expected, abs=5e-6)
    assert ms_ssim(crop, crop) == pytest.approx(1.0, abs=1e-6)
    small = photo[: MS_SSIM_MIN_SIDE - 1]
    assert math.isnan(ms_ssim(small, small))


def test_identical_images_have_a_finite_psnr(photo: np.ndarray) -> None:
    assert psnr(photo, photo) == pytest.approx(100.0)
    assert ms_ssim_db(0.99) == pytest.approx(20.0)


def stored(name: str) -> dict[str, list[float]]:
    return json.loads((REFERENCE_DIR / "kodak" / f"{name}.json").read_text())["results"]


@pytest.mark.parametrize(
    ("anchor", "test"),
    [("vtm", "bmshj2018-hyperprior"), ("jpeg", "bmshj2018-factorized"), ("vtm", "jpeg")],
)
@pytest.mark.parametrize("metric", ["psnr-rgb", "ms-ssim"])
def test_bd_rate_matches_the_bjontegaard_package_on_published_curves(
    anchor: str, test: str, metric: str
) -> None:
    a, t = stored(anchor), stored(test)
    expected = bjontegaard.bd_rate(
        a["bpp"],
        a[metric],
        t["bpp"],
        t[metric],
        method="pchip",
        require_matching_points=False,
        min_overlap=0,
    )
    assert bd_rate(a["bpp"], a[metric], t["bpp"], t[metric]) == pytest.approx(expected, abs=1e-9)


def test_bd_rate_of_known_curves() -> None:
    hyperprior = stored("bmshj2018-hyperprior")
    rates, quality = hyperprior["bpp"], hyperprior["psnr-rgb"]
    # The same curve at 80% of the rate everywhere: exactly -20%, whatever the interpolation.
    assert bd_rate(rates, quality, [0.8 * r for r in rates], quality) == pytest.approx(-20.0)
    assert bd_rate(rates, quality, rates, quality) == pytest.approx(0.0, abs=1e-12)
    # Points in any order; curves without a common quality range have no BD-rate.
    assert bd_rate(rates[::-1], quality[::-1], rates, quality) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(bd_rate(rates, quality, rates, [q + 50 for q in quality]))
    assert math.isnan(bd_rate([1.0], [30.0], rates, quality))
    # A published hierarchy: hyperprior < factorized < JPEG in rate at equal PSNR on Kodak.
    factorized, jpeg_curve = stored("bmshj2018-factorized"), stored("jpeg")
    versus_factorized = bd_rate(factorized["bpp"], factorized["psnr-rgb"], rates, quality)
    versus_jpeg = bd_rate(jpeg_curve["bpp"], jpeg_curve["psnr-rgb"], rates, quality)
    assert -30 < versus_factorized < -10 and versus_jpeg < -40
