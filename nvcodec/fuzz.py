"""Structure-aware mutations of real .nvc files, for fuzzing the reader and the decoders.

A decoder reads files from strangers: whatever bytes arrive, ``nvcodec info`` and ``nvcodec
decode`` must end in success or an :class:`~nvcodec.errors.NvcodecError`, never in another
exception, a hang or an allocation a header asked for. CRCs stop nearly every random change at
the container, so besides raw byte damage the mutations here *reseal* a file (recompute its
CRCs) or *rebuild* it with the writer after editing header fields, packet fields or payload
bytes: that is what carries hostile values past the container into the codec parsers.

Every input is a pure function of (seed file, ``random.Random`` state), so a failing input is
reproduced from its number. Used by tests/test_fuzz.py (a short run) and
benchmarks/fuzz_decoders.py (the documented long run).
"""

from __future__ import annotations

import functools
import io
import random
import re
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
from rich.console import Console

from nvcodec.cli.info import describe_container, render_description
from nvcodec.codecs.audio import AudioCodec
from nvcodec.codecs.files import decode_file, encode_file
from nvcodec.codecs.image import ImageCodec
from nvcodec.codecs.video import VideoCodec
from nvcodec.container import ContainerReader, ContainerWriter, Packet, StreamInfo, StreamKind
from nvcodec.container import format as fmt
from nvcodec.errors import NvcodecError
from nvcodec.io.audio import Audio, read_audio, write_audio
from nvcodec.io.image import read_image, write_image
from nvcodec.io.video import Soundtrack, write_video


@dataclass(frozen=True)
class Seed:
    """A valid .nvc file the mutations start from."""

    name: str
    data: bytes
    suffix: str  # what it decodes to: ".png", ".wav", ".y4m" or ".mkv"


# name, (top, left, height, width), planes ("rgb", "gray", "rgba"), quality
_IMAGE_SEEDS = [
    ("rgb-64x48-q0", (100, 300, 48, 64), "rgb", 0),
    ("rgb-96x64-q3", (200, 100, 64, 96), "rgb", 3),
    ("rgb-130x70-q7", (0, 0, 70, 130), "rgb", 7),
    ("rgb-520x16-q3-two-tiles", (300, 0, 16, 520), "rgb", 3),
    ("gray-40x40-q2", (50, 600, 40, 40), "gray", 2),
    ("rgba-48x32-q4", (400, 400, 32, 48), "rgba", 4),
    ("rgb-1x17-q1", (10, 10, 17, 1), "rgb", 1),
]
# name, LJ001-0004 seconds (start, stop) or None for the video's audio track, bitrate
_AUDIO_SEEDS = [
    ("speech-1.5s-3k", (1.0, 2.5), 3000),
    ("speech-5s-1.5k", (0.0, 5.2), 1500),
    ("speech-10.2s-12k-two-packets", (0.0, 10.2), 12000),
    ("video-track-stereo-48k-6k", None, 6000),
]
# name, kodim23 (top, left, height, width) panned 2 px a frame, frames, quality, GOP, speech
# track, what it decodes to (.y4m: frames only; .mkv: frames and sound)
_VIDEO_SEEDS = [
    ("video-64x48-8f-q1-gop4", (100, 300, 48, 64), 8, 1, 4, False, ".y4m"),
    ("video-37x23-5f-q6", (200, 100, 23, 37), 5, 6, 32, False, ".y4m"),
    ("video-96x64-12f-q3-gop6-speech", (300, 400, 64, 96), 12, 3, 6, True, ".mkv"),
]


