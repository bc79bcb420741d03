"""The shipped image model through the codec API: every input kind, exactness, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from nvcodec.codecs.image import TILE_LATENT, ImageCodec
from nvcodec.errors import BitstreamError
from nvcodec.io.image import read_image
from nvcodec.models.image_codec import RD_SLOPE, padded_unit


@pytest.fixture(scope="module")
def codec() -> ImageCodec:
    return ImageCodec.load()


@pytest.fixture(scope="module")
def photo(samples_dir: Path) -> np.ndarray:
    return read_image(samples_dir / "kodim23.png")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / max(mse, 1e-12))


def test_quality_levels_trade_bits_for_fidelity(codec: ImageCodec, photo: np.ndarray) -> None:
    crop = photo[:256, :256]
    sizes, fidelity = [], []
    for quality in range(codec.model.qualities):
        payload = codec.encode(crop, quality)
        decoded = codec.decode(payload)
        assert decoded.quality == quality and decoded.pixels.shape == crop.shape
        sizes.append(len(payload))
        fidelity.append(psnr(decoded.pixels, crop))
    assert sizes == sorted(sizes) and fidelity == sorted(fidelity)
    assert fidelity[3] > 27.0


@pytest.mark.parametrize(
    "shape", [(1, 1, 3), (1, 37, 3), (23, 1, 3), (37, 23, 3), (9, 17, 1), (8, 8, 3)]
)
def test_any_size_round_trips_with_its_exact_shape(
    codec: ImageCodec, shape: tuple[int, ...]
) -> None:
    rng = np.random.default_rng(sum(shape))
    smooth = np.cumsum(rng.integers(-3, 4, size=shape), axis=1) + 128
    pixels = np.clip(smooth, 0, 255).astype(np.uint8)
    decoded = codec.decode(codec.encode(pixels, 5)).pixels
    assert decoded.shape == pixels.shape
    assert psnr(decoded, pixels) > 25.0


def test_gray_stays_gray_and_costs_less_than_colour(codec: ImageCodec, photo: np.ndarray) -> None:
    gray = np.round(photo[:128, :128].mean(axis=2, keepdims=True)).astype(np.uint8)
    payload = codec.encode(gray, 3)
    decoded = codec.decode(payload).pixels
    assert decoded.shape == gray.shape and psnr(decoded, gray) > 27.0
    assert len(payload) < len(
        codec.encode(np.repeat(gray, 3, axis=2) // 2 + photo[:128, :128] // 2, 3)
    )


@pytest.mark.parametrize("channels", [2, 4])
def test_alpha_is_kept_losslessly(codec: ImageCodec, photo: np.ndarray, channels: int) -> None:
    color = photo[:64, :96, :3] if channels == 4 else photo[:64, :96, :1]
    alpha = np.tile(np.linspace(0, 255, 96).astype(np.uint8), (64, 1))[..., None]
    pixels = np.concatenate([color, alpha], axis=2)
    decoded = codec.decode(codec.encode(pixels, 4)).pixels
    assert decoded.shape == pixels.shape
    assert np.array_equal(decoded[..., -1], pixels[..., -1])


def test_encoding_is_deterministic_across_runs_and_threads(
    codec: ImageCodec, photo: np.ndarray
) -> None:
    crop = photo[:200, :136]
    first = codec.encode(crop, 3)
    assert codec.encode(crop, 3) == first
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert codec.encode(crop, 3) == first
        two_threads = codec.decode(first).pixels
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(codec.decode(first).pixels, two_threads)


def test_quiet_channels_cost_one_flag_unless_one_is_not_0(
    codec: ImageCodec, photo: np.ndarray
) -> None:
    """The shipped model's quiet channels (tables of 0 and the escape only) are 0 on a real
    photo and then cost only a flag; a value in one of them still codes exactly."""
    entropy_model = codec.model.entropy_models[3]
    quiet, _ = entropy_model._unmodelled_channels()
    assert len(quiet) > 64
    latent = codec.latents(photo[:128, :192], 3).clone()
    assert not latent[0, quiet].any()
    plain = entropy_model.compress(latent)
    latent[0, quiet[0], 3, 5] = -7.0
    spiked = entropy_model.compress(latent)
    assert len(spiked) > len(plain)
    assert torch.equal(entropy_model.decompress(spiked, latent.shape), latent)


def test_encoder_trades_bits_for_little_error(codec: ImageCodec, photo: np.ndarray) -> None:
    """The shipped encoder's symbols (rate-distortion optimized) cost fewer bytes than plain
    rounding and lower the Lagrangian cost, squared error + lambda * bits, that it weighs."""
    model, quality = codec.model, 3
    with torch.inference_mode():
        x = padded_unit(photo[:256, :256], model.config.block)
        latent = model.encode_latent(x, quality)
        entropy_model = model.entropy_models[quality]
        chosen, payload = entropy_model.encode(latent, model.error_bits())
        rounded = torch.round(latent)
        plain = entropy_model.compress(rounded)
        lmbda = RD_SLOPE / float(model.log_gains[quality].exp()) ** 2

        def cost(symbols: torch.Tensor, size: int) -> float:
            error = (model.decode_latent(symbols, quality) - x).square().sum()
            return float(error) + lmbda * 8 * size

        assert len(payload) < 0.95 * len(plain)
        assert cost(chosen, len(payload)) < cost(rounded, len(plain))


def test_decoded_latent_is_bit_exact(codec: ImageCodec, photo: np.ndarray) -> None:
    crop = photo[:96, :160]
    latent = codec.latents(crop, 2)
    assert latent.shape == (1, codec.config.latent_channels, 12, 20)
    assert torch.equal(latent, torch.round(latent))
    # Decoding the payload gives exactly what synthesizing the encoder's latent gives.
    with torch.inference_mode():
        direct = codec.model.decode_latent(latent, 2)[0]
    direct = torch.clamp(torch.round((direct + 0.5) * 255), 0, 255).to(torch.uint8)
    decoded = codec.decode(codec.encode(crop, 2)).pixels
    assert np.array_equal(decoded, direct.permute(1, 2, 0).numpy())


def test_tiled_decode_has_no_seams(codec: ImageCodec) -> None:
    side = (TILE_LATENT + 5) * codec.config.block
    rng = np.random.default_rng(0)
    pixels = np.clip(
        np.cumsum(np.cumsum(rng.normal(0, 2, (side, side, 3)), axis=0), axis=1) % 256, 0, 255
    ).astype(np.uint8)
    latent = codec.latents(pixels, 4)
    tiled = codec.decode(codec.encode(pixels, 4)).pixels
    with torch.inference_mode():
        whole = codec.model.decode_latent(latent, 4)[0]
    whole = torch.clamp(torch.round((whole + 0.5) * 255), 0, 255).to(torch.uint8)
    difference = np.abs(whole.permute(1, 2, 0).numpy().astype(int) - tiled.astype(int))
    assert difference.max() <= 1


def test_the_halo_around_tiles_is_the_refiners_receptive_field(codec: ImageCodec) -> None:
    """A latent position ``halo`` away still changes the refiner's output, one further does
    not: tiles decoded with that margin decode as the whole image would."""
    halo = codec.halo
    size = 2 * halo + 5
    center = size // 2
    latent = torch.randn(1, codec.config.latent_channels, size, size)
    refiner = codec.model.refiner
    with torch.inference_mode():
        output = refiner(latent, 3)[..., center, center]
        for distance, changes in ((halo, True), (halo + 1, False)):
            moved = latent.clone()
            moved[..., center, center + distance] += 5
            assert (refiner(moved, 3)[..., center, center] != output).any() == changes


def test_damaged_payloads_raise_bitstream_error(codec: ImageCodec, photo: np.ndarray) -> None:
    payload = codec.encode(photo[:64, :64], 3)
    for cut in (0, 5, 14, 20, len(payload) - 1):
        with pytest.raises(BitstreamError):
            codec.decode(payload[:cut])
    with pytest.raises(BitstreamError):
        codec.decode(payload + b"\0")
    header = bytearray(payload)
    header[1] = 200  # quality level that does not exist
    with pytest.raises(BitstreamError):
        codec.decode(bytes(header))
    with pytest.raises(BitstreamError, match="version 2 is not supported"):  # an older layout
        codec.decode(b"\x02" + payload[1:])
    with pytest.raises(BitstreamError, match="not a minimal varint"):  # height 64 as 2 bytes
        codec.decode(payload[:3] + b"\xc0\x00" + payload[4:])


def test_bad_arrays_are_refused(codec: ImageCodec) -> None:
    with pytest.raises(ValueError, match="uint8"):
        codec.encode(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="empty"):
        codec.encode(np.zeros((0, 4, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="quality"):
        codec.encode(np.zeros((4, 4, 3), dtype=np.uint8), 99)


def test_torch_tensors_in_and_out(codec: ImageCodec, photo: np.ndarray) -> None:
    crop = photo[:64, :80].copy()
    as_float = torch.from_numpy(crop).permute(2, 0, 1).float() / 255.0
    assert codec.encode(as_float, 3) == codec.encode(crop, 3)
    assert codec.encode(torch.from_numpy(crop), 3) == codec.encode(crop, 3)
    decoded = codec.decode(codec.encode(as_float, 3))
    assert decoded.tensor.shape == (3, 64, 80)
    assert torch.equal(decoded.tensor, torch.from_numpy(decoded.pixels).permute(2, 0, 1) / 255.0)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_mutated_payloads_fail_cleanly(
    codec: ImageCodec, photo: np.ndarray, data: st.DataObject
) -> None:
    payload = bytearray(codec.encode(photo[:48, :64], 2))
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(payload) - 1))
        payload[position] ^= data.draw(st.integers(1, 255))
    try:
        decoded = codec.decode(bytes(payload))
    except BitstreamError:
        return
    assert decoded.pixels.dtype == np.uint8 and decoded.pixels.ndim == 3


def test_weights_that_do_not_fit_the_config_are_a_model_error(tmp_path: Path) -> None:
    from nvcodec.errors import ModelError
    from nvcodec.models.store import load_model, save_model

    stored = load_model("image-wavelet")
    tensors = {k: v for k, v in stored.tensors.items() if not k.startswith("refiner.")}
    config = stored.manifest.config
    save_model(tmp_path, "broken", stored.manifest.architecture, config, tensors)
    with pytest.raises(ModelError, match="weights do not fit"):
        ImageCodec(load_model("broken", search=[tmp_path]))


def test_codec_moved_to_a_device_codes_the_same(photo: np.ndarray) -> None:
    crop = photo[:72, :96]
    payload = ImageCodec.load().encode(crop, 3)
    moved = ImageCodec.load().to("cpu")
    assert moved.encode(crop, 3) == payload
    assert np.array_equal(moved.decode(payload).pixels, ImageCodec.load().decode(payload).pixels)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_decode_is_within_one_level_of_the_cpu(photo: np.ndarray) -> None:
    """Symbols are decoded on the CPU anyway; the float synthesis may round differently
    (measured on an H200: at most 1 level, on ~1% of the samples; docs/reliability.md)."""
    payload = ImageCodec.load().encode(photo, 3)
    cpu = ImageCodec.load().decode(payload).pixels.astype(np.int16)
    gpu = ImageCodec.load().to("cuda").decode(payload).pixels.astype(np.int16)
    assert np.abs(cpu - gpu).max() <= 1
