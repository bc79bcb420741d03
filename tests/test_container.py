"""The .nvc container: round trips, seeking, header parsing rules, limits and bounded memory."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib
from collections.abc import Callable, Iterable
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nvcodec.container import (
    ContainerReader,
    ContainerWriter,
    Packet,
    StreamInfo,
    StreamKind,
    StreamSummary,
)
from nvcodec.container import format as fmt
from nvcodec.errors import FormatError, NvcodecError

VIDEO = StreamInfo(StreamKind.VIDEO, "nvc-video", Fraction(1, 25), width=64, height=48)
AUDIO = StreamInfo(StreamKind.AUDIO, "nvc-audio", Fraction(1, 48000), sample_rate=48000)


class Unseekable(io.BytesIO):
    """In-memory bytes that cannot seek or tell, like stdin or stdout on a pipe."""

    def seekable(self) -> bool:
        return False

    def seek(self, offset: int, whence: int = 0) -> int:
        raise io.UnsupportedOperation("seek")

    def tell(self) -> int:
        raise io.UnsupportedOperation("tell")


class Pipe(Unseekable):
    """An input that also returns short reads (at most 7 bytes), as a pipe may."""

    def read(self, size: int | None = -1) -> bytes:
        return super().read(size if size is None or size < 0 else min(size, 7))


def write_stream(
    streams: list[StreamInfo], packets: list[Packet], metadata: dict[str, str] | None = None
) -> bytes:
    sink = Unseekable()
    with ContainerWriter.to_stream(sink, streams, metadata) as writer:
        for packet in packets:
            writer.write(packet)
    return sink.getvalue()


def write_file(
    path: Path,
    streams: list[StreamInfo],
    packets: list[Packet],
    metadata: dict[str, str] | None = None,
    *,
    overwrite: bool = False,
) -> bytes:
    with ContainerWriter(path, streams, metadata, overwrite=overwrite) as writer:
        for packet in packets:
            writer.write(packet)
    return path.read_bytes()


def expected_summaries(stream_count: int, packets: list[Packet]) -> list[StreamSummary]:
    result = []
    for s in range(stream_count):
        mine = [p for p in packets if p.stream == s]
        end = max((p.pts + p.duration for p in mine), default=0)
        result.append(StreamSummary(s, len(mine), sum(len(p.payload) for p in mine), end))
    return result


def index_offset_of(data: bytes) -> int:
    """Where a complete file's index starts: it ends where the trailer starts, and the trailer
    gives its length."""
    trailer_at = len(data) - fmt.TRAILER.size
    (length,) = struct.unpack_from("<I", data, trailer_at)
    return trailer_at - length


def read_until_error(packets: Iterable[Packet]) -> tuple[list[Packet], FormatError | None]:
    """Collect packets until the iterator ends or raises FormatError."""
    got: list[Packet] = []
    try:
        for packet in packets:
            got.append(packet)
    except FormatError as error:
        return got, error
    return got, None


# Round trips -------------------------------------------------------------------------------

ratios = st.builds(Fraction, st.integers(1, fmt.U32_MAX), st.integers(1, fmt.U32_MAX))
stream_infos = st.builds(
    StreamInfo,
    kind=st.sampled_from(StreamKind),
    codec=st.text(min_size=1, max_size=20),
    time_base=ratios,
    model_id=st.text(max_size=20),
    model_sha256=st.just(b"") | st.binary(min_size=32, max_size=32),
    width=st.integers(0, fmt.U32_MAX),
    height=st.integers(0, fmt.U32_MAX),
    frame_rate=st.none() | ratios,
    sample_rate=st.integers(0, fmt.U32_MAX),
    channels=st.integers(0, fmt.U16_MAX),
    duration=st.integers(0, fmt.I64_MAX),
    config=st.binary(max_size=40),
)
metadata_maps = st.dictionaries(st.text(max_size=12), st.text(max_size=30), max_size=6)


@st.composite
def containers(draw: st.DrawFn) -> tuple[list[StreamInfo], dict[str, str], list[Packet]]:
    streams = draw(st.lists(stream_infos, min_size=1, max_size=4))
    packets = []
    keyframe_pts = draw(st.integers(-(2**40), 2**40))  # keyframe pts never go back
    for _ in range(draw(st.integers(0, 25))):
        keyframe = draw(st.booleans())
        if keyframe:
            keyframe_pts += draw(st.integers(0, 1000))
        packet = Packet(
            stream=draw(st.integers(0, len(streams) - 1)),
            pts=keyframe_pts if keyframe else draw(st.integers(-(2**40), 2**40)),
            duration=draw(st.integers(0, fmt.U32_MAX)),
            keyframe=keyframe,
            payload=draw(st.binary(max_size=64)),
        )
        packets.append(packet)
    return streams, draw(metadata_maps), packets


@settings(max_examples=60, deadline=None)
@given(containers())
def test_round_trip_through_a_file(
    tmp_path_factory: pytest.TempPathFactory,
    container: tuple[list[StreamInfo], dict[str, str], list[Packet]],
) -> None:
    streams, metadata, packets = container
    path = tmp_path_factory.getbasetemp() / "round_trip.nvc"
    write_file(path, streams, packets, metadata=metadata, overwrite=True)
    with ContainerReader(path) as reader:
        assert reader.version == (2, 0)
        assert reader.has_index
        assert reader.file_size == path.stat().st_size
        assert reader.streams == streams
        assert reader.metadata == metadata
        assert list(reader.packets()) == packets
        assert reader.summaries() == expected_summaries(len(streams), packets)
        for s in range(len(streams)):
            assert list(reader.packets(s)) == [p for p in packets if p.stream == s]


@settings(max_examples=60, deadline=None)
@given(containers())
def test_round_trip_through_pipes(
    tmp_path_factory: pytest.TempPathFactory,
    container: tuple[list[StreamInfo], dict[str, str], list[Packet]],
) -> None:
    streams, metadata, packets = container
    data = write_stream(streams, packets, metadata)
    path = tmp_path_factory.getbasetemp() / "pipes.nvc"
    assert data == write_file(path, streams, packets, metadata, overwrite=True)

    reader = ContainerReader.from_stream(Pipe(data))
    assert (reader.streams, reader.metadata, reader.has_index) == (streams, metadata, False)
    assert list(reader.packets()) == packets
    assert reader.has_index  # a full pass keeps the index it checked
    assert reader.summaries() == expected_summaries(len(streams), packets)
    with pytest.raises(io.UnsupportedOperation):
        list(reader.packets())  # a pipe allows one pass


def test_summaries_of_a_pipe_walk_the_headers() -> None:
    packets = [Packet(0, i, 1, i % 2 == 0, b"x" * i) for i in range(5)]
    data = write_stream([VIDEO], packets)
    reader = ContainerReader.from_stream(Pipe(data), name="in")
    assert reader.summaries() == expected_summaries(1, packets)
    assert reader.path == "in" and reader.file_size is None
    cut = ContainerReader.from_stream(Pipe(data[: index_offset_of(data) - 5]))
    with pytest.raises(FormatError, match="packet payload is truncated"):
        cut.summaries()


# Seeking -----------------------------------------------------------------------------------


def seek_sample(tmp_path: Path) -> tuple[Path, Path, list[Packet]]:
    """Video with keyframes at pts 0, 10, 20 (one packet per tick), interleaved with audio;
    plus a copy cut just before the index."""
    packets = []
    for t in range(30):
        packets.append(Packet(0, t, 1, t % 10 == 0, bytes([t]) * 3))
        packets.append(Packet(1, t * 1920, 1920, True, b"a"))
    path = tmp_path / "seek.nvc"
    data = write_file(path, [VIDEO, AUDIO], packets)
    cut = tmp_path / "cut.nvc"
    cut.write_bytes(data[: index_offset_of(data)])
    return path, cut, packets


@pytest.mark.parametrize(
    ("target", "start"), [(15, 10), (10, 10), (9, 0), (20, 20), (1000, 20), (-5, 0)]
)
def test_seek_starts_at_the_keyframe_at_or_before_pts(
    tmp_path: Path, target: int, start: int
) -> None:
    path, cut, packets = seek_sample(tmp_path)
    expected = [p for p in packets if p.stream == 0 and p.pts >= start]
    with ContainerReader(path) as reader:
        assert reader.has_index
        assert list(reader.seek(0, target)) == expected
    with ContainerReader(cut) as reader:
        assert not reader.has_index
        got, error = read_until_error(reader.seek(0, target))
        assert got == expected
        assert error is not None and "truncated" in str(error)


def test_seek_without_index_fails_before_any_keyframe(tmp_path: Path) -> None:
    path, cut, _ = seek_sample(tmp_path)
    first = len(fmt.encode_header([VIDEO, AUDIO], {}))
    cut.write_bytes(path.read_bytes()[: first + 10])
    with ContainerReader(cut) as reader, pytest.raises(FormatError, match="packet header"):
        next(reader.seek(0, 0))


def test_seek_in_a_stream_without_keyframes_yields_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nokey.nvc"
    write_file(path, [VIDEO, AUDIO], [Packet(0, 0, 1, True, b""), Packet(1, 0, 1, False, b"")])
    with ContainerReader(path) as reader:
        assert list(reader.seek(1, 0)) == []
        with pytest.raises(ValueError, match="no stream 2"):
            reader.seek(2, 0)


def test_seek_on_a_pipe_is_unsupported(tmp_path: Path) -> None:
    data = write_file(tmp_path / "a.nvc", [VIDEO], [Packet(0, 0, 1, True, b"")])
    reader = ContainerReader.from_stream(Pipe(data))
    with pytest.raises(io.UnsupportedOperation):
        reader.seek(0, 0)


def test_interleaved_iterators_do_not_disturb_each_other(tmp_path: Path) -> None:
    path, _, packets = seek_sample(tmp_path)
    with ContainerReader(path) as reader:
        video, audio = reader.packets(0), reader.packets(1)
        pairs = list(zip(video, audio, strict=True))
    assert [v for v, _ in pairs] == [p for p in packets if p.stream == 0]
    assert [a for _, a in pairs] == [p for p in packets if p.stream == 1]


# Header parsing rules ----------------------------------------------------------------------


varint = fmt.encode_varint


def test_varints_and_zigzag_follow_the_specification() -> None:
    """The encodings the hand-built files below rely on: unsigned LEB128, zigzag for signed
    (decoding them is checked through the malformed headers below)."""
    for value, encoded in [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),
        (2**32 - 1, b"\xff\xff\xff\xff\x0f"),
        (2**64 - 1, b"\xff" * 9 + b"\x01"),
    ]:
        assert varint(value) == encoded
    for signed, unsigned in [(0, 0), (-1, 1), (1, 2), (-2, 3), (fmt.I64_MAX, 2**64 - 2)]:
        assert (fmt.zigzag(signed), fmt.unzigzag(unsigned)) == (unsigned, signed)
    assert fmt.zigzag(fmt.I64_MIN) == 2**64 - 1
    with pytest.raises(ValueError, match="negative"):
        varint(-1)


def tlv(tag: int, value: bytes) -> bytes:
    """One field of a field list: varint tag, varint length, value."""
    return varint(tag) + varint(len(value)) + value


def stream_tlv(*extra: bytes, kind: int = 1, codec: bytes = b"img") -> bytes:
    fields = (
        tlv(fmt.TAG_KIND, varint(kind))
        + tlv(fmt.TAG_CODEC, codec)
        + tlv(fmt.TAG_TIME_BASE, varint(1) + varint(25))
    )
    return tlv(fmt.TAG_STREAM, fields + b"".join(extra))


# Where a field appended to stream_tlv()'s fields starts: after the stream's own tag and
# length (one byte each) and its 12 bytes of fields, which is also where stream_tlv() ends.
EXTRA = len(stream_tlv())


def metadata_tlv(key: str, value: str = "") -> bytes:
    raw = key.encode()
    return tlv(fmt.TAG_METADATA_ENTRY, varint(len(raw)) + raw + value.encode())


def preamble(body_length: int, major: int = 2, minor: int = 0) -> bytes:
    return struct.pack("<8sBB", fmt.MAGIC, major, minor) + varint(body_length)


def body_start(body: bytes) -> int:
    """The file offset of a hand-built header's body: after the preamble."""
    return len(preamble(len(body)))


