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
VERSION = (2, 0)
PACKET_SYNC = b"NvPk"
INDEX_SYNC = b"NvIx"
END_MAGIC = b"NVCi"

MAX_HEADER_BYTES = 1 << 20
MAX_STREAMS = 64
MAX_METADATA_ENTRIES = 1024
MAX_PACKET_BYTES = 256 << 20
MAX_INDEX_BYTES = 0xFFFF_FFFF  # the trailer stores the index length as a u32

U16_MAX = 0xFFFF
U32_MAX = 0xFFFF_FFFF
U64_MAX = (1 << 64) - 1
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1

VARINT_MAX_BYTES = 10  # a u64 in 7-bit groups
PREAMBLE = struct.Struct("<8sBB")  # magic, version major, minor; then the body length, a varint
PREAMBLE_MAX = PREAMBLE.size + VARINT_MAX_BYTES  # what holds any body length, to check it
TRAILER = struct.Struct("<I4s")  # index length, end magic
CRC = struct.Struct("<I")
SHA256_BYTES = 32

# A packet's fields after its sync: stream, flags (a byte), pts, duration, payload length.
PACKET_HEADER_MAX = len(PACKET_SYNC) + 3 + 1 + VARINT_MAX_BYTES + 5 + 5 + CRC.size
# The fewest bytes a packet takes (one-byte varints, empty payload): a bound for readers that
# infer how many packets fit in a span of the file.
PACKET_MIN_OVERHEAD = len(PACKET_SYNC) + 1 + 1 + 1 + 1 + 1 + 2 * CRC.size
INDEX_HEAD_MAX = len(INDEX_SYNC) + 5  # sync, body length (a varint below 2^32)
FLAG_KEYFRAME = 0x01

CRITICAL = 1  # tag bit: a reader that does not know the tag must reject the file
TAG_STREAM = 1
TAG_METADATA_ENTRY = 2
TAG_KIND = 1
TAG_CODEC = 3
TAG_TIME_BASE = 5
TAG_MODEL_ID = 2
TAG_MODEL_SHA256 = 4
TAG_WIDTH = 6
TAG_HEIGHT = 8
TAG_FRAME_RATE = 10
TAG_SAMPLE_RATE = 12
TAG_CHANNELS = 14
TAG_DURATION = 16
TAG_CONFIG = 18


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
        if len(self.model_sha256) not in (0, SHA256_BYTES):
            raise ValueError(f"model_sha256 is {len(self.model_sha256)} bytes, not {SHA256_BYTES}")


@dataclass(frozen=True, slots=True)
class Packet:
    """One coded unit of a stream. ``offset`` (where the reader found it) is not compared."""

    stream: int
    pts: int
    duration: int
    keyframe: bool
    payload: bytes
    offset: int = field(default=-1, compare=False)

    @property
    def header(self) -> PacketHeader:
        """The header the file stores for this packet."""
        return PacketHeader(self.stream, self.keyframe, self.pts, self.duration, len(self.payload))


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


# Varints -----------------------------------------------------------------------------------


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128: seven bits a byte, low first, the top bit set on all but the last."""
    if value < 0:
        raise ValueError(f"varint {value} is negative")
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it; ValueError if it runs off the end, is
    longer than a u64 needs, or is not minimal (one value, one encoding)."""
    value = 0
    for shift in range(0, 7 * VARINT_MAX_BYTES, 7):
        if pos >= len(data):
            raise ValueError("is truncated")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if byte == 0 and shift:
                raise ValueError("is not a minimal varint")
            return value, pos
    raise ValueError(f"is not a valid varint (over {VARINT_MAX_BYTES} bytes)")


def zigzag(value: int) -> int:
    """A signed 64-bit integer as an unsigned one, small magnitudes small: 0, -1, 1 -> 0, 1, 2."""
    return (value << 1) ^ (value >> 63)


def unzigzag(value: int) -> int:
    return (value >> 1) ^ -(value & 1)


