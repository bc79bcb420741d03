"""Image quality as learned-compression papers report it (CompressAI's conventions).

PSNR-RGB is computed on the 8-bit output over all three channels at once, per image; the bench
averages it over images per setting. MS-SSIM is the 5-scale measure of Wang, Simoncelli and
Bovik (2003) on RGB in [0, 1], averaged over channels, with the windowing, downsampling and
float32 arithmetic of ``pytorch_msssim`` (what CompressAI's published curves were measured
with): an 11-tap Gaussian (sigma 1.5) without padding, 2x2 average pooling between scales.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from nvcodec.bench.base import MediaItem
from nvcodec.utils.threads import one_thread

_WINDOW = 11
_SIGMA = 1.5
_SCALE_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# MS-SSIM needs the window to fit at the coarsest of its 5 scales.
MS_SSIM_MIN_SIDE = (_WINDOW - 1) * 2 ** (len(_SCALE_WEIGHTS) - 1) + 1
# A floor on the MSE so identical signals give a finite (very high) PSNR.
_MIN_MSE = 1e-10


def psnr(reference: np.ndarray, decoded: np.ndarray) -> float:
    """PSNR in dB of 8-bit ``decoded`` against ``reference`` (any shape, all samples at once)."""
    if reference.shape != decoded.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {decoded.shape}")
    mse = np.mean((reference.astype(np.float64) - decoded.astype(np.float64)) ** 2) / 255**2
    return -10 * math.log10(max(float(mse), _MIN_MSE))


def _gaussian_window() -> torch.Tensor:
    taps = torch.arange(_WINDOW, dtype=torch.float32) - _WINDOW // 2
    window = torch.exp(-(taps**2) / (2 * _SIGMA**2))
    return window / window.sum()


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter of (N, C, H, W), 'valid' region only."""
    channels = x.shape[1]
    rows = window.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    cols = window.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    return F.conv2d(F.conv2d(x, rows, groups=channels), cols, groups=channels)


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor):
    """Per-channel mean SSIM and contrast-structure term at one scale (data range 1)."""
    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = _blur(x, window), _blur(y, window)
    var_x = _blur(x * x, window) - mu_x**2
    var_y = _blur(y * y, window) - mu_y**2
    cov = _blur(x * y, window) - mu_x * mu_y
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (luminance * cs).mean(dim=(2, 3)), cs.mean(dim=(2, 3))


def ms_ssim(reference: np.ndarray, decoded: np.ndarray) -> float:
    """MS-SSIM of (H, W, C) uint8 images; NaN when a side is under ``MS_SSIM_MIN_SIDE``."""
    if reference.shape != decoded.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {decoded.shape}")
    if min(reference.shape[:2]) < MS_SSIM_MIN_SIDE:
        return math.nan
    window = _gaussian_window()

    def planes(image: np.ndarray) -> torch.Tensor:
        return torch.tensor(image, dtype=torch.float32).permute(2, 0, 1)[None] / 255.0

    x, y = planes(reference), planes(decoded)
    factors = []
    # One thread: the value does not depend on --threads, and on a busy 2-core machine two
    # torch threads stall (0.3 s vs 1.4-2 s per Kodak image, measured).
    with one_thread():
        for scale in range(len(_SCALE_WEIGHTS)):
            ssim, cs = _ssim_terms(x, y, window)
            factors.append(torch.relu(ssim if scale == len(_SCALE_WEIGHTS) - 1 else cs))
            if scale < len(_SCALE_WEIGHTS) - 1:
                padding = (x.shape[2] % 2, x.shape[3] % 2)
                x = F.avg_pool2d(x, kernel_size=2, padding=padding)
                y = F.avg_pool2d(y, kernel_size=2, padding=padding)
    weights = torch.tensor(_SCALE_WEIGHTS, dtype=torch.float32).view(-1, 1, 1)
    per_channel = torch.prod(torch.stack(factors) ** weights, dim=0)
    return float(per_channel.mean())


def ms_ssim_db(value: float) -> float:
    """MS-SSIM on the dB scale papers plot: -10 log10(1 - MS-SSIM)."""
    return -10 * math.log10(max(1.0 - value, _MIN_MSE))


def image_metrics(reference: MediaItem, decoded: np.ndarray) -> dict[str, float]:
    """The image bench's per-item quality: PSNR-RGB and MS-SSIM."""
    return {"psnr-rgb": psnr(reference.data, decoded), "ms-ssim": ms_ssim(reference.data, decoded)}


def image_derived(values: dict[str, float]) -> dict[str, float]:
    """MS-SSIM in dB, from an item's MS-SSIM or (as CompressAI plots it) from a setting's mean."""
    similarity = values["ms-ssim"]
    return {"ms-ssim-db": math.nan if math.isnan(similarity) else ms_ssim_db(similarity)}
