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

from nvcodec.entropy import context, fit_density
from nvcodec.entropy.adaptive import BlockAdaptiveEntropyModel
from nvcodec.entropy.coder import Encoder
from nvcodec.entropy.context import class_coded, phase_map
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
    contexts.fit_contexts((torch.round(y) for y in train), channels=3, leaders=1)
    assert len(contexts.contexts._groups()) == 2  # the leader, then the other two
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
    for cut in (5, len(data) - 1):  # not whole 32-bit words
        with pytest.raises(BitstreamError):
            contexts.decompress(data[:cut], y.shape)
    # One coder stream holds the whole payload: most cuts leave too little or too much to
    # read, and none decodes to the original (the container's CRCs catch the rest in files).
    errors = 0
    for cut in range(0, len(data), 4):
        try:
            assert not torch.equal(contexts.decompress(data[:cut], y.shape), torch.round(y))
        except BitstreamError:
            errors += 1
    assert errors >= 0.9 * len(range(0, len(data), 4))


@pytest.fixture(scope="module")
def factorized(models) -> BlockAdaptiveEntropyModel:
    """One class and no contexts: the factorized prior."""
    plain, _ = models
    one = BlockAdaptiveEntropyModel(CHANNELS, 1, block=4)
    one.densities[0].load_state_dict(plain.densities[0].state_dict())
    return one


@pytest.mark.parametrize("which", ["factorized", "classes", "contexts"])
def test_rate_distortion_choice_lowers_magnitudes_and_decodes_exactly(
    models, factorized, which: str
) -> None:
    """``encode`` with error costs lowers some magnitudes by one (never anything else), the
    payload decodes to exactly the symbols it returns and is smaller; with prohibitive error
    costs it is plain rounding, byte for byte."""
    model = {"factorized": factorized, "classes": models[0], "contexts": models[1]}[which]
    y = correlated(11)
    rounded = torch.round(y)
    unchanged, payload = model.encode(y, np.full(CHANNELS, 1e9))
    assert torch.equal(unchanged, rounded) and payload == model.compress(y)
    symbols, payload = model.encode(y, np.full(CHANNELS, 0.5))
    assert torch.equal(model.decompress(payload, y.shape), symbols)
    lowered = symbols != rounded
    assert lowered.any()
    assert torch.equal(symbols[lowered], rounded[lowered] - rounded[lowered].sign())
    assert len(payload) < len(model.compress(y))


def test_rate_distortion_choice_weighs_each_channel(models) -> None:
    """A channel whose error costs nothing is lowered wherever that saves bits; one whose
    error is prohibitive keeps its rounded values."""
    _, contexts = models
    y = correlated(12)
    modelled = contexts.contexts.modelled
    error_bits = np.full(CHANNELS, 1e9)
    error_bits[modelled[0]] = 0.0
    symbols, _ = contexts.encode(y, error_bits)
    changed = (symbols != torch.round(y)).flatten(2).any(dim=2)[0]
    assert changed.tolist() == [c == modelled[0] for c in range(CHANNELS)]


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