class _Cursor:
    """Reads fields from ``data``, which starts at file offset ``base``; whatever runs off the
    end, is not a minimal varint, or exceeds its limit is a FormatError at the field's offset."""

    def __init__(self, data: bytes, base: int, path: str, where: str) -> None:
        self.data, self.base, self.path, self.where = data, base, path, where
        self.pos = 0

    @property
    def at(self) -> int:
        return self.base + self.pos

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def fail(self, at: int, problem: str) -> FormatError:
        return FormatError(self.path, at, f"{self.where} {problem}")

    def take(self, n: int, what: str) -> bytes:
        if n > self.left:
            raise self.fail(self.at, f"is truncated inside its {what}")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def varint(self, what: str, limit: int = U64_MAX) -> int:
        start = self.at
        try:
            value, self.pos = decode_varint(self.data, self.pos)
        except ValueError as error:
            raise self.fail(start, f"{what} {error}") from None
        if value > limit:
            raise self.fail(start, f"{what} {value} is over the limit of {limit}")
        return value

    def signed(self, what: str) -> int:
        return unzigzag(self.varint(what))


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

# Stream field tag -> (StreamInfo attribute, value layout: an unsigned varint's limit, two
# varints for a Fraction, or str / bytes).
_STREAM_FIELDS: dict[int, tuple[str, int | type[Fraction] | type[str] | type[bytes]]] = {
    TAG_KIND: ("kind", 0xFF),
    TAG_CODEC: ("codec", str),
    TAG_TIME_BASE: ("time_base", Fraction),
    TAG_MODEL_ID: ("model_id", str),
    TAG_MODEL_SHA256: ("model_sha256", bytes),
    TAG_WIDTH: ("width", U32_MAX),
    TAG_HEIGHT: ("height", U32_MAX),
    TAG_FRAME_RATE: ("frame_rate", Fraction),
    TAG_SAMPLE_RATE: ("sample_rate", U32_MAX),
    TAG_CHANNELS: ("channels", U16_MAX),
    TAG_DURATION: ("duration", I64_MAX),
    TAG_CONFIG: ("config", bytes),
}


def encode_header(streams: Sequence[StreamInfo], metadata: Mapping[str, str]) -> bytes:
    """Serialise the whole file header: preamble, field list and CRC."""
    if len(streams) > MAX_STREAMS:
        raise NvcodecError(f"{len(streams)} streams exceed the limit of {MAX_STREAMS}")
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise NvcodecError(
            f"{len(metadata)} metadata entries exceed the limit of {MAX_METADATA_ENTRIES}"
        )
    fields = [_field(TAG_STREAM, _encode_stream(stream)) for stream in streams]
    for key, value in metadata.items():
        raw_key = key.encode()
        entry = encode_varint(len(raw_key)) + raw_key + value.encode()
        fields.append(_field(TAG_METADATA_ENTRY, entry))
    body = b"".join(fields)
    if len(body) > MAX_HEADER_BYTES:
        raise NvcodecError(
            f"file header would be {len(body)} bytes, over the limit of {MAX_HEADER_BYTES} "
            "(too much metadata or codec config)"
        )
    head = PREAMBLE.pack(MAGIC, *VERSION) + encode_varint(len(body)) + body
    return head + CRC.pack(zlib.crc32(head))


def decode_preamble(data: bytes, path: str, size: int | None) -> tuple[tuple[int, int], int, int]:
    """Check magic, version and body length of a header's first ``PREAMBLE_MAX`` bytes (fewer
    if the file is shorter); return (version, body length, preamble length). ``size`` is the
    file size when known."""
    if data[: len(MAGIC)] != MAGIC[: len(data)]:
        raise FormatError(path, 0, "not an nvcodec file (bad magic bytes)")
    if len(data) <= PREAMBLE.size:
        raise FormatError(path, 0, f"file header is truncated: the file ends at byte {len(data)}")
    _, major, minor = PREAMBLE.unpack_from(data)
    if major != VERSION[0]:
        if major == 0:
            problem = "is unknown"
        elif major < VERSION[0]:
            problem = "was written by an older nvcodec and is no longer read: encode it again"
        else:
            problem = f"is newer than this nvcodec supports ({VERSION[0]}.x): upgrade nvcodec"
        raise FormatError(path, 8, f"format version {major}.{minor} {problem}")
    cursor = _Cursor(data, 0, path, "file header")
    cursor.pos = PREAMBLE.size
    body_length = cursor.varint("length", MAX_HEADER_BYTES)
    if size is not None and body_length + CRC.size > size - cursor.pos:
        raise FormatError(
            path,
            PREAMBLE.size,
            f"header declares {body_length} bytes (+{CRC.size} CRC) "
            f"but only {size - cursor.pos} remain",
        )
    return (major, minor), body_length, cursor.pos


