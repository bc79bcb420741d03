"""Integer tables and the ANS coder: invariants, exact round trips, hostile payloads."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nvcodec.entropy import CdfTables, Decoder, Encoder, decode, encode, quantize_pmf
from nvcodec.entropy.tables import TOTAL
from nvcodec.errors import BitstreamError

weights = hnp.arrays(
    np.float64,
    st.integers(1, 5000),
    elements=st.one_of(st.just(0.0), st.floats(1e-300, 1e6)),
).filter(lambda p: p.sum() > 0)


@settings(max_examples=60, deadline=None)
@given(p=weights)
def test_quantize_pmf_invariants(p: np.ndarray) -> None:
    table = quantize_pmf(p)
    assert table.dtype == np.int32 and table.shape == p.shape
    assert table.min() >= 1
    assert int(table.sum()) == TOTAL
    assert np.array_equal(table, quantize_pmf(p.copy()))


def test_quantize_pmf_follows_the_probabilities() -> None:
    table = quantize_pmf(np.array([0.5, 0.25, 0.125, 0.125]))
    # One count is reserved per symbol, the rest split by floor + largest remainders.
    assert table.tolist() == [32767, 16384, 8193, 8192]
    assert quantize_pmf(np.array([3.0])).tolist() == [TOTAL]


@pytest.mark.parametrize(
    "p",
    [np.array([0.5, 0.5], dtype=np.float32), np.array([]), np.zeros(3), np.array([1.0, -1.0])],
)
def test_quantize_pmf_rejects_bad_input(p: np.ndarray) -> None:
    with pytest.raises(ValueError):
        quantize_pmf(p)


def _random_tables(seed: int, lengths: list[int]) -> CdfTables:
    rng = np.random.default_rng(seed)
    return CdfTables.from_probabilities([rng.gamma(0.3, size=n) + 1e-12 for n in lengths])


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.sampled_from([1, 2, 3, 17, 300, 2**12]) | st.integers(1, 64), max_size=6),
    counts=st.lists(st.integers(0, 3000), min_size=6, max_size=6),
    seed=st.integers(0, 2**32 - 1),
)
def test_coder_round_trips_exactly(lengths: list[int], counts: list[int], seed: int) -> None:
    tables = _random_tables(seed, lengths or [5])
    rng = np.random.default_rng(seed)
    groups = []
    for i, count in enumerate(counts):  # several groups per table, in mixed order
        index = i % tables.num_tables
        n = int(tables.lengths[index])
        p = tables.pmf[index, :n] / TOTAL
        groups.append((rng.choice(n, size=count, p=p), index))
    data = encode(tables, groups)
    decoded = decode(tables, data, [(len(s), index) for s, index in groups])
    for (symbols, _), out in zip(groups, decoded, strict=True):
        assert out.dtype == np.int32 and np.array_equal(out, symbols)


def test_coded_size_matches_the_table_entropy() -> None:
    tables = _random_tables(0, [64, 2**12])
    rng = np.random.default_rng(1)
    groups = [
        (rng.choice(int(n), size=200_000, p=tables.pmf[i, :n] / TOTAL), i)
        for i, n in enumerate(tables.lengths)
    ]
    bits = 8 * len(encode(tables, groups))
    estimate = sum(tables.entropy_bits(i, s) for s, i in groups)
    assert abs(bits / estimate - 1) < 0.001


def test_full_width_and_single_symbol_tables() -> None:
    tables = CdfTables.from_probabilities([np.ones(TOTAL), np.ones(1)])
    assert tables.pmf[0].tolist() == [1] * TOTAL
    symbols = np.arange(TOTAL)
    data = encode(tables, [(symbols, 0), (np.zeros(1000, np.int64), 1)])
    assert len(data) * 8 == pytest.approx(16 * TOTAL, abs=64)
    out = decode(tables, data, [(TOTAL, 0), (1000, 1)])
    assert np.array_equal(out[0], symbols) and not out[1].any()
    assert encode(tables, [(np.zeros(10, np.int64), 1)]) == b""


def test_encoder_rejects_symbols_outside_the_table() -> None:
    tables = _random_tables(0, [4])
    for bad in ([4], [-1], [2**40]):
        with pytest.raises(ValueError, match=r"\[0, 4\)"):
            encode(tables, [(np.array(bad), 0)])


def _table_arrays() -> tuple[np.ndarray, np.ndarray]:
    return np.array([[TOTAL // 2, TOTAL // 2, 0]], np.int32), np.array([2], np.int32)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda pmf, n: (pmf.astype(np.int64), n), "int32"),
        (lambda pmf, n: (pmf, n.astype(np.float32)), "int32"),
        (lambda pmf, n: (pmf[0], n), "2-D"),
        (lambda pmf, n: (pmf, np.array([2, 2], np.int32)), "lengths"),
        (lambda pmf, n: (pmf, np.array([4], np.int32)), "length 4"),
        (lambda pmf, n: (pmf, np.array([0], np.int32)), "length 0"),
        (lambda pmf, n: (pmf, np.array([3], np.int32)), "entry < 1"),
        (lambda pmf, n: (pmf * 2, n), "sums to 131072"),
        (lambda pmf, n: (pmf + np.array([0, 0, 5], np.int32), n), "padding"),
        (
            lambda pmf, n: (np.ones((1, TOTAL + 1), np.int32), np.array([TOTAL + 1], np.int32)),
            "more than 65536",
        ),
    ],
)
def test_bad_tables_are_rejected_clearly(
    change: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]], message: str
) -> None:
    pmf, lengths = change(*_table_arrays())
    with pytest.raises(BitstreamError, match=message):
        CdfTables(pmf, lengths)


def test_table_arrays_round_trip_and_missing_array() -> None:
    tables = _random_tables(3, [5, 9])
    arrays = tables.to_arrays("t")
    again = CdfTables.from_arrays(arrays, "t")
    assert np.array_equal(again.pmf, tables.pmf) and np.array_equal(again.lengths, tables.lengths)
    with pytest.raises(BitstreamError, match=r"t\.lengths"):
        CdfTables.from_arrays({"t.pmf": arrays["t.pmf"]}, "t")


def test_tables_are_read_only() -> None:
    tables = _random_tables(0, [5])
    with pytest.raises(ValueError):
        tables.pmf[0, 0] = 7


def test_incremental_encoder_and_decoder() -> None:
    tables = _random_tables(2, [6, 7])
    encoder = Encoder()
    encoder.add(tables, 1, np.array([6, 0, 3]))
    encoder.add(tables, 0, np.array([5]))
    decoder = Decoder(encoder.finish())
    assert decoder.read(tables, 1, 3).tolist() == [6, 0, 3]
    assert decoder.read(tables, 0, 1).tolist() == [5]
    decoder.finish()
    with pytest.raises(ValueError):
        decoder.read(tables, 0, -1)


def test_payload_bytes_are_pinned() -> None:
    """Stored files must stay decodable: the same tables and symbols give these exact bytes
    (a constriction upgrade that changes them is a format change, not a refactor)."""
    tables = CdfTables.from_probabilities(
        [np.array([0.5, 0.25, 0.125, 0.125]), np.arange(1.0, 301.0)]
    )
    data = encode(tables, [(np.array([0, 1, 2, 3, 0, 0, 1, 3]), 0), (np.arange(0, 300, 7), 1)])
    assert data.hex() == (
        "9b26c0bb3d259894f1b2767e26c1575f68c93e35e3d42826cb4318c65c4f0e66"
        "104c07a72576024c7a3600af89df39ccedb70601"
    )


def test_symbols_must_be_integers() -> None:
    tables = _random_tables(0, [4])
    with pytest.raises(ValueError, match="integers"):
        encode(tables, [(np.array([1.0, 2.0]), 0)])


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(1, 40), min_size=1, max_size=6), st.integers(0, 300), st.integers(0, 2**16)
)
def test_symbols_with_their_own_tables_round_trip(
    lengths: list[int], count: int, seed: int
) -> None:
    """Each symbol names its table; they are grouped by table (one coder call each) and come
    back in their own order, between other groups."""
    tables = _random_tables(seed, lengths)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(lengths), count)
    symbols = rng.integers(0, tables.lengths[rows])
    encoder = Encoder()
    encoder.add(tables, 0, np.zeros(3, np.int64))
    encoder.add_by_table(tables, rows, symbols)
    encoder.add(tables, 0, np.zeros(2, np.int64))
    decoder = Decoder(encoder.finish())
    assert decoder.read(tables, 0, 3).tolist() == [0, 0, 0]
    assert decoder.read_by_table(tables, rows).tolist() == symbols.tolist()
    assert decoder.read(tables, 0, 2).tolist() == [0, 0]
    decoder.finish()


def test_symbols_outside_their_own_tables_are_refused() -> None:
    tables = _random_tables(0, [4, 9])
    with pytest.raises(ValueError, match="range"):
        Encoder().add_by_table(tables, np.array([1, 0]), np.array([5, 4]))
    with pytest.raises(ValueError, match="row out of range"):
        Encoder().add_by_table(tables, np.array([2]), np.array([0]))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 40), st.integers(0, 300), st.integers(0, 2**16))
def test_symbols_in_order_read_one_by_one(tables_count: int, length: int, count: int, seed: int):
    """``add_in_order`` codes in one call exactly the bytes of one ``add`` per symbol, so a
    decoder can read them one by one, each table chosen from what it has read (causal
    contexts)."""
    tables = _random_tables(seed, [length] * tables_count)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, tables_count, count)
    symbols = rng.integers(0, length, count)
    batched, one_by_one = Encoder(), Encoder()
    batched.add(tables, 0, np.zeros(2, np.int64))
    batched.add_in_order(tables, rows, symbols)
    one_by_one.add(tables, 0, np.zeros(2, np.int64))
    for row, symbol in zip(rows, symbols, strict=True):
        one_by_one.add(tables, int(row), np.array([symbol]))
    payload = batched.finish()
    assert payload == one_by_one.finish()
    decoder = Decoder(payload)
    assert decoder.read(tables, 0, 2).tolist() == [0, 0]
    assert [int(decoder.read(tables, int(r), 1)[0]) for r in rows] == symbols.tolist()
    decoder.finish()


def test_symbols_in_order_need_tables_of_one_length() -> None:
    tables = _random_tables(0, [4, 9])
    with pytest.raises(ValueError, match="one length"):
        Encoder().add_in_order(tables, np.array([0, 1]), np.array([0, 0]))
    with pytest.raises(ValueError, match="range"):
        Encoder().add_in_order(tables, np.array([0, 0]), np.array([0, 4]))
