"""EntropyBottleneck on realistic latents: learned density, integer tables, real bytes."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from nvcodec.entropy import EntropyBottleneck, fit_density
from nvcodec.errors import BitstreamError

CHANNELS = 16


def realistic_latents(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Laplacian (even channels) and Student-t, 4 dof (odd) latents, scales 0.3..30, off-centre
    means: the heavy-tailed, very unequal channels a learned transform produces."""
    g = torch.Generator().manual_seed(seed)
    channels = shape[1]
    scales = torch.logspace(np.log10(0.3), np.log10(30), channels)
    uniform = torch.rand(shape, generator=g, dtype=torch.float64) - 0.5
    laplace = -torch.sign(uniform) * torch.log1p(-2 * uniform.abs())
    student = torch.randn(shape, generator=g, dtype=torch.float64) / torch.sqrt(
        torch.distributions.Chi2(4.0).sample(shape) / 4
    )
    per_channel = (1, channels) + (1,) * (len(shape) - 2)
    even = (torch.arange(channels) % 2 == 0).reshape(per_channel)
    means = (torch.randn(channels, generator=g, dtype=torch.float64) * 2).reshape(per_channel)
    y = torch.where(even, laplace, student) * scales.reshape(per_channel) + means
    return y.float()


@pytest.fixture(scope="module")
def latents() -> torch.Tensor:
    torch.manual_seed(0)
    return realistic_latents((1, CHANNELS, 64, 64), seed=1)


@pytest.fixture(scope="module")
def fitted(latents: torch.Tensor) -> EntropyBottleneck:
    torch.manual_seed(0)
    bottleneck = EntropyBottleneck(CHANNELS)
    fit_density(bottleneck, latents, steps=300)
    bottleneck.eval()
    bottleneck.finalize()
    return bottleneck


def _empirical_bits(symbols: torch.Tensor) -> float:
    """Ideal code length of the rounded latents under their own per-channel histograms."""
    total = 0.0
    for channel in symbols.transpose(0, 1).reshape(symbols.shape[1], -1):
        counts = torch.unique(channel, return_counts=True)[1].double()
        total -= float((counts * torch.log2(counts / counts.sum())).sum())
    return total


def test_real_size_matches_estimate_and_density(
    fitted: EntropyBottleneck, latents: torch.Tensor
) -> None:
    data = fitted.compress(latents)
    assert torch.equal(fitted.decompress(data, latents.shape), torch.round(latents))
    real = 8 * len(data)
    estimate = fitted.entropy_estimate_bits(latents)
    _, likelihoods = fitted(latents)
    continuous = float(-torch.log2(likelihoods.detach().double()).sum())
    empirical = _empirical_bits(torch.round(latents))
    print(
        f"\nbits/symbol: real {real / latents.numel():.4f}, tables {estimate / latents.numel():.4f}"
        f", continuous {continuous / latents.numel():.4f}, empirical "
        f"{empirical / latents.numel():.4f}; real/tables-1 = {real / estimate - 1:+.3%}, "
        f"tables/continuous-1 = {estimate / continuous - 1:+.3%}, "
        f"continuous/empirical-1 = {continuous / empirical - 1:+.3%}"
    )
    assert abs(real / estimate - 1) < 0.01
    assert abs(estimate / continuous - 1) < 0.02
    # The density was learned: within 3% of the data's own histogram entropy.
    assert continuous / empirical - 1 < 0.03


def test_tables_follow_the_channel_scales(fitted: EntropyBottleneck) -> None:
    lengths = fitted.cdf_lengths.tolist()
    assert lengths[0] < 64 < 512 < lengths[-1] <= 4096
    assert fitted.cdf_pmf.dtype == torch.int32 and fitted.cdf_offsets.dtype == torch.int32