def header_file(tmp_path: Path, body: bytes, major: int = 2, minor: int = 0) -> Path:
    """A file holding just a hand-built header (as from a writer cut short after it)."""
    head = preamble(len(body), major, minor) + body
    path = tmp_path / "hand.nvc"
    path.write_bytes(head + struct.pack("<I", zlib.crc32(head)))
    return path


def packet_header(stream: int, length: int) -> bytes:
    """A hand-built packet header: keyframe, pts 0, duration 1, and a valid CRC."""
    fields = b"NvPk" + varint(stream) + b"\x01" + varint(fmt.zigzag(0)) + varint(1)
    fields += varint(length)
    return fields + struct.pack("<I", zlib.crc32(fields))


def open_error(path: Path) -> FormatError:
    with pytest.raises(FormatError) as caught:
        ContainerReader(path)
    assert caught.value.path == str(path)
    return caught.value


def test_newer_minor_version_with_unknown_optional_fields_is_read(tmp_path: Path) -> None:
    body = (  # even tags are optional: skipped when unknown
        tlv(0x1234, b"top-level field from version 2.7")
        + stream_tlv(tlv(0x0778, b"stream field from 2.7"), tlv(fmt.TAG_WIDTH, varint(16)))
        + tlv(fmt.TAG_METADATA_ENTRY, b"\x01k\xc3\xa9")
    )
    with ContainerReader(header_file(tmp_path, body, minor=7)) as reader:
        assert reader.version == (2, 7)
        assert reader.streams == [StreamInfo(StreamKind.IMAGE, "img", Fraction(1, 25), width=16)]
        assert reader.metadata == {"k": "é"}
        assert not reader.has_index
        got, error = read_until_error(reader.packets())
    assert got == [] and error is not None and "before its index: truncated" in str(error)


