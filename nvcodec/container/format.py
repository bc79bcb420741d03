"""The ``.nvc`` byte layout: constants, records, and their (de)serialisation.

Pure bytes <-> objects; docs/format.md is the specification. Every decoder bounds-checks what
it reads and reports malformed input as :class:`FormatError` with the file offset at fault.
Encoders raise ValueError for arguments no file could hold and NvcodecError when content
exceeds a format limit.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from fractions import Fraction

from nvcodec.errors import FormatError, NvcodecError

MAGIC = b"\x89NVC\r\n\x1a\n"  # PNG-style: 8-bit byte, CRLF and ^Z catch text-mode mangling
VERSION = (1, 0)
PACKET_SYNC = b"NvPk"
INDEX_SYNC = b"NvIx"
END_MAGIC = b"NVCindex"

MAX_HEADER_BYTES = 1 << 20
MAX_STREAMS = 64
MAX_METADATA_ENTRIES = 1024
MAX_PACKET_BYTES = 256 << 20
MAX_INDEX_BYTES = 0xFFFF_FFFF  # the trailer stores the index length as a u32

U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1

PREAMBLE = struct.Struct("<8sHHI")  # magic, version major, minor, body length
TLV = struct.Struct("<HI")  # tag, value length
PACKET_HEADER = struct.Struct("<4sHHqII")  # sync, stream, flags, pts, duration, payload length
INDEX_HEAD = struct.Struct("<4sHI")  # sync, stream count, keyframe entry count
INDEX_SUMMARY = struct.Struct("<HQQq")  # stream, packet count, payload bytes, end pts
INDEX_ENTRY = struct.Struct("<HqQ")  # stream, pts, offset of the packet's sync
INDEX_LOCATION = struct.Struct("<QI")  # index offset, index length: what the trailer CRC covers
TRAILER = struct.Struct("<QII8s")  # index offset, index length, CRC, end magic
CRC = struct.Struct("<I")
_U8 = struct.Struct("<B")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_RATIO = struct.Struct("<II")  # numerator, denominator

PACKET_HEADER_SIZE = PACKET_HEADER.size + CRC.size
PACKET_OVERHEAD = PACKET_HEADER_SIZE + CRC.size  # header and payload CRC: 32 bytes a packet
FLAG_KEYFRAME = 0x0001

CRITICAL = 0x8000  # tag bit: a reader that does not know the tag must reject the file
TAG_STREAM = 0x8001
TAG_METADATA_ENTRY = 0x0002
TAG_KIND = 0x8001
TAG_CODEC = 0x8002
TAG_TIME_BASE = 0x8003
TAG_MODEL_ID = 0x0004
TAG_MODEL_SHA256 = 0x0005
TAG_WIDTH = 0x0006
TAG_HEIGHT = 0x0007
TAG_FRAME_RATE = 0x0008
TAG_SAMPLE_RATE = 0x0009
TAG_CHANNELS = 0x000A
TAG_DURATION = 0x000B
TAG_CONFIG = 0x000C


class StreamKind(IntEnum):
    """What a stream carries; stored as a u8 (KIND field)."""

    IMAGE = 1
    VIDEO = 2
    AUDIO = 3


@dataclass(frozen=True)
class StreamInfo:
    """One stream's description in the file header; validated on construction."""

    kind: StreamKind
    codec: str
    time_base: Fraction  # seconds per pts tick
    model_id: str = ""
    model_sha256: bytes = b""  # 32 bytes, or empty when not recorded
    width: int = 0
    height: int = 0
    frame_rate: Fraction | None = None
    sample_rate: int = 0
    channels: int = 0
    duration: int = 0  # in ticks; 0 = unknown when the file was written
    config: bytes = b""  # codec-private, opaque to the container

    def __post_init__(self) -> None:
        if self.kind not in set(StreamKind):
            raise ValueError(f"kind {self.kind!r} is not 1 (image), 2 (video) or 3 (audio)")
        object.__setattr__(self, "kind", StreamKind(self.kind))
        if not self.codec:
            raise ValueError("codec must be named")
        _check_ratio("time_base", self.time_base)
        if self.frame_rate is not None:
            _check_ratio("frame_rate", self.frame_rate)
        for name in ("width", "height", "sample_rate"):
            _check_range(name, getattr(self, name), 0, U32_MAX)
        _check_range("channels", self.channels, 0, U16_MAX)
        _check_range("duration", self.duration, 0, I64_MAX)
        if len(self.model_sha256) not in (0, 32):
            raise ValueError(f"model_sha256 is {len(self.model_sha256)} bytes, not 32")


