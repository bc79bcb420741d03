"""Ctrl-C and SIGTERM: raised where the program is, and remembered.

Raising unwinds the command like any exception, so temp files are removed. Remembering covers
what raising alone cannot: a signal that lands in Python code called back from C (PyAV calls
our file object's ``write``) raises there, and the C side may drop the exception and carry on.
Outputs check :func:`raise_if_interrupted` before they are committed, so a swallowed signal
still stops the command before its output appears.
"""

from __future__ import annotations

import signal
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as Ctrl-C raises KeyboardInterrupt: the default action would kill the
    process without removing its temp files."""


_received: list[signal.Signals] = []


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _received.append(signal.Signals(signum))
    raise_if_interrupted()


def handle_interrupts() -> None:
    """Install the handlers for SIGINT and SIGTERM (main thread only)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _on_signal)


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt (or :class:`Terminated`) again if a signal was received."""
    if _received:
        raise Terminated if _received[0] == signal.SIGTERM else KeyboardInterrupt


def signal_of(interrupt: KeyboardInterrupt) -> signal.Signals:
    """The signal an interrupt stands for."""
    return signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT
