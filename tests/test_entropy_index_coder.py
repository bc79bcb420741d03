"""IndexCoder on skewed token streams (RVQ-like: K codebooks of 1024 entries)."""

from __future__ import annotations

import numpy as np
import pytest

from nvcodec.entropy import IndexCoder
from nvcodec.errors import BitstreamError

K, N = 8, 1024


def zipf_indices(frames: int, seed: int) -> np.ndarray:
    """Zipf-distributed indices, flatter for deeper codebooks, as residual stages are."""
    rng = np.random.default_rng(seed)
    columns = []
    for k in range(K):
        p = 1.0 / np.arange(1, N + 1) ** (1.2 - 0.08 * k)
        order = np.random.default_rng(k).permutation(N)  # popular entries anywhere
        columns.append(order[rng.choice(N, size=frames, p=p / p.sum())])
    return np.stack(columns, axis=1)


@pytest.fixture(scope="module")
def coder() -> IndexCoder:
    return IndexCoder.fit(zipf_indices(20_000, seed=0), [N] * K)


def test_round_trip_beats_raw_rate_and_meets_entropy(coder: IndexCoder) -> None:
    indices = zipf_indices(20_000, seed=1)
    data = coder.encode(indices)
    decoded = coder.decode(data, len(indices))
    assert decoded.dtype == np.int64 and np.array_equal(decoded, indices)
    bits = 8 * len(data)
    estimate = coder.entropy_bits(indices)
    print(
        f"\nindex bits/symbol: real {bits / indices.size:.4f}, tables {estimate / indices.size:.4f}"
    )
    assert bits < indices.size * 10
    assert abs(bits / estimate - 1) < 0.01


def test_unseen_indices_stay_codable() -> None:
    coder = IndexCoder.fit(np.zeros((10, 2), np.int64), [4, 3])
    assert coder.codebook_sizes == (4, 3)
    indices = np.array([[3, 2], [1, 1], [0, 0]])
    assert np.array_equal(coder.decode(coder.encode(indices), 3), indices)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ((5, 7, 1024), "index 1024 at frame 5 is out of range for codebook 7 of size 1024"),
        ((0, 2, -1), "index -1 at frame 0 is out of range for codebook 2"),
    ],
)
def test_out_of_range_index_names_the_codebook(
    coder: IndexCoder, bad: tuple[int, int, int], message: str
) -> None:
    indices = zipf_indices(10, seed=2)
    indices[bad[0], bad[1]] = bad[2]
    with pytest.raises(ValueError, match=message):
        coder.encode(indices)


def test_bad_shapes_are_rejected(coder: IndexCoder) -> None:
    with pytest.raises(ValueError, match=r"shape \(T, 1..8\)"):
        coder.encode(np.zeros((4, 9), np.int64))
    with pytest.raises(ValueError, match="integers"):
        coder.encode(np.zeros((4, 8)))
    with pytest.raises(ValueError, match="out of range for codebook 0"):
        IndexCoder.fit(np.full((3, 1), 9), [9])


def test_tables_export_and_import(coder: IndexCoder) -> None:
    arrays = coder.export_tables()
    assert sorted(arrays) == ["index.lengths", "index.pmf"]
    assert all(a.dtype == np.int32 for a in arrays.values())
    indices = zipf_indices(100, seed=3)
    assert IndexCoder.import_tables(arrays).encode(indices) == coder.encode(indices)
    arrays["index.pmf"] = arrays["index.pmf"].copy()
    arrays["index.pmf"][3, 0] += 1
    with pytest.raises(BitstreamError, match="table 3 sums to 65537"):
        IndexCoder.import_tables(arrays)


def test_empty_stream(coder: IndexCoder) -> None:
    empty = np.zeros((0, K), np.int64)
    assert coder.decode(coder.encode(empty), 0).shape == (0, K)


def test_first_codebooks_only(coder: IndexCoder) -> None:
    """A stream using the first k codebooks codes them with the first k tables."""
    indices = zipf_indices(200, seed=4)
    prefix = indices[:, :3]
    data = coder.encode(prefix)
    assert np.array_equal(coder.decode(data, 200, codebooks=3), prefix)
    assert len(data) < len(coder.encode(indices))
    with pytest.raises(ValueError, match=r"codebooks must be 1\.\.8"):
        coder.decode(data, 200, codebooks=9)