def test_far_out_of_range_values_escape(fitted: EntropyBottleneck, latents: torch.Tensor) -> None:
    y = latents.clone()
    flat = y.view(-1)
    extremes = [1e6, -1e6, 5000, -5000, 2147483520.0, -2147483520.0, 100.4, -37.6]
    positions = torch.randperm(flat.numel(), generator=torch.Generator().manual_seed(3))
    flat[positions[: len(extremes)]] = torch.tensor(extremes)
    data = fitted.compress(y)
    out = fitted.decompress(data, y.shape)
    assert torch.equal(out, torch.round(y))
    assert out.view(-1)[positions[0]] == 1e6
    assert abs(8 * len(data) / fitted.entropy_estimate_bits(y) - 1) < 0.01


def test_narrow_tables_escape_most_values(fitted: EntropyBottleneck, latents: torch.Tensor) -> None:
    narrow = copy.deepcopy(fitted)
    narrow.finalize(max_symbols=8)
    assert max(narrow.cdf_lengths.tolist()) <= 8
    data = narrow.compress(latents)
    assert torch.equal(narrow.decompress(data, latents.shape), torch.round(latents))
    assert abs(8 * len(data) / narrow.entropy_estimate_bits(latents) - 1) < 0.01


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 2.0**31])
def test_compress_rejects_unrepresentable_values(fitted: EntropyBottleneck, value: float) -> None:
    y = torch.zeros(1, CHANNELS, 2)
    y[0, 3, 1] = value
    with pytest.raises(ValueError, match="finite"):
        fitted.compress(y)


@pytest.mark.parametrize("shape", [(3, CHANNELS), (2, CHANNELS, 7), (1, CHANNELS, 2, 3, 4)])
def test_any_trailing_dims_round_trip(fitted: EntropyBottleneck, shape: tuple[int, ...]) -> None:
    y = realistic_latents(shape, seed=4)
    out = fitted.decompress(fitted.compress(y), shape)
    assert out.shape == shape and torch.equal(out, torch.round(y))
    _, likelihoods = fitted(y)
    assert likelihoods.shape == shape


def test_determinism_across_runs_and_threads(
    fitted: EntropyBottleneck, latents: torch.Tensor
) -> None:
    data = fitted.compress(latents)
    assert fitted.compress(latents) == data
    again = copy.deepcopy(fitted)
    again.finalize()
    assert fitted.export_tables().keys() == again.export_tables().keys()
    for name, array in fitted.export_tables().items():
        assert np.array_equal(array, again.export_tables()[name]), name
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        two = copy.deepcopy(fitted)
        two.finalize()
        assert torch.equal(two.cdf_pmf, fitted.cdf_pmf)
        assert torch.equal(two.cdf_offsets, fitted.cdf_offsets)
        assert two.compress(latents) == data
    finally:
        torch.set_num_threads(threads)


def test_decoder_needs_only_the_integer_tables(
    fitted: EntropyBottleneck, latents: torch.Tensor, tmp_path: Path
) -> None:
    data = fitted.compress(latents)
    # Exported arrays into a bottleneck whose continuous density was never trained.
    fresh = EntropyBottleneck(CHANNELS)
    fresh.import_tables(fitted.export_tables())
    assert torch.equal(fresh.decompress(data, latents.shape), torch.round(latents))
    # Buffers travel with state_dict through safetensors, whatever their fitted shapes.
    save_file(fitted.state_dict(), tmp_path / "eb.safetensors")
    loaded = EntropyBottleneck(CHANNELS)
    loaded.load_state_dict(load_file(tmp_path / "eb.safetensors"))
    assert loaded.compress(latents) == data


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("cdf.offsets", None, "missing array 'cdf.offsets'"),
        ("cdf.offsets", np.zeros(CHANNELS, np.int64), "offsets must be int32"),
        ("cdf.offsets", np.zeros(3, np.int32), r"shape \(16,\)"),
        ("cdf.offsets", np.full(CHANNELS, 2**30, np.int32), "range exceeds"),
        ("cdf.pmf", None, "missing array 'cdf.pmf'"),
    ],
)
def test_import_rejects_bad_tables(
    fitted: EntropyBottleneck, name: str, value: np.ndarray | None, message: str
) -> None:
    arrays = fitted.export_tables()
    if value is None:
        del arrays[name]
    else:
        arrays[name] = value
    with pytest.raises(BitstreamError, match=message):
        EntropyBottleneck(CHANNELS).import_tables(arrays)


