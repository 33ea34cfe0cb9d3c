"""The batch lock file ``FILE.lock.json``: what each entry produced, to skip or ``--check`` it."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flux2_cli.atomic import file_sha256, write_atomic
from flux2_cli.task import Task

if TYPE_CHECKING:
    from flux2_cli.batch.plan import PlannedEntry

LOCK_SUFFIX = ".lock.json"
LOCK_VERSION = 1


def lock_path(manifest: Path) -> Path:
    """``FILE.lock.json`` beside the manifest."""
    return manifest.with_name(manifest.name + LOCK_SUFFIX)


class LockFile:
    """``FILE.lock.json``: per entry key, the fingerprint and the files it produced.

    Paths are stored relative to the manifest's folder when inside it, so a checkout moved
    elsewhere (a CI runner) still matches.
    """

    def __init__(self, path: Path, records: dict[str, dict[str, Any]]) -> None:
        self.path = path
        self.base = path.parent
        self.records = records
        self._lock = threading.Lock()
        self._written = self._document()

    @classmethod
    def load(cls, path: Path, warn: Callable[[str], None] = lambda text: None) -> LockFile:
        """Read the lock file; an absent one is empty, a damaged one is ignored with a warning."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            records = data["entries"]
            if not isinstance(records, dict):
                raise TypeError("entries is not an object")
        except FileNotFoundError:
            records = {}
        except (OSError, ValueError, TypeError, KeyError) as exc:
            warn(f"{path.name} cannot be read ({exc}); every entry counts as new.")
            records = {}
        clean = {str(key): value for key, value in records.items() if isinstance(value, dict)}
        return cls(path, clean)

    def resolve(self, stored: str) -> Path:
        """A stored path as a usable one."""
        path = Path(stored)
        return path if path.is_absolute() else self.base / path

    def relative(self, path: str) -> str:
        """A saved path as stored: relative to the manifest folder when inside it."""
        absolute = Path(path).resolve()
        try:
            return absolute.relative_to(self.base.resolve()).as_posix()
        except ValueError:
            return str(absolute)

    def problem(self, key: str, fingerprint: str) -> str | None:
        """None when the entry is up to date; else ``missing``, ``changed`` or ``stale: …``."""
        record = self.records.get(key)
        if record is None or record.get("fingerprint") != fingerprint:
            moved = self.find(fingerprint)
            if moved is not None and self.files_problem(moved) is None:
                return None
            return "missing" if record is None else "changed"
        return self.files_problem(record)

    def find(self, fingerprint: str) -> dict[str, Any] | None:
        """The record of any key with this fingerprint (entries renumbered or renamed)."""
        for record in self.records.values():
            if record.get("fingerprint") == fingerprint:
                return record
        return None

    def record_for(self, key: str, fingerprint: str) -> dict[str, Any] | None:
        """The up-to-date record for an entry, else None."""
        record = self.records.get(key)
        if record is not None and record.get("fingerprint") == fingerprint:
            return record if self.files_problem(record) is None else None
        moved = self.find(fingerprint)
        return moved if moved is not None and self.files_problem(moved) is None else None

    def files_problem(self, record: dict[str, Any]) -> str | None:
        """None when every output exists with its recorded sha256."""
        outputs = record.get("outputs") or []
        if not outputs:
            return "stale: no output recorded"
        for item in outputs:
            path = self.resolve(str(item.get("path", "")))
            actual = file_sha256(path)
            if actual is None:
                return f"stale: {item.get('path')} is missing"
            if actual != item.get("sha256"):
                return f"stale: {item.get('path')} has changed"
        return None

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Store one entry's record and write the file (only when its content changed)."""
        with self._lock:
            self.records[key] = record
            self._write()

    def keep_only(self, keys: Iterable[str]) -> None:
        """Forget entries no longer in the manifest."""
        wanted = set(keys)
        with self._lock:
            self.records = {key: value for key, value in self.records.items() if key in wanted}
            self._write()

    def _document(self) -> str:
        # Manifest order, whatever order the entries finished in: a stable file to commit.
        ordered = sorted(self.records.items(), key=lambda item: (_line_of(item[1]), item[0]))
        data = {"version": LOCK_VERSION, "entries": dict(ordered)}
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    def _write(self) -> None:
        text = self._document()
        if text == self._written:
            return
        # A lock file is meant to be shared and committed: the usual mode, or the one it has.
        write_atomic(self.path, text)
        self._written = text


def _line_of(record: dict[str, Any]) -> int:
    line = record.get("line")
    return line if isinstance(line, int) else 0


def lock_record(lock: LockFile, entry: PlannedEntry, task: Task) -> dict[str, Any]:
    """The lock record of an entry produced by ``task``."""
    seed = entry.request.seed if entry.request.seed is not None else task.extra.get("seed")
    return {
        "line": entry.line,
        "fingerprint": entry.fingerprint,
        "provider": entry.provider,
        "model": task.model or entry.model,
        "task_id": task.task_id,
        "seed": seed,
        "outputs": [
            {"path": lock.relative(image.path), "sha256": image.sha256}
            for image in task.images
            if image.path and image.path != "-"
        ],
    }
