"""Damaged .nvc files: every truncation and every single-bit flip must raise FormatError, after
yielding exactly the complete packets before the damage (docs/format.md, "Damage")."""

from __future__ import annotations

import io
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nvcodec.container import (
    ContainerReader,
    ContainerWriter,
    Packet,
    StreamInfo,
    StreamKind,
)
from nvcodec.container import format as fmt
from nvcodec.errors import FormatError

STREAMS = [
    StreamInfo(StreamKind.VIDEO, "v", Fraction(1, 25), width=8, height=8),
    StreamInfo(StreamKind.AUDIO, "a", Fraction(1, 8000)),
]
PACKETS = [
    Packet(0, 0, 1, True, b"key0"),
    Packet(1, 0, 160, True, b"au"),
    Packet(0, 1, 1, False, b""),
    Packet(1, 160, 160, False, b"dio"),
    Packet(0, 2, 1, True, b"key2"),
    Packet(0, 3, 1, False, b"p"),
]


def packet_size(packet: Packet) -> int:
    """The bytes ``packet`` takes in a file: header, payload and payload CRC."""
    header = fmt.PacketHeader(
        packet.stream, packet.keyframe, packet.pts, packet.duration, len(packet.payload)
    )
    return fmt.packet_size(header)


class Pipe(io.BytesIO):
    """Bytes as stdin delivers them: no seeking, and short reads (at most 7 bytes)."""

    def seekable(self) -> bool:
        return False

    def seek(self, offset: int, whence: int = 0) -> int:
        raise io.UnsupportedOperation("seek")

    def read(self, size: int | None = -1) -> bytes:
        return super().read(size if size is None or size < 0 else min(size, 7))


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[int]]:
    """The sample file's bytes, and where each packet ends."""
    path = tmp_path_factory.mktemp("damage") / "sample.nvc"
    with ContainerWriter(path, STREAMS, {"t": "x"}) as writer:
        for packet in PACKETS:
            writer.write(packet)
    with ContainerReader(path) as reader:
        ends = [p.offset + packet_size(p) for p in reader.packets()]
    return path.read_bytes(), ends


def full_read(mode: str, path: Path) -> tuple[list[Packet], FormatError | None]:
    """Open the file (by path, or piped), read every packet, then the summaries; return the
    packets read and the FormatError that ended the read, if any."""
    got: list[Packet] = []
    try:
        if mode == "path":
            reader = ContainerReader(path)
        else:
            reader = ContainerReader.from_stream(Pipe(path.read_bytes()), name=str(path))
        with reader:
            got.extend(reader.packets())
            reader.summaries()
    except FormatError as error:
        assert error.path == str(path)
        return got, error
    return got, None


@pytest.mark.parametrize("mode", ["path", "pipe"])
def test_every_truncation_is_reported_after_the_complete_packets(
    tmp_path: Path, sample: tuple[bytes, list[int]], mode: str
) -> None:
    data, ends = sample
    assert 150 < len(data) < 300
    path = tmp_path / "cut.nvc"
    for cut in range(len(data)):
        path.write_bytes(data[:cut])
        got, error = full_read(mode, path)
        assert got == [p for p, end in zip(PACKETS, ends, strict=True) if end <= cut], cut
        assert error is not None and error.offset is not None and error.offset <= cut, cut


@pytest.mark.parametrize("mode", ["path", "pipe"])
def test_every_bit_flip_is_detected(
    tmp_path: Path, sample: tuple[bytes, list[int]], mode: str
) -> None:
    data, _ = sample
    path = tmp_path / "flip.nvc"
    path.write_bytes(data)
    assert full_read(mode, path) == (PACKETS, None)
    unnoticed = []
    with path.open("r+b", buffering=0) as file:  # flipped in place: rewriting files is slow
        for bit in range(len(data) * 8):
            at = bit // 8
            file.seek(at)
            file.write(bytes([data[at] ^ 1 << bit % 8]))
            if full_read(mode, path)[1] is None:
                unnoticed.append(bit)
            file.seek(at)
            file.write(data[at : at + 1])
    assert unnoticed == []


# Structurally valid garbage: CRCs that match, so the parsers behind them are exercised. --------


varint = fmt.encode_varint


def tlv(tag: int, value: bytes) -> bytes:
    return varint(tag) + varint(len(value)) + value


def with_crc(data: bytes) -> bytes:
    return data + struct.pack("<I", zlib.crc32(data))