def build_corpus(samples: Path, directory: Path) -> list[Seed]:
    """Encode the seed files from the bundled samples into ``directory`` (reused if there)."""
    directory.mkdir(parents=True, exist_ok=True)
    seeds = []
    photo = read_image(samples / "kodim23.png")
    for name, (top, left, height, width), planes, quality in _IMAGE_SEEDS:
        coded = directory / f"{name}.nvc"
        if not coded.exists():
            crop = photo[top : top + height, left : left + width]
            if planes == "gray":
                crop = crop[..., :1]
            elif planes == "rgba":
                ramp = np.linspace(0, 255, height * width).reshape(height, width, 1)
                crop = np.concatenate([crop, ramp.astype(np.uint8)], axis=2)
            write_image(directory / f"{name}.png", crop, overwrite=True)
            encode_file(directory / f"{name}.png", coded, quality=quality)
        seeds.append(Seed(name, coded.read_bytes(), ".png"))
    speech = read_audio(samples / "LJ001-0004.wav")
    for name, span, bitrate in _AUDIO_SEEDS:
        coded = directory / f"{name}.nvc"
        if not coded.exists():
            if span is None:
                source = samples / "bigbuckbunny_360p.mp4"
            else:
                source = directory / f"{name}.wav"
                start, stop = (round(s * speech.rate) for s in span)
                looped = np.tile(speech.samples, (1, 2))  # LJ001-0004 is 5.14 s long
                write_audio(source, Audio(looped[:, start:stop], speech.rate), overwrite=True)
            encode_file(source, coded, bitrate=bitrate, audio_only=True)
        seeds.append(Seed(name, coded.read_bytes(), ".wav"))
    for name, (top, left, height, width), count, quality, gop, sound, suffix in _VIDEO_SEEDS:
        coded = directory / f"{name}.nvc"
        if not coded.exists():
            frames = [
                photo[top : top + height, left + 2 * t : left + 2 * t + width] for t in range(count)
            ]
            soundtrack = Soundtrack([speech.samples], speech.rate, 1) if sound else None
            source = directory / f"{name}.mkv"  # FFV1 (+ FLAC): the frames exactly
            write_video(source, frames, 25.0, soundtrack=soundtrack, overwrite=True)
            encode_file(source, coded, quality=quality, gop=gop)
        seeds.append(Seed(name, coded.read_bytes(), suffix))
    return seeds


# Mutations ---------------------------------------------------------------------------------

_INTERESTING = (0, 1, 2, 3, 7, 8, 15, 16, 63, 64, 127, 128, 255, 256, 1023, 1024, 4095, 4096)
_INTERESTING += (32767, 32768, 65535, 65536, 1 << 24, (1 << 31) - 1, 1 << 31, (1 << 32) - 1)
_INTERESTING += ((1 << 63) - 1,)
_LAYOUTS = {1: struct.Struct("<B"), 2: struct.Struct("<H"), 4: struct.Struct("<I")}
# Where the codecs' payload headers keep their fields (see codecs/image.py, codecs/audio.py and
# codecs/video.py): image version, quality, channels, then the varints of height, width, tile
# side and first tile length (1-3 bytes each); audio codebooks, channels, frames; video
# version, frame type, quality, motion table choices, motion length (a key frame's image
# header from offset 3).
_VIDEO_FIELDS = (0, 1, 2, 3, 4, 5, 6)
_PAYLOAD_FIELDS = {
    ".png": (0, 1, 2, 3, 4, 5, 6, 7, 8),
    ".wav": (0, 1, 2),
    ".y4m": _VIDEO_FIELDS,
    ".mkv": _VIDEO_FIELDS,
}


_STREAM_EDITS = ("width", "height", "sample_rate", "channels", "duration", "time_base")
_STREAM_EDITS += ("frame_rate", "config", "model_id", "model_sha256", "kind", "codec")
_STREAM_EDITS += ("add", "drop")


class _Inapplicable(Exception):
    """This mutation cannot apply to this file (or made one the writer refuses): draw again."""


def _number(rng: random.Random, high: int, low: int = 0) -> int:
    """An integer in [low, high], often a boundary value or one next to it."""
    if rng.random() < 0.7:
        value = rng.choice(_INTERESTING) + rng.choice((-1, 0, 0, 0, 1))
    else:
        value = rng.randint(low, high)
    return min(max(value, low), high)


def _flip_bits(data: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 8)):
        if data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)


def _set_bytes(data: bytearray, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 4)):
        if data:
            value = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))
            data[rng.randrange(len(data))] = value