@pytest.mark.parametrize(
    ("body", "offset"),  # odd tags are critical; the offset is from the body's start
    [
        (stream_tlv() + tlv(0x8123, b""), len(stream_tlv())),
        (stream_tlv(tlv(0x8777, b"x")), EXTRA),
    ],
)
def test_unknown_critical_field_is_rejected(tmp_path: Path, body: bytes, offset: int) -> None:
    error = open_error(header_file(tmp_path, body))
    assert "unknown critical field" in error.problem
    assert error.offset == body_start(body) + offset


@pytest.mark.parametrize(
    ("major", "problem"),
    [
        (
            1,
            "format version 1.3 was written by an older nvcodec and is no longer read: "
            "encode it again",
        ),
        (3, "format version 3.3 is newer than this nvcodec supports (2.x): upgrade nvcodec"),
        (0, "format version 0.3 is unknown"),
    ],
)
def test_other_major_versions_are_rejected(tmp_path: Path, major: int, problem: str) -> None:
    error = open_error(header_file(tmp_path, stream_tlv(), major=major, minor=3))
    assert (error.offset, error.problem) == (8, problem)


def test_version_1_files_are_no_longer_read(tmp_path: Path) -> None:
    """A file in the old layout (u16 version numbers, u32 body length, 16-bit TLV tags) reads
    as version 1.0 in the new preamble, and is refused with advice."""
    old_field = struct.pack("<HI", 0x8002, 3) + b"img"
    head = struct.pack("<8sHHI", fmt.MAGIC, 1, 0, len(old_field)) + old_field
    path = tmp_path / "old.nvc"
    path.write_bytes(head + struct.pack("<I", zlib.crc32(head)))
    error = open_error(path)
    assert error.offset == 8
    assert error.problem.startswith(
        "format version 1.0 was written by an older nvcodec and is no longer read"
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x89NV",
        b"hello, world\n" * 3,
        fmt.MAGIC.replace(b"\r\n", b"\n") + b"\0" * 40,  # text-mode mangling
    ],
)
def test_not_an_nvcodec_file(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "x.nvc"
    path.write_bytes(data)
    error = open_error(path)
    assert error.offset == 0
    assert "not an nvcodec file" in error.problem or "truncated" in error.problem


@pytest.mark.parametrize(
    ("body", "problem", "offset"),  # the offset is from the body's start
    [
        (stream_tlv(kind=7), "stream 0 is invalid: kind 7 is not 1 (image), 2 (video) or 3", 2),
        (stream_tlv(kind=256), "stream 0 kind value 256 is over the limit of 255", 4),
        (stream_tlv(codec=b"\xff\xfe"), "stream 0 codec is not valid UTF-8", 7),
        (tlv(fmt.TAG_STREAM, tlv(fmt.TAG_KIND, b"\x01")), "lacks its required codec field", 2),
        (
            stream_tlv(tlv(fmt.TAG_WIDTH, b"\x01\x00")),
            "width has 1 bytes after its value",
            EXTRA + 3,
        ),
        (
            stream_tlv(tlv(fmt.TAG_WIDTH, b"\x81\x00")),
            "width value is not a minimal varint",
            EXTRA + 2,
        ),
        (stream_tlv(tlv(fmt.TAG_WIDTH, b"\x80")), "stream 0 width value is truncated", EXTRA + 2),
        (
            stream_tlv(tlv(fmt.TAG_DURATION, b"\xff" * 10 + b"\x01")),
            "stream 0 duration value is not a valid varint (over 10 bytes)",
            EXTRA + 2,
        ),
        (
            stream_tlv(tlv(fmt.TAG_DURATION, varint(2**63))),
            f"duration value {2**63} is over the limit of {2**63 - 1}",
            EXTRA + 2,
        ),
        (
            stream_tlv(tlv(fmt.TAG_HEIGHT, varint(2**32))),
            "height value 4294967296 is over the limit of 4294967295",
            EXTRA + 2,
        ),
        (
            stream_tlv(tlv(fmt.TAG_FRAME_RATE, b"\x19\x00")),
            "stream 0 frame_rate has a zero denominator",
            EXTRA + 2,
        ),
        (
            stream_tlv(tlv(fmt.TAG_TIME_BASE, b"\x01\x19")),
            "stream 0 has two time_base fields",
            EXTRA,
        ),
        (
            stream_tlv(tlv(fmt.TAG_MODEL_SHA256, bytes(5))),
            "stream 0 is invalid: model_sha256 is 5 bytes, not 32",
            2,
        ),
        (
            stream_tlv(tlv(fmt.TAG_CHANNELS, b"\x01"), tlv(fmt.TAG_CHANNELS, b"\x01")),
            "stream 0 has two channels fields",
            EXTRA + 3,
        ),
        (
            stream_tlv() + tlv(fmt.TAG_STREAM, varint(fmt.TAG_KIND) + varint(2**32 - 1)),
            "stream 1: field 1 declares 4294967295 bytes but only 0 remain",
            len(stream_tlv()) + 2,
        ),
        (
            stream_tlv() + tlv(fmt.TAG_STREAM, b"\x80\x80\x80\x80\x10"),
            "stream 1 field tag 4294967296 is over the limit of 4294967295",
            len(stream_tlv()) + 2,
        ),
        (stream_tlv() + b"\x02", "file header field 2 length is truncated", len(stream_tlv()) + 1),
        (stream_tlv() + b"\x82", "file header field tag is truncated", len(stream_tlv())),
        (
            tlv(fmt.TAG_METADATA_ENTRY, b"\x09abc"),
            "metadata key declares 9 bytes but only 3 remain",
            2,
        ),
        (tlv(fmt.TAG_METADATA_ENTRY, b""), "metadata entry key length is truncated", 2),
        (tlv(fmt.TAG_METADATA_ENTRY, b"\x01k\x80"), "metadata value of 'k' is not valid UTF-8", 2),
        (tlv(fmt.TAG_METADATA_ENTRY, b"\x00") * 2, "metadata key '' appears twice", 3),
        (stream_tlv() * 65, "more than 64 streams", 64 * len(stream_tlv())),
        (
            b"".join(metadata_tlv(str(i)) for i in range(1025)),
            "more than 1024 metadata entries",
            len(b"".join(metadata_tlv(str(i)) for i in range(1024))),
        ),
    ],
)
def test_malformed_headers_are_rejected(
    tmp_path: Path, body: bytes, problem: str, offset: int
) -> None:
    error = open_error(header_file(tmp_path, body))
    assert problem in error.problem
    assert error.offset == body_start(body) + offset


def test_header_crc_mismatch(tmp_path: Path) -> None:
    path = header_file(tmp_path, stream_tlv())
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(data)
    error = open_error(path)
    assert "file header CRC mismatch" in error.problem and error.offset == len(data) - 4


def test_packet_naming_an_undeclared_stream(tmp_path: Path) -> None:
    packet = packet_header(5, 0) + struct.pack("<I", zlib.crc32(b""))
    path = header_file(tmp_path, stream_tlv())
    first = path.stat().st_size
    path.write_bytes(path.read_bytes() + packet)
    with ContainerReader(path) as reader:
        got, error = read_until_error(reader.packets())
    assert got == [] and error is not None
    assert (error.offset, error.problem) == (
        first + 4,
        "packet names stream 5 but the header declares 1",
    )


def test_bad_sync_and_trailing_data(tmp_path: Path) -> None:
    path = tmp_path / "a.nvc"
    data = write_file(path, [VIDEO], [Packet(0, 0, 1, True, b"abc")])
    first = len(fmt.encode_header([VIDEO], {}))
    path.write_bytes(data[:first] + b"JUNK" + data[first + 4 :])
    with ContainerReader(path) as reader, pytest.raises(FormatError) as caught:
        list(reader.packets())
    assert caught.value.offset == first
    assert caught.value.problem.startswith(f"expected packet at byte {first}")

    path.write_bytes(data + b"\0")
    with ContainerReader(path) as reader:
        assert not reader.has_index  # the end magic is not at the end
        got, error = read_until_error(reader.packets())
    assert len(got) == 1 and error is not None
    assert (error.offset, error.problem) == (len(data), "unexpected data after the trailer")


TWO_PACKETS = [Packet(0, 0, 1, True, b"abc"), Packet(0, 1, 1, False, b"de")]
TRUE_SUMMARY = StreamSummary(0, 2, 5, 2)  # and one keyframe entry: (0, 0, first packet)


# Where TWO_PACKETS[1] starts, from the first packet: after the first's header, payload and
# payload CRC.
SECOND = len(fmt.encode_packet_header(fmt.PacketHeader(0, True, 0, 1, 3))) + 3 + 4


def with_index(
    tmp_path: Path,
    summaries: tuple[StreamSummary, ...],
    keyframes: tuple[tuple[int, int, int], ...],
) -> tuple[Path, int]:
    """TWO_PACKETS with a well-formed (CRC-valid) index of the given content, keyframe offsets
    given relative to the first packet; returns the path and the index offset."""
    path = tmp_path / "a.nvc"
    data = write_file(path, [VIDEO], TWO_PACKETS)
    first = len(fmt.encode_header([VIDEO], {}))
    index_offset = index_offset_of(data)
    entries = tuple(fmt.KeyframeEntry(s, pts, first + offset) for s, pts, offset in keyframes)
    index = fmt.encode_index(fmt.Index(summaries, entries))
    path.write_bytes(data[:index_offset] + index + fmt.encode_trailer(len(index)))
    return path, index_offset


@pytest.mark.parametrize(
    ("summaries", "keyframes", "problem"),
    [
        ((TRUE_SUMMARY,) * 2, ((0, 0, 0),), "index lists 2 streams but the header declares 1"),
        ((TRUE_SUMMARY,), ((3, 0, 0),), "index entry names unknown stream 3"),
        ((TRUE_SUMMARY,), ((0, 0, -1),), "out of order or range"),
        ((TRUE_SUMMARY,), ((0, 0, 0), (0, 0, 0)), "out of order or range"),
        ((TRUE_SUMMARY,), ((0, 0, SECOND + 1000),), "out of order or range"),
        ((TRUE_SUMMARY,), ((0, 5, 0), (0, 3, SECOND)), "keyframes of a stream go back in time"),
    ],
)
def test_malformed_index_is_rejected_on_open(
    tmp_path: Path,
    summaries: tuple[StreamSummary, ...],
    keyframes: tuple[tuple[int, int, int], ...],
    problem: str,
) -> None:
    path, index_offset = with_index(tmp_path, summaries, keyframes)
    error = open_error(path)
    assert problem in error.problem
    assert error.offset is not None and index_offset <= error.offset < path.stat().st_size


@pytest.mark.parametrize(
    ("summaries", "keyframes", "problem"),
    [
        ((StreamSummary(0, 2, 5, 99),), ((0, 0, 0),), "index stream summaries"),
        ((TRUE_SUMMARY,), ((0, 1, SECOND),), "index keyframe entries"),
    ],
)
def test_index_contradicting_the_packets_is_caught_by_a_full_read(
    tmp_path: Path,
    summaries: tuple[StreamSummary, ...],
    keyframes: tuple[tuple[int, int, int], ...],
    problem: str,
) -> None:
    path, index_offset = with_index(tmp_path, summaries, keyframes)
    with ContainerReader(path) as reader:
        assert reader.summaries() == list(summaries)  # the index is believed...
        got, error = read_until_error(reader.packets())  # ...until a full read checks it
    assert got == TWO_PACKETS and error is not None
    assert (error.offset, error.problem) == (index_offset, f"{problem} do not match the packets")


def test_trailer_pointing_elsewhere(tmp_path: Path) -> None:
    """The trailer's index length has no CRC of its own: a damaged one is caught where it
    points, which is not where the index starts."""
    path = tmp_path / "a.nvc"
    data = write_file(path, [VIDEO], TWO_PACKETS)
    first = len(fmt.encode_header([VIDEO], {}))
    trailer_at = len(data) - fmt.TRAILER.size
    index_offset = index_offset_of(data)
    cases = [
        (
            trailer_at - at,
            f"trailer places the index at bytes {at}..{trailer_at}, where none starts",
        )
        for at in (index_offset + 1, index_offset - 1, first)
    ]
    cases += [
        (
            length,
            f"trailer gives an index of {length} bytes, which would start at byte "
            f"{trailer_at - length}, inside the header (it ends at byte {first})",
        )
        for length in (trailer_at - first + 1, 2**32 - 1)
    ]
    for length, problem in cases:
        path.write_bytes(data[:trailer_at] + fmt.encode_trailer(length))
        error = open_error(path)
        assert (error.offset, error.problem) == (trailer_at, problem)
        reader = ContainerReader.from_stream(Pipe(path.read_bytes()))
        got, error = read_until_error(reader.packets())
        assert got == TWO_PACKETS and error is not None
        assert (error.offset, error.problem) == (
            trailer_at,
            "trailer does not point at the index before it",
        )


# Absurd lengths are rejected before anything is allocated -------------------------------------


def assert_rejected_cheaply(read: Callable[[], object], problem: str) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match=problem):
            read()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20