def smooth(seed: int, height: int = 32, width: int = 32) -> torch.Tensor:
    """Latents whose channel 0 varies slowly around large values (a low-pass band): its
    neighbours predict its value, not just its size."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, 1, height // 8 + 2, width // 8 + 2, generator=g)
    field = torch.nn.functional.interpolate(coarse, scale_factor=8, mode="bicubic")
    y = 0.5 * torch.randn(1, CHANNELS, height, width, generator=g)
    y[:, :1] += 8 * field[..., :height, :width]
    return y


def test_smooth_channels_are_predicted_from_their_neighbours() -> None:
    train = [smooth(seed) for seed in range(30)]
    model = BlockAdaptiveEntropyModel(CHANNELS, 1)
    everything = torch.cat([y.transpose(0, 1).reshape(CHANNELS, -1) for y in train], dim=1)
    fit_density(model.densities[0], everything[None, :, :, None], steps=200)
    model.finalize()
    model.fit_contexts((torch.round(y) for y in train), channels=CHANNELS)
    weights = model.contexts.context_weights.reshape(CHANNELS, -1)
    assert (weights[0] > 0).all()  # every step of channel 0 predicts
    y = smooth(99)
    coded = model.compress(y)
    assert torch.equal(model.decompress(coded, y.shape), torch.round(y))
    blind = copy.deepcopy(model)
    blind.contexts.context_weights.zero_()
    assert len(coded) < 0.9 * len(blind.compress(y))


def busy_everywhere(seed: int, size: int = 32) -> torch.Tensor:
    """Latents of 2 large and 6 small channels whose positions are busy or flat at random, in
    every channel at once (no spatial pattern): only the other channels tell which."""
    g = torch.Generator().manual_seed(seed)
    busy = (torch.rand(1, 1, size, size, generator=g) < 0.3).float()
    scale = torch.tensor([6.0, 6.0] + [1.5] * 6).reshape(1, 8, 1, 1)
    return (0.2 + busy) * scale * torch.randn(1, 8, size, size, generator=g)


@pytest.fixture(scope="module")
def busy() -> tuple[list[torch.Tensor], BlockAdaptiveEntropyModel]:
    """Training latents of ``busy_everywhere`` and a one-class model finalized on them,
    without contexts yet."""
    train = [busy_everywhere(seed) for seed in range(30)]
    model = BlockAdaptiveEntropyModel(8, 1)
    everything = torch.cat([y.transpose(0, 1).reshape(8, -1) for y in train], dim=1)
    fit_density(model.densities[0], everything[None, :, :, None], steps=200)
    model.finalize()
    return train, model


def test_busy_positions_are_told_by_the_other_channels(busy, monkeypatch) -> None:
    train, finalized = busy
    model, blind = copy.deepcopy(finalized), copy.deepcopy(finalized)
    model.fit_contexts((torch.round(y) for y in train), channels=2)
    with monkeypatch.context() as patch:  # the same fit without the cross activity
        patch.setattr(context, "CROSSES", 1)
        blind.fit_contexts((torch.round(y) for y in train), channels=2)
    assert model.contexts.modelled.tolist() == [0, 1]
    assert (model.contexts.context_crosses[:2] > 0).all()
    assert (blind.contexts.context_crosses == 0).all()
    y = busy_everywhere(99)
    assert torch.equal(model.decompress(model.compress(y), y.shape), torch.round(y))
    values = model.densities[0].integer_values(y).reshape(8, 1, *y.shape[-2:])
    assert _context_bytes(model, values) < 0.97 * _context_bytes(blind, values)


def _context_bytes(model: BlockAdaptiveEntropyModel, values: np.ndarray) -> int:
    """Bytes of the context-coded positions alone."""
    encoder = Encoder()
    model.contexts.add(encoder, values)
    return len(encoder.finish())


def test_leaders_tell_the_others_how_busy_their_position_is(busy) -> None:
    """With every channel modelled, the two large ones coded first in each step tell the six
    small ones which positions are busy: fewer bytes than the same fit without leaders."""
    train, finalized = busy
    model, alone = copy.deepcopy(finalized), copy.deepcopy(finalized)
    model.fit_contexts((torch.round(y) for y in train), channels=8, leaders=2)
    alone.fit_contexts((torch.round(y) for y in train), channels=8, leaders=0)
    assert model.contexts.context_leaders.tolist() == [0, 1]
    y = busy_everywhere(99)
    coded = model.compress(y)
    assert torch.equal(model.decompress(coded, y.shape), torch.round(y))
    assert len(coded) < 0.97 * len(alone.compress(y))


@pytest.mark.parametrize("depth", [1, 2])
def test_both_depths_round_trip(models, depth: int) -> None:
    plain, _ = models
    contexts = copy.deepcopy(plain)
    train = [correlated(seed, 64, 64) for seed in range(40)]
    contexts.fit_contexts((torch.round(y) for y in train), channels=3, depth=depth)
    assert contexts.contexts.depth == depth
    for height, width in ((1, 1), (5, 3), (17, 22)):
        y = correlated(height * width, 24, 24)[..., :height, :width]
        assert torch.equal(contexts.decompress(contexts.compress(y), y.shape), torch.round(y))


def test_classes_code_every_second_or_fourth_row_and_column() -> None:
    assert np.argwhere(class_coded(5, 5, 1)).tolist() == [
        [r, c] for r in (0, 2, 4) for c in (0, 2, 4)
    ]
    assert np.argwhere(class_coded(5, 5, 2)).tolist() == [[0, 0], [0, 4], [4, 0], [4, 4]]


@pytest.mark.parametrize(
    "buffer, value",
    [
        ("context_weights", 9),
        ("context_depth", 3),
        ("context_weights", -1),
        ("context_crosses", 5),
        ("context_leaders", 99),
    ],
)
def test_malformed_context_buffers_are_bitstream_errors(models, buffer: str, value: int) -> None:
    state = {k: v.clone() for k, v in models[1].state_dict().items()}
    state[f"contexts.{buffer}"][0] = value
    loaded = BlockAdaptiveEntropyModel(CHANNELS, 2, block=4)
    loaded.load_state_dict(state)
    with pytest.raises(BitstreamError):
        loaded.compress(correlated(1))


def test_tables_of_another_layout_are_bitstream_errors(models) -> None:
    """Context tables saved without prediction weights, cross choices and depth (the layout
    before them) load, but coding with them is refused clearly."""
    state = {
        k: v
        for k, v in models[1].state_dict().items()
        if k
        not in ("contexts.context_weights", "contexts.context_crosses", "contexts.context_depth")
    }
    loaded = BlockAdaptiveEntropyModel(CHANNELS, 2, block=4)
    loaded.load_state_dict(state)
    with pytest.raises(BitstreamError):
        loaded.compress(correlated(1))
    with pytest.raises(BitstreamError):
        loaded.decompress(models[1].compress(correlated(1)), correlated(1).shape)
