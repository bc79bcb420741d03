"""Writing ``.nvc`` files front to back (see docs/format.md)."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from types import TracebackType
from typing import BinaryIO

from nvcodec.container.format import (
    CRC,
    I64_MAX,
    I64_MIN,
    MAX_PACKET_BYTES,
    U32_MAX,
    IndexBuilder,
    Packet,
    StreamInfo,
    encode_header,
    encode_index,
    encode_packet_header,
    encode_trailer,
)
from nvcodec.errors import NvcodecError
from nvcodec.utils.files import StrPath, atomic_output


class ContainerWriter:
    """Writes the header at once, packets as they come, and the index at :meth:`close`.

    It never seeks (offsets are counted), so it can write to a pipe, and it never keeps a
    payload: memory is the per-stream counters plus one small entry per keyframe. With a path,
    the file appears under its name only once closed; leaving the ``with`` block by an
    exception removes it.
    """

    def __init__(
        self,
        path: StrPath,
        streams: Sequence[StreamInfo],
        metadata: Mapping[str, str] | None = None,
        *,
        overwrite: bool = False,
        protect: Sequence[StrPath] = (),
    ) -> None:
        header = encode_header(streams, metadata or {})  # invalid input fails before any file
        with ExitStack() as stack:
            file = stack.enter_context(atomic_output(path, overwrite=overwrite, protect=protect))
            self._begin(file, header, len(streams))
            self._output = stack.pop_all()  # close() or __exit__ now commits or discards

    @classmethod
    def to_stream(
        cls,
        fileobj: BinaryIO,
        streams: Sequence[StreamInfo],
        metadata: Mapping[str, str] | None = None,
    ) -> ContainerWriter:
        """Write to an open binary output that need not seek (stdout); it is flushed at close,
        not closed. An exception leaves the output without its index: readers see truncation."""
        writer = cls.__new__(cls)
        writer._output = ExitStack()
        writer._begin(fileobj, encode_header(streams, metadata or {}), len(streams))
        return writer

    def _begin(self, file: BinaryIO, header: bytes, stream_count: int) -> None:
        self._file = file
        self._offset = 0
        self._closed = False
        self._stream_count = stream_count
        self._index = IndexBuilder(stream_count)
        self._last_keyframe_pts: list[int | None] = [None] * stream_count
        self._emit(header)

    def write(self, packet: Packet) -> None:
        """Append one packet; it is checked in full before any byte of it is written."""
        if self._closed:
            raise ValueError("write() on a closed ContainerWriter")
        self._check(packet)
        header = packet.header
        offset = self._offset
        self._emit(encode_packet_header(header))
        self._emit(packet.payload)
        self._emit(CRC.pack(zlib.crc32(packet.payload)))
        self._index.add(header, offset)
        if packet.keyframe:
            self._last_keyframe_pts[packet.stream] = packet.pts

    def close(self) -> None:
        """Write the index and trailer, then (path mode) move the file into place."""
        if self._closed:
            return
        self._closed = True
        with self._output:  # an exception here still removes the temp file
            index = encode_index(self._index.build())
            self._emit(index)
            self._emit(encode_trailer(len(index)))
            self._file.flush()

    def __enter__(self) -> ContainerWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        elif not self._closed:
            self._closed = True
            self._output.__exit__(exc_type, exc, traceback)  # discards the temp file

    def _check(self, packet: Packet) -> None:
        """Reject what the format cannot hold: ValueError for a caller's bug, NvcodecError for
        a payload over the format limit (content, not code, decides that)."""
        if not 0 <= packet.stream < self._stream_count:
            raise ValueError(
                f"packet names stream {packet.stream}, but {self._stream_count} are declared"
            )
        if not 0 <= packet.duration <= U32_MAX:
            raise ValueError(f"packet duration {packet.duration} is outside 0..{U32_MAX}")
        if not I64_MIN <= packet.pts <= I64_MAX - packet.duration:
            raise ValueError(f"packet pts {packet.pts} (+ duration) overflows a signed 64-bit int")
        if len(packet.payload) > MAX_PACKET_BYTES:
            raise NvcodecError(
                f"a {len(packet.payload)}-byte packet exceeds the limit of {MAX_PACKET_BYTES}"
            )
        last = self._last_keyframe_pts[packet.stream]
        if packet.keyframe and last is not None and packet.pts < last:
            raise ValueError(
                f"keyframe pts {packet.pts} of stream {packet.stream} comes after {last}: "
                "a stream's keyframes must not go back in time (seeking bisects them)"
            )

    def _emit(self, data: bytes) -> None:
        self._file.write(data)
        self._offset += len(data)
