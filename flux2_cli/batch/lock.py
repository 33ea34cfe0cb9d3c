"""The batch run state beside the manifest: ``FILE.lock.json``, its journal and the run lock.

These files are what travels with a manifest (commit them, cache them, upload them from a
cancelled CI job): with only the manifest and them, a run on a fresh machine (an empty ledger)
resumes every entry submitted elsewhere and never pays for it again. The ledger stays the
machine's history; the lock is what travels.

``FILE.lock.json`` (version 2), written atomically, keys sorted, two-space indent::

    {
      "version": 2,
      "entries": {
        "fox": {                                  # the entry's key (see below)
          "state": "finished",                    # submitting | submitted | finished
                                                  #   | failed | unknown
          "fingerprint": "9f2c…",                 # provider, model, every parameter, refs
          "endpoint": "bfl https://api.bfl.ai",   # provider + base-URL origin, or "sandbox"
          "provider": "bfl",
          "model": "flux-2-pro",
          "task_id": "4a7e…",                     # from "submitted" on
          "poll_url": "https://…",                # when the provider gives one
          "submitted_at": "2026-11-30T07:00:00Z", # when the create call was answered
          "seed": 42,
          "outputs": [{"path": "out/fox.png", "sha256": "…"}],   # "finished"
          "error": {"code": "moderated", "message": "…"}          # "failed", "unknown"
        }
      }
    }

States: ``submitting`` is written (durably) just before the paid POST; ``submitted`` as soon as
it is answered (task id); ``finished`` once every image is saved (paths relative to the
manifest's folder, with their sha256); ``failed`` when the task failed or the POST was refused;
``unknown`` when the POST got no answer. A ``submitting`` record that a later run finds (the
process was killed while the POST was in flight) counts as ``unknown``: it may exist at the
provider, so it is not submitted again without ``--resubmit-unknown``.

Keys: an entry's ``name`` when it has one (and it is not a template), else a key made from the
entry's own manifest values (``a-red-fox-3f2a9c1b``: a slug of the prompt and a hash of the
values; identical lines get ``-2``, ``-3``…), never its line. Inserting or reordering lines
changes no other key. Version 1 files (keys ``#N`` for unnamed entries, no endpoint, no state)
are read and upgraded: a record is matched to its entry by fingerprint, counts as finished and as
made on the current endpoint (unless its task id is a sandbox one).

``FILE.lock.journal`` holds the changes of the run in progress, one JSON line each
(``{"key": K, "record": {...}}``, a whole record that replaces the key's), appended and fsynced
before the next paid step: the cost of an update does not grow with the manifest. It is folded
into ``FILE.lock.json`` (one atomic rewrite) when the run ends, stops (SIGTERM, Ctrl-C), or at
the start of the next run after a SIGKILL; a torn last line is ignored. Readers (``--check``,
``lock merge``) apply a journal on top of the lock file in memory.

``.FILE.lock.run`` is the run lock (``filelock``): one ``flux2 batch`` per manifest at a time on
a machine; a second one waits for the first, with a notice, before deciding anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flux2_cli.atomic import file_sha256, write_atomic
from flux2_cli.errors import Flux2Error, UsageError
from flux2_cli.task import Task, format_time, utc_now

if TYPE_CHECKING:
    from flux2_cli.batch.plan import PlannedEntry

LOCK_SUFFIX = ".lock.json"
JOURNAL_SUFFIX = ".lock.journal"
RUN_LOCK_SUFFIX = ".lock.run"
LOCK_VERSION = 2
SANDBOX_ENDPOINT = "sandbox"
SANDBOX_TASK_PREFIX = "sbx"

SUBMITTING = "submitting"
SUBMITTED = "submitted"
FINISHED = "finished"
FAILED = "failed"
UNKNOWN = "unknown"
STATES = (SUBMITTING, SUBMITTED, FINISHED, FAILED, UNKNOWN)


def lock_path(manifest: Path) -> Path:
    """``FILE.lock.json`` beside the manifest."""
    return manifest.with_name(manifest.name + LOCK_SUFFIX)


def journal_path(lock: Path) -> Path:
    """``FILE.lock.journal`` beside ``FILE.lock.json``; ``NAME.journal`` beside another name."""
    if lock.name.endswith(LOCK_SUFFIX):
        return lock.with_name(lock.name[: -len(LOCK_SUFFIX)] + JOURNAL_SUFFIX)
    return lock.with_name(lock.name + ".journal")


def run_lock_path(manifest: Path) -> Path:
    """``.FILE.lock.run`` beside the manifest: the one-run-at-a-time lock."""
    return manifest.with_name("." + manifest.name + RUN_LOCK_SUFFIX)


def state_path(manifest: Path, lock: Path | None) -> Path | None:
    """The lock file of a run: ``--lock PATH``, else beside the manifest; stdin has none."""
    if lock is not None:
        return lock
    if str(manifest) == "-":
        return None  # nowhere a user would look for it, nothing to commit it with
    return lock_path(manifest)


def hold_path(manifest: Path, lock: Path | None) -> Path:
    """The one-run-at-a-time lock: beside ``--lock PATH`` when given, else beside the manifest."""
    if lock is not None:
        return lock.with_name("." + lock.name + ".run")
    return run_lock_path(manifest)


def endpoint_id(provider: str, base_url: str | None) -> str:
    """Where a task is made: ``sandbox``, else the provider and the base URL's origin."""
    from flux2_cli.providers.sandbox import SANDBOX_BASE_URL

    if provider == "sandbox" or not base_url:
        return SANDBOX_ENDPOINT if provider == "sandbox" else provider
    parts = urlsplit(base_url)
    if parts.netloc == urlsplit(SANDBOX_BASE_URL).netloc:
        return SANDBOX_ENDPOINT
    return f"{provider} {parts.scheme}://{parts.netloc}"


