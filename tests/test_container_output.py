"""atomic_output, which the container writer (and every other output) is written through."""

from __future__ import annotations

import contextlib
import os
import re
import signal
from pathlib import Path

import pytest

from nvcodec.errors import NvcodecError
from nvcodec.utils import interrupts
from nvcodec.utils.files import atomic_folder, atomic_output


def test_output_appears_only_when_complete(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with atomic_output(target) as file:
        file.write(b"data")
        (temp,) = tmp_path.iterdir()
        assert re.fullmatch(r"\.out\.bin\.[0-9a-f]{16}\.tmp", temp.name)
        assert not target.exists()
    assert target.read_bytes() == b"data"
    assert list(tmp_path.iterdir()) == [target]


def test_permissions_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "out.bin") as file:
            file.write(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "out.bin").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_failure_leaves_neither_output_nor_temp_file(tmp_path: Path, error: type) -> None:
    (tmp_path / "old.bin").write_bytes(b"old")
    with pytest.raises(error), atomic_output(tmp_path / "old.bin", overwrite=True) as file:
        file.write(b"partial")
        raise error
    assert [(p.name, p.read_bytes()) for p in tmp_path.iterdir()] == [("old.bin", b"old")]


def test_a_signal_whose_exception_was_swallowed_still_stops_the_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal that lands in a callback from C (PyAV writing through our file object) may
    have its exception dropped there: the output still never appears."""
    monkeypatch.setattr(interrupts, "_received", [])
    with pytest.raises(interrupts.Terminated), atomic_output(tmp_path / "out.bin") as file:
        file.write(b"partial")
        with contextlib.suppress(KeyboardInterrupt):  # what the C side does with it
            interrupts._on_signal(signal.SIGTERM, None)
        file.write(b" and the rest")
    with pytest.raises(interrupts.Terminated), atomic_folder(tmp_path / "frames", suffix=".png"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_existing_target_needs_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(NvcodecError) as caught, atomic_output(target):
        pass
    assert str(caught.value) == f"{target}: already exists (use --force to overwrite)"
    with atomic_output(target, overwrite=True) as file:
        file.write(b"new")
    assert target.read_bytes() == b"new"


def test_target_appearing_meanwhile_is_not_clobbered(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    with pytest.raises(NvcodecError, match="already exists"), atomic_output(target) as file:
        file.write(b"mine")
        target.write_bytes(b"theirs")
    assert [(p.name, p.read_bytes()) for p in tmp_path.iterdir()] == [("out.bin", b"theirs")]


@pytest.mark.parametrize("link", ["same", "hard", "symbolic"])
def test_inputs_are_never_overwritten(tmp_path: Path, link: str) -> None:
    source = tmp_path / "in.wav"
    source.write_bytes(b"input")
    target = {"same": source, "hard": tmp_path / "hard", "symbolic": tmp_path / "sym"}[link]
    if link == "hard":
        os.link(source, target)
    elif link == "symbolic":
        target.symlink_to(source)
    with (
        pytest.raises(NvcodecError, match="is also an input"),
        atomic_output(target, overwrite=True, protect=[tmp_path / "missing", source]),
    ):
        pass
    assert source.read_bytes() == b"input"


def test_protect_ignores_unrelated_and_missing_paths(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.write_bytes(b"")
    with atomic_output(tmp_path / "out", protect=[other, tmp_path / "missing"]) as file:
        file.write(b"ok")
    assert (tmp_path / "out").read_bytes() == b"ok"


def test_a_folder_that_does_not_exist_is_named_by_the_output(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "out.bin"
    with pytest.raises(NvcodecError) as caught, atomic_output(target):
        pass
    assert str(caught.value) == f"{target}: cannot be written (No such file or directory)"
