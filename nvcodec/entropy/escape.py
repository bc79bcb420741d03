"""Exp-Golomb side channel for values outside a table's range, so any integer stays codable.

A value x outside [lo, hi] is mapped to v >= 0 by zigzagging its excess beyond the nearer bound
(x > hi -> 2 (x - hi - 1), x < lo -> 2 (lo - 1 - x) + 1). v + 1 = 2**k + r is sent as its
exponent k (a fixed table over 0..MAX_EXPONENT: P(k) ~ 2**-(k+1), the Exp-Golomb unary prefix)
followed by the k low bits of r as fair binary symbols, most significant first. All escapes go
in two coder calls, one for the exponents and one for the bits, whatever their number.
"""

from __future__ import annotations

import numpy as np

from nvcodec.entropy.coder import Decoder, Encoder
from nvcodec.entropy.tables import PRECISION_BITS, CdfTables

MAX_EXPONENT = 40
_EXPONENT_TABLE, _BIT_TABLE = 0, 1
TABLES = CdfTables.from_probabilities(
    [0.5 ** np.arange(1.0, MAX_EXPONENT + 2), np.array([0.5, 0.5])]
)


def add(encoder: Encoder, values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
    """Queue out-of-range ``values`` (int64), each with the bounds [lo, hi] it escaped."""
    codes = _zigzag(values, lo, hi) + 1
    exponents = _exponents(codes)
    if exponents.size and exponents.max() > MAX_EXPONENT:
        raise ValueError(f"escaped value too far out of range: {values[exponents.argmax()]}")
    owner, shift = _bit_layout(exponents)
    encoder.add(TABLES, _EXPONENT_TABLE, exponents)
    encoder.add(TABLES, _BIT_TABLE, (codes[owner] >> shift) & 1)


def read(decoder: Decoder, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Decode one escaped value (int64) per bound pair; at most MAX_EXPONENT bits each."""
    exponents = decoder.read(TABLES, _EXPONENT_TABLE, len(lo)).astype(np.int64)
    owner, shift = _bit_layout(exponents)
    bits = decoder.read(TABLES, _BIT_TABLE, owner.size).astype(np.int64)
    codes = np.left_shift(1, exponents)
    np.add.at(codes, owner, bits << shift)
    v = codes - 1
    return np.where(v % 2 == 0, hi + 1 + v // 2, lo - 1 - v // 2)


def code_lengths(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Ideal bits of each escaped value: its exponent's cost plus one bit per low bit."""
    exponents = _exponents(_zigzag(values, lo, hi) + 1)
    exponent_bits = PRECISION_BITS - np.log2(TABLES.pmf[_EXPONENT_TABLE, exponents])
    return exponent_bits + exponents


def cost_bits(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Exact ideal code length of ``add``."""
    return float(code_lengths(values, lo, hi).sum())


def _zigzag(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.where(values > hi, 2 * (values - hi - 1), 2 * (lo - 1 - values) + 1)


def _exponents(codes: np.ndarray) -> np.ndarray:
    """floor(log2(codes)) for int64 codes >= 1, exact below 2**53 (frexp never rounds)."""
    return (np.frexp(codes.astype(np.float64))[1] - 1).astype(np.int64)


def _bit_layout(exponents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For the concatenated k-bit fields: which escape owns each bit, and that bit's shift."""
    owner = np.repeat(np.arange(exponents.size), exponents)
    starts = np.cumsum(exponents) - exponents
    shift = exponents[owner] - 1 - (np.arange(owner.size) - starts[owner])
    return owner, shift
