"""Invertible transforms that codecs work in (wavelet packets)."""