stream_tags = st.sampled_from(range(1, 20))  # the stream field tags, and unknown ones among them
any_tags = st.integers(0, 2**32)  # up to one over the limit
# Values for integer fields too: a varint, one with bytes after it, or one not minimal.
field_values = st.binary(max_size=10) | st.integers(0, 2**64).map(varint).flatmap(
    lambda raw: st.sampled_from([raw, raw + b"\x01", raw[:-1] + bytes([raw[-1] | 0x80, 0])])
)
field_lists = st.lists(st.tuples(stream_tags | any_tags, field_values), max_size=6)
# A stream's required fields, so that some streams are valid and the packets after them parsed.
required = (
    tlv(fmt.TAG_KIND, b"\x01") + tlv(fmt.TAG_CODEC, b"c") + tlv(fmt.TAG_TIME_BASE, b"\x01\x19")
)
stream_bodies = st.tuples(st.sampled_from([b"", required]), field_lists).map(
    lambda parts: parts[0] + b"".join(tlv(t, v) for t, v in parts[1])
)
top_fields = st.one_of(
    stream_bodies.map(lambda body: tlv(fmt.TAG_STREAM, body)),
    st.binary(max_size=10).map(lambda value: tlv(fmt.TAG_METADATA_ENTRY, value)),
    st.tuples(any_tags, st.binary(max_size=10)).map(lambda field: tlv(*field)),
    st.binary(max_size=8),  # not even a field
)
packet_headers = st.builds(
    lambda stream, flags, pts, duration, length: with_crc(
        b"NvPk"
        + varint(stream)
        + bytes([flags])
        + varint(fmt.zigzag(pts))
        + varint(duration)
        + varint(length)
    ),
    st.integers(0, 3) | st.integers(0, 2**16),
    st.integers(0, 0xFF),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 2**32),
    st.integers(0, 40) | st.integers(0, 2**32),
)


@settings(max_examples=300, deadline=None)
@given(
    body=st.lists(top_fields, max_size=4).map(b"".join),
    minor=st.integers(0, 0xFF),
    tail=st.lists(packet_headers | st.binary(max_size=30), max_size=4).map(b"".join),
)
def test_crc_valid_garbage_only_ever_raises_format_error(
    tmp_path_factory: pytest.TempPathFactory, body: bytes, minor: int, tail: bytes
) -> None:
    header = with_crc(struct.pack("<8sBB", fmt.MAGIC, 2, minor) + varint(len(body)) + body)
    path = tmp_path_factory.getbasetemp() / "garbage.nvc"
    path.write_bytes(header + tail)
    for mode in ("path", "pipe"):
        assert full_read(mode, path)[1] is not None  # and no other exception escaped


def recovered(path: Path) -> tuple[list[Packet], list[FormatError]]:
    """The packets a recovering read gets from ``path``, and the damage it reported."""
    damage: list[FormatError] = []
    with ContainerReader(path, recover=True) as reader:
        return list(reader.packets(on_damage=damage.append)), damage


def test_recovery_loses_only_the_packet_a_bit_flip_hits(
    tmp_path: Path, sample: tuple[bytes, list[int]]
) -> None:
    """Anywhere after the file header (which describes the streams, so nothing can be read
    without it), a flipped bit costs the packet it is in, at most."""
    data, ends = sample
    starts = [end - packet_size(p) for p, end in zip(PACKETS, ends, strict=True)]
    path = tmp_path / "flip.nvc"
    path.write_bytes(data)
    assert recovered(path) == (PACKETS, [])
    with path.open("r+b", buffering=0) as file:
        for bit in range(starts[0] * 8, len(data) * 8):
            at = bit // 8
            file.seek(at)
            file.write(bytes([data[at] ^ 1 << bit % 8]))
            got, damage = recovered(path)
            hit = [p for p, s, e in zip(PACKETS, starts, ends, strict=True) if not s <= at < e]
            assert got == hit and len(damage) >= 1, bit
            file.seek(at)
            file.write(data[at : at + 1])


def test_recovery_skips_missing_and_inserted_ranges(
    tmp_path: Path, sample: tuple[bytes, list[int]]
) -> None:
    data, ends = sample
    path = tmp_path / "edited.nvc"
    for k in range(len(PACKETS)):
        start = ends[k] - packet_size(PACKETS[k])
        path.write_bytes(data[: start + 3] + data[ends[k] - 2 :])  # most of packet k is gone
        got, damage = recovered(path)
        assert got == PACKETS[:k] + PACKETS[k + 1 :] and damage, k
        path.write_bytes(data[:start] + b"NvPk garbage" * 3 + data[start:])  # noise before it
        got, damage = recovered(path)
        assert got == PACKETS and damage, k


def test_recovery_needs_a_seekable_file(sample: tuple[bytes, list[int]]) -> None:
    reader = ContainerReader.from_stream(Pipe(sample[0]))
    with pytest.raises(io.UnsupportedOperation, match="seekable"):
        reader.packets(on_damage=print)