def test_huge_header_length(tmp_path: Path) -> None:
    path = tmp_path / "a.nvc"
    for declared, problem in [
        (2**20 + 1, "file header length 1048577 is over the limit of 1048576"),
        (2**21 - 1, "file header length 2097151 is over the limit of 1048576"),
        (2**20, "but only 12 remain"),
    ]:
        path.write_bytes(preamble(declared) + bytes(12))
        assert_rejected_cheaply(lambda: ContainerReader(path), problem)
    data = path.read_bytes()
    assert_rejected_cheaply(lambda: ContainerReader.from_stream(Pipe(data)), "truncated")


@pytest.mark.parametrize("declared", [2**21, 2**32 - 1])
def test_header_length_longer_than_three_varint_bytes(tmp_path: Path, declared: int) -> None:
    path = tmp_path / "a.nvc"
    path.write_bytes(preamble(declared) + bytes(12))
    error = open_error(path)
    assert (error.offset, error.problem) == (
        10,
        f"file header length {declared} is over the limit of 1048576",
    )


def test_huge_packet_length(tmp_path: Path) -> None:
    path = tmp_path / "a.nvc"
    header = fmt.encode_header([VIDEO], {})
    for declared, problem in [(2**32 - 1, "over the limit"), (200 << 20, "but only 100 remain")]:
        data = header + packet_header(0, declared) + bytes(100)
        path.write_bytes(data)
        with ContainerReader(path) as reader:
            assert_rejected_cheaply(lambda r=reader: list(r.packets()), problem)
            assert_rejected_cheaply(lambda r=reader: r.summaries(), problem)
    reader = ContainerReader.from_stream(Pipe(data))
    assert_rejected_cheaply(lambda: list(reader.packets()), "packet payload is truncated")


