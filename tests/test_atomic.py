"""The one atomic writer: whole files or none, exact modes, no debris, stale temps removed."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from flux2_cli import atomic
from flux2_cli.atomic import AtomicFile, is_temp_name, remove_stale_temps, temp_name, write_atomic

NOW = 1_800_000_000.0


def names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_write_atomic_replaces_the_file_whole(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    write_atomic(path, "one")
    write_atomic(path, b"two")
    assert path.read_text() == "two"
    assert names(tmp_path) == ["lock.json"]


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_write_atomic_mode_is_exact_from_the_first_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real_write = AtomicFile.write

    def spy(self: AtomicFile, data: bytes) -> None:
        seen.append(stat.S_IMODE(os.stat(self.path).st_mode))
        real_write(self, data)

    monkeypatch.setattr(AtomicFile, "write", spy)
    path = tmp_path / "config.toml"
    write_atomic(path, "api_key = 'x'", mode=0o600)
    assert seen == [0o600]  # the temp holding the key was never readable by others
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_write_atomic_keeps_the_mode_of_the_file_it_replaces(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl.lock.json"
    path.write_text("old")
    os.chmod(path, 0o640)
    write_atomic(path, "new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    path.write_text("old")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space"):
        write_atomic(path, "new")
    assert path.read_text() == "old"
    assert names(tmp_path) == ["config.toml"]


def test_a_close_that_fails_never_hides_the_real_error(tmp_path: Path) -> None:
    # A full disk often fails the write and then the close (flushing the buffer) as well.
    class Failing:
        closed = False

        def write(self, data: bytes) -> None:
            raise OSError(errno.EFBIG, "File too large")

        def close(self) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError) as caught, AtomicFile(tmp_path, "fox.png") as temp:
        temp.fh.close()
        temp.fh = Failing()  # type: ignore[assignment]
        temp.write(b"data")
    assert caught.value.errno == errno.EFBIG
    assert names(tmp_path) == []


def test_commit_new_never_takes_an_existing_name(tmp_path: Path) -> None:
    (tmp_path / "fox.png").write_bytes(b"theirs")
    with AtomicFile(tmp_path, "fox.png") as temp:
        temp.write(b"ours")
        assert temp.commit_new(tmp_path / "fox.png") is False
        assert temp.commit_new(tmp_path / "fox-1.png") is True
    assert (tmp_path / "fox.png").read_bytes() == b"theirs"
    assert (tmp_path / "fox-1.png").read_bytes() == b"ours"
    assert names(tmp_path) == ["fox-1.png", "fox.png"]


def test_temp_names_are_hidden_capped_and_recognised() -> None:
    name = temp_name("x" * 300 + ".png")
    assert name.startswith(".") and is_temp_name(name)
    assert len(name.encode()) <= atomic.TEMP_STEM_BYTES + 20
    for other in (".hidden", "fox.part-0123abcd", ".fox.part-nothex00", ".fox.part-0123abc"):
        assert not is_temp_name(other)


def _aged(path: Path, age: float) -> Path:
    os.utime(path, (NOW - age, NOW - age))
    return path


def test_row65_only_old_temp_files_of_flux2_are_removed(tmp_path: Path) -> None:
    old = tmp_path / ".fox.png.part-0123abcd"
    old.touch()
    _aged(old, 2 * 3600)
    fresh = tmp_path / ".whale.part-89abcdef"
    fresh.touch()
    _aged(fresh, 60)  # a run still writing it
    others: list[Path] = []
    for name in (".hidden-notes", "fox.part-0123abcd", ".x.part-nothex00", "fox.png"):
        path = tmp_path / name
        path.touch()
        others.append(_aged(path, 2 * 3600))
    folder = tmp_path / ".dir.part-00000000"
    folder.mkdir()
    _aged(folder, 2 * 3600)

    removed = remove_stale_temps(tmp_path, now=lambda: NOW)

    assert removed == [old]
    assert not old.exists() and fresh.exists() and folder.is_dir()
    assert all(path.exists() for path in others)


def test_stale_temp_sweep_of_a_missing_folder_is_quiet(tmp_path: Path) -> None:
    assert remove_stale_temps(tmp_path / "missing") == []


def test_stale_temp_sweep_skips_a_file_it_cannot_remove(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = tmp_path / ".fox.part-0123abcd"
    old.touch()
    _aged(old, 7200)

    def refuse(path: Any) -> None:
        raise PermissionError(errno.EACCES, "denied")

    monkeypatch.setattr(os, "unlink", refuse)
    assert remove_stale_temps(tmp_path, now=lambda: NOW) == []


def test_write_atomic_without_fsync_still_never_shows_part_of_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def forbidden(fd: int) -> None:
        raise AssertionError("fsync called")

    monkeypatch.setattr(os, "fsync", forbidden)
    path = tmp_path / "task.json"
    write_atomic(path, b"{}", fsync=False)  # the sandbox's simulated state
    assert path.read_bytes() == b"{}"
    assert names(tmp_path) == ["task.json"]