@dataclass(frozen=True, slots=True)
class Packet:
    """One coded unit of a stream. ``offset`` (where the reader found it) is not compared."""

    stream: int
    pts: int
    duration: int
    keyframe: bool
    payload: bytes
    offset: int = field(default=-1, compare=False)


@dataclass(frozen=True, slots=True)
class StreamSummary:
    stream: int
    packet_count: int
    payload_bytes: int
    end_pts: int  # max(pts + duration) over the stream's packets; 0 when it has none


@dataclass(frozen=True, slots=True)
class PacketHeader:
    stream: int
    keyframe: bool
    pts: int
    duration: int
    payload_length: int


@dataclass(frozen=True, slots=True)
class KeyframeEntry:
    stream: int
    pts: int
    offset: int


@dataclass(frozen=True)
class Header:
    version: tuple[int, int]
    streams: tuple[StreamInfo, ...]
    metadata: dict[str, str]


@dataclass(frozen=True)
class Index:
    summaries: tuple[StreamSummary, ...]
    keyframes: tuple[KeyframeEntry, ...]  # in file order


class IndexBuilder:
    """Tallies packets into an :class:`Index`: what the writer records and a full read checks."""

    def __init__(self, stream_count: int) -> None:
        self._counts = [0] * stream_count
        self._bytes = [0] * stream_count
        self._ends: list[int | None] = [None] * stream_count
        self._keyframes: list[KeyframeEntry] = []

    def add(self, header: PacketHeader, offset: int) -> None:
        s = header.stream
        self._counts[s] += 1
        self._bytes[s] += header.payload_length
        end, previous = header.pts + header.duration, self._ends[s]
        self._ends[s] = end if previous is None else max(previous, end)
        if header.keyframe:
            self._keyframes.append(KeyframeEntry(s, header.pts, offset))

    def build(self) -> Index:
        summaries = tuple(
            StreamSummary(s, self._counts[s], self._bytes[s], self._ends[s] or 0)
            for s in range(len(self._counts))
        )
        return Index(summaries, tuple(self._keyframes))


def check_crc(covered: bytes, stored: bytes, at: int, path: str, what: str) -> None:
    """Compare a stored CRC32 (4 bytes at file offset ``at``) with that of ``covered``."""
    (expected,) = CRC.unpack(stored)
    actual = zlib.crc32(covered)
    if actual != expected:
        raise FormatError(
            path,
            at,
            f"{what} CRC mismatch (stored {expected:08x}, computed {actual:08x}): "
            "the file is corrupted",
        )


# File header -------------------------------------------------------------------------------

# Stream field tag -> (StreamInfo attribute, value layout: a struct, or str / bytes).
_STREAM_FIELDS: dict[int, tuple[str, struct.Struct | type[str] | type[bytes]]] = {
    TAG_KIND: ("kind", _U8),
    TAG_CODEC: ("codec", str),
    TAG_TIME_BASE: ("time_base", _RATIO),
    TAG_MODEL_ID: ("model_id", str),
    TAG_MODEL_SHA256: ("model_sha256", bytes),
    TAG_WIDTH: ("width", _U32),
    TAG_HEIGHT: ("height", _U32),
    TAG_FRAME_RATE: ("frame_rate", _RATIO),
    TAG_SAMPLE_RATE: ("sample_rate", _U32),
    TAG_CHANNELS: ("channels", _U16),
    TAG_DURATION: ("duration", _I64),
    TAG_CONFIG: ("config", bytes),
}


def encode_header(streams: Sequence[StreamInfo], metadata: Mapping[str, str]) -> bytes:
    """Serialise the whole file header: preamble, TLV body and CRC."""
    if len(streams) > MAX_STREAMS:
        raise NvcodecError(f"{len(streams)} streams exceed the limit of {MAX_STREAMS}")
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise NvcodecError(
            f"{len(metadata)} metadata entries exceed the limit of {MAX_METADATA_ENTRIES}"
        )
    fields = [_tlv(TAG_STREAM, _encode_stream(stream)) for stream in streams]
    for key, value in metadata.items():
        raw_key = key.encode()
        if len(raw_key) > U16_MAX:
            raise NvcodecError(f"metadata key {key[:40]!r}... is over {U16_MAX} bytes")
        entry = _U16.pack(len(raw_key)) + raw_key + value.encode()
        fields.append(_tlv(TAG_METADATA_ENTRY, entry))
    body = b"".join(fields)
    if len(body) > MAX_HEADER_BYTES:
        raise NvcodecError(
            f"file header would be {len(body)} bytes, over the limit of {MAX_HEADER_BYTES} "
            "(too much metadata or codec config)"
        )
    head = PREAMBLE.pack(MAGIC, *VERSION, len(body)) + body
    return head + CRC.pack(zlib.crc32(head))