def index_bytes(body: bytes, body_length: int | None = None) -> bytes:
    """A hand-built index around ``body``, declaring ``body_length`` (by default the true one),
    with a valid CRC."""
    head = b"NvIx" + varint(len(body) if body_length is None else body_length) + body
    return head + struct.pack("<I", zlib.crc32(head))


def test_huge_index_entry_count(tmp_path: Path) -> None:
    path = tmp_path / "a.nvc"
    data = write_file(path, [VIDEO], [Packet(0, 0, 1, True, b"abc")])
    index_offset = index_offset_of(data)
    first = len(fmt.encode_header([VIDEO], {}))
    summary = varint(1) + varint(3) + varint(fmt.zigzag(1))  # packets, payload bytes, end pts
    entry = varint(0) + varint(fmt.zigzag(0)) + varint(first)  # stream, pts, offset
    assert data[index_offset:-8] == index_bytes(varint(1) + varint(1) + summary + entry)
    # 2^32 - 1 keyframes declared in a consistent index (its length and CRC match): the 6 bytes
    # after the count hold 2 entries at most (see the next test for that bound).
    count = index_bytes(varint(1) + varint(2**32 - 1) + summary + entry)
    # The true index, but declaring a body of 2^32 - 1 bytes.
    length = index_bytes(varint(1) + varint(1) + summary + entry, 2**32 - 1)
    for index, problem in [
        (count, "index keyframe count 4294967295 is over the limit of "),
        (length, "index declares 4294967308 bytes, over the 4 GiB limit"),
    ]:
        lying = data[:index_offset] + index
        path.write_bytes(lying + fmt.encode_trailer(len(index)))
        assert_rejected_cheaply(lambda: ContainerReader(path), problem)
        path.write_bytes(lying)  # without the trailer: found by walking the packets
        with ContainerReader(path) as reader:
            assert_rejected_cheaply(lambda r=reader: list(r.packets()), problem)
        reader = ContainerReader.from_stream(Pipe(lying))
        assert_rejected_cheaply(lambda r=reader: list(r.packets()), problem)