def decode_header(data: bytes, path: str) -> Header:
    """Check and parse a whole file header (preamble, body, CRC), which is at offset 0."""
    version, body_length, start = decode_preamble(data[:PREAMBLE_MAX], path, len(data))
    end = start + body_length
    check_crc(data[:end], data[end : end + CRC.size], end, path, "file header")
    streams: list[StreamInfo] = []
    metadata: dict[str, str] = {}
    for tag, at, value, value_at in _fields(data[start:end], start, path, "file header"):
        if tag == TAG_STREAM:
            if len(streams) == MAX_STREAMS:
                raise FormatError(path, at, f"more than {MAX_STREAMS} streams")
            streams.append(_decode_stream(value, value_at, path, len(streams)))
        elif tag == TAG_METADATA_ENTRY:
            if len(metadata) == MAX_METADATA_ENTRIES:
                raise FormatError(path, at, f"more than {MAX_METADATA_ENTRIES} metadata entries")
            key, text = _decode_metadata_entry(value, value_at, path)
            if key in metadata:
                raise FormatError(path, at, f"metadata key {key!r} appears twice")
            metadata[key] = text
        else:
            _skip_unknown(tag, at, path, "file header")
    return Header(version, tuple(streams), metadata)


def _field(tag: int, value: bytes) -> bytes:
    return encode_varint(tag) + encode_varint(len(value)) + value


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
        elif layout is Fraction:
            raw = encode_varint(value.numerator) + encode_varint(value.denominator)
        else:
            raw = encode_varint(value)
        fields.append(_field(tag, raw))
    return b"".join(fields)


def _decode_stream(body: bytes, base: int, path: str, number: int) -> StreamInfo:
    where = f"stream {number}"
    values: dict[str, str | bytes | int | Fraction] = {}
    for tag, at, raw, value_at in _fields(body, base, path, where):
        if tag not in _STREAM_FIELDS:
            _skip_unknown(tag, at, path, where)
            continue
        name, layout = _STREAM_FIELDS[tag]
        if name in values:
            raise FormatError(path, at, f"{where} has two {name} fields")
        values[name] = _decode_value(raw, layout, value_at, path, f"{where} {name}")
    for tag, (name, _) in _STREAM_FIELDS.items():
        if tag & CRITICAL and name not in values:
            raise FormatError(path, base, f"{where} lacks its required {name} field")
    try:
        return StreamInfo(**values)  # type: ignore[arg-type]  # the layouts give the right types
    except ValueError as error:
        raise FormatError(path, base, f"{where} is invalid: {error}") from None


def _decode_value(
    raw: bytes,
    layout: int | type[Fraction] | type[str] | type[bytes],
    at: int,
    path: str,
    what: str,
) -> str | bytes | int | Fraction:
    if layout is str:
        return _utf8(raw, at, path, what)
    if layout is bytes:
        return raw
    cursor = _Cursor(raw, at, path, what)
    if layout is Fraction:
        numerator = cursor.varint("numerator", U32_MAX)
        denominator = cursor.varint("denominator", U32_MAX)
        if denominator == 0:
            raise FormatError(path, at, f"{what} has a zero denominator")
        value: int | Fraction = Fraction(numerator, denominator)
    else:
        assert isinstance(layout, int)
        value = cursor.varint("value", layout)
    if cursor.left:
        raise FormatError(path, cursor.at, f"{what} has {cursor.left} bytes after its value")
    return value


def _decode_metadata_entry(raw: bytes, at: int, path: str) -> tuple[str, str]:
    cursor = _Cursor(raw, at, path, "metadata entry")
    key_length = cursor.varint("key length", U32_MAX)
    if key_length > cursor.left:
        raise FormatError(
            path, at, f"metadata key declares {key_length} bytes but only {cursor.left} remain"
        )
    key = _utf8(cursor.take(key_length, "key"), at, path, "metadata key")
    return key, _utf8(raw[cursor.pos :], at, path, f"metadata value of {key!r}")


