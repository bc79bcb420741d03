"""Reading ``.nvc`` files, verifying every CRC on the way (see docs/format.md)."""

from __future__ import annotations

import io
import os
import stat
import struct
from bisect import bisect_right
from collections.abc import Callable, Generator, Iterator
from operator import attrgetter
from types import TracebackType
from typing import BinaryIO

from nvcodec.container.format import (
    CRC,
    END_MAGIC,
    INDEX_HEAD_MAX,
    INDEX_SYNC,
    PACKET_HEADER_MAX,
    PACKET_SYNC,
    PREAMBLE_MAX,
    TRAILER,
    Index,
    IndexBuilder,
    KeyframeEntry,
    Packet,
    PacketHeader,
    StreamInfo,
    StreamSummary,
    check_crc,
    decode_header,
    decode_index,
    decode_packet_header,
    decode_preamble,
    decode_trailer,
    index_length,
)
from nvcodec.errors import FormatError
from nvcodec.utils.files import StrPath

_CHUNK = 1 << 20

# What a walk over the packets yields: (offset, header, payload; b"" when skipped).
_Walk = Generator[tuple[int, PacketHeader, bytes], None, Index | None]


class ContainerReader:
    """Reads a ``.nvc`` file: header on open, packets on demand.

    With a path the file is seekable and its index (found through the trailer) serves
    :meth:`summaries` and :meth:`seek`; a file cut short has no index and is walked instead.
    :meth:`from_stream` reads front to back once, for pipes.
    """

    path: str
    version: tuple[int, int]
    streams: list[StreamInfo]
    metadata: dict[str, str]
    file_size: int | None

    def __init__(self, path: StrPath, *, recover: bool = False) -> None:
        """Open ``path`` and check its header and (if the file has one) its index. With
        ``recover``, a damaged index or trailer is not fatal here: the file is then read as
        one cut short, and a full read meets the damage."""
        file = open(path, "rb")  # noqa: SIM115  # closed by close(), or below on failure
        try:
            info = os.fstat(file.fileno())
            size = info.st_size if stat.S_ISREG(info.st_mode) else None
            self._open(_Source(file, os.fspath(path), size), owned=True, recover=recover)
        except BaseException:
            file.close()
            raise

    @classmethod
    def from_stream(cls, fileobj: BinaryIO, name: str = "<stdin>") -> ContainerReader:
        """Read an open binary input without seeking; allows one pass over the packets (a
        further call, or seek(), raises io.UnsupportedOperation). It is not closed."""
        reader = cls.__new__(cls)
        reader._open(_Source(fileobj, name, None), owned=False)
        return reader

    def _open(self, source: _Source, owned: bool, recover: bool = False) -> None:
        self._src = source
        self._owned = owned
        self.path = source.name
        self.file_size = source.size
        preamble = source.read_upto(PREAMBLE_MAX)
        _, body_length, start = decode_preamble(preamble, self.path, self.file_size)
        length = start + body_length + CRC.size
        if length < len(preamble):  # a tiny header: the bytes read include a packet's first
            source.unread(preamble[length:])
            preamble = preamble[:length]
        header = decode_header(
            preamble + source.read(length - len(preamble), "file header"), self.path
        )
        self.version = header.version
        self.streams = list(header.streams)
        self.metadata = header.metadata
        self._first_packet = source.pos
        self._index: Index | None = None
        self._stream_keyframes: list[list[KeyframeEntry]] = [[] for _ in self.streams]
        if self.file_size is not None and self.file_size - TRAILER.size >= self._first_packet:
            try:
                self._load_index(self.file_size - TRAILER.size)
            except FormatError:
                if not recover:
                    raise

    @property
    def has_index(self) -> bool:
        """Whether the index is loaded: from the trailer at open, or after one full pass."""
        return self._index is not None

    def packets(
        self, stream: int | None = None, *, on_damage: Callable[[FormatError], None] | None = None
    ) -> Iterator[Packet]:
        """All packets (of one stream, if given) from the first, each CRC-checked. Ends only at
        a valid index and trailer matching the packets; a file cut short yields each complete
        packet, then raises FormatError.

        With ``on_damage`` (seekable files only), damage is passed to it instead and reading
        resumes at the next intact packet: lost packets are skipped, not fatal.
        """
        if stream is not None:
            self._check_stream(stream)
        if on_damage is not None and self.file_size is None:
            raise io.UnsupportedOperation(f"{self.path}: recovery needs a seekable file")
        return self._packets(self._first_packet, stream, on_damage)

    def summaries(self) -> list[StreamSummary]:
        """Per-stream counts; from the index, else by walking packet headers to the index."""
        index = self._index or _run_to_end(self._walk(self._first_packet, payloads=False))
        return list(index.summaries)

    def keyframes(self, stream: int) -> list[int]:
        """The pts of ``stream``'s keyframes, in file order; from the index, else by walking
        packet headers to the index (as :meth:`summaries`)."""
        self._check_stream(stream)
        index = self._index or _run_to_end(self._walk(self._first_packet, payloads=False))
        return [entry.pts for entry in index.keyframes if entry.stream == stream]

    def seek(
        self,
        stream: int,
        pts: int,
        *,
        on_damage: Callable[[FormatError], None] | None = None,
    ) -> Iterator[Packet]:
        """Packets of ``stream`` from its last keyframe at or before ``pts`` (else its first
        keyframe) to the end, checked as in :meth:`packets` (``on_damage`` too). Needs a
        seekable file."""
        self._check_stream(stream)
        if self.file_size is None:
            raise io.UnsupportedOperation(f"{self.path}: seek() needs a seekable file")
        return self._seek(stream, pts, on_damage)

    def close(self) -> None:
        """Close the file opened by path (one given to from_stream is the caller's to close)."""
        if self._owned:
            self._src.file.close()

    def __enter__(self) -> ContainerReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _check_stream(self, stream: int) -> None:
        if not 0 <= stream < len(self.streams):
            raise ValueError(f"{self.path}: no stream {stream} (it has {len(self.streams)})")

    def _load_index(self, trailer_at: int) -> None:
        """Load the index the trailer points at; without the end magic the file was cut short,
        so it has no index (reads then walk the packets, and report the truncation)."""
        self._src.seek(trailer_at)
        trailer = self._src.read(TRAILER.size, "trailer")
        if not trailer.endswith(END_MAGIC):
            return
        length = decode_trailer(trailer, trailer_at, self.path)
        at = trailer_at - length
        if at < self._first_packet:
            raise FormatError(
                self.path,
                trailer_at,
                f"trailer gives an index of {length} bytes, which would start at byte {at}, "
                f"inside the header (it ends at byte {self._first_packet})",
            )
        self._src.seek(at)
        data = self._src.read(length, "index")
        if not data.startswith(INDEX_SYNC):
            raise FormatError(
                self.path,
                trailer_at,
                f"trailer places the index at bytes {at}..{trailer_at}, where none starts",
            )
        self._use_index(decode_index(data, at, self.path, len(self.streams), self._first_packet))

    def _use_index(self, index: Index) -> None:
        self._index = index
        for entry in index.keyframes:
            self._stream_keyframes[entry.stream].append(entry)

    def _packets(
        self,
        start: int,
        stream: int | None,
        on_damage: Callable[[FormatError], None] | None = None,
    ) -> Iterator[Packet]:
        for offset, header, payload in self._walk(start, payloads=True, on_damage=on_damage):
            if stream is None or header.stream == stream:
                yield Packet(
                    header.stream, header.pts, header.duration, header.keyframe, payload, offset
                )

    def _seek(
        self, stream: int, pts: int, on_damage: Callable[[FormatError], None] | None
    ) -> Iterator[Packet]:
        start = self._find_keyframe(stream, pts)
        if start is not None:
            yield from self._packets(start, stream, on_damage)

    def _find_keyframe(self, stream: int, pts: int) -> int | None:
        """Offset of the keyframe to start from: bisect the index, or walk headers without one
        (keyframe pts never go back within a stream, so the walk stops at the first past pts)."""
        if self._index is not None:
            entries = self._stream_keyframes[stream]
            if not entries:
                return None
            return entries[max(bisect_right(entries, pts, key=attrgetter("pts")) - 1, 0)].offset
        found = None
        try:
            for offset, header, _ in self._walk(self._first_packet, payloads=False):
                if header.stream == stream and header.keyframe:
                    if header.pts > pts:
                        return offset if found is None else found
                    found = offset
        except FormatError:
            if found is None:
                raise
            # Damage after the start point: the walk from there yields up to it, then raises.
        return found

    def _walk(
        self,
        start: int,
        *,
        payloads: bool,
        on_damage: Callable[[FormatError], None] | None = None,
    ) -> _Walk:
        """Yield the packets from byte ``start`` up to the index, each checked (payloads read
        and CRC-checked, or skipped); return the index after checking it and the trailer. A
        walk from the first packet also checks that the index describes exactly what it saw.
        With ``on_damage``, damage goes there and the walk resumes at the next intact packet
        (returning None if it finds no intact index)."""
        seen = IndexBuilder(len(self.streams)) if start == self._first_packet else None
        src, pos = self._src, start
        while True:
            try:
                src.seek(pos)  # other walks may have moved the file
                sync = src.read_upto(len(PACKET_SYNC))
                if sync == INDEX_SYNC:
                    return self._finish_walk(pos, seen)
                header, payload = self._read_packet(pos, sync, payloads)
            except FormatError as error:
                if on_damage is None:
                    raise
                on_damage(error)
                seen = None  # packets are missing: the index cannot be checked against them
                found = self._resync(pos)
                if found is None:
                    return None
                pos = found
                continue
            if seen is not None:
                seen.add(header, pos)
            offset, pos = pos, src.pos  # before yielding: the consumer may move the file
            yield offset, header, payload

    def _read_packet(self, pos: int, sync: bytes, payloads: bool) -> tuple[PacketHeader, bytes]:
        """Check and read the packet at ``pos`` whose first bytes ``sync`` were just read."""
        src = self._src
        if len(sync) < len(PACKET_SYNC):
            raise FormatError(
                self.path, src.pos, f"file ends at byte {src.pos} before its index: truncated"
            )
        if sync != PACKET_SYNC:
            raise FormatError(self.path, pos, f"expected packet at byte {pos}, found {sync!r}")
        raw = sync + src.read_upto(PACKET_HEADER_MAX - len(sync))
        room = None if src.size is None else src.size - pos
        header, length = decode_packet_header(raw, pos, self.path, len(self.streams), room)
        src.unread(raw[length:])
        if not payloads:
            src.skip(header.payload_length + CRC.size, "packet payload")
            return header, b""
        payload = src.read(header.payload_length, "packet payload")
        check_crc(payload, src.read(CRC.size, "payload CRC"), src.pos - 4, self.path, "payload")
        return header, payload

    def _resync(self, damaged: int) -> int | None:
        """Where reading can resume after damage at byte ``damaged``: the next packet whose
        header CRC holds (a false match is a 2^-32 chance), or the index sync; None if neither
        follows. Searched a chunk at a time, so memory stays bounded."""
        src, pos = self._src, damaged + 1
        while True:
            src.seek(pos)
            chunk = src.read_upto(_CHUNK + PACKET_HEADER_MAX)
            if len(chunk) < len(PACKET_SYNC):
                return None
            for at in sorted(_all(chunk, PACKET_SYNC) + _all(chunk, INDEX_SYNC)):
                if at >= _CHUNK:
                    break  # the next chunk starts here
                if chunk[at : at + 4] == INDEX_SYNC:
                    return pos + at
                raw = chunk[at : at + PACKET_HEADER_MAX]
                try:
                    decode_packet_header(raw, pos + at, self.path, len(self.streams), None)
                except (FormatError, struct.error):
                    continue
                return pos + at
            if len(chunk) <= _CHUNK:
                return None
            pos += _CHUNK

    def _finish_walk(self, at: int, seen: IndexBuilder | None) -> Index:
        """Check the index at ``at`` (its sync already read) and the trailer that must end the
        file; after a full walk, check the index against the packets and keep it."""
        src = self._src
        head = INDEX_SYNC + src.read_upto(INDEX_HEAD_MAX - len(INDEX_SYNC))
        length = index_length(head, at, self.path, None if src.size is None else src.size - at)
        data = head + src.read(length - len(head), "index")
        index = decode_index(data, at, self.path, len(self.streams), self._first_packet)
        trailer_at = src.pos
        if decode_trailer(src.read(TRAILER.size, "trailer"), trailer_at, self.path) != length:
            raise FormatError(
                self.path, trailer_at, "trailer does not point at the index before it"
            )
        if src.read_upto(1):
            raise FormatError(self.path, src.pos - 1, "unexpected data after the trailer")
        if seen is not None:
            actual = seen.build()
            if actual.summaries != index.summaries:
                raise FormatError(self.path, at, "index stream summaries do not match the packets")
            if actual.keyframes != index.keyframes:
                raise FormatError(self.path, at, "index keyframe entries do not match the packets")
            if self._index is None:
                self._use_index(index)
        return index


