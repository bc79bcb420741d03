"""Static learned frequency tables for discrete token streams (e.g. RVQ indices).

Indices of shape (T, K) with column k drawn from codebook k of size N_k are coded i.i.d. per
codebook: one integer table per codebook, fitted once on training data and shipped with the
weights, one coder call per codebook. A stream may use only the first k codebooks (a lower
bitrate of a residual quantizer): it is coded with the first k tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from nvcodec.entropy import coder
from nvcodec.entropy.tables import CdfTables

_PREFIX = "index"


class IndexCoder:
    """Codes (T, K) index arrays with one fixed table per codebook (column)."""

    def __init__(self, tables: CdfTables) -> None:
        self.tables = tables

    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.tables.lengths)

    @classmethod
    def fit(cls, indices: np.ndarray, codebook_sizes: Sequence[int]) -> IndexCoder:
        """Count each codebook's indices with add-one smoothing (unseen ones stay codable)."""
        indices = _checked(indices, codebook_sizes)
        counts = [
            np.bincount(column, minlength=n).astype(np.float64) + 1
            for column, n in zip(indices.T, codebook_sizes, strict=True)
        ]
        return cls(CdfTables.from_probabilities(counts))

    def encode(self, indices: np.ndarray) -> bytes:
        """Code a (T, k) array, k <= K; an index outside its codebook raises ValueError."""
        indices = _checked(indices, self.codebook_sizes)
        return coder.encode(self.tables, ((indices[:, k], k) for k in range(indices.shape[1])))

    def decode(self, data: bytes, num_frames: int, codebooks: int | None = None) -> np.ndarray:
        """Decode ``num_frames`` rows of the first ``codebooks`` (default all) columns into an
        int64 array; bad data: BitstreamError."""
        count = self.tables.num_tables if codebooks is None else codebooks
        if not 0 < count <= self.tables.num_tables:
            raise ValueError(f"codebooks must be 1..{self.tables.num_tables}, got {count}")
        groups = [(num_frames, k) for k in range(count)]
        return np.stack(coder.decode(self.tables, data, groups), axis=1).astype(np.int64)

    def entropy_bits(self, indices: np.ndarray) -> float:
        """Ideal code length of ``encode(indices)`` under the tables."""
        indices = _checked(indices, self.codebook_sizes)
        return sum(self.tables.entropy_bits(k, indices[:, k]) for k in range(indices.shape[1]))

    def export_tables(self) -> dict[str, np.ndarray]:
        """The tables as int32 arrays ``index.pmf`` and ``index.lengths`` for a weights store."""
        return self.tables.to_arrays(_PREFIX)

    @classmethod
    def import_tables(cls, arrays: Mapping[str, np.ndarray]) -> IndexCoder:
        """Inverse of ``export_tables``; a malformed table raises BitstreamError."""
        return cls(CdfTables.from_arrays(arrays, _PREFIX))


def _checked(indices: np.ndarray, codebook_sizes: Sequence[int]) -> np.ndarray:
    """``indices`` as an array, after checking its shape (T, k <= K) and that each index fits
    its codebook."""
    indices = np.asarray(indices)
    if indices.ndim != 2 or not 0 < indices.shape[1] <= len(codebook_sizes):
        raise ValueError(
            f"indices must have shape (T, 1..{len(codebook_sizes)}), got {indices.shape}"
        )
    sizes = np.array(codebook_sizes[: indices.shape[1]])
    if not np.issubdtype(indices.dtype, np.integer):
        raise ValueError(f"indices must be integers, got {indices.dtype}")
    bad = (indices < 0) | (indices >= sizes)
    if bad.any():
        t, k = (int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"index {indices[t, k]} at frame {t} is out of range for codebook {k} "
            f"of size {sizes[k]}"
        )
    return indices