def _fields(body: bytes, base: int, path: str, where: str) -> Iterator[tuple[int, int, bytes, int]]:
    """Split a field list at file offset ``base`` into (tag, offset of the field, value,
    offset of the value)."""
    cursor = _Cursor(body, base, path, where)
    while cursor.left:
        at = cursor.at
        tag = cursor.varint("field tag", U32_MAX)
        length = cursor.varint(f"field {tag} length", U32_MAX)
        if length > cursor.left:
            raise FormatError(
                path,
                at,
                f"{where}: field {tag} declares {length} bytes but only {cursor.left} remain",
            )
        value_at = cursor.at
        yield tag, at, cursor.take(length, f"field {tag}"), value_at


def _skip_unknown(tag: int, at: int, path: str, where: str) -> None:
    """Unknown tags are skipped (a newer minor version's optional fields) unless critical."""
    if tag & CRITICAL:
        raise FormatError(path, at, f"{where} has unknown critical field {tag}: upgrade nvcodec")


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


def encode_packet_header(header: PacketHeader) -> bytes:
    """Serialise a packet header (CRC included); the caller checked the ranges."""
    fields = (
        PACKET_SYNC
        + encode_varint(header.stream)
        + bytes([FLAG_KEYFRAME if header.keyframe else 0])
        + encode_varint(zigzag(header.pts))
        + encode_varint(header.duration)
        + encode_varint(header.payload_length)
    )
    return fields + CRC.pack(zlib.crc32(fields))


def packet_size(header: PacketHeader) -> int:
    """The bytes a packet takes in the file: header, payload and payload CRC."""
    return len(encode_packet_header(header)) + header.payload_length + CRC.size


def decode_packet_header(
    data: bytes, at: int, path: str, stream_count: int, room: int | None
) -> tuple[PacketHeader, int]:
    """Check and parse the header of the packet at ``at`` from ``data`` (its first bytes, up
    to ``PACKET_HEADER_MAX``); return it and its length. The CRC (which covers the sync) is
    checked before any field is trusted; ``room`` is the bytes from ``at`` to the end of the
    file, when known, which must hold the header, the payload and its CRC."""
    cursor = _Cursor(data, at, path, "packet header")
    cursor.take(len(PACKET_SYNC), "sync")
    stream = cursor.varint("stream", U16_MAX)
    flags = cursor.take(1, "flags")[0]
    pts = cursor.signed("pts")
    duration = cursor.varint("duration", U32_MAX)
    length_at = cursor.at
    length = cursor.varint("payload length", U32_MAX)
    crc_at = cursor.pos
    check_crc(data[:crc_at], cursor.take(CRC.size, "CRC"), at + crc_at, path, "packet header")
    if stream >= stream_count:
        raise FormatError(
            path, at + 4, f"packet names stream {stream} but the header declares {stream_count}"
        )
    if length > MAX_PACKET_BYTES:
        raise FormatError(
            path, length_at, f"packet declares {length} bytes, over the limit of {MAX_PACKET_BYTES}"
        )
    if room is not None and cursor.pos + length + CRC.size > room:
        raise FormatError(
            path,
            length_at,
            f"packet declares {length} bytes (+{CRC.size} CRC) but only {room - cursor.pos} remain",
        )
    return PacketHeader(stream, bool(flags & FLAG_KEYFRAME), pts, duration, length), cursor.pos


# Index and trailer -------------------------------------------------------------------------


def encode_index(index: Index) -> bytes:
    """Serialise the index: sync, body length, counts, one summary per stream, keyframe
    entries (offsets as differences from the entry before), CRC."""
    parts = [encode_varint(len(index.summaries)), encode_varint(len(index.keyframes))]
    for s in index.summaries:
        parts += [
            encode_varint(s.packet_count),
            encode_varint(s.payload_bytes),
            encode_varint(zigzag(s.end_pts)),
        ]
    previous = 0
    for e in index.keyframes:
        parts += [
            encode_varint(e.stream),
            encode_varint(zigzag(e.pts)),
            encode_varint(e.offset - previous),
        ]
        previous = e.offset
    body = b"".join(parts)
    data = INDEX_SYNC + encode_varint(len(body)) + body
    if len(data) + CRC.size > MAX_INDEX_BYTES:
        raise NvcodecError(f"index of {len(index.keyframes)} keyframes exceeds 4 GiB")
    return data + CRC.pack(zlib.crc32(data))


