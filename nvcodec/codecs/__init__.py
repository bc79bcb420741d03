"""Codecs: models + entropy coding + packet layouts, between pixels/samples and containers."""
