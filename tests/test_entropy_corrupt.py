"""Hostile payloads: every decoder raises BitstreamError or returns the requested shape."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nvcodec.entropy import CdfTables, EntropyBottleneck, IndexCoder, decode, encode
from nvcodec.errors import BitstreamError


def _payloads(good: bytes, seed: int) -> list[bytes]:
    """Truncations, bit flips, random bytes and degenerate inputs derived from ``good``."""
    rng = np.random.default_rng(seed)
    out = [b"", b"\x00" * 4, b"\xff" * 4, good[:-1], good + b"\x00\x00\x00\x00", good[4:]]
    for _ in range(150):
        flipped = bytearray(good)
        for _ in range(int(rng.integers(1, 4))):
            flipped[int(rng.integers(len(good)))] ^= 1 << int(rng.integers(8))
        out.append(bytes(flipped))
        out.append(good[: 4 * int(rng.integers(len(good) // 4))])
        out.append(rng.bytes(int(rng.integers(0, 64))))
    return out


def _check_decoder(decoder: Callable[[bytes], object], payloads: list[bytes]) -> int:
    """Run ``decoder`` on each payload; return how many were rejected with BitstreamError."""
    rejected = 0
    for payload in payloads:
        try:
            decoder(payload)
        except BitstreamError as exc:
            assert "\n" not in str(exc)
            rejected += 1
    return rejected


def test_coder() -> None:
    rng = np.random.default_rng(5)
    tables = CdfTables.from_probabilities([rng.random(n) + 0.01 for n in (3, 200, 2**12)])
    counts = [(500, 0), (500, 1), (500, 2)]
    good = encode(tables, [(rng.integers(0, int(tables.lengths[i]), n), i) for n, i in counts])

    def check(payload: bytes) -> None:
        assert [len(s) for s in decode(tables, payload, counts)] == [500, 500, 500]

    assert _check_decoder(check, _payloads(good, seed=0)) > 0


@pytest.fixture(scope="module")
def bottleneck() -> EntropyBottleneck:
    torch.manual_seed(0)
    model = EntropyBottleneck(4).eval()
    model.finalize()
    return model


def test_bottleneck(bottleneck: EntropyBottleneck) -> None:
    y = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0)) * 8
    y[0, 1, 2, 3], y[1, 3, 0, 0] = 1e6, -5000  # exercise the escape part too
    good = bottleneck.compress(y)

    def check(payload: bytes) -> None:
        assert bottleneck.decompress(payload, y.shape).shape == y.shape

    assert _check_decoder(check, _payloads(good, seed=1)) > 0


@settings(max_examples=100, deadline=None)
@given(payload=st.binary(max_size=256).map(lambda b: b[: len(b) // 4 * 4]))
def test_bottleneck_random_words(bottleneck: EntropyBottleneck, payload: bytes) -> None:
    _check_decoder(lambda p: bottleneck.decompress(p, (1, 4, 8, 8)), [payload])


def test_index_coder() -> None:
    rng = np.random.default_rng(2)
    indices = rng.integers(0, 64, size=(300, 4))
    coder = IndexCoder.fit(indices, [64] * 4)
    good = coder.encode(indices)

    def check(payload: bytes) -> None:
        assert coder.decode(payload, 300).shape == (300, 4)

    assert _check_decoder(check, _payloads(good, seed=2)) > 0
