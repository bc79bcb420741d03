"""`nvcodec bench`: real encode/decode sweeps of learned and classical codecs on standard sets."""
