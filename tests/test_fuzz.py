"""Hostile .nvc files: whatever a mutated real file holds, ``info`` and ``decode`` end in success
or an NvcodecError, in bounded time (a short run of nvcodec.fuzz; the long one is
benchmarks/fuzz_decoders.py), plus the files the long run found that used to crash."""

from __future__ import annotations

import io
import random
import re
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nvcodec.codecs.files import decode_file
from nvcodec.container.format import decode_varint, encode_varint
from nvcodec.errors import FormatError, ModelError
from nvcodec.fuzz import (
    Parsed,
    Seed,
    build_corpus,
    models_loaded_once,
    mutate,
    parse,
    rebuild,
    run_decoders,
)

SECONDS_PER_INPUT = 20.0


@pytest.fixture(scope="module")
def corpus(samples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Seed]]:
    with models_loaded_once():
        yield build_corpus(samples_dir, tmp_path_factory.mktemp("corpus"))


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(pick=st.integers(0, 1000), rng=st.randoms(use_true_random=False))
def test_mutated_files_end_in_success_or_an_nvcodec_error(
    corpus: list[Seed], tmp_path: Path, pick: int, rng: random.Random
) -> None:
    seed = corpus[pick % len(corpus)]
    _, data = mutate(seed, corpus, rng)
    (tmp_path / "input.nvc").write_bytes(data)
    start = time.perf_counter()
    outcomes = run_decoders(tmp_path / "input.nvc", tmp_path / f"output{seed.suffix}")
    assert time.perf_counter() - start < SECONDS_PER_INPUT
    for outcome in outcomes.values():
        assert "\n" not in outcome.message


# Regressions: files that once ended in another exception or a huge allocation. -------------


def stream_field(**changes: object) -> Callable[[Parsed], None]:
    def edit(parsed: Parsed) -> None:
        parsed.streams[0] = replace(parsed.streams[0], **changes)  # type: ignore[arg-type]

    return edit


def audio_config(codebooks: int, packet_frames: int) -> Callable[[Parsed], None]:
    return stream_field(config=struct.pack("<BBH", 1, codebooks, packet_frames))


def first_pts(pts: int) -> Callable[[Parsed], None]:
    def edit(parsed: Parsed) -> None:
        parsed.packets[0] = replace(parsed.packets[0], pts=pts)

    return edit


def payload_bytes(at: int, layout: str, *values: int) -> Callable[[Parsed], None]:
    def edit(parsed: Parsed) -> None:
        payload = bytearray(parsed.packets[0].payload)
        struct.pack_into(layout, payload, at, *values)
        parsed.packets[0] = replace(parsed.packets[0], payload=bytes(payload))

    return edit


def payload_spliced(start: int, stop: int, new: bytes) -> Callable[[Parsed], None]:
    """Replace bytes ``start:stop`` of the first payload (varint fields change length)."""

    def edit(parsed: Parsed) -> None:
        payload = parsed.packets[0].payload
        parsed.packets[0] = replace(
            parsed.packets[0], payload=payload[:start] + new + payload[stop:]
        )

    return edit


def alpha_of_size(width: int, height: int) -> Callable[[Parsed], None]:
    """Replace the alpha PNG of a one-tile RGBA payload with one of another size."""

    def edit(parsed: Parsed) -> None:
        payload = parsed.packets[0].payload
        tile_length, start = decode_varint(payload, 6)  # after 3 bytes and 3 one-byte varints
        png = io.BytesIO()
        Image.new("L", (width, height)).save(png, format="PNG")
        alpha = png.getvalue()
        new = payload[: start + tile_length] + encode_varint(len(alpha)) + alpha
        parsed.packets[0] = replace(parsed.packets[0], payload=new)

    return edit


SPEECH, PHOTO, RGBA = "speech-1.5s-3k", "rgb-96x64-q3", "rgba-48x32-q4"
REGRESSIONS = {  # seed, edit, error, message
    "channels over FFmpeg's layouts": (
        SPEECH,
        stream_field(channels=100),
        FormatError,
        "declares 100 channels",
    ),
    "channels between FFmpeg's layouts": (
        SPEECH,
        stream_field(channels=15),
        FormatError,
        "declares 15 channels",
    ),
    "channels PyAV cannot write (8 or more)": (
        SPEECH,
        stream_field(channels=14),
        FormatError,
        "declares 14 channels",
    ),
    "huge sample rate": (SPEECH, stream_field(sample_rate=1 << 31), FormatError, "sample rate"),
    "time base not 1/rate": (
        SPEECH,
        stream_field(time_base=Fraction(1, 1)),
        FormatError,
        "time base 1 is not 1/22050",
    ),
    "more codebooks than the model": (SPEECH, audio_config(200, 750), FormatError, "200 codebooks"),
    "huge packets": (SPEECH, audio_config(4, 65535), FormatError, "is not supported"),
    "length past the packets": (SPEECH, first_pts(1 << 40), FormatError, "hold at most"),
    "negative length": (SPEECH, first_pts(-(1 << 40)), FormatError, "hold at most"),
    "model id too long for a file name": (
        PHOTO,
        stream_field(model_id="a" * 300),
        ModelError,
        "invalid model id",
    ),
    "no model id": (PHOTO, stream_field(model_id=""), ModelError, "does not name the model"),
    "tile side not the codec's": (PHOTO, payload_bytes(5, "<B", 32), FormatError, "tile side"),
    "size beyond the payload": (
        PHOTO,
        payload_spliced(3, 5, encode_varint(16384) * 2),  # height 64 and width 96: a byte each
        FormatError,
        "16384x16384 pixels (1024 tiles) but holds only",
    ),
    "alpha of another size": (RGBA, alpha_of_size(5, 5), FormatError, "alpha plane is 5x5"),
    "alpha bytes without alpha": (RGBA, payload_bytes(2, "<B", 3), FormatError, "alpha bytes"),
}


@pytest.mark.parametrize("case", list(REGRESSIONS))
def test_hostile_fields_are_refused_before_use(
    corpus: list[Seed], tmp_path: Path, case: str
) -> None:
    name, edit, error, message = REGRESSIONS[case]
    seed = next(s for s in corpus if s.name == name)
    parsed = parse(seed.data)
    edit(parsed)
    path = tmp_path / "hostile.nvc"
    path.write_bytes(rebuild(parsed))
    with pytest.raises(error, match=re.escape(message)) as caught:
        decode_file(path, tmp_path / f"out{seed.suffix}")
    assert str(caught.value).startswith(f"{path}: ")
    assert str(caught.value).count(str(path)) == 1
    assert list(tmp_path.iterdir()) == [path]  # neither output nor temp file