def describe_endpoint(endpoint: str) -> str:
    """An endpoint as people read it: ``the sandbox`` or ``bfl at https://api.bfl.ai``."""
    if endpoint == SANDBOX_ENDPOINT:
        return "the sandbox"
    provider, _, origin = endpoint.partition(" ")
    return f"{provider} at {origin}" if origin else provider


class LockWriteError(Flux2Error):
    """The run state beside the manifest cannot be written (disk full, read-only folder)."""


class LockFile:
    """``FILE.lock.json`` and its journal: per entry key, its state and what it produced.

    ``put`` appends one journal line (fsynced) and is safe from any thread; ``fold`` writes the
    lock file once and empties the journal. Paths are stored relative to the manifest's folder
    when inside it, so a checkout moved elsewhere (a CI runner) still matches.
    """

    def __init__(self, path: Path, records: dict[str, dict[str, Any]]) -> None:
        self.path = path
        self.journal = journal_path(path)
        self.base = path.parent
        self.records = records
        self.legacy = False  # read from a version 1 file
        self._lock = threading.RLock()  # re-entrant: a signal may land inside put()
        self._fd: int | None = None
        self._pending = False  # journal lines not yet folded
        # Group commit: lines are written under _lock, fsynced outside it, one fsync covering
        # every line written before it. At 64 workers a put used to queue behind the others'
        # fsyncs (a quarter of a batch's busy samples); now a waiting put rides on the next one.
        self._sync_lock = threading.RLock()  # re-entrant for the same reason as _lock
        self._written = 0  # journal lines written (a ticket per put)
        self._synced = 0  # lines known durable
        self._index: dict[str, str] | None = None  # fingerprint -> key, for lookup()
        self._indexed: dict[str, dict[str, Any]] | None = None

    @classmethod
    def load(cls, path: Path, warn: Callable[[str], None] = lambda text: None) -> LockFile:
        """The lock file with its journal applied; absent is empty, damaged is a warning."""
        version = LOCK_VERSION
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            records = data["entries"]
            if not isinstance(records, dict):
                raise TypeError("entries is not an object")
            version = int(data.get("version", 1))
        except FileNotFoundError:
            records = {}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            warn(f"{path.name} cannot be read ({exc}); every entry counts as new.")
            records = {}
        clean = {str(key): value for key, value in records.items() if isinstance(value, dict)}
        lock = cls(path, clean)
        if version < LOCK_VERSION:
            lock.legacy = True
            lock.records = {key: _upgrade(record) for key, record in clean.items()}
        lock._apply_journal(warn)
        return lock

    def _apply_journal(self, warn: Callable[[str], None]) -> None:
        try:
            text = self.journal.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return
        except OSError as exc:
            warn(f"{self.journal.name} cannot be read ({exc.strerror or exc}).")
            return
        for line in text.splitlines():
            try:
                item = json.loads(line)
                key, record = item["key"], item["record"]
            except (ValueError, TypeError, KeyError):
                continue  # a line torn by a SIGKILL: the state before it stands
            if isinstance(key, str) and isinstance(record, dict):
                self.records[key] = record
            elif isinstance(key, str) and record is None:
                self.records.pop(key, None)
            self._index = None
            self._pending = True

    # -- paths ----------------------------------------------------------------------------

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

    # -- reading --------------------------------------------------------------------------

    def lookup(self, key: str, fingerprint: str) -> tuple[str, dict[str, Any]] | None:
        """The record of this request: under its key, else under another key (renamed)."""
        record = self.records.get(key)
        if record is not None and record.get("fingerprint") == fingerprint:
            return key, record
        # One index for the whole decide pass: a scan per entry is quadratic at 10,000.
        if self._index is None or self._indexed is not self.records:
            self._index = {}
            for other, candidate in self.records.items():
                self._index.setdefault(str(candidate.get("fingerprint")), other)
            self._indexed = self.records
        renamed = self._index.get(fingerprint)
        if renamed is None or renamed not in self.records:
            return None
        candidate = self.records[renamed]
        return (renamed, candidate) if candidate.get("fingerprint") == fingerprint else None

    def problem(self, key: str, fingerprint: str, endpoint: str | None = None) -> str | None:
        """None when up to date; else ``new``, ``changed``, ``missing: …`` or ``stale: …``."""
        found = self.lookup(key, fingerprint)
        if found is None:
            return "new" if key not in self.records else "changed"
        record = found[1]
        made = record.get("endpoint")
        if endpoint is not None and made is not None and made != endpoint:
            return f"stale: made on {describe_endpoint(str(made))}"
        state = record.get("state", FINISHED)
        if state != FINISHED:
            return f"stale: {state_text(record)}"
        return self.files_problem(record)

    def files_problem(self, record: dict[str, Any]) -> str | None:
        """None when every output exists with its recorded sha256."""
        outputs = record.get("outputs") or []
        if not outputs:
            return "stale: no output recorded"
        for item in outputs:
            path = self.resolve(str(item.get("path", "")))
            actual = file_sha256(path)
            if actual is None:
                return f"missing: {item.get('path')}"
            if actual != item.get("sha256"):
                return f"stale: {item.get('path')} has changed"
        return None

    # -- writing --------------------------------------------------------------------------

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Record an entry's new state durably (one fsynced journal line); a no-op if equal.

        LockWriteError when the journal cannot be written: the caller sends nothing more.
        """
        with self._lock:
            if self.records.get(key) == record:
                return
            try:
                ticket = self._append({"key": key, "record": record})
            except OSError as exc:
                raise self._write_error(exc) from exc
            self.records[key] = record
            self._index = None
        try:
            self._sync(ticket)
        except OSError as exc:
            raise self._write_error(exc) from exc

    def _write_error(self, exc: OSError) -> LockWriteError:
        return LockWriteError(
            f"cannot write {self.journal} ({exc.strerror or exc}); nothing more is "
            "sent for this entry.",
            hints=["Free some space or make the manifest's folder writable, then re-run."],
        )

    def keep_only(self, keys: Iterable[str]) -> None:
        """Forget entries no longer in the manifest (written at the next fold)."""
        wanted = set(keys)
        with self._lock:
            dropped = [key for key in self.records if key not in wanted]
            for key in dropped:
                del self.records[key]
            self._index = None
            if dropped:
                self._pending = True

    def replace(self, records: dict[str, dict[str, Any]]) -> None:
        """Make ``records`` the whole content and write the lock file now (``lock merge``)."""
        with self._lock:
            self.records = dict(records)
            self._pending = True
            self.fold()

    def fold(self) -> None:
        """Write the lock file once (atomically) with every change, then empty the journal."""
        with self._lock:
            if self._pending or self.legacy or not self.path.exists():
                if self.records or self.path.exists():
                    self._write(self.document())
                self.legacy = False
            self._close_journal()
            with contextlib.suppress(FileNotFoundError):
                self.journal.unlink()
            self._pending = False

    def document(self) -> str:
        """The lock file's text: the version, then keys and fields sorted, two-space indent."""
        entries = {key: _sorted(self.records[key]) for key in sorted(self.records)}
        data = {"version": LOCK_VERSION, "entries": entries}
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    def close(self) -> None:
        """Close the journal (without folding it)."""
        with self._lock:
            self._close_journal()

    def _append(self, item: dict[str, Any]) -> int:
        """Write one journal line (not yet fsynced); its ticket for :meth:`_sync`."""
        line = json.dumps(item, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        if self._fd is None:
            self._fd = os.open(
                self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644
            )  # shared, like the lock file it belongs to
        # One write per line (O_APPEND): a kill tears at most the last line, which is ignored.
        os.write(self._fd, (line + "\n").encode("utf-8"))
        self._pending = True
        self._written += 1
        return self._written

    def _sync(self, ticket: int) -> None:
        """Return once the journal line ``ticket`` is durable (an fsync, or a fold, covers it)."""
        with self._sync_lock:
            if self._synced >= ticket:
                return  # another put's fsync, made after this line was written, covered it
            target = self._written  # every line written so far goes down with this fsync
            fd = self._fd
            if fd is not None:
                try:
                    os.fsync(fd)
                except OSError:
                    if self._fd == fd:
                        raise
                    # Folded meanwhile (a signal's stop): the lock file, fsynced, holds it.
            self._synced = max(self._synced, target)

    def _close_journal(self) -> None:
        with self._sync_lock:  # never close the journal under a put's fsync
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = None

    def _write(self, text: str) -> None:
        # A lock file is meant to be shared and committed: the usual mode, or the one it has.
        write_atomic(self.path, text)


def _sorted(value: Any) -> Any:
    """Every mapping inside ``value`` with its keys in order (a stable file to diff)."""
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def _upgrade(record: dict[str, Any]) -> dict[str, Any]:
    """A version 1 record as version 2: finished; no endpoint unless its task was a sandbox one."""
    upgraded = {name: value for name, value in record.items() if name != "line"}
    upgraded.setdefault("state", FINISHED)
    task_id = str(record.get("task_id") or "")
    if record.get("provider") == "sandbox" or task_id.startswith(SANDBOX_TASK_PREFIX):
        upgraded.setdefault("endpoint", SANDBOX_ENDPOINT)
    return upgraded


def state_text(record: dict[str, Any]) -> str:
    """A record's state in words, for ``--check`` and messages."""
    state = record.get("state", FINISHED)
    task_id = record.get("task_id")
    error = record.get("error") or {}
    if state == SUBMITTED:
        return f"submitted as task {task_id}, not finished"
    if state == FAILED:
        reason = error.get("message") or "failed"
        return f"failed ({reason})" if task_id is None else f"task {task_id} failed ({reason})"
    if state in (SUBMITTING, UNKNOWN):
        return "outcome unknown (a POST got no answer)"
    return str(state)


def base_record(entry: PlannedEntry, endpoint: str, state: str) -> dict[str, Any]:
    """The fields every record of an entry carries."""
    return {
        "state": state,
        "fingerprint": entry.fingerprint,
        "endpoint": endpoint,
        "provider": entry.provider,
        "model": entry.model,
    }


def submitting_record(entry: PlannedEntry, endpoint: str) -> dict[str, Any]:
    """Written before the paid POST: a later run that finds it knows a task may exist."""
    return base_record(entry, endpoint, SUBMITTING)


def task_record(
    lock: LockFile,
    entry: PlannedEntry,
    endpoint: str,
    task: Task,
    state: str,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The record of an entry whose task is known (submitted, finished or failed)."""
    record = base_record(entry, endpoint, state)
    seed = entry.request.seed if entry.request.seed is not None else task.extra.get("seed")
    submitted_at = None
    if previous is not None and previous.get("task_id") == task.task_id:
        submitted_at = previous.get("submitted_at")
    record.update(
        model=task.model or entry.model,
        task_id=task.task_id,
        submitted_at=submitted_at or format_time(utc_now()),
        seed=seed,
    )
    if task.poll_url:
        record["poll_url"] = task.poll_url
    if state == FINISHED:
        record["outputs"] = [
            {"path": lock.relative(image.path), "sha256": image.sha256}
            for image in task.images
            if image.path and image.path != "-"
        ]
    if task.error is not None and state == FAILED:
        record["error"] = task.error.to_json()
    return record


def lock_record(
    lock: LockFile,
    entry: PlannedEntry,
    task: Task,
    endpoint: str,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``finished`` record of an entry produced by ``task``."""
    return task_record(lock, entry, endpoint, task, FINISHED, previous)


def error_record(
    entry: PlannedEntry,
    endpoint: str,
    state: str,
    *,
    code: str | None,
    message: str,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``failed`` or ``unknown`` record (keeping the task fields a previous one had)."""
    record = dict(previous or {})
    record.pop("outputs", None)
    record.update(base_record(entry, endpoint, state))
    record["error"] = {"code": code, "message": message}
    return record


def task_from_record(
    record: dict[str, Any], base_url: str, request: dict[str, Any] | None = None
) -> Task:
    """The task a record names, as a not yet finished one to look up again.

    ``request`` (the entry's) gives the saved files the names the first run gave them.
    """
    from flux2_cli.task import TaskStatus

    return Task(
        task_id=str(record["task_id"]),
        provider=str(record.get("provider")),
        status=TaskStatus.RUNNING,
        model=record.get("model"),
        request=request,
        poll_url=record.get("poll_url"),
        base_url=base_url,
    )


@contextlib.contextmanager
def hold_run(
    manifest: Path, notice: Callable[[str], None], *, path: Path | None = None
) -> Iterator[None]:
    """One ``flux2 batch`` of this manifest at a time on this machine; a second one waits."""
    from filelock import FileLock, Timeout

    path = path if path is not None else run_lock_path(manifest)
    run_lock = FileLock(str(path), mode=0o644)
    try:
        run_lock.acquire(timeout=0)
    except Timeout:
        what = "the same lock file" if str(manifest) == "-" else manifest.name  # stdin: --lock
        notice(
            f"another flux2 batch of {what} is running on this machine; waiting for "
            f"it to finish ({path.name}). Nothing is sent meanwhile."
        )
        run_lock.acquire(timeout=-1)
    except OSError as exc:
        raise UsageError(
            f"cannot write beside {manifest} ({path.name}: {exc.strerror or exc}); the lock "
            "file and the run state live there. Nothing was sent.",
            hints=["Run from a writable copy of the manifest's folder."],
        ) from None
    try:
        yield
    finally:
        run_lock.release()
