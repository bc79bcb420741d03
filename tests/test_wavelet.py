from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nvcodec.transforms.wavelet import block_size, packet_forward, packet_inverse, pixel_weights


@settings(max_examples=30, deadline=None)
@given(
    levels=st.integers(0, 3),
    channels=st.integers(1, 3),
    blocks_h=st.integers(1, 4),
    blocks_w=st.integers(1, 4),
    seed=st.integers(0, 2**31),
)
def test_packet_transform_is_exactly_invertible(
    levels: int, channels: int, blocks_h: int, blocks_w: int, seed: int
) -> None:
    r = block_size(levels)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, channels, blocks_h * r, blocks_w * r, generator=g, dtype=torch.float64)
    bands = packet_forward(x, levels)
    assert bands.shape == (2, channels * r * r, blocks_h, blocks_w)
    assert torch.allclose(packet_inverse(bands, levels), x, atol=1e-12, rtol=0)
    # Orthonormal: energy is preserved.
    assert torch.allclose(bands.square().sum(), x.square().sum())


def test_low_band_is_the_block_mean_scaled() -> None:
    x = torch.rand(1, 1, 8, 8)
    bands = packet_forward(x, 3)
    assert torch.allclose(bands[0, 0], x.mean() * 8, atol=1e-5)
    assert torch.allclose(packet_inverse(bands, 3), x, atol=1e-6)


def test_size_not_multiple_of_block_is_refused() -> None:
    with pytest.raises(ValueError, match="multiple of 4"):
        packet_forward(torch.zeros(1, 3, 6, 8), 2)


def test_pixel_weights_fold_the_transform_into_a_linear_map() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 24, generator=g, dtype=torch.float64)
    weight = torch.randn(5, 3 * 64, 1, 1, generator=g, dtype=torch.float64)
    bands_then_map = torch.nn.functional.conv2d(packet_forward(x, 3), weight)
    folded = torch.nn.functional.conv2d(x, pixel_weights(weight, 3), stride=8)
    assert torch.allclose(folded, bands_then_map, atol=1e-12)
