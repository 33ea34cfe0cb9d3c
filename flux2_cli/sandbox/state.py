"""The sandbox's state on disk: one JSON file per task, image files, balances, one-shot markers.

Layout under the state folder (``flux2_cli.env.sandbox_dir()`` unless overridden)::

    tasks/<task id>.json   the task record (written atomically, never partially visible)
    webhooks/<task id>     an empty file while the task's webhook waits to be sent
    images/<name>          image bytes, drawn once on first download and then served as is
    balances.json          {key fingerprint: credits}; keys themselves are never stored
    oneshots.json          {token: unix time} for the "first time only" markers
    idempotency.json       {key fingerprint + Idempotency-Key: [task id, request hash]}
    .lock                  the file lock that serialises read-modify-write cycles

Every read-modify-write happens under an exclusive ``fcntl.flock`` (``msvcrt.locking`` on
Windows; nothing where neither exists), so separate processes — several ``flux2`` commands and
a running ``sandbox serve`` — see one consistent state.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from flux2_cli import atomic

TASKS = "tasks"
WEBHOOKS = "webhooks"
IMAGES = "images"
BALANCES = "balances.json"
ONESHOTS = "oneshots.json"
IDEMPOTENCY = "idempotency.json"
LOCK = ".lock"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,150}$")
_THREAD_LOCK = threading.RLock()


def key_fingerprint(api_key: str) -> str:
    """A short hash that stands for a key in files (the key itself is never written)."""
    return hashlib.sha256(("flux2-sandbox:" + api_key).encode("utf-8")).hexdigest()[:24]


def _tidy(value: Any) -> float:
    """A stored balance as a number: whole numbers stay integers in the file and on show."""
    number = float(value)
    return int(number) if number.is_integer() else number


def safe_name(name: str) -> bool:
    """True for an id or file name that cannot leave its folder."""
    return bool(_SAFE_NAME.match(name)) and ".." not in name


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, its folder created if need be.

    A temp file renamed into place, so no reader ever sees part of it, but no fsync: the
    sandbox's state is a simulation that need not outlive a power cut, and the three fsyncs per
    write (file, folder) were a third of the server's work per task, on its event loop.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_atomic(path, data, fsync=False)


class StateStore:
    """Tasks, images, balances and one-shot tokens in one folder, safe across processes."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- locking -------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the state folder's exclusive lock; never nest it (the file lock would deadlock)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with _THREAD_LOCK, open(self.root / LOCK, "a+b") as handle:
            _lock_file(handle.fileno())
            try:
                yield
            finally:
                _unlock_file(handle.fileno())

    # -- tasks ---------------------------------------------------------------------------

    def task_path(self, task_id: str) -> Path:
        """Where a task's record lives (the id must be :func:`safe_name`)."""
        return self.root / TASKS / f"{task_id}.json"

    def save_task(self, record: dict[str, Any]) -> None:
        """Write a task record atomically."""
        task_id = str(record["id"])
        if not safe_name(task_id):
            raise ValueError(f"unsafe task id {task_id!r}")
        data = json.dumps(record, sort_keys=True, ensure_ascii=False).encode("utf-8")
        write_atomic(self.task_path(task_id), data)

    def load_task(self, task_id: str) -> dict[str, Any] | None:
        """A task record, or None when the id is unknown (or not a safe name)."""
        if not safe_name(task_id):
            return None
        try:
            text = self.task_path(task_id).read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            record = json.loads(text)
        except ValueError:
            return None
        return record if isinstance(record, dict) else None

    def update_task(
        self, task_id: str, change: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any] | None:
        """Apply ``change`` to a task under the lock; it returns True when it changed it."""
        with self.locked():
            record = self.load_task(task_id)
            if record is None:
                return None
            if change(record):
                self.save_task(record)
            return record

    def task_ids(self) -> list[str]:
        """Every stored task id (any order)."""
        folder = self.root / TASKS
        if not folder.is_dir():
            return []
        return [path.stem for path in folder.glob("*.json") if not path.name.startswith(".")]

    # -- pending webhooks (an index, so the scanner does not read every task) ----------

    def mark_webhook_pending(self, task_id: str) -> None:
        """Note that ``task_id`` has a webhook to send when it ends."""
        if not safe_name(task_id):
            raise ValueError(f"unsafe task id {task_id!r}")
        write_atomic(self.root / WEBHOOKS / task_id, b"")

    def clear_webhook_pending(self, task_id: str) -> None:
        """Forget a sent (or abandoned) webhook."""
        if safe_name(task_id):
            with contextlib.suppress(FileNotFoundError):
                (self.root / WEBHOOKS / task_id).unlink()

    def pending_webhooks(self) -> list[str]:
        """Ids of tasks whose webhook has not been sent yet."""
        folder = self.root / WEBHOOKS
        if not folder.is_dir():
            return []
        return [path.name for path in folder.iterdir() if not path.name.startswith(".")]

    # -- images --------------------------------------------------------------------------

    def image_path(self, name: str) -> Path:
        """Where an image file lives (the name must be :func:`safe_name`)."""
        return self.root / IMAGES / name

    def read_image(self, name: str) -> bytes | None:
        """The stored bytes of an image, or None."""
        if not safe_name(name):
            return None
        try:
            return self.image_path(name).read_bytes()
        except FileNotFoundError:
            return None

    def write_image(self, name: str, data: bytes) -> None:
        """Store an image atomically (concurrent writers write the same bytes)."""
        if not safe_name(name):
            raise ValueError(f"unsafe image name {name!r}")
        write_atomic(self.image_path(name), data)

    # -- balances ------------------------------------------------------------------------

    def balance(self, fingerprint: str, initial: float) -> float:
        """The key's balance (``initial`` when it has never been charged)."""
        with self.locked():
            return _tidy(self._read_json(BALANCES).get(fingerprint, initial))

    def charge(self, fingerprint: str, amount: float, initial: float) -> tuple[bool, float]:
        """Take ``amount`` credits if the balance covers it: (charged?, balance after).

        Amounts may be fractional (BFL prices by the megapixel: 3.073 credits).
        """
        with self.locked():
            balances = self._read_json(BALANCES)
            current = _tidy(balances.get(fingerprint, initial))
            if current < amount:
                return False, current
            after = _tidy(round(current - amount, 6))
            balances[fingerprint] = after
            write_atomic(self.root / BALANCES, json.dumps(balances, sort_keys=True).encode())
            return True, after

    # -- idempotency keys (APIMart) --------------------------------------------------------

    def idempotent_task(self, token: str) -> tuple[str, str] | None:
        """(task id, request hash) already bound to an idempotency token, or None."""
        with self.locked():
            found = self._read_json(IDEMPOTENCY).get(token)
        if isinstance(found, list) and len(found) == 2:
            return str(found[0]), str(found[1])
        return None

    def bind_idempotent(self, token: str, task_id: str, request_hash: str) -> tuple[str, str]:
        """Bind ``token`` to a task unless it already is; the binding that holds."""
        with self.locked():
            bound = self._read_json(IDEMPOTENCY)
            found = bound.get(token)
            if isinstance(found, list) and len(found) == 2:
                return str(found[0]), str(found[1])
            bound[token] = [task_id, request_hash]
            write_atomic(self.root / IDEMPOTENCY, json.dumps(bound, sort_keys=True).encode())
            return task_id, request_hash

    # -- one-shot tokens -----------------------------------------------------------------

    def first_time(self, token: str, now: float) -> bool:
        """True the first time ``token`` is seen in this state folder, False after."""
        with self.locked():
            seen = self._read_json(ONESHOTS)
            if token in seen:
                return False
            seen[token] = now
            write_atomic(self.root / ONESHOTS, json.dumps(seen, sort_keys=True).encode())
            return True

    def _read_json(self, name: str) -> dict[str, Any]:
        try:
            data = json.loads((self.root / name).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock_file(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_LOCK, 1)

    def _unlock_file(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        with contextlib.suppress(OSError):
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - a POSIX without flock: the thread lock only
        fcntl = None  # type: ignore[assignment]

    def _lock_file(fd: int) -> None:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock_file(fd: int) -> None:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