def _run_to_end(walk: _Walk) -> Index:
    """Run a walk (one without recovery) to its end; return the index it checked there."""
    try:
        while True:
            next(walk)
    except StopIteration as end:
        assert end.value is not None  # only a recovering walk ends without an index
        return end.value


def _all(data: bytes, needle: bytes) -> list[int]:
    """Every position of ``needle`` in ``data``."""
    found, at = [], data.find(needle)
    while at >= 0:
        found.append(at)
        at = data.find(needle, at + 1)
    return found


class _Source:
    """A binary file read front to back, counting the offset that errors report."""

    def __init__(self, file: BinaryIO, name: str, size: int | None) -> None:
        self.file = file
        self.name = name
        self.size = size  # None for a stream, which is then never sought
        self.pos = 0
        self._pending = b""  # bytes read ahead and given back (``unread``), next to be read

    def remaining(self) -> int | None:
        return None if self.size is None else self.size - self.pos

    def seek(self, offset: int) -> None:
        """Go to ``offset``; a stream can only 'seek' to where it already is."""
        if offset == self.pos:
            return
        self._pending = b""
        if self.size is None:
            raise io.UnsupportedOperation(
                f"{self.name}: a stream is read once, front to back; this needs a seekable file"
            )
        self.file.seek(offset)
        self.pos = offset

    def read_upto(self, n: int) -> bytes:
        """Up to ``n`` bytes, fewer only at the end. Read in chunks, so a corrupt length on a
        stream cannot make us allocate more than the stream actually holds."""
        parts = [self._pending[:n]]
        self._pending = self._pending[n:]
        n -= len(parts[0])
        while n > 0:
            part = self.file.read(min(n, _CHUNK))
            if not part:
                break
            parts.append(part)
            n -= len(part)
        data = b"".join(parts)
        self.pos += len(data)
        return data

    def unread(self, data: bytes) -> None:
        """Give back the last ``data`` read: variable-length fields are parsed from a
        read-ahead, and a stream cannot seek back."""
        self._pending = data + self._pending
        self.pos -= len(data)

    def read(self, n: int, what: str) -> bytes:
        start = self.pos
        data = self.read_upto(n)
        if len(data) < n:
            raise FormatError(
                self.name, start, f"{what} is truncated: the file ends at byte {self.pos}"
            )
        return data

    def skip(self, n: int, what: str) -> None:
        """Move past ``n`` bytes: a seek when the file has them, else read and drop them."""
        remaining = self.remaining()
        if remaining is not None and n <= remaining:
            self.seek(self.pos + n)
            return
        start = self.pos
        while n > 0:
            got = len(self.read_upto(min(n, _CHUNK)))
            if not got:
                raise FormatError(
                    self.name, start, f"{what} is truncated: the file ends at byte {self.pos}"
                )
            n -= got
