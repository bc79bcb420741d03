"""One ANS payload for many groups of symbols, each group coded i.i.d. under one integer table.

constriction costs about a microsecond per call, so symbols are batched by table: one call per
group, never per symbol (symbols that each name their own table row are grouped by row first).
ANS is a stack, so ``Encoder`` writes the groups in reverse and the ``Decoder`` reads them
forward, in the order they were added. The payload is the coder's uint32 words, little-endian.
Decoding trusts nothing in the payload: how much is decoded comes from the caller's arguments,
and any failure surfaces as ``BitstreamError``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import constriction
import numpy as np

from nvcodec.entropy.tables import TOTAL, CdfTables
from nvcodec.errors import BitstreamError

_T = TypeVar("_T")
# The model family ``Encoder.add_in_order`` codes with: per-symbol probabilities.
_CATEGORICAL = constriction.stream.model.Categorical(perfect=False)


def _runs(grouped_rows: np.ndarray) -> Iterator[tuple[int, int, int]]:
    """(row, start, stop) of every run of equal values in sorted ``grouped_rows``."""
    if not grouped_rows.size:
        return
    starts = np.flatnonzero(np.r_[True, grouped_rows[1:] != grouped_rows[:-1]])
    stops = np.r_[starts[1:], grouped_rows.size]
    yield from zip(grouped_rows[starts].tolist(), starts.tolist(), stops.tolist(), strict=True)


def _checked_rows(tables: CdfTables, rows: np.ndarray) -> np.ndarray:
    """``rows`` flattened, each checked to name one of ``tables``."""
    rows = np.asarray(rows).ravel()
    if rows.size and (rows.min() < 0 or rows.max() >= tables.num_tables):
        raise ValueError("table row out of range")
    return rows


def _grouping_order(rows: np.ndarray) -> np.ndarray:
    """The stable order that groups equal rows (a radix sort when the rows fit 16 bits)."""
    small = rows.astype(np.uint16) if rows.size and rows.max() < 1 << 16 else rows
    return np.argsort(small, kind="stable")


class Encoder:
    """Collects (table, symbols) groups in decoding order; ``finish`` codes them all at once."""

    def __init__(self) -> None:
        # (model, symbols), in decoding order.
        self._groups: list[tuple[Any, np.ndarray]] = []

    def add(self, tables: CdfTables, index: int, symbols: np.ndarray) -> None:
        """Queue ``symbols`` (indices into table ``index``) to be coded after earlier groups."""
        symbols = np.asarray(symbols).ravel()
        tables.check_symbols(index, symbols)
        # A one-symbol table carries no information (and constriction rejects it).
        if symbols.size and tables.lengths[index] > 1:
            self._groups.append((tables.model(index), symbols.astype(np.int32)))

    def add_rows(self, tables: CdfTables, indices: np.ndarray, symbols: np.ndarray) -> None:
        """``add`` for each table ``indices[i]`` with its symbols ``symbols[i]`` (2-D), in
        order, checked at once (the same payload as one ``add`` per row, in far less time)."""
        symbols = np.asarray(symbols)
        indices = np.asarray(indices)
        if symbols.ndim != 2 or len(symbols) != len(indices):
            raise ValueError("one table index per row of symbols")
        lengths = tables.lengths[indices]
        if symbols.size and (symbols.min() < 0 or np.any(symbols >= lengths[:, None])):
            raise ValueError("symbol out of its table's range")
        if not symbols.shape[1]:
            return
        symbols = symbols.astype(np.int32)
        self._groups += [
            (tables.model(index), row)
            for index, row, length in zip(indices.tolist(), symbols, lengths.tolist(), strict=True)
            if length > 1
        ]

    def add_by_table(self, tables: CdfTables, rows: np.ndarray, symbols: np.ndarray) -> None:
        """Queue ``symbols``, each coded with its own table ``rows[i]``: grouped by table
        (stably), one coder call per table in use (``Decoder.read_by_table`` undoes it)."""
        rows, symbols = _checked_rows(tables, rows), np.asarray(symbols).ravel()
        if symbols.shape != rows.shape:
            raise ValueError("one table row per symbol")
        if symbols.size and (symbols.min() < 0 or np.any(symbols >= tables.lengths[rows])):
            raise ValueError("symbol out of its table's range")
        order = _grouping_order(rows)
        grouped = symbols[order].astype(np.int32)
        lengths, model = tables.lengths.tolist(), tables.model
        self._groups += [
            (model(row), grouped[start:stop])
            for row, start, stop in _runs(rows[order])
            if lengths[row] > 1
        ]

    def add_in_order(self, tables: CdfTables, rows: np.ndarray, symbols: np.ndarray) -> None:
        """Queue ``symbols``, each coded with its own table ``rows[i]``, in the given order:
        the decoder reads them one ``read`` each, so a row may depend on symbols decoded
        before it (causal contexts). One coder call for all (every row one length)."""
        rows, symbols = _checked_rows(tables, rows), np.asarray(symbols).ravel()
        if symbols.shape != rows.shape:
            raise ValueError("one table row per symbol")
        lengths = tables.lengths[rows]
        if rows.size and np.any(lengths != lengths[0]):
            raise ValueError("every table of add_in_order must have one length")
        if symbols.size and (symbols.min() < 0 or np.any(symbols >= lengths)):
            raise ValueError("symbol out of its table's range")
        if symbols.size and lengths[0] > 1:
            # The rows' exact dyadic values, as ``CdfTables.model`` hands them over: the same
            # quantized tables, so the same bytes as one coder call per symbol.
            probabilities = tables.pmf[rows, : lengths[0]].astype(np.float64) / TOTAL
            self._groups.append((_CATEGORICAL, symbols.astype(np.int32), probabilities))

    def finish(self) -> bytes:
        """Code every queued group into one payload (empty when nothing costs a bit)."""
        coder = constriction.stream.stack.AnsCoder()
        for model, symbols, *parameters in reversed(self._groups):
            coder.encode_reverse(symbols, model, *parameters)
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

    def read_by_table(self, tables: CdfTables, rows: np.ndarray) -> np.ndarray:
        """Decode one symbol (int32) per entry of ``rows``, each with that table row, as
        ``Encoder.add_by_table`` coded them."""
        rows = _checked_rows(tables, rows)
        order = _grouping_order(rows)
        symbols = np.zeros(rows.size, dtype=np.int32)
        for row, start, stop in _runs(rows[order]):
            symbols[order[start:stop]] = self.read(tables, row, stop - start)
        return symbols

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
