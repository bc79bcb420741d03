"""Block-adaptive entropy model: exact round trips, fewer bits than one class on mixed data."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from nvcodec.entropy import fit_density
from nvcodec.entropy.adaptive import BlockAdaptiveEntropyModel
from nvcodec.entropy.coder import Encoder
from nvcodec.errors import BitstreamError


def mixed_activity(seed: int = 0) -> torch.Tensor:
    """Latents whose blocks are either flat (scale 0.3) or busy (scale 12), like photos."""
    g = torch.Generator().manual_seed(seed)
    busy = torch.rand(1, 1, 8, 8, generator=g) < 0.4
    scale = torch.where(busy, 12.0, 0.3).repeat_interleave(4, 2).repeat_interleave(4, 3)
    laplace = torch.distributions.Laplace(0.0, 1.0)
    return laplace.sample((1, 6, 32, 32)) * scale


@pytest.fixture(scope="module")
def fitted() -> tuple[BlockAdaptiveEntropyModel, BlockAdaptiveEntropyModel, torch.Tensor]:
    torch.manual_seed(0)
    y = mixed_activity()
    single, double = BlockAdaptiveEntropyModel(6, 1), BlockAdaptiveEntropyModel(6, 2, block=4)
    fit_density(single.densities[0], y, steps=300)
    flat = y.abs().mean(dim=1, keepdim=True) < 1.5
    for k, selected in enumerate((flat[:, 0], ~flat[:, 0])):
        fit_density(double.densities[k], y.transpose(0, 1)[:, selected][None], steps=300)
    single.finalize()
    double.finalize()
    return single, double, y


def test_round_trip_is_exact_and_cheaper_with_classes(fitted) -> None:
    single, double, y = fitted
    one, two = single.compress(y), double.compress(y)
    assert torch.equal(single.decompress(one, y.shape), torch.round(y))
    assert torch.equal(double.decompress(two, y.shape), torch.round(y))
    assert len(two) < 0.85 * len(one)


def test_odd_sizes_and_out_of_range_values(fitted) -> None:
    _, double, y = fitted
    odd = y[:, :, :13, :7].clone()
    odd[0, 2, 5, 3] = 1e6
    assert torch.equal(double.decompress(double.compress(odd), odd.shape), torch.round(odd))


def test_same_bytes_every_time(fitted) -> None:
    _, double, y = fitted
    assert double.compress(y) == double.compress(y.clone())


def test_training_forward_picks_one_class_per_block(fitted) -> None:
    _, double, y = fitted
    double.train()
    y_hat, likelihoods = double(y.requires_grad_())
    assert y_hat.shape == likelihoods.shape == y.shape
    (-torch.log2(likelihoods).sum()).backward()
    assert y.grad is not None
    double.eval()


def test_damaged_payload_raises_bitstream_error(fitted) -> None:
    _, double, y = fitted
    data = double.compress(y)
    for cut in (3, 9, len(data) - 1):  # not whole 32-bit words
        with pytest.raises(BitstreamError):
            double.decompress(data[:cut], y.shape)
    for cut in range(0, len(data), 4):  # one coder stream: an error or other values
        with contextlib.suppress(BitstreamError):
            assert not torch.equal(double.decompress(data[:cut], y.shape), torch.round(y))


def test_code_lengths_add_up_to_the_estimate(fitted) -> None:
    single, _, y = fitted
    spiky = y.clone()
    spiky[0, 1, 2, 3] = -40000.0
    density = single.densities[0]
    lengths = density.symbol_costs(density.integer_values(spiky))
    assert lengths.shape == (spiky.shape[1], spiky.numel() // spiky.shape[1])
    estimate = density.entropy_estimate_bits(spiky)
    assert float(lengths.astype(np.float64).sum()) == pytest.approx(estimate, rel=1e-5)


def test_four_classes_are_coded_with_their_neighbours_classes() -> None:
    """A class map with large areas of one class (as photos give) costs a fraction of the
    2 bits a block a uniform table takes, and comes back exactly."""
    torch.manual_seed(0)
    area = torch.zeros(1, 1, 16, 16)
    area[..., 8:, :] = 1.0  # two large areas, flat above and busy below
    scale = torch.where(area > 0, 12.0, 0.3).repeat_interleave(4, 2).repeat_interleave(4, 3)
    y = torch.distributions.Laplace(0.0, 1.0).sample((1, 6, 64, 64)) * scale
    model = BlockAdaptiveEntropyModel(6, 4, block=4)
    flat = y.abs().mean(dim=1) < 1.5
    far = torch.distributions.Laplace(0.0, 1.0).sample((1, 6, 64, 64)) * 3000
    samples = (y[:, :, flat[0]], far.flatten(2), far.flatten(2), y[:, :, ~flat[0]])
    for density, values in zip(model.densities, samples, strict=True):  # 1, 2: never chosen
        fit_density(density, values[..., None], steps=200)
    model.finalize()
    payload = model.compress(y)
    assert torch.equal(model.decompress(payload, y.shape), torch.round(y))
    classes = model.choose_classes(y).numpy()
    encoder = Encoder()
    model._add_classes(encoder, classes)
    assert len(encoder.finish()) * 8 < 0.5 * 2 * classes.size