def decode_preamble(data: bytes, path: str, size: int | None) -> tuple[tuple[int, int], int]:
    """Check magic, version and body length of a header's first 16 bytes (fewer if the file is
    shorter); return (version, body length). ``size`` is the file size when known."""
    if data[: len(MAGIC)] != MAGIC[: len(data)]:
        raise FormatError(path, 0, "not an nvcodec file (bad magic bytes)")
    if len(data) < PREAMBLE.size:
        raise FormatError(path, 0, f"file header is truncated: the file ends at byte {len(data)}")
    _, major, minor, body_length = PREAMBLE.unpack(data)
    if major != VERSION[0]:
        problem = (
            "is unknown"
            if major == 0
            else f"is newer than this nvcodec supports ({VERSION[0]}.x): upgrade nvcodec"
        )
        raise FormatError(path, 8, f"format version {major}.{minor} {problem}")
    if body_length > MAX_HEADER_BYTES:
        raise FormatError(
            path, 12, f"header declares {body_length} bytes, over the limit of {MAX_HEADER_BYTES}"
        )
    if size is not None and body_length + CRC.size > size - PREAMBLE.size:
        raise FormatError(
            path,
            12,
            f"header declares {body_length} bytes (+{CRC.size} CRC) "
            f"but only {size - PREAMBLE.size} remain",
        )
    return (major, minor), body_length


def decode_header(data: bytes, path: str) -> Header:
    """Check and parse a whole file header (preamble, body, CRC), which is at offset 0."""
    version, body_length = decode_preamble(data[: PREAMBLE.size], path, len(data))
    end = PREAMBLE.size + body_length
    check_crc(data[:end], data[end : end + CRC.size], end, path, "file header")
    streams: list[StreamInfo] = []
    metadata: dict[str, str] = {}
    for tag, at, value in _fields(data[PREAMBLE.size : end], PREAMBLE.size, path, "file header"):
        if tag == TAG_STREAM:
            if len(streams) == MAX_STREAMS:
                raise FormatError(path, at, f"more than {MAX_STREAMS} streams")
            streams.append(_decode_stream(value, at + TLV.size, path, len(streams)))
        elif tag == TAG_METADATA_ENTRY:
            if len(metadata) == MAX_METADATA_ENTRIES:
                raise FormatError(path, at, f"more than {MAX_METADATA_ENTRIES} metadata entries")
            key, text = _decode_metadata_entry(value, at, path)
            if key in metadata:
                raise FormatError(path, at, f"metadata key {key!r} appears twice")
            metadata[key] = text
        else:
            _skip_unknown(tag, at, path, "file header")
    return Header(version, tuple(streams), metadata)


def _tlv(tag: int, value: bytes) -> bytes:
    return TLV.pack(tag, len(value)) + value


def _encode_stream(stream: StreamInfo) -> bytes:
    fields = []
    for tag, (name, layout) in _STREAM_FIELDS.items():
        value = getattr(stream, name)
        if not value and not tag & CRITICAL:
            continue  # an optional field at its default is left out
        if layout is str:
            raw = value.encode()
        elif layout is bytes:
            raw = value
        elif layout is _RATIO:
            raw = _RATIO.pack(value.numerator, value.denominator)
        else:
            raw = layout.pack(value)
        fields.append(_tlv(tag, raw))
    return b"".join(fields)


def _decode_stream(body: bytes, base: int, path: str, number: int) -> StreamInfo:
    where = f"stream {number}"
    values: dict[str, str | bytes | int | Fraction] = {}
    for tag, at, raw in _fields(body, base, path, where):
        if tag not in _STREAM_FIELDS:
            _skip_unknown(tag, at, path, where)
            continue
        name, layout = _STREAM_FIELDS[tag]
        if name in values:
            raise FormatError(path, at, f"{where} has two {name} fields")
        values[name] = _decode_value(raw, layout, at, path, f"{where} {name}")
    for tag, (name, _) in _STREAM_FIELDS.items():
        if tag & CRITICAL and name not in values:
            raise FormatError(path, base, f"{where} lacks its required {name} field")
    try:
        return StreamInfo(**values)  # type: ignore[arg-type]  # the layouts give the right types
    except ValueError as error:
        raise FormatError(path, base, f"{where} is invalid: {error}") from None


