"""Output files that appear whole or not at all.

Every output nvcodec writes goes through :func:`atomic_output`: an interrupted or failed run
must never leave a half-written file under the output name, nor clobber an input.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from nvcodec.errors import NvcodecError

StrPath = str | os.PathLike[str]


@contextmanager
def atomic_output(
    path: StrPath, *, overwrite: bool = False, protect: Sequence[StrPath] = ()
) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` only when the ``with`` block succeeds.

    The data goes to a hidden temp file beside the target (same directory, so the final
    ``os.replace`` is an atomic rename on the same file system); it is fsynced before the
    rename. On any exception, KeyboardInterrupt included, the temp file is removed. ``protect``
    lists inputs the target must not be (checked by identity, so links are caught too).
    """
    check_target(path, overwrite, protect)
    target = Path(path)
    temp = target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
    # os.open with 0o666 (not mkstemp's 0o600) so the output gets the usual umask permissions.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(temp, flags, 0o666)
    except OSError as e:  # name the output the user gave, not the hidden temp file
        raise NvcodecError(f"{os.fspath(path)}: cannot be written ({e.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        # Checked again: the target may have appeared while the output was being written.
        check_target(path, overwrite, protect)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def check_target(path: StrPath, overwrite: bool, protect: Sequence[StrPath]) -> None:
    """Refuse to write over an input, or over an existing file unless asked to."""
    exists = os.path.exists(path)
    for source in protect:
        if exists and os.path.exists(source) and os.path.samefile(path, source):
            raise NvcodecError(f"{os.fspath(path)}: is also an input; refusing to overwrite it")
    if exists and not overwrite:
        raise NvcodecError(f"{os.fspath(path)}: already exists (use --force to overwrite)")