def test_keyframe_count_is_bounded_by_the_bytes_after_it(tmp_path: Path) -> None:
    """docs/format.md: entry_count is at most the body bytes that follow it / 3."""
    path = tmp_path / "a.nvc"
    data = write_file(path, [VIDEO], [Packet(0, 0, 1, True, b"abc")])
    index_offset = index_offset_of(data)
    # 3 keyframes declared, and 8 bytes after the count (room for 2 entries), never parsed.
    index = index_bytes(varint(1) + varint(3) + bytes(8))
    path.write_bytes(data[:index_offset] + index + fmt.encode_trailer(len(index)))
    error = open_error(path)
    assert (error.offset, error.problem) == (
        index_offset + 6,  # after the sync, the body length and the stream count
        "index keyframe count 3 is over the limit of 2",
    )


# Writer ------------------------------------------------------------------------------------


def test_writer_memory_stays_bounded(tmp_path: Path) -> None:
    payload = bytes(range(256)) * 256  # 64 KiB
    tracemalloc.start()
    try:
        with ContainerWriter(tmp_path / "big.nvc", [VIDEO]) as writer:
            for t in range(2000):
                writer.write(Packet(0, t, 1, True, payload))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 * 2**20
    assert (tmp_path / "big.nvc").stat().st_size > 2000 * len(payload)


def test_writer_failing_at_close_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_keyframes = fmt.Index((StreamSummary(0, 2, 6, 2),), ())
    monkeypatch.setattr(fmt, "MAX_INDEX_BYTES", len(fmt.encode_index(no_keyframes)))
    writer = ContainerWriter(tmp_path / "out.nvc", [VIDEO])
    writer.write(Packet(0, 0, 1, True, b"abc"))
    writer.write(Packet(0, 1, 1, True, b"abc"))
    with pytest.raises(NvcodecError, match="index of 2 keyframes exceeds"):
        writer.close()
    writer.close()  # closing again does nothing
    assert list(tmp_path.iterdir()) == []


def test_writer_leaves_nothing_on_error(tmp_path: Path) -> None:
    for error in (RuntimeError, KeyboardInterrupt):
        with pytest.raises(error), ContainerWriter(tmp_path / "out.nvc", [VIDEO]) as writer:
            writer.write(Packet(0, 0, 1, True, b"abc"))
            raise error
        assert list(tmp_path.iterdir()) == []


def test_writer_refuses_existing_files_and_inputs(tmp_path: Path) -> None:
    out = tmp_path / "out.nvc"
    out.write_bytes(b"keep me")
    with pytest.raises(NvcodecError, match="already exists"):
        ContainerWriter(out, [VIDEO])
    source = tmp_path / "input.png"
    source.write_bytes(b"image")
    with pytest.raises(NvcodecError, match="is also an input"):
        ContainerWriter(source, [VIDEO], overwrite=True, protect=[source])
    assert out.read_bytes() == b"keep me" and source.read_bytes() == b"image"
    ContainerWriter(out, [VIDEO], overwrite=True, protect=[source]).close()
    with ContainerReader(out) as reader:
        assert reader.streams == [VIDEO]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input.png", "out.nvc"]