def _decode_value(
    raw: bytes, layout: struct.Struct | type[str] | type[bytes], at: int, path: str, what: str
) -> str | bytes | int | Fraction:
    if not isinstance(layout, struct.Struct):
        return _utf8(raw, at, path, what) if layout is str else raw
    if len(raw) != layout.size:
        raise FormatError(path, at, f"{what} is {len(raw)} bytes, expected {layout.size}")
    if layout is _RATIO:
        numerator, denominator = _RATIO.unpack(raw)
        if denominator == 0:
            raise FormatError(path, at, f"{what} has a zero denominator")
        return Fraction(numerator, denominator)
    return int(layout.unpack(raw)[0])


def _decode_metadata_entry(raw: bytes, at: int, path: str) -> tuple[str, str]:
    if len(raw) < _U16.size:
        raise FormatError(path, at, "metadata entry is too short to hold its key length")
    (key_length,) = _U16.unpack_from(raw)
    end = _U16.size + key_length
    if end > len(raw):
        raise FormatError(
            path,
            at,
            f"metadata key declares {key_length} bytes but only {len(raw) - _U16.size} remain",
        )
    key = _utf8(raw[_U16.size : end], at, path, "metadata key")
    return key, _utf8(raw[end:], at, path, f"metadata value of {key!r}")


def _fields(body: bytes, base: int, path: str, where: str) -> Iterator[tuple[int, int, bytes]]:
    """Split a TLV list at file offset ``base`` into (tag, offset of the field, value)."""
    pos = 0
    while pos < len(body):
        at = base + pos
        if len(body) - pos < TLV.size:
            raise FormatError(path, at, f"{where} ends inside a field header")
        tag, length = TLV.unpack_from(body, pos)
        pos += TLV.size
        if length > len(body) - pos:
            raise FormatError(
                path,
                at,
                f"{where}: field 0x{tag:04x} declares {length} bytes "
                f"but only {len(body) - pos} remain",
            )
        yield tag, at, body[pos : pos + length]
        pos += length


def _skip_unknown(tag: int, at: int, path: str, where: str) -> None:
    """Unknown tags are skipped (a newer minor version's optional fields) unless critical."""
    if tag & CRITICAL:
        raise FormatError(
            path, at, f"{where} has unknown critical field 0x{tag:04x}: upgrade nvcodec"
        )


def _utf8(raw: bytes, at: int, path: str, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(path, at, f"{what} is not valid UTF-8") from None


def _check_ratio(name: str, value: Fraction) -> None:
    if value <= 0 or value.numerator > U32_MAX or value.denominator > U32_MAX:
        raise ValueError(f"{name} {value} must be positive with numerator and denominator < 2^32")


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} {value} is outside {low}..{high}")


# Packets -----------------------------------------------------------------------------------
# Error offsets below name the field at fault: field positions are in docs/format.md.


def encode_packet_header(header: PacketHeader) -> bytes:
    """Serialise a packet header (28 bytes, CRC included); the caller checked the ranges."""
    flags = FLAG_KEYFRAME if header.keyframe else 0
    fields = PACKET_HEADER.pack(
        PACKET_SYNC, header.stream, flags, header.pts, header.duration, header.payload_length
    )
    return fields + CRC.pack(zlib.crc32(fields))


def decode_packet_header(
    data: bytes, at: int, path: str, stream_count: int, room: int | None
) -> PacketHeader:
    """Check and parse the 28 header bytes of the packet at ``at``. The CRC (which covers the
    sync) is checked before any field is trusted; ``room`` is the bytes after the header, when
    known, which must hold the payload and its CRC."""
    check_crc(
        data[: PACKET_HEADER.size], data[PACKET_HEADER.size :], at + 24, path, "packet header"
    )
    _, stream, flags, pts, duration, length = PACKET_HEADER.unpack_from(data)
    if stream >= stream_count:
        raise FormatError(
            path, at + 4, f"packet names stream {stream} but the header declares {stream_count}"
        )
    if length > MAX_PACKET_BYTES:
        raise FormatError(
            path, at + 20, f"packet declares {length} bytes, over the limit of {MAX_PACKET_BYTES}"
        )
    if room is not None and length + CRC.size > room:
        raise FormatError(
            path,
            at + 20,
            f"packet declares {length} bytes (+{CRC.size} CRC) but only {room} remain",
        )
    return PacketHeader(stream, bool(flags & FLAG_KEYFRAME), pts, duration, length)


# Index and trailer -------------------------------------------------------------------------


