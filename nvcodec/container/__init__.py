"""The ``.nvc`` container: streams of coded packets, with an index for seeking.

The byte layout is specified in docs/format.md; malformed files raise ``FormatError``.
"""

from nvcodec.container.format import (
    MAX_HEADER_BYTES,
    MAX_METADATA_ENTRIES,
    MAX_PACKET_BYTES,
    MAX_STREAMS,
    Packet,
    StreamInfo,
    StreamKind,
    StreamSummary,
)
from nvcodec.container.reader import ContainerReader
from nvcodec.container.writer import ContainerWriter

__all__ = [
    "MAX_HEADER_BYTES",
    "MAX_METADATA_ENTRIES",
    "MAX_PACKET_BYTES",
    "MAX_STREAMS",
    "ContainerReader",
    "ContainerWriter",
    "Packet",
    "StreamInfo",
    "StreamKind",
    "StreamSummary",
]