def test_pipe_writer_interrupted_leaves_a_truncated_file() -> None:
    sink = Unseekable()
    with pytest.raises(RuntimeError), ContainerWriter.to_stream(sink, [VIDEO]) as writer:
        writer.write(Packet(0, 0, 1, True, b"abc"))
        raise RuntimeError
    reader = ContainerReader.from_stream(Pipe(sink.getvalue()))
    got, error = read_until_error(reader.packets())
    assert got == [Packet(0, 0, 1, True, b"abc")]
    assert error is not None and "before its index: truncated" in error.problem


@pytest.mark.parametrize(
    ("packet", "error", "problem"),
    [
        (Packet(1, 0, 1, True, b""), ValueError, "names stream 1"),
        (Packet(0, 0, -1, True, b""), ValueError, "duration -1"),
        (Packet(0, 0, 2**32, True, b""), ValueError, "duration 4294967296"),
        (Packet(0, 2**63 - 1, 1, True, b""), ValueError, "overflows"),
        (Packet(0, -(2**63) - 1, 0, True, b""), ValueError, "overflows"),
        (Packet(0, 4, 1, True, b""), ValueError, "must not go back in time"),
        (Packet(0, 9, 1, True, b"x" * 11), NvcodecError, "exceeds the limit of 10"),
    ],
)
def test_writer_rejects_packets_the_format_cannot_hold(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    packet: Packet,
    error: type[Exception],
    problem: str,
) -> None:
    monkeypatch.setattr("nvcodec.container.writer.MAX_PACKET_BYTES", 10)
    with ContainerWriter(tmp_path / "a.nvc", [VIDEO]) as writer:
        writer.write(Packet(0, 5, 1, True, b"ok"))
        with pytest.raises(error, match=problem):
            writer.write(packet)
    with ContainerReader(tmp_path / "a.nvc") as reader:  # the file stays consistent
        assert list(reader.packets()) == [Packet(0, 5, 1, True, b"ok")]
    with pytest.raises(ValueError, match="closed"):
        writer.write(Packet(0, 5, 1, True, b""))


@pytest.mark.parametrize(
    ("streams", "metadata", "problem"),
    [
        ([VIDEO] * 65, {}, "65 streams exceed the limit of 64"),
        ([VIDEO], {str(i): "" for i in range(1025)}, "1025 metadata entries"),
        ([VIDEO], {"k" * 2**20: ""}, "file header would be"),
        ([StreamInfo(StreamKind.IMAGE, "x", Fraction(1), config=bytes(2**20))], {}, "header"),
    ],
)
def test_header_limits(
    tmp_path: Path, streams: list[StreamInfo], metadata: dict[str, str], problem: str
) -> None:
    with pytest.raises(NvcodecError, match=problem):
        ContainerWriter(tmp_path / "a.nvc", streams, metadata)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"kind": 4}, "kind 4"),
        ({"codec": ""}, "codec"),
        ({"time_base": Fraction(0)}, "time_base"),
        ({"time_base": Fraction(1, 2**32)}, "time_base"),
        ({"frame_rate": Fraction(-1)}, "frame_rate"),
        ({"width": -1}, "width"),
        ({"channels": 2**16}, "channels"),
        ({"duration": -1}, "duration"),
        ({"model_sha256": b"abc"}, "model_sha256"),
    ],
)
def test_stream_info_is_validated(changes: dict[str, Any], problem: str) -> None:
    valid = StreamInfo(1, "c", Fraction(1, 25))  # type: ignore[arg-type]  # an int kind...
    assert valid.kind is StreamKind.IMAGE  # ...is stored as a StreamKind
    with pytest.raises(ValueError, match=problem):
        replace(valid, **changes)
