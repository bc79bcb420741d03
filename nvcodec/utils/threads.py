"""Thread control for deterministic output."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the networks on one thread: torch's float convolutions sum in a thread-count
    dependent order, and a file must decode to the same samples whatever ``--threads`` says."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