def _set_int(data: bytearray, rng: random.Random, at: int | None = None) -> None:
    """Overwrite a little-endian u8/u16/u32 (at ``at``, else anywhere) with a boundary value."""
    size = rng.choice((1, 2, 4))
    if len(data) < size:
        return
    at = rng.randrange(len(data) - size + 1) if at is None else min(at, len(data) - size)
    _LAYOUTS[size].pack_into(data, at, _number(rng, (1 << 8 * size) - 1))


def _insert(data: bytearray, rng: random.Random) -> None:
    at = rng.randint(0, len(data))
    if data and rng.random() < 0.5:
        start = rng.randrange(len(data))
        chunk = data[start : start + rng.randint(1, 64)]  # a copy of a piece of the file
    else:
        chunk = bytearray(rng.randbytes(rng.randint(1, 64)))
    data[at:at] = chunk


def _delete(data: bytearray, rng: random.Random) -> None:
    if data:
        start = rng.randrange(len(data))
        del data[start : start + rng.randint(1, max(1, len(data) // 4))]


def _truncate(data: bytearray, rng: random.Random) -> None:
    del data[rng.randint(0, len(data)) :]


_BYTE_EDITS: dict[str, Callable[[bytearray, random.Random], None]] = {
    "bit-flips": _flip_bits,
    "byte-set": _set_bytes,
    "int-set": _set_int,
    "insert": _insert,
    "delete": _delete,
    "truncate": _truncate,
}


def _splice(data: bytes, other: bytes, rng: random.Random) -> bytes:
    """The start of one file and the end of another."""
    return data[: rng.randint(0, len(data))] + other[rng.randint(0, len(other)) :]


@dataclass
class Parsed:
    """A valid file taken apart, to be edited and put back together with :func:`rebuild`."""

    streams: list[StreamInfo]
    metadata: dict[str, str]
    packets: list[Packet]


def parse(data: bytes) -> Parsed:
    reader = ContainerReader.from_stream(io.BytesIO(data), name="seed")
    return Parsed(list(reader.streams), dict(reader.metadata), list(reader.packets()))


def rebuild(parsed: Parsed) -> bytes:
    """A well-formed file (valid CRCs and index) around whatever the fields now hold."""
    out = io.BytesIO()
    try:
        writer = ContainerWriter.to_stream(out, parsed.streams, parsed.metadata)
        for packet in parsed.packets:
            writer.write(packet)
        writer.close()
    except (ValueError, NvcodecError) as e:  # the writer refuses what no file may hold
        raise _Inapplicable(str(e)) from None
    return out.getvalue()


def _edit_stream(parsed: Parsed, rng: random.Random, corpus: Sequence[Seed]) -> None:
    """Set one header field of one stream to a hostile but representable value."""
    number = rng.randrange(len(parsed.streams))
    stream = parsed.streams[number]
    field = rng.choice(_STREAM_EDITS)
    if field in ("width", "height", "sample_rate"):
        stream = replace(stream, **{field: _number(rng, fmt.U32_MAX)})
    elif field == "channels":
        stream = replace(stream, channels=_number(rng, fmt.U16_MAX))
    elif field == "duration":
        stream = replace(stream, duration=_number(rng, fmt.I64_MAX))
    elif field in ("time_base", "frame_rate"):
        ratio = Fraction(_number(rng, fmt.U32_MAX, 1), _number(rng, fmt.U32_MAX, 1))
        stream = replace(stream, **{field: ratio})
    elif field == "config":
        config = bytearray(stream.config or rng.randbytes(4))
        rng.choice(list(_BYTE_EDITS.values()))(config, rng)
        stream = replace(stream, config=bytes(config))
    elif field == "model_id":
        ids = ("", "image-wavelet", "audio-rvq", "not-installed", "../weights/x", "a" * 300)
        stream = replace(stream, model_id=rng.choice(ids))
    elif field == "model_sha256":
        stream = replace(stream, model_sha256=rng.choice((b"", rng.randbytes(32))))
    elif field == "kind":
        stream = replace(stream, kind=rng.choice(list(StreamKind)))
    elif field == "codec":
        stream = replace(stream, codec=rng.choice(("nvc-image-wavelet", "nvc-audio-rvq", "x")))
    elif field == "add":  # another seed's stream, before or after this one
        other = parse(rng.choice(corpus).data).streams[0]
        parsed.streams.insert(rng.choice((0, len(parsed.streams))), other)
        return
    elif len(parsed.streams) > 1 or rng.random() < 0.5:  # drop, with its packets
        del parsed.streams[number]
        parsed.packets = [
            replace(p, stream=p.stream - (p.stream > number))
            for p in parsed.packets
            if p.stream != number
        ]
        return
    parsed.streams[number] = stream


def _edit_packets(parsed: Parsed, rng: random.Random, corpus: Sequence[Seed]) -> None:
    """Change a packet's timing or flags, or drop, repeat, reorder or borrow packets."""
    packets = parsed.packets
    if not packets:
        raise _Inapplicable("no packets")
    i = rng.randrange(len(packets))
    change = rng.choice(("pts", "duration", "keyframe", "drop", "repeat", "swap", "borrow"))
    if change == "pts":
        packets[i] = replace(packets[i], pts=_number(rng, fmt.I64_MAX - fmt.U32_MAX, fmt.I64_MIN))
    elif change == "duration":
        packets[i] = replace(packets[i], duration=_number(rng, fmt.U32_MAX))
    elif change == "keyframe":
        packets[i] = replace(packets[i], keyframe=not packets[i].keyframe)
    elif change == "drop":
        del packets[i]
    elif change == "repeat":
        packets.insert(i, packets[i])
    elif change == "swap":
        j = rng.randrange(len(packets))
        packets[i], packets[j] = packets[j], packets[i]
    else:  # a packet of another file, as if spliced at a packet boundary
        borrowed = rng.choice(parse(rng.choice(corpus).data).packets)
        packets.insert(i, replace(borrowed, stream=packets[i].stream))


def _edit_payload(parsed: Parsed, rng: random.Random, suffix: str) -> None:
    """Damage one payload, often in its codec header, behind valid CRCs."""
    if not parsed.packets:
        raise _Inapplicable("no packets")
    i = rng.randrange(len(parsed.packets))
    payload = bytearray(parsed.packets[i].payload)
    if rng.random() < 0.4:
        _set_int(payload, rng, rng.choice(_PAYLOAD_FIELDS[suffix]))
    else:
        rng.choice(list(_BYTE_EDITS.values()))(payload, rng)
    parsed.packets[i] = replace(parsed.packets[i], payload=bytes(payload))


def _structured(seed: Seed, corpus: Sequence[Seed], rng: random.Random) -> tuple[str, bytes]:
    parsed = parse(seed.data)
    name = rng.choice(("stream-field", "packet-field", "payload"))
    if name == "stream-field":
        _edit_stream(parsed, rng, corpus)
    elif name == "packet-field":
        _edit_packets(parsed, rng, corpus)
    else:
        _edit_payload(parsed, rng, seed.suffix)
    return name, rebuild(parsed)


def reseal(data: bytes) -> bytes:
    """Recompute every CRC that can still be located, so damage passes the CRC checks and
    reaches the parsers behind them (header fields, packet lengths, index, payloads)."""
    out = bytearray(data)

    def seal(start: int, end: int) -> None:
        if 0 <= start <= end and end + fmt.CRC.size <= len(out):
            fmt.CRC.pack_into(out, end, zlib.crc32(out[start:end]))

    def varints(pos: int, count: int) -> list[int]:
        """``count`` varints from ``pos``, then the position after them."""
        values = []
        for _ in range(count):
            value, pos = fmt.decode_varint(out, pos)
            values.append(value)
        return [*values, pos]

    if len(out) <= fmt.PREAMBLE.size or out[: len(fmt.MAGIC)] != fmt.MAGIC:
        return bytes(out)
    try:
        body_length, body = varints(fmt.PREAMBLE.size, 1)
        seal(0, body + body_length)
        pos = body + body_length + fmt.CRC.size
        while out[pos : pos + 4] == fmt.PACKET_SYNC:
            _, after_stream = varints(pos + 4, 1)
            *_, length, crc_at = varints(after_stream + 1, 3)
            seal(pos, crc_at)
            start = crc_at + fmt.CRC.size
            seal(start, start + length)
            pos = start + length + fmt.CRC.size
        if out[pos : pos + 4] == fmt.INDEX_SYNC:
            body_length, body = varints(pos + 4, 1)
            seal(pos, body + body_length)
    except ValueError:  # a varint cut short or malformed: nothing further can be located
        pass
    return bytes(out)


def mutate(seed: Seed, corpus: Sequence[Seed], rng: random.Random) -> tuple[str, bytes]:
    """One hostile input derived from ``seed``: (what was done, the bytes).

    A quarter of the inputs are rebuilt around an edited field or payload, 35% get raw damage
    and a reseal (a tenth of all after such an edit), and the rest get raw damage alone
    (caught by the CRCs, which the reader must report cleanly).
    """
    for _ in range(10):
        steps, data = [], seed.data
        try:
            roll = rng.random()
            if roll < 0.35:
                step, data = _structured(seed, corpus, rng)
                steps.append(step)
            if roll >= 0.25:
                if rng.random() < 0.15:
                    data = _splice(data, rng.choice(corpus).data, rng)
                    steps.append("splice")
                else:
                    step = rng.choice(list(_BYTE_EDITS))
                    edited = bytearray(data)
                    _BYTE_EDITS[step](edited, rng)
                    data = bytes(edited)
                    steps.append(step)
                if roll < 0.6:
                    data = reseal(data)
                    steps.append("reseal")
        except _Inapplicable:
            continue
        return "+".join(steps), data
    return "unchanged", seed.data


# The target --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    result: str  # "ok", "ok, damage reported", or the name of the NvcodecError raised
    message: str = ""  # the error, or the damage reported


def run_decoders(path: Path, output: Path) -> dict[str, Outcome]:
    """What ``nvcodec info`` and ``nvcodec decode`` make of ``path``: an outcome each.

    Anything but an NvcodecError propagates: that is a bug.
    """
    outcomes = {}
    try:
        render_description(describe_container(path), Console(file=io.StringIO()))
        outcomes["info"] = Outcome("ok")
    except NvcodecError as e:
        outcomes["info"] = Outcome(type(e).__name__, str(e))
    try:
        damage = decode_file(path, output, overwrite=True).damage
        outcomes["decode"] = Outcome("ok, damage reported", damage) if damage else Outcome("ok")
    except NvcodecError as e:
        outcomes["decode"] = Outcome(type(e).__name__, str(e))
    return outcomes


def message_class(message: str) -> str:
    """An error message with its specifics (paths, numbers, quoted bytes) blanked, so messages
    of one kind count together."""
    message = re.sub(r"^\S+\.(nvc|wav|png|y4m|mkv): ", "", message)
    message = re.sub(r"(b'[^']*'|b\"[^\"]*\"|'[^']*')", "'…'", message)
    message = re.sub(r"\b[0-9a-f]{8,}\b", "H", message)
    return re.sub(r"-?\d+", "N", message)[:160]


@contextmanager
def models_loaded_once() -> Iterator[None]:
    """Keep each (model, hash) a decode asks for loaded: ``decode_file`` loads the model on
    every call (30-80 ms), which would dominate a fuzz run. Failed loads are not kept, so a
    hostile model id or hash still runs the store's checks every time."""
    originals = {cls: cls.__dict__["load"] for cls in (ImageCodec, AudioCodec, VideoCodec)}
    try:
        for cls, method in originals.items():
            cls.load = classmethod(functools.cache(method.__func__))  # type: ignore[method-assign]
        yield
    finally:
        for cls, method in originals.items():
            cls.load = method  # type: ignore[method-assign]
