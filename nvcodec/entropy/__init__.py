"""Entropy coding: learned densities, the integer tables frozen from them, and ANS coding.

The decoder side depends only on integer tables (``CdfTables``), never on floating point.
"""

from nvcodec.entropy.bottleneck import EntropyBottleneck, fit_density
from nvcodec.entropy.coder import Decoder, Encoder, decode, encode
from nvcodec.entropy.index_coder import IndexCoder
from nvcodec.entropy.tables import PRECISION_BITS, CdfTables, quantize_pmf

__all__ = [
    "PRECISION_BITS",
    "CdfTables",
    "Decoder",
    "Encoder",
    "EntropyBottleneck",
    "IndexCoder",
    "decode",
    "encode",
    "fit_density",
    "quantize_pmf",
]
