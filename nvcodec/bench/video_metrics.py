"""Video quality as learned-video-compression papers report it: per-frame PSNR, averaged.

``psnr-rgb`` is the mean over frames of each frame's PSNR over its three 8-bit RGB channels
(``image_metrics.psnr``). ``psnr-y`` is the same on luma Y' = Kr R + Kg G + Kb B computed in
floating point from the RGB frames, full range [0, 255], with the matrix the video I/O assumes
for the frame size (``io.video.default_matrix``: BT.601 below 720 lines, BT.709 from 720), which
is the matrix the classical baselines code in. Rates (bpp, kbps) and speeds come from the runner.
"""

from __future__ import annotations

import numpy as np

from nvcodec.bench.base import MediaItem
from nvcodec.bench.image_metrics import psnr
from nvcodec.io.video import default_matrix

# (Kr, Kg, Kb) of each matrix.
_LUMA_WEIGHTS = {"bt601": (0.299, 0.587, 0.114), "bt709": (0.2126, 0.7152, 0.0722)}


def luma(frame: np.ndarray) -> np.ndarray:
    """Full-range float Y' of an (H, W, 3) RGB frame, in the matrix its height implies."""
    weights = np.asarray(_LUMA_WEIGHTS[default_matrix(frame.shape[0])])
    return frame.astype(np.float64) @ weights


def video_metrics(reference: MediaItem, decoded: np.ndarray) -> dict[str, float]:
    """Mean per-frame PSNR-RGB and PSNR-Y of ``decoded`` (T, H, W, 3) against the reference."""
    if decoded.shape != reference.data.shape:
        raise ValueError(f"shapes differ: {reference.data.shape} vs {decoded.shape}")
    pairs = list(zip(reference.data, decoded, strict=True))
    return {
        "psnr-rgb": float(np.mean([psnr(ref, dec) for ref, dec in pairs])),
        "psnr-y": float(np.mean([psnr(luma(ref), luma(dec)) for ref, dec in pairs])),
    }
