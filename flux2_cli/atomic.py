"""The one atomic file writer: a hidden temp file beside the target, fsynced, then renamed.

Config, the batch lock file, sidecars, downloads and the sandbox's state all write through
here, so a reader never sees half a file and every temp file has one recognisable name,
``.NAME.part-XXXXXXXX``: a later run removes the ones a killed process left behind
(:func:`remove_stale_temps`), by that name and by age, and nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

TEMP_MARK = ".part-"
TEMP_STEM_BYTES = 80
# A temp file untouched for this long belongs to a process that is gone: a live download
# writes (and so touches the file) at least once per read timeout.
STALE_TEMP_AGE_S = 3600.0
HASH_CHUNK = 1 << 20
NEW_FILE_MODE = 0o666  # filtered by the umask, like any new file
_TEMP_NAME_RE = re.compile(r"^\..+\.part-[0-9a-f]{8}$", re.DOTALL)


def cap_bytes(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, never inside a character."""
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[:limit].decode("utf-8", "ignore")


def temp_name(name: str) -> str:
    """The hidden temp name for a file called ``name``: ``.NAME.part-XXXXXXXX``."""
    return f".{cap_bytes(name, TEMP_STEM_BYTES)}{TEMP_MARK}{secrets.token_hex(4)}"


def is_temp_name(name: str) -> bool:
    """True for a name :func:`temp_name` makes."""
    return bool(_TEMP_NAME_RE.match(name))


def unlink_quietly(path: Path) -> None:
    """Remove ``path`` if it is there; a failure to remove is not worth an error."""
    with contextlib.suppress(OSError):
        os.unlink(path)


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where folders cannot be fsynced)."""
    if os.name == "nt":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on a folder; the rename is still atomic
    finally:
        os.close(fd)


class AtomicFile:
    """A temp file beside its destination, opened for reading and writing.

    ``commit`` fsyncs it and renames it into place; leaving the ``with`` block without a
    commit (an error, Ctrl-C) removes it. A close that fails while another error is on its
    way out never hides that error (a full disk reports itself, not the close).
    """

    def __init__(self, folder: Path, name: str, *, mode: int | None = None) -> None:
        self.path = Path(folder) / temp_name(name)
        fd = os.open(
            self.path,
            os.O_CREAT | os.O_EXCL | os.O_RDWR | getattr(os, "O_BINARY", 0),
            NEW_FILE_MODE if mode is None else mode,
        )
        if mode is not None and os.name != "nt":
            # Exactly ``mode`` from the first byte (a config file holds a key): no umask games.
            try:
                os.fchmod(fd, mode)
            except OSError:
                os.close(fd)
                unlink_quietly(self.path)
                raise
        self.fh: BinaryIO = os.fdopen(fd, "w+b")
        self.committed = False

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.committed:
            self.discard()

    def write(self, data: bytes) -> None:
        """Append ``data``."""
        self.fh.write(data)

    def sync(self) -> None:
        """Flush and fsync what was written (nothing to do once closed)."""
        if self.fh.closed:
            return
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        """Close the file (kept on disk)."""
        if not self.fh.closed:
            self.fh.close()

    def discard(self) -> None:
        """Close and remove the temp file; errors on the way are swallowed (see the class)."""
        with contextlib.suppress(OSError, ValueError):
            self.fh.close()
        unlink_quietly(self.path)

    def commit(self, destination: Path, *, sync_folder: bool = False, fsync: bool = True) -> Path:
        """fsync, close and rename over ``destination`` (replacing it).

        ``sync_folder``: fsync the folder too, so the rename itself survives a power cut (the
        config file); without it a crash may leave the old file, never a torn one.
        ``fsync=False``: no fsync at all (the sandbox's simulated state): readers still never
        see part of a file, but a power cut may lose the write.
        """
        if fsync:
            self.sync()
        self.close()
        os.replace(self.path, destination)
        self.committed = True
        if sync_folder:
            fsync_folder(Path(destination).parent)
        return Path(destination)

    def commit_new(self, destination: Path) -> bool:
        """Rename to ``destination`` only if nothing has that name yet; False when taken.

        The name is claimed with ``O_EXCL`` first, so two runs never both get it.
        """
        self.sync()
        self.close()
        if not claim(destination):
            return False
        try:
            os.replace(self.path, destination)
        except BaseException:
            unlink_quietly(destination)
            raise
        self.committed = True
        return True


def file_sha256(path: Path) -> str | None:
    """The sha256 of a file, or None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(HASH_CHUNK), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def claim(path: Path) -> bool:
    """Create ``path`` empty if it does not exist (``O_EXCL``); False when it does."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, NEW_FILE_MODE))
    except FileExistsError:
        return False
    return True


def write_atomic(
    path: Path,
    data: bytes | str,
    *,
    mode: int | None = None,
    sync_folder: bool = False,
    fsync: bool = True,
) -> Path:
    """Replace ``path`` with ``data`` atomically (folders are not created here).

    ``mode``: the file's permission bits (the config file is 0600); by default those of the
    file it replaces, else the usual ones for a new file. ``sync_folder`` and ``fsync``: see
    :meth:`AtomicFile.commit`.
    """
    path = Path(path)
    if mode is None:
        with contextlib.suppress(OSError):
            mode = path.stat().st_mode & 0o777
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with AtomicFile(path.parent, path.name, mode=mode) as temp:
        temp.write(payload)
        temp.commit(path, sync_folder=sync_folder, fsync=fsync)
    return path


def remove_stale_temps(
    folder: Path,
    *,
    max_age: float = STALE_TEMP_AGE_S,
    now: Callable[[], float] = time.time,
) -> list[Path]:
    """Remove flux2's own temp files in ``folder`` untouched for ``max_age`` seconds.

    Only regular files named as :func:`temp_name` makes them; anything else stays.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    limit = now() - max_age
    for entry in entries:
        if not is_temp_name(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not entry.is_file(follow_symlinks=False) or info.st_mtime > limit:
            continue
        path = Path(entry.path)
        try:
            os.unlink(path)
        except OSError:
            continue
        removed.append(path)
    return removed
