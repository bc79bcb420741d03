"""Entropy-coding throughput: EntropyBottleneck and IndexCoder, ~1M symbols each, one thread.

Run: .venv/bin/python benchmarks/entropy_throughput.py  (prints the median of 5 runs)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from nvcodec.entropy import EntropyBottleneck, IndexCoder, fit_density

RUNS = 5


def median_seconds(fn: Callable[[], object]) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bottleneck_case() -> tuple[int, float, float, float]:
    """64 channels of Laplacian latents, scales 0.3..30, 128x128 each (1M symbols)."""
    gen = torch.Generator().manual_seed(0)
    scales = torch.logspace(np.log10(0.3), np.log10(30), 64).reshape(1, 64, 1, 1)
    u = torch.rand(1, 64, 128, 128, generator=gen) - 0.5
    y = -torch.sign(u) * torch.log1p(-2 * u.abs()) * scales
    torch.manual_seed(0)
    bottleneck = EntropyBottleneck(64)
    fit_density(bottleneck, y[..., :32, :32], steps=300)
    bottleneck.finalize()
    data = bottleneck.compress(y)
    assert torch.equal(bottleneck.decompress(data, y.shape), torch.round(y))
    encode = median_seconds(lambda: bottleneck.compress(y))
    decode = median_seconds(lambda: bottleneck.decompress(data, y.shape))
    return y.numel(), encode, decode, 8 * len(data) / y.numel()


def index_case() -> tuple[int, float, float, float]:
    """8 codebooks of 1024 entries, Zipf-distributed, 131072 frames (1M symbols)."""
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, 1025) ** 1.1
    indices = rng.choice(1024, size=(131072, 8), p=p / p.sum())
    coder = IndexCoder.fit(indices, [1024] * 8)
    data = coder.encode(indices)
    assert np.array_equal(coder.decode(data, len(indices)), indices)
    encode = median_seconds(lambda: coder.encode(indices))
    decode = median_seconds(lambda: coder.decode(data, len(indices)))
    return indices.size, encode, decode, 8 * len(data) / indices.size


def main() -> None:
    torch.set_num_threads(1)
    print(f"{'coder':<20}{'symbols':>10}{'encode Msym/s':>15}{'decode Msym/s':>15}{'bits/sym':>10}")
    for name, case in (("EntropyBottleneck", bottleneck_case), ("IndexCoder", index_case)):
        n, encode, decode, bits = case()
        print(f"{name:<20}{n:>10}{n / encode / 1e6:>15.1f}{n / decode / 1e6:>15.1f}{bits:>10.3f}")


if __name__ == "__main__":
    main()
