"""One ANS payload for many groups of symbols, each group coded i.i.d. under one integer table.

constriction costs a few microseconds per call, so symbols are batched by table: one call per
group, never per symbol (or per group of symbols that each name their own table row, which
constriction takes as one array of probabilities). ANS is a stack, so ``Encoder`` writes the
groups in reverse and the ``Decoder`` reads them forward, in the order they were added. The
payload is the coder's uint32 words, little-endian. Decoding trusts nothing in the payload: how
much is decoded comes from the caller's arguments, and any failure surfaces as
``BitstreamError``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import constriction
import numpy as np

from nvcodec.entropy.tables import CdfTables
from nvcodec.errors import BitstreamError

_T = TypeVar("_T")
# Categorical models whose probabilities come with each call, one row per symbol.
_ROW_MODELS = constriction.stream.model.Categorical(perfect=False)


def _row_probabilities(tables: CdfTables, rows: np.ndarray) -> np.ndarray:
    """(n, L) exact dyadic probabilities of table rows that all have length L (>= 2): the same
    numbers ``CdfTables.model`` gives constriction, so the same bytes."""
    if not rows.size:
        return np.zeros((0, 2))
    if rows.min() < 0 or rows.max() >= tables.num_tables:
        raise ValueError("table row out of range")
    lengths = tables.lengths[rows]
    length = int(lengths[0])
    if length < 2 or np.any(lengths != length):
        raise ValueError("rows coded together must share one length of at least 2")
    return tables.probabilities[rows, :length]


class Encoder:
    """Collects (table, symbols) groups in decoding order; ``finish`` codes them all at once."""

    def __init__(self) -> None:
        # (model, per-symbol probabilities or None, symbols), in decoding order.
        self._groups: list[tuple[Any, np.ndarray | None, np.ndarray]] = []

    def add(self, tables: CdfTables, index: int, symbols: np.ndarray) -> None:
        """Queue ``symbols`` (indices into table ``index``) to be coded after earlier groups."""
        symbols = np.asarray(symbols).ravel()
        tables.check_symbols(index, symbols)
        # A one-symbol table carries no information (and constriction rejects it).
        if symbols.size and tables.lengths[index] > 1:
            self._groups.append((tables.model(index), None, symbols.astype(np.int32)))

    def add_rows(self, tables: CdfTables, rows: np.ndarray, symbols: np.ndarray) -> None:
        """Queue ``symbols``, each coded with its own table ``rows[i]`` (all of one length)."""
        symbols, rows = np.asarray(symbols).ravel(), np.asarray(rows).ravel()
        probabilities = _row_probabilities(tables, rows)
        if symbols.shape != rows.shape:
            raise ValueError("one table row per symbol")
        if symbols.size and (symbols.min() < 0 or symbols.max() >= probabilities.shape[1]):
            raise ValueError("symbol out of its table's range")
        if symbols.size:
            self._groups.append((_ROW_MODELS, probabilities, symbols.astype(np.int32)))

    def finish(self) -> bytes:
        """Code every queued group into one payload (empty when nothing costs a bit)."""
        coder = constriction.stream.stack.AnsCoder()
        for model, probabilities, symbols in reversed(self._groups):
            if probabilities is None:
                coder.encode_reverse(symbols, model)
            else:
                coder.encode_reverse(symbols, model, probabilities)
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

    def read_rows(self, tables: CdfTables, rows: np.ndarray) -> np.ndarray:
        """Decode one symbol (int32) per entry of ``rows``, each with that table row."""
        rows = np.asarray(rows).ravel()
        if not rows.size:
            return np.zeros(0, dtype=np.int32)
        probabilities = _row_probabilities(tables, rows)
        return _guarded(lambda: self._coder.decode(_ROW_MODELS, probabilities))

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