def encode_index(index: Index) -> bytes:
    """Serialise the index: head, one summary per stream, keyframe entries, CRC."""
    parts = [INDEX_HEAD.pack(INDEX_SYNC, len(index.summaries), len(index.keyframes))]
    parts += (
        INDEX_SUMMARY.pack(s.stream, s.packet_count, s.payload_bytes, s.end_pts)
        for s in index.summaries
    )
    parts += (INDEX_ENTRY.pack(e.stream, e.pts, e.offset) for e in index.keyframes)
    data = b"".join(parts)
    if len(data) + CRC.size > MAX_INDEX_BYTES:
        raise NvcodecError(f"index of {len(index.keyframes)} keyframes exceeds 4 GiB")
    return data + CRC.pack(zlib.crc32(data))


def index_length(head: bytes, at: int, path: str, room: int | None) -> int:
    """The total length the index head (its first 10 bytes) declares, checked against the
    format limit and against ``room``, the bytes left from ``at`` when known."""
    _, stream_count, entry_count = INDEX_HEAD.unpack(head)
    length = _index_size(stream_count, entry_count)
    if length > MAX_INDEX_BYTES:
        raise FormatError(path, at, f"index declares {length} bytes, over the 4 GiB limit")
    if room is not None and length > room:
        raise FormatError(path, at, f"index declares {length} bytes but only {room} remain")
    return length


def decode_index(data: bytes, at: int, path: str, stream_count: int, first_packet: int) -> Index:
    """Check and parse the whole index found at ``at`` (its length is known from the trailer
    or its head). Counts are checked against the length before anything is allocated."""
    if len(data) < INDEX_HEAD.size + CRC.size or data[:4] != INDEX_SYNC:
        raise FormatError(path, at, f"expected the index at byte {at}")
    _, streams, entries = INDEX_HEAD.unpack_from(data)
    if _index_size(streams, entries) != len(data):
        raise FormatError(
            path,
            at,
            f"index declares {streams} streams and {entries} keyframes "
            f"({_index_size(streams, entries)} bytes) but is {len(data)} bytes long",
        )
    check_crc(data[: -CRC.size], data[-CRC.size :], at + len(data) - CRC.size, path, "index")
    if streams != stream_count:
        raise FormatError(
            path, at + 4, f"index lists {streams} streams but the header declares {stream_count}"
        )
    pos = INDEX_HEAD.size
    summaries = []
    for number in range(streams):
        summary = StreamSummary(*INDEX_SUMMARY.unpack_from(data, pos))
        if summary.stream != number:
            raise FormatError(
                path, at + pos, f"index summary {number} is for stream {summary.stream}"
            )
        summaries.append(summary)
        pos += INDEX_SUMMARY.size
    keyframes: list[KeyframeEntry] = []
    last_pts: list[int | None] = [None] * streams
    previous = first_packet - 1
    for _ in range(entries):
        entry = KeyframeEntry(*INDEX_ENTRY.unpack_from(data, pos))
        if entry.stream >= streams:
            raise FormatError(path, at + pos, f"index entry names unknown stream {entry.stream}")
        if not previous < entry.offset < at:
            raise FormatError(
                path, at + pos, f"index entry offset {entry.offset} is out of order or range"
            )
        before = last_pts[entry.stream]
        if before is not None and entry.pts < before:
            raise FormatError(path, at + pos, "index keyframes of a stream go back in time")
        keyframes.append(entry)
        last_pts[entry.stream] = entry.pts
        previous = entry.offset
        pos += INDEX_ENTRY.size
    return Index(tuple(summaries), tuple(keyframes))


def _index_size(stream_count: int, entry_count: int) -> int:
    return (
        INDEX_HEAD.size
        + stream_count * INDEX_SUMMARY.size
        + entry_count * INDEX_ENTRY.size
        + CRC.size
    )


def encode_trailer(index_offset: int, length: int) -> bytes:
    location = INDEX_LOCATION.pack(index_offset, length)
    return TRAILER.pack(index_offset, length, zlib.crc32(location), END_MAGIC)


def decode_trailer(data: bytes, at: int, path: str) -> tuple[int, int]:
    """Check the 24-byte trailer at ``at``; return (index offset, index length)."""
    index_offset, length, _, end_magic = TRAILER.unpack(data)
    if end_magic != END_MAGIC:
        raise FormatError(path, at + 16, "trailer lacks its end magic: the file is corrupted")
    crc_at = INDEX_LOCATION.size
    check_crc(data[:crc_at], data[crc_at : crc_at + CRC.size], at + crc_at, path, "trailer")
    return index_offset, length
