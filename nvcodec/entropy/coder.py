"""One ANS payload for many groups of symbols, each group coded i.i.d. under one integer table.

constriction costs a few microseconds per call, so symbols are batched by table: one call per
group, never per symbol. ANS is a stack, so ``Encoder`` writes the groups in reverse and the
``Decoder`` reads them forward, in the order they were added. The payload is the coder's uint32
words, little-endian. Decoding trusts nothing in the payload: how much is decoded comes from the
caller's arguments, and any failure surfaces as ``BitstreamError``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from typing import TypeVar

import constriction
import numpy as np

from nvcodec.entropy.tables import CdfTables
from nvcodec.errors import BitstreamError

_T = TypeVar("_T")


class Encoder:
    """Collects (table, symbols) groups in decoding order; ``finish`` codes them all at once."""

    def __init__(self) -> None:
        self._groups: list[tuple[CdfTables, int, np.ndarray]] = []

    def add(self, tables: CdfTables, index: int, symbols: np.ndarray) -> None:
        """Queue ``symbols`` (indices into table ``index``) to be coded after earlier groups."""
        symbols = np.asarray(symbols).ravel()
        tables.check_symbols(index, symbols)
        self._groups.append((tables, index, symbols.astype(np.int32)))

    def finish(self) -> bytes:
        """Code every queued group into one payload (empty when nothing costs a bit)."""
        coder = constriction.stream.stack.AnsCoder()
        for tables, index, symbols in reversed(self._groups):
            # A one-symbol table carries no information (and constriction rejects it).
            if symbols.size and tables.lengths[index] > 1:
                coder.encode_reverse(symbols, tables.model(index))
        return coder.get_compressed().astype("<u4").tobytes()


class Decoder:
    """Reads groups back from a payload, in the order an ``Encoder`` added them."""

    def __init__(self, data: bytes) -> None:
        if len(data) % 4:
            raise BitstreamError(f"entropy payload of {len(data)} bytes is not whole 32-bit words")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        self._coder = _guarded(lambda: constriction.stream.stack.AnsCoder(words))

    def read(self, tables: CdfTables, index: int, count: int) -> np.ndarray:
        """Decode ``count`` symbols (int32) of table ``index``; the count is the caller's."""
        count = operator.index(count)
        if count < 0:
            raise ValueError(f"cannot decode a negative number of symbols ({count})")
        if tables.lengths[index] == 1:
            return np.zeros(count, dtype=np.int32)
        model = tables.model(index)
        return _guarded(lambda: self._coder.decode(model, count))

    def finish(self) -> None:
        """Raise BitstreamError if the payload holds more than was read (a sign of corruption)."""
        if not self._coder.is_empty():
            raise BitstreamError("entropy payload has data left over after decoding")


def encode(tables: CdfTables, groups: Iterable[tuple[np.ndarray, int]]) -> bytes:
    """Code (symbols, table index) groups into one payload, all under ``tables``."""
    encoder = Encoder()
    for symbols, index in groups:
        encoder.add(tables, index, symbols)
    return encoder.finish()


def decode(tables: CdfTables, data: bytes, groups: Iterable[tuple[int, int]]) -> list[np.ndarray]:
    """Inverse of ``encode`` given the (count, table index) of every group."""
    decoder = Decoder(data)
    symbols = [decoder.read(tables, index, count) for count, index in groups]
    decoder.finish()
    return symbols


def _guarded(call: Callable[[], _T]) -> _T:
    """Run a constriction call, turning whatever it raises on bad data into BitstreamError."""
    try:
        return call()
    except Exception as exc:
        raise BitstreamError("corrupt entropy payload: " + " ".join(str(exc).split())) from exc
