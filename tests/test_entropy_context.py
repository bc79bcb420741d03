"""Neighbour-context coding: exact round trips (odd sizes, escapes), fewer bits than the
classes alone on spatially correlated latents, the same bytes every time, damage detected,
and models saved before contexts still load."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nvcodec.entropy import fit_density
from nvcodec.entropy.adaptive import BlockAdaptiveEntropyModel
from nvcodec.entropy.context import phase_map
from nvcodec.errors import BitstreamError

CHANNELS = 4


def correlated(seed: int, height: int = 40, width: int = 48) -> torch.Tensor:
    """Latents whose magnitude varies from one position to the next but is shared by
    neighbours (as along image edges), finer than the classes' 4x4 blocks see."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, CHANNELS, height // 2 + 1, width // 2 + 1, generator=g)
    field = torch.nn.functional.interpolate(coarse, scale_factor=2, mode="bilinear")
    mask = torch.rand(1, 1, height // 2 + 1, width // 2 + 1, generator=g) < 0.3
    mask = mask.repeat_interleave(2, 2).repeat_interleave(2, 3)
    return (6 * field * mask)[..., :height, :width] + 0.3 * torch.randn(
        1, CHANNELS, height, width, generator=g
    )


@pytest.fixture(scope="module")
def models() -> tuple[BlockAdaptiveEntropyModel, BlockAdaptiveEntropyModel]:
    torch.manual_seed(0)
    train = [correlated(seed, 64, 64) for seed in range(40)]
    plain = BlockAdaptiveEntropyModel(CHANNELS, 2, block=4)
    everything = torch.cat([y.transpose(0, 1).reshape(CHANNELS, -1) for y in train], dim=1)
    small = everything.abs() < 2
    for k, selected in enumerate((small, ~small)):
        values = torch.where(selected, everything, 0.0)[None, :, :, None]
        fit_density(plain.densities[k], values, steps=200)
    plain.finalize()
    contexts = copy.deepcopy(plain)
    contexts.fit_contexts((torch.round(y) for y in train), channels=3)
    return plain, contexts


def test_round_trip_is_exact_and_cheaper_with_contexts(models) -> None:
    plain, contexts = models
    y = correlated(100)
    assert len(contexts.contexts.modelled) <= 3
    coded = contexts.compress(y)
    assert torch.equal(contexts.decompress(coded, y.shape), torch.round(y))
    assert len(coded) < 0.95 * len(plain.compress(y))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 19), st.integers(1, 19), st.integers(0, 2**16), st.sampled_from([0.0, 1e5]))
def test_any_size_and_escapes_round_trip(models, height: int, width: int, seed: int, spike: float):
    _, contexts = models
    y = correlated(seed, 24, 24)[..., :height, :width].clone()
    y[0, seed % CHANNELS, seed % height, seed % width] += spike
    assert torch.equal(contexts.decompress(contexts.compress(y), y.shape), torch.round(y))


def test_same_bytes_every_time_and_damage_is_an_error(models) -> None:
    _, contexts = models
    y = correlated(7)
    data = contexts.compress(y)
    assert data == contexts.compress(y.clone())
    for cut in (0, 5, len(data) // 2, len(data) - 1):
        with pytest.raises(BitstreamError):
            contexts.decompress(data[:cut], y.shape)


def test_phases_tile_the_lattice() -> None:
    phases = phase_map(3, 4)
    assert phases.tolist() == [[0, 2, 0, 2], [2, 1, 2, 1], [0, 2, 0, 2]]


def test_state_without_context_tables_loads_as_plain(models) -> None:
    plain, contexts = models
    state = {k: v for k, v in contexts.state_dict().items() if not k.startswith("contexts.")}
    restored = BlockAdaptiveEntropyModel(CHANNELS, 2, block=4)
    restored.load_state_dict(state)
    y = correlated(3)
    assert not restored.contexts.fitted
    assert restored.compress(y) == plain.compress(y)
    reloaded = BlockAdaptiveEntropyModel(CHANNELS, 2, block=4)
    reloaded.load_state_dict(contexts.state_dict())
    assert reloaded.compress(y) == contexts.compress(y)
    assert np.array_equal(reloaded.contexts.modelled, contexts.contexts.modelled)
