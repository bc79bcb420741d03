"""Bjontegaard delta rate: the average rate difference of two RD curves at equal quality.

As in the JCT-VC/JVET common test conditions: log-rate as a function of quality, interpolated
with a piecewise cubic Hermite (PCHIP) per curve, integrated over the quality range both curves
cover, averaged, and turned back into a percentage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator


def bd_rate(
    anchor_rate: Sequence[float],
    anchor_quality: Sequence[float],
    test_rate: Sequence[float],
    test_quality: Sequence[float],
) -> float:
    """Percent more rate the test needs than the anchor at equal quality (negative: fewer).

    NaN when the curves share no quality range or a curve has fewer than two distinct points.
    """

    def fit(rate: Sequence[float], quality: Sequence[float]) -> PchipInterpolator | None:
        points = sorted(
            (q, math.log(r))
            for r, q in zip(rate, quality, strict=True)
            if r > 0 and math.isfinite(q) and math.isfinite(r)
        )
        qualities = [q for q, _ in points]
        if len(points) < 2 or len(set(qualities)) < len(qualities):
            return None
        return PchipInterpolator(qualities, [log_rate for _, log_rate in points])

    anchor, test = fit(anchor_rate, anchor_quality), fit(test_rate, test_quality)
    if anchor is None or test is None:
        return math.nan
    low = max(anchor.x[0], test.x[0])
    high = min(anchor.x[-1], test.x[-1])
    if low >= high:
        return math.nan
    mean_log_ratio = (test.integrate(low, high) - anchor.integrate(low, high)) / (high - low)
    return float(np.expm1(mean_log_ratio) * 100)
