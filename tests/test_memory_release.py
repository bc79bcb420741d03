"""Handing freed heap memory back between video frames (glibc's malloc_trim)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from nvcodec.utils.memory import _malloc_trim, release_free_memory


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmRSS"))
    return int(line.split()[1]) / 1024


@pytest.mark.skipif(_malloc_trim() is None or sys.platform != "linux", reason="needs glibc")
def test_freed_heap_blocks_go_back_to_the_system() -> None:
    # Many blocks under glibc's mmap threshold stay in the heap when freed...
    blocks = [np.ones(4096, dtype=np.float64) for _ in range(16384)]  # 32 KiB each, 512 MiB
    keep = blocks[-1]  # one block at the top stops the heap from shrinking by itself
    del blocks
    held = _rss_mib()
    release_free_memory()
    # ...until they are handed back.
    assert _rss_mib() < held - 256
    assert keep.sum() == 4096


def test_release_is_safe_to_call_anywhere() -> None:
    release_free_memory()
    release_free_memory()
