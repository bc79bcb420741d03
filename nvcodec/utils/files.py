"""Output files that appear whole or not at all.

Every output nvcodec writes goes through :func:`atomic_output` (or :func:`atomic_folder` for a
folder of frames): an interrupted or failed run must never leave a half-written file under the
output name, nor clobber an input.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from nvcodec.errors import NvcodecError
from nvcodec.utils.interrupts import raise_if_interrupted

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
        raise_if_interrupted()  # even where the signal's exception was swallowed on the way
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


@contextmanager
def atomic_folder(
    path: StrPath, *, suffix: str, overwrite: bool = False, protect: Sequence[StrPath] = ()
) -> Iterator[Path]:
    """Yield an empty hidden folder beside ``path`` that becomes ``path`` when the ``with``
    block succeeds (a rename); on any exception it is removed.

    The folder is for files ending in ``suffix``. With ``overwrite`` an existing folder is
    replaced only if it holds nothing else, so ``--force`` never deletes a user's other
    files; a file under the name is never replaced by a folder.
    """
    target = Path(path)
    _check_folder(target, suffix, overwrite, protect)
    token = secrets.token_hex(8)
    temp = target.parent / f".{target.name}.{token}.tmp"
    try:
        temp.mkdir()
    except OSError as e:
        raise NvcodecError(f"{target}: cannot be written ({e.strerror})") from None
    try:
        yield temp
        raise_if_interrupted()
        # Checked again: the target may have appeared while the frames were being written.
        _check_folder(target, suffix, overwrite, protect)
        if target.exists():
            old = target.parent / f".{target.name}.{token}.old"
            os.replace(target, old)
            os.replace(temp, target)
            shutil.rmtree(old)
        else:
            os.replace(temp, target)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def _check_folder(target: Path, suffix: str, overwrite: bool, protect: Sequence[StrPath]) -> None:
    """:func:`check_target` for a folder of ``suffix`` files that may replace ``target``."""
    check_target(target, overwrite, protect)
    if not target.exists():
        return
    if not target.is_dir():
        raise NvcodecError(f"{target}: is a file, not a folder; refusing to replace it")
    if any(not f.is_file() or f.suffix.lower() != suffix for f in target.iterdir()):
        raise NvcodecError(f"{target}: holds more than {suffix} files; refusing to replace it")