def index_length(head: bytes, at: int, path: str, room: int | None) -> int:
    """The total length the index head (its sync and first bytes, up to ``INDEX_HEAD_MAX``)
    declares, checked against the format limit and against ``room``, the bytes left from
    ``at`` when known."""
    cursor = _Cursor(head, at, path, "index")
    cursor.take(len(INDEX_SYNC), "sync")
    body_length = cursor.varint("length", U32_MAX)
    length = cursor.pos + body_length + CRC.size
    if length > MAX_INDEX_BYTES:
        raise FormatError(path, at, f"index declares {length} bytes, over the 4 GiB limit")
    if room is not None and length > room:
        raise FormatError(path, at, f"index declares {length} bytes but only {room} remain")
    return length


# The fewest bytes a keyframe entry takes (three one-byte varints): bounds the declared count
# before anything is allocated.
_MIN_ENTRY_BYTES = 3


def decode_index(data: bytes, at: int, path: str, stream_count: int, first_packet: int) -> Index:
    """Check and parse the whole index found at ``at`` (its length is known from the trailer
    or its head). Counts are checked against the length before anything is allocated."""
    if data[: len(INDEX_SYNC)] != INDEX_SYNC:
        raise FormatError(path, at, f"expected the index at byte {at}")
    declared = index_length(data[:INDEX_HEAD_MAX], at, path, None)
    if declared != len(data):
        raise FormatError(path, at, f"index declares {declared} bytes but is {len(data)} long")
    check_crc(data[: -CRC.size], data[-CRC.size :], at + len(data) - CRC.size, path, "index")
    cursor = _Cursor(data[: -CRC.size], at, path, "index")
    cursor.take(len(INDEX_SYNC), "sync")
    cursor.varint("length")
    count_at = cursor.at
    streams = cursor.varint("stream count", U16_MAX)
    if streams != stream_count:
        raise FormatError(
            path, count_at, f"index lists {streams} streams but the header declares {stream_count}"
        )
    entries_at = cursor.at
    entries = cursor.varint("keyframe count")
    room = cursor.left // _MIN_ENTRY_BYTES
    if entries > room:
        raise FormatError(
            path, entries_at, f"index keyframe count {entries} is over the limit of {room}"
        )
    summaries = []
    for number in range(streams):
        summaries.append(
            StreamSummary(
                number,
                cursor.varint("packet count"),
                cursor.varint("payload bytes"),
                cursor.signed("end pts"),
            )
        )
    keyframes: list[KeyframeEntry] = []
    last_pts: list[int | None] = [None] * streams
    previous = 0
    for _ in range(entries):
        entry_at = cursor.at
        stream = cursor.varint("entry stream", U16_MAX)
        pts = cursor.signed("entry pts")
        step = cursor.varint("entry offset")
        entry = KeyframeEntry(stream, pts, previous + step)
        if entry.stream >= streams:
            raise FormatError(path, entry_at, f"index entry names unknown stream {entry.stream}")
        if not (step > 0 or not keyframes) or not first_packet <= entry.offset < at:
            raise FormatError(
                path, entry_at, f"index entry offset {entry.offset} is out of order or range"
            )
        before = last_pts[entry.stream]
        if before is not None and entry.pts < before:
            raise FormatError(path, entry_at, "index keyframes of a stream go back in time")
        keyframes.append(entry)
        last_pts[entry.stream] = entry.pts
        previous = entry.offset
    if cursor.left:
        raise FormatError(path, cursor.at, f"index has {cursor.left} bytes after its entries")
    return Index(tuple(summaries), tuple(keyframes))


def encode_trailer(length: int) -> bytes:
    """The last bytes of a file: the index's length (so it ends where the trailer starts)."""
    return TRAILER.pack(length, END_MAGIC)


def decode_trailer(data: bytes, at: int, path: str) -> int:
    """Check the trailer at ``at``; return the index length it gives. A damaged length is
    caught where it points: no index sync there, or an index of another length or CRC."""
    length, end_magic = TRAILER.unpack(data)
    if end_magic != END_MAGIC:
        raise FormatError(path, at + 4, "trailer lacks its end magic: the file is corrupted")
    return length
