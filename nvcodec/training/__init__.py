"""Training recipes: what `nvcodec train` runs to reproduce the shipped models."""
