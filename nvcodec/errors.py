"""The error types nvcodec raises for anything a user can cause.

Every user-facing failure is one of these: the CLI prints its message as one line and exits
non-zero, so messages must name the file and the problem on their own.
"""

from __future__ import annotations

from os import PathLike


class NvcodecError(Exception):
    """Base of every error caused by input, files or models (never by a bug)."""


class FormatError(NvcodecError):
    """A malformed, truncated, corrupted or unsupported ``.nvc`` file (or bitstream)."""

    def __init__(self, path: str | PathLike[str], offset: int | None, problem: str) -> None:
        self.path = str(path)
        self.offset = offset
        self.problem = problem
        where = f"{self.path}: " if offset is None else f"{self.path}: at byte {offset}: "
        super().__init__(where + problem)


class ModelError(NvcodecError):
    """A model that is missing, mismatched (hash) or not stored as safetensors + manifest."""


class BitstreamError(NvcodecError):
    """An entropy-coded payload that cannot be decoded with the tables it names."""