def test_import_rejects_tables_without_room_for_escape() -> None:
    arrays = {
        "cdf.pmf": np.full((CHANNELS, 1), 2**16, np.int32),
        "cdf.lengths": np.ones(CHANNELS, np.int32),
        "cdf.offsets": np.zeros(CHANNELS, np.int32),
    }
    with pytest.raises(BitstreamError, match="at least 2 symbols"):
        EntropyBottleneck(CHANNELS).import_tables(arrays)


def test_state_dict_with_float_tables_is_rejected(fitted: EntropyBottleneck) -> None:
    state = fitted.state_dict()
    state["cdf_pmf"] = state["cdf_pmf"].float()
    with pytest.raises(BitstreamError, match="int32"):
        EntropyBottleneck(CHANNELS).load_state_dict(state)


def test_coding_needs_finalize_and_matching_shapes(fitted: EntropyBottleneck) -> None:
    with pytest.raises(RuntimeError, match="finalize"):
        EntropyBottleneck(CHANNELS).compress(torch.zeros(1, CHANNELS))
    with pytest.raises(ValueError, match="latents"):
        fitted.compress(torch.zeros(1, CHANNELS + 1))
    with pytest.raises(ValueError, match="shape"):
        fitted.decompress(b"", (1, CHANNELS + 1))


def test_forward_modes() -> None:
    torch.manual_seed(0)
    bottleneck = EntropyBottleneck(2)
    y = torch.randn(4, 2, 5) * 3
    noisy, likelihoods = bottleneck(y)
    assert (noisy - y).abs().max() <= 0.5 and not torch.equal(noisy, torch.round(y))
    assert likelihoods.shape == y.shape and likelihoods.min() > 0 and likelihoods.max() <= 1
    bottleneck.straight_through = True
    y.requires_grad_(True)
    y_hat, _ = bottleneck(y)
    assert torch.equal(y_hat, torch.round(y))
    y_hat.sum().backward()
    assert torch.equal(y.grad, torch.ones_like(y))
    bottleneck.eval()
    y_hat, _ = bottleneck(y)
    assert torch.equal(y_hat, torch.round(y))


def test_likelihood_bound_still_passes_useful_gradients() -> None:
    torch.manual_seed(0)
    bottleneck = EntropyBottleneck(1, likelihood_bound=1e-3).eval()
    _, likelihoods = bottleneck(torch.full((1, 1, 1), 60.0))  # true likelihood ~2e-4
    assert likelihoods.item() == pytest.approx(1e-3)
    (-torch.log2(likelihoods)).sum().backward()
    # The rate of an outlier still pulls the density toward it.
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in bottleneck.parameters())


def test_dead_zone_tables_code_dead_zoned_symbols_in_fewer_bits(
    fitted: EntropyBottleneck, latents: torch.Tensor
) -> None:
    """Finalized for an encoder dead zone, symbol 0 gets its wider bin's mass: the symbols
    that encoder emits cost fewer bits, and still round-trip."""
    symbols = torch.where(latents.abs() < 0.75, 0.0, torch.round(latents))
    wide = copy.deepcopy(fitted)
    wide.finalize(dead_zone=0.25)
    zero = [int(-o) for o in fitted.cdf_offsets]
    assert all(
        wide.finalized_tables.pmf[c, zero[c]] > fitted.finalized_tables.pmf[c, zero[c]]
        for c in range(CHANNELS)
    )
    data = wide.compress(symbols)
    assert len(data) < len(fitted.compress(symbols))
    assert torch.equal(wide.decompress(data, symbols.shape), symbols)
