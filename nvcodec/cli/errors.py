"""How every command reports failures: one line on stderr, exit code 1, no traceback.

Expected failures are :class:`~nvcodec.errors.NvcodecError` and unreadable files (``OSError``);
with ``--debug`` they propagate with their traceback instead. Ctrl-C and SIGTERM unwind the
command like an exception (``utils.interrupts``: temp files are removed), then exit with
128 + the signal number.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from nvcodec.errors import NvcodecError
from nvcodec.utils.interrupts import raise_if_interrupted, signal_of

P = ParamSpec("P")
R = TypeVar("R")

settings = {"debug": False}
stderr = Console(stderr=True, highlight=False)


def warn(message: str) -> None:
    stderr.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn expected failures into one line on stderr and exit code 1."""

    @wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            try:
                return command(*args, **kwargs)
            finally:
                # A signal whose exception some C code swallowed still stops the command (and
                # stands for any error that code raised instead).
                raise_if_interrupted()
        except (NvcodecError, OSError) as e:
            if settings["debug"]:
                raise
            message = str(e)
            if isinstance(e, OSError) and e.filename is not None:
                message = f"{e.filename}: {e.strerror}"
            stderr.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt as e:
            if settings["debug"]:
                raise
            received = signal_of(e)
            stderr.print(f"[bold red]error:[/] stopped by {received.name}", soft_wrap=True)
            raise typer.Exit(128 + received) from None

    return wrapper
