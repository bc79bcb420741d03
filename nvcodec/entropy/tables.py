"""Integer probability tables: the only thing an entropy decoder is allowed to depend on.

Learned densities are floating point and may differ across machines; a decoder must instead use
tables that are bit-identical everywhere. Each table is a row of integer frequencies at
``PRECISION_BITS`` bits that sums to exactly ``2**PRECISION_BITS`` with every symbol >= 1, so
every symbol stays codable and the coder sees exactly the same model on both sides.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import NoReturn

import constriction
import numpy as np

from nvcodec.errors import BitstreamError

PRECISION_BITS = 16
TOTAL = 1 << PRECISION_BITS


def quantize_pmf(probabilities: np.ndarray) -> np.ndarray:
    """Turn non-negative weights into an int32 table summing to ``TOTAL`` with all entries >= 1.

    Each symbol first gets 1; the rest, ``TOTAL - n``, is split by flooring the scaled weights and
    handing the remainder to the largest fractional parts (lower index first on ties). Only exact
    float64 arithmetic on the input is used, so the same input gives the same table everywhere.
    """
    p = np.asarray(probabilities)
    if p.dtype != np.float64 or p.ndim != 1:
        raise ValueError(f"probabilities must be a 1-D float64 array, got {p.dtype} {p.shape}")
    n = p.size
    if not 1 <= n <= TOTAL:
        raise ValueError(f"a table needs 1..{TOTAL} symbols, got {n}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or not 0 < p.sum() < np.inf:
        raise ValueError("probabilities must be finite, non-negative and not all zero")
    spare = TOTAL - n
    scaled = p / p.sum() * spare
    table = np.floor(scaled)
    remainder = spare - int(table.sum())
    order = np.argsort(-(scaled - table), kind="stable")
    table[order[:remainder]] += 1
    return (table + 1).astype(np.int32)


class CdfTables:
    """T validated integer tables (``pmf`` zero-padded to (T, L), ``lengths`` (T,)), read-only.

    Tables usually come from weight files, so they are checked on construction: a bad table must
    fail here with a clear message rather than corrupt a bitstream later.
    """

    def __init__(self, pmf: np.ndarray, lengths: np.ndarray) -> None:
        _validate(pmf, lengths)
        self.pmf = pmf.copy()
        self.lengths = lengths.copy()
        self.pmf.setflags(write=False)
        self.lengths.setflags(write=False)
        self._models: list[constriction.stream.model.Categorical | None] = [None] * len(lengths)

    def __getstate__(self) -> dict[str, np.ndarray]:
        """Pickle (and deepcopy) only the arrays: constriction models are rebuilt on demand."""
        return {"pmf": self.pmf, "lengths": self.lengths}

    def __setstate__(self, state: dict[str, np.ndarray]) -> None:
        self.__init__(state["pmf"], state["lengths"])

    @classmethod
    def from_probabilities(cls, probabilities: Sequence[np.ndarray]) -> CdfTables:
        """Quantize one float64 probability vector per table (see ``quantize_pmf``)."""
        rows = [quantize_pmf(p) for p in probabilities]
        lengths = np.array([len(r) for r in rows], dtype=np.int32)
        pmf = np.zeros((len(rows), int(lengths.max(initial=1))), dtype=np.int32)
        for i, row in enumerate(rows):
            pmf[i, : len(row)] = row
        return cls(pmf, lengths)

    @property
    def num_tables(self) -> int:
        return len(self.lengths)

    def check_symbols(self, index: int, symbols: np.ndarray) -> None:
        """Raise ValueError unless every symbol is a valid index into table ``index``."""
        if symbols.dtype.kind not in "iu":
            raise ValueError(f"symbols must be integers, got {symbols.dtype}")
        # One pass: as unsigned 64-bit, a negative symbol is out of range too.
        unsigned = symbols.astype(np.int64, copy=False).view(np.uint64)
        if symbols.size and unsigned.max() >= self.lengths[index]:
            raise ValueError(
                f"symbols must lie in [0, {self.lengths[index]}) for table {index}, "
                f"got range [{symbols.min()}, {symbols.max()}]"
            )

    def entropy_bits(self, index: int, symbols: np.ndarray) -> float:
        """Ideal code length of ``symbols`` under table ``index``: sum of -log2(pmf / TOTAL)."""
        symbols = np.asarray(symbols)
        self.check_symbols(index, symbols)
        freqs = self.pmf[index, symbols.ravel()].astype(np.float64)
        return float(symbols.size * PRECISION_BITS - np.log2(freqs).sum())

    @functools.cached_property
    def symbol_bits(self) -> np.ndarray:
        """(T, L) float32 ideal bits of each symbol, -log2(pmf / TOTAL) (padding: PRECISION_BITS).

        For encoders weighing choices; decoders never use floating point."""
        return (PRECISION_BITS - np.log2(np.maximum(self.pmf, 1))).astype(np.float32)

    @functools.cached_property
    def entropies(self) -> np.ndarray:
        """(T,) expected bits per symbol of each table."""
        p = self.pmf / TOTAL
        return (p * self.symbol_bits).sum(axis=1)

    def model(self, index: int) -> constriction.stream.model.Categorical:
        """The constriction model of table ``index``, built once from the exact dyadic values.

        The float64 values ``pmf / TOTAL`` are exact, so encoder and decoder always hand
        constriction the same numbers (float32 input would give different bytes).
        """
        model = self._models[index]
        if model is None:
            row = self.pmf[index, : self.lengths[index]].astype(np.float64) / TOTAL
            model = constriction.stream.model.Categorical(row, perfect=False)
            self._models[index] = model
        return model

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """Export as int32 arrays ``{prefix}.pmf`` and ``{prefix}.lengths`` for a weights store."""
        return {f"{prefix}.pmf": self.pmf.copy(), f"{prefix}.lengths": self.lengths.copy()}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], prefix: str) -> CdfTables:
        """Inverse of ``to_arrays``; a missing or malformed array raises BitstreamError."""
        try:
            return cls(arrays[f"{prefix}.pmf"], arrays[f"{prefix}.lengths"])
        except KeyError as exc:
            raise BitstreamError(f"entropy tables: missing array {exc.args[0]!r}") from None


def _validate(pmf: np.ndarray, lengths: np.ndarray) -> None:
    """Check the invariants every coder relies on; raise BitstreamError naming the first breach."""

    def fail(problem: str) -> NoReturn:
        raise BitstreamError(f"invalid entropy table: {problem}")

    if not isinstance(pmf, np.ndarray) or pmf.dtype != np.int32 or pmf.ndim != 2:
        fail(f"pmf must be a 2-D int32 array, got {getattr(pmf, 'dtype', type(pmf))}")
    if not isinstance(lengths, np.ndarray) or lengths.dtype != np.int32 or lengths.ndim != 1:
        fail(f"lengths must be a 1-D int32 array, got {getattr(lengths, 'dtype', type(lengths))}")
    if len(lengths) != pmf.shape[0] or len(lengths) == 0:
        fail(f"{pmf.shape[0]} pmf rows but {len(lengths)} lengths (need at least one table)")
    if pmf.shape[1] > TOTAL:
        fail(f"pmf has {pmf.shape[1]} columns, more than {TOTAL} symbols")
    for i, length in enumerate(lengths.tolist()):
        if not 1 <= length <= pmf.shape[1]:
            fail(f"table {i} has length {length}, outside [1, {pmf.shape[1]}]")
    inside = np.arange(pmf.shape[1]) < lengths[:, None]
    if np.any(pmf[inside] < 1):
        fail(f"table {int(np.nonzero((pmf < 1) & inside)[0][0])} has an entry < 1")
    if np.any(pmf[~inside] != 0):
        fail(f"table {int(np.nonzero((pmf != 0) & ~inside)[0][0])} has non-zero padding")
    sums = pmf.astype(np.int64).sum(axis=1)
    if np.any(sums != TOTAL):
        bad = int(np.nonzero(sums != TOTAL)[0][0])
        fail(f"table {bad} sums to {sums[bad]}, not {TOTAL}")
