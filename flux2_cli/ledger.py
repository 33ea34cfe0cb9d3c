"""The SQLite ledger of submitted tasks, shared safely by several processes and threads."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from flux2_cli import env
from flux2_cli.errors import Flux2Error, UsageError
from flux2_cli.task import (
    SHORT_ID_LENGTH,
    Cost,
    ImageResult,
    Task,
    TaskError,
    TaskStatus,
    id_core,
    merge_images,
    utc_now,
)

LEDGER_FILENAME = "ledger.sqlite3"
BUSY_TIMEOUT_SECONDS = 10.0
# PRAGMA application_id marks the file as ours, so a foreign SQLite file is refused, not altered.
APPLICATION_ID = 0x464C5832  # "FLX2"
DEFAULT_HISTORY_LIMIT = 20
LAST_ALIAS = "last"  # a TASK_ID naming the newest task
MIN_PREFIX = 6  # the shortest prefix of a task id accepted as a TASK_ID
MAX_CANDIDATES = 8
IMAGES_GONE = "images_gone"  # Task.extra flag: the provider no longer serves the images
PREPARE_RETRY_FIRST_DELAY = 0.01
PREPARE_RETRY_MAX_DELAY = 0.2
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600

# _MIGRATIONS[i] takes the schema from version i to i + 1; append, never edit a shipped step.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE tasks (
            id             INTEGER PRIMARY KEY AUTOINCREMENT,
            provider       TEXT NOT NULL,
            task_id        TEXT NOT NULL,
            status         TEXT NOT NULL,
            raw_status     TEXT,
            unknown_status TEXT,
            model          TEXT,
            base_url       TEXT,
            poll_url       TEXT,
            profile        TEXT,
            created_at     TEXT,
            expires_at     TEXT,
            submitted_at   TEXT NOT NULL,
            updated_at     TEXT NOT NULL,
            images         TEXT NOT NULL DEFAULT '[]',
            cost           TEXT,
            error          TEXT,
            request        TEXT,
            extra          TEXT NOT NULL DEFAULT '{}',
            downloaded     INTEGER NOT NULL DEFAULT 0,
            fingerprint    TEXT,
            batch_key      TEXT,
            UNIQUE (provider, task_id)
        )
        """,
        "CREATE INDEX tasks_by_task_id ON tasks (task_id)",
        "CREATE INDEX tasks_by_fingerprint ON tasks (fingerprint)",
        "CREATE INDEX tasks_by_batch_key ON tasks (batch_key)",
        "CREATE INDEX tasks_by_submitted ON tasks (submitted_at)",
        """
        CREATE TABLE intents (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            fingerprint TEXT NOT NULL,
            provider    TEXT NOT NULL,
            base_url    TEXT NOT NULL,
            request     TEXT NOT NULL,
            batch_key   TEXT,
            created_at  TEXT NOT NULL,
            task_row    INTEGER,
            closed_at   TEXT
        )
        """,
        "CREATE INDEX intents_by_fingerprint ON intents (fingerprint)",
    ),
)
SCHEMA_VERSION = len(_MIGRATIONS)

_FINAL_VALUES = tuple(status.value for status in TaskStatus if status.is_final)


class LedgerError(Flux2Error):
    """The ledger file cannot be opened, read or written (corrupt, foreign, newer or busy)."""


class TaskUnrecordedError(LedgerError):
    """A paid task was created but its answer could not be written to the ledger.

    ``task`` is the created task; the message names it and the hints say how to resume it.
    """

    def __init__(self, message: str, *, task: Task, hints: list[str] | None = None) -> None:
        super().__init__(message, hints=hints)
        self.task = task


@dataclass(frozen=True)
class LedgerEntry:
    """One task as the ledger knows it, with the local facts around it."""

    task: Task
    profile: str | None
    submitted_at: datetime
    updated_at: datetime
    downloaded: bool
    fingerprint: str | None
    batch_key: str | None


@dataclass(frozen=True)
class Unanswered:
    """A paid POST that got no answer: no task id, the outcome unknown."""

    sent_at: datetime
    provider: str
    base_url: str
    prompt: str
    batch: bool  # sent by ``flux2 batch`` (its --dry-run lists it too)


def default_path() -> Path:
    """``ledger.sqlite3`` in the user data dir (``FLUX2_DATA_DIR`` redirects it)."""
    return env.data_dir() / LEDGER_FILENAME


class Ledger:
    """A connection to the ledger; safe to share between threads, and between processes by file.

    Every write is one short ``BEGIN IMMEDIATE`` transaction (read, merge, write), so concurrent
    writers queue on SQLite's lock for up to ``BUSY_TIMEOUT_SECONDS`` instead of losing rows.
    """

    def __init__(
        self, path: Path | None = None, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.path = Path(path) if path is not None else default_path()
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        try:
            # Private to the user: the ledger keeps signed image URLs (secrets until they
            # expire) and every prompt. SQLite gives its -wal and -shm files the same mode.
            if not self.path.parent.is_dir():
                self.path.parent.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        except OSError as exc:
            raise LedgerError(
                f"Cannot create the ledger folder {self.path.parent}: {exc.strerror or exc}."
            ) from exc
        with contextlib.suppress(OSError):  # an existing file, or one SQLite will report on
            os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE_MODE))
        try:
            self._conn = sqlite3.connect(
                str(self.path),
                timeout=BUSY_TIMEOUT_SECONDS,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # guarded by self._lock
            )
            self._conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
            self._prepare_patiently()
        except sqlite3.Error as exc:
            self.close()
            raise self._error(exc) from exc
        except LedgerError:
            self.close()
            raise

    # -- life cycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection; further calls raise LedgerError. Safe to call twice."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _prepare_patiently(self) -> None:
        # Switching to WAL can answer SQLITE_BUSY at once, without the busy handler, while
        # another process opens the same new file; so retry the (idempotent) set-up a while.
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        delay = PREPARE_RETRY_FIRST_DELAY
        while True:
            try:
                self._prepare()
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, PREPARE_RETRY_MAX_DELAY)

    def _prepare(self) -> None:
        conn = self._require()
        # A file that is not SQLite fails here, on the first read of its header. One read
        # transaction, so a migration committed by another process is seen whole or not at all.
        conn.execute("BEGIN")
        try:
            app_id, version = self._identity(conn)
        finally:
            conn.execute("COMMIT")
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":  # e.g. a file system without shared memory
            raise LedgerError(
                f"The ledger at {self.path} cannot use SQLite WAL mode (got {mode!r}); "
                "put FLUX2_DATA_DIR on a local disk."
            )
        conn.execute("PRAGMA synchronous = NORMAL")
        if version == SCHEMA_VERSION and app_id == APPLICATION_ID:
            return
        with self._transaction() as tx:
            # Re-read inside the write lock: another process may have migrated meanwhile.
            app_id, version = self._identity(tx)
            if version > SCHEMA_VERSION:
                raise LedgerError(
                    f"The ledger at {self.path} was written by a newer flux2 "
                    f"(schema {version}, this one knows {SCHEMA_VERSION}); upgrade flux2.",
                )
            migrate(tx, version)
            tx.execute(f"PRAGMA application_id = {APPLICATION_ID}")

    def _identity(self, conn: sqlite3.Connection) -> tuple[int, int]:
        """(application_id, user_version); a foreign database raises LedgerError."""
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if app_id != APPLICATION_ID:
            tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'")
            if version != 0 or tables.fetchone()[0]:
                raise self._foreign()
        return app_id, version

    def _foreign(self) -> LedgerError:
        return LedgerError(
            f"{self.path} is not a flux2 ledger (another program's SQLite database).",
            hints=[
                f"Move it aside or set FLUX2_DATA_DIR to another folder; {LEDGER_FILENAME} "
                "is created afresh."
            ],
        )

    def _error(self, exc: sqlite3.Error) -> LedgerError:
        text = str(exc)
        if _is_busy(exc):
            return LedgerError(
                f"The ledger at {self.path} is locked by another process ({text}).",
                hints=[
                    "Try again when the other program using it has finished (another flux2 "
                    "command, or a tool that opened the file), or set FLUX2_DATA_DIR to "
                    "another folder."
                ],
            )
        if "readonly" in text.lower() or "read-only" in text.lower():
            return LedgerError(
                f"The ledger at {self.path} is read-only ({text}).",
                hints=[
                    f"Make {self.path} and its folder writable by you, or set FLUX2_DATA_DIR "
                    "to a writable folder."
                ],
            )
        return LedgerError(
            f"The ledger at {self.path} cannot be used: {text}.",
            hints=[
                "If the file is damaged, move it aside; flux2 starts a new ledger "
                "(task history is lost, tasks at the provider are not)."
            ],
        )

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LedgerError("The ledger is closed.")
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: the write lock is taken up front, so no read goes stale."""
        conn = self._require()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def _guard(self) -> Iterator[sqlite3.Connection]:
        """The thread lock plus translation of sqlite3 errors into LedgerError."""
        with self._lock:
            try:
                yield self._require()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    # -- writes -----------------------------------------------------------------------------

    def record_intent(
        self,
        fingerprint: str,
        *,
        provider: str,
        base_url: str,
        request: dict[str, Any],
        batch_key: str | None,
    ) -> int:
        """Write down that a paid POST is about to be sent; returns the intent id.

        Until :meth:`record_submit` (with ``intent_id``) or :meth:`close_intent` follows, the
        intent stays open: a crash between POST and answer leaves a visible trace.
        ``request`` must hold no secret (it is stored as is).
        """
        with self._guard(), self._transaction() as tx:
            cursor = tx.execute(
                "INSERT INTO intents (fingerprint, provider, base_url, request, batch_key,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    fingerprint,
                    provider,
                    base_url,
                    _dumps(request),
                    batch_key,
                    _store_time(self._clock()),
                ),
            )
            assert cursor.lastrowid is not None
            return int(cursor.lastrowid)

    def close_intent(self, intent_id: int) -> None:
        """Mark an intent settled without a task (the POST certainly created nothing)."""
        with self._guard(), self._transaction() as tx:
            tx.execute(
                "UPDATE intents SET closed_at = ? WHERE id = ? AND closed_at IS NULL",
                (_store_time(self._clock()), intent_id),
            )

    def record_submit(
        self,
        task: Task,
        *,
        profile: str | None = None,
        fingerprint: str | None = None,
        batch_key: str | None = None,
        intent_id: int | None = None,
    ) -> None:
        """Record a task right after its create answer; idempotent on (provider, task_id).

        A second call for the same task merges like :meth:`update` and keeps the first
        ``submitted_at``; given ``profile``/``fingerprint``/``batch_key`` fill or replace theirs.
        """
        with self._guard(), self._transaction() as tx:
            row_id = self._merge(
                tx, task, profile=profile, fingerprint=fingerprint, batch_key=batch_key
            )
            if intent_id is not None:
                tx.execute(
                    "UPDATE intents SET task_row = ?, closed_at = ? WHERE id = ?",
                    (row_id, _store_time(self._clock()), intent_id),
                )

    def update(self, task: Task) -> None:
        """Store the latest look-up of a task (status, images, expiry, cost, error, poll URL).

        Fields the new task leaves ``None`` keep their stored value (a status poll carries no
        request); images are merged so saved paths survive re-signed URLs; a final status is
        never replaced by a non-final one. An unknown task is inserted.
        """
        with self._guard(), self._transaction() as tx:
            self._merge(tx, task)

    def mark_downloaded(self, task: Task) -> None:
        """Store the saved images (path, sha256, bytes, size, format) of a task."""
        self.update(task)

    def _merge(
        self,
        tx: sqlite3.Connection,
        task: Task,
        *,
        profile: str | None = None,
        fingerprint: str | None = None,
        batch_key: str | None = None,
    ) -> int:
        now = _store_time(self._clock())
        row = tx.execute(
            f"SELECT {_COLUMNS} FROM tasks WHERE provider = ? AND task_id = ?",
            (task.provider, task.task_id),
        ).fetchone()
        task = _with_absolute_paths(task)
        if row is None:
            merged = task
            submitted_at = now
        else:
            old = self._entry(row)
            merged = merge_tasks(old.task, task)
            submitted_at = _store_time(old.submitted_at)
            profile = profile if profile is not None else old.profile
            fingerprint = fingerprint if fingerprint is not None else old.fingerprint
            batch_key = batch_key if batch_key is not None else old.batch_key
        values = {
            "provider": merged.provider,
            "task_id": merged.task_id,
            "status": merged.status.value,
            "raw_status": merged.raw_status,
            "unknown_status": merged.unknown_status,
            "model": merged.model,
            "base_url": merged.base_url,
            "poll_url": merged.poll_url,
            "profile": profile,
            "created_at": _store_time(merged.created_at),
            "expires_at": _store_time(merged.expires_at),
            "submitted_at": submitted_at,
            "updated_at": now,
            "images": _dumps([image.to_json() for image in merged.images]),
            "cost": _dumps(_cost_json(merged.cost)) if merged.cost is not None else None,
            "error": _dumps(merged.error.to_json()) if merged.error is not None else None,
            "request": _dumps(merged.request) if merged.request is not None else None,
            "extra": _dumps(merged.extra),
            "downloaded": int(is_downloaded(merged)),
            "fingerprint": fingerprint,
            "batch_key": batch_key,
        }
        if row is None:
            names = ", ".join(values)
            marks = ", ".join("?" for _ in values)
            cursor = tx.execute(
                f"INSERT INTO tasks ({names}) VALUES ({marks})", tuple(values.values())
            )
            assert cursor.lastrowid is not None
            return int(cursor.lastrowid)
        sets = ", ".join(f"{name} = ?" for name in values)
        tx.execute(f"UPDATE tasks SET {sets} WHERE id = ?", (*values.values(), row[0]))
        return int(row[0])

    # -- reads ------------------------------------------------------------------------------

    def get(self, task_id: str, provider: str | None = None) -> LedgerEntry | None:
        """The task with this id (the newest one when ``provider`` is None and ids clash)."""
        if provider is None:
            return self._one("task_id = ?", (task_id,))
        return self._one("task_id = ? AND provider = ?", (task_id, provider))

    def find_by_fingerprint(self, fingerprint: str) -> LedgerEntry | None:
        """The newest task submitted with this request fingerprint (batch resume)."""
        return self._one("fingerprint = ?", (fingerprint,))

    def find_by_batch_key(self, batch_key: str) -> LedgerEntry | None:
        """The newest task recorded under this batch key."""
        return self._one("batch_key = ?", (batch_key,))

    def history(
        self,
        *,
        limit: int | None = DEFAULT_HISTORY_LIMIT,
        pending_only: bool = False,
        now: datetime | None = None,
    ) -> list[LedgerEntry]:
        """Tasks newest first; ``pending_only`` keeps those still running or still to download.

        Pending means not final, or succeeded, not downloaded and its URLs not yet expired.
        ``limit`` None means all.
        """
        where = "1"
        params: list[Any] = []
        if pending_only:
            marks = ", ".join("?" for _ in _FINAL_VALUES)
            where = (
                f"status NOT IN ({marks}) OR (status = ? AND downloaded = 0"
                " AND (expires_at IS NULL OR expires_at > ?))"
            )
            params = [
                *_FINAL_VALUES,
                TaskStatus.SUCCEEDED.value,
                _store_time(now or self._clock()),
            ]
        return self._many(where, params, limit)

    def downloadable(self, now: datetime | None = None) -> list[LedgerEntry]:
        """Succeeded tasks not yet downloaded whose URLs have not expired (newest first)."""
        where = (
            "status = ? AND downloaded = 0 AND (expires_at IS NULL OR expires_at > ?)"
            f" AND json_extract(extra, '$.{IMAGES_GONE}') IS NULL"
        )
        params = [TaskStatus.SUCCEEDED.value, _store_time(now or self._clock())]
        return self._many(where, params, None)

    def open_intents(self, fingerprint: str) -> list[int]:
        """Intents for this fingerprint never followed by a submit or a close (outcome unknown)."""
        with self._guard() as conn:
            rows = conn.execute(
                "SELECT id FROM intents WHERE fingerprint = ? AND task_row IS NULL"
                " AND closed_at IS NULL ORDER BY id",
                (fingerprint,),
            ).fetchall()
        return [int(row[0]) for row in rows]

    def unanswered(
        self, *, since: datetime, provider: str | None = None, limit: int = 20
    ) -> list[Unanswered]:
        """Paid POSTs sent since ``since`` that were never answered (outcome unknown), newest
        first: the hints after such a POST send people to ``flux2 history`` to find them."""
        where = "task_row IS NULL AND closed_at IS NULL AND created_at >= ?"
        params: list[Any] = [_store_time(since)]
        if provider is not None:
            where += " AND provider = ?"
            params.append(provider)
        with self._guard() as conn:
            rows = conn.execute(
                "SELECT created_at, provider, base_url, request, batch_key FROM intents"
                f" WHERE {where} ORDER BY id DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        found = []
        for created_at, provider_id, base_url, request, batch_key in rows:
            try:
                prompt = str(json.loads(request).get("prompt", ""))
            except (ValueError, AttributeError):
                prompt = ""
            sent = _load_time(created_at)
            assert sent is not None
            found.append(Unanswered(sent, provider_id, base_url, prompt, batch_key is not None))
        return found

    def attempts(self, fingerprint: str) -> int:
        """How many tasks were made for this fingerprint (answered submissions): the attempt
        number of the next one, from which an idempotency key is derived."""
        with self._guard() as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM tasks WHERE fingerprint = ?", (fingerprint,)
            ).fetchone()
        return int(row[0]) if row else 0

    # -- task ids as people type them, and history filters --------------------------------

    def resolve(self, ref: str) -> LedgerEntry | None:
        """The task a TASK_ID names: an exact id, ``last``, or a unique prefix of an id or of
        its short form (at least ``MIN_PREFIX`` characters).

        None when nothing in the ledger matches; UsageError (exit 2) when a prefix is ambiguous
        or too short, with the candidates as hints.
        """
        text = ref.strip()
        exact = self.get(text)
        if exact is not None:
            return exact
        if text.lower() == LAST_ALIAS:
            newest = self._many("1", [], 1)
            if not newest:
                raise UsageError(
                    "`last` names the newest task in the ledger, and the ledger has none yet."
                )
            return newest[0]
        matches = self.matching_ids(text)
        if not matches:
            return None
        shown = [f"  {task_id}" for task_id in matches[:MAX_CANDIDATES]]
        if len(matches) > MAX_CANDIDATES:
            shown.append(f"  … and {len(matches) - MAX_CANDIDATES} more")
        if len(text) < MIN_PREFIX:
            raise UsageError(
                f"task id {text!r} is too short: give at least {MIN_PREFIX} characters "
                "(or `last`).",
                hints=["Tasks in the ledger starting with it:", *shown],
            )
        if len(matches) > 1:
            raise UsageError(
                f"task id {text!r} matches {len(matches)} tasks in the ledger; give more "
                "characters.",
                hints=shown,
            )
        return self.get(matches[0])

    def matching_ids(self, prefix: str) -> list[str]:
        """Ids (newest first) that start with ``prefix``, or whose short form does (any case)."""
        wanted = prefix.strip().lower()
        if not wanted:
            return []
        return [
            task_id
            for task_id in self.task_ids()
            if task_id.lower().startswith(wanted) or id_core(task_id).startswith(wanted)
        ]

    def task_ids(self, limit: int | None = None) -> list[str]:
        """Distinct task ids, newest first (``limit`` None: all)."""
        sql = "SELECT task_id FROM tasks GROUP BY task_id ORDER BY max(submitted_at) DESC"
        params: list[Any] = []
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, limit))
        with self._guard() as conn:
            return [str(row[0]) for row in conn.execute(sql, params).fetchall()]

    def recent_tasks(self, limit: int) -> list[tuple[str, str, str]]:
        """(task id, status, prompt) of the newest tasks: what Tab completion shows."""
        sql = (
            "SELECT task_id, status, coalesce(json_extract(request, '$.prompt'), '')"
            " FROM tasks ORDER BY submitted_at DESC, id DESC LIMIT ?"
        )
        with self._guard() as conn:
            rows = conn.execute(sql, (max(0, limit),)).fetchall()
        seen: set[str] = set()
        recent = []
        for task_id, status, prompt in rows:
            if task_id not in seen:
                seen.add(task_id)
                recent.append((str(task_id), str(status), str(prompt)))
        return recent

    def near_ids(self, ref: str, count: int = 3) -> list[str]:
        """Ledger ids that look like a mistyped ``ref`` (by the whole id or its short form)."""
        import difflib

        wanted = ref.strip().lower()
        ids = self.task_ids()
        by_form: dict[str, str] = {}
        for task_id in ids:
            # The whole id, and prefixes as long as what was typed (of the id and its short
            # form), so a mistyped prefix finds its task too.
            by_form.setdefault(task_id.lower(), task_id)
            by_form.setdefault(task_id.lower()[: len(wanted)], task_id)
            by_form.setdefault(id_core(task_id)[: max(len(wanted), SHORT_ID_LENGTH)], task_id)
        close = difflib.get_close_matches(wanted, list(by_form), n=count * 2, cutoff=0.6)
        found: list[str] = []
        for form in close:
            task_id = by_form[form]
            if task_id not in found:
                found.append(task_id)
        return found[:count]

    def filtered_history(
        self,
        *,
        limit: int | None = DEFAULT_HISTORY_LIMIT,
        pending_only: bool = False,
        provider: str | None = None,
        statuses: tuple[str, ...] = (),
        since: datetime | None = None,
        now: datetime | None = None,
    ) -> list[LedgerEntry]:
        """:meth:`history` narrowed to one provider, some stored statuses, and a start time.

        ``expired`` also matches succeeded tasks whose URLs are past their expiry, and
        ``succeeded`` only those still live, as ``history`` shows them.
        """
        moment = _store_time(now or self._clock())
        clauses: list[str] = []
        params: list[Any] = []
        if pending_only:
            marks = ", ".join("?" for _ in _FINAL_VALUES)
            clauses.append(
                f"(status NOT IN ({marks}) OR (status = ? AND downloaded = 0"
                " AND (expires_at IS NULL OR expires_at > ?)"
                f" AND json_extract(extra, '$.{IMAGES_GONE}') IS NULL))"
            )
            params += [*_FINAL_VALUES, TaskStatus.SUCCEEDED.value, moment]
        if provider is not None:
            clauses.append("provider = ?")
            params.append(provider)
        if statuses:
            gone = f"json_extract(extra, '$.{IMAGES_GONE}')"
            parts: list[str] = []
            for status in statuses:
                if status == TaskStatus.EXPIRED.value:
                    parts.append(
                        f"status = ? OR (status = ? AND (expires_at <= ? OR {gone} IS NOT NULL))"
                    )
                    params += [status, TaskStatus.SUCCEEDED.value, moment]
                elif status == TaskStatus.SUCCEEDED.value:
                    parts.append(
                        "(status = ? AND (expires_at IS NULL OR expires_at > ?)"
                        f" AND {gone} IS NULL)"
                    )
                    params += [status, moment]
                else:
                    parts.append("status = ?")
                    params.append(status)
            clauses.append("(" + " OR ".join(parts) + ")")
        if since is not None:
            clauses.append("submitted_at >= ?")
            params.append(_store_time(since))
        return self._many(" AND ".join(clauses) or "1", params, limit)

    def mark_gone(self, task: Task) -> None:
        """Remember that a task's images are gone at the provider, so no pending download
        tries it again (``download --pending`` leaves it out; ``history`` shows it expired)."""
        gone = task.evolve(status=TaskStatus.EXPIRED, extra={**task.extra, IMAGES_GONE: True})
        self.update(gone)

    def _one(self, where: str, params: tuple[Any, ...]) -> LedgerEntry | None:
        found = self._many(where, list(params), 1)
        return found[0] if found else None

    def _many(self, where: str, params: list[Any], limit: int | None) -> list[LedgerEntry]:
        sql = f"SELECT {_COLUMNS} FROM tasks WHERE {where} ORDER BY submitted_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params = [*params, max(0, limit)]
        with self._guard() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [self._entry(row) for row in rows]

    def _entry(self, row: tuple[Any, ...]) -> LedgerEntry:
        data = dict(zip(_COLUMN_NAMES, row, strict=True))
        try:
            cost = _loads(data["cost"])
            error = _loads(data["error"])
            task = Task(
                task_id=data["task_id"],
                provider=data["provider"],
                status=TaskStatus(data["status"]),
                raw_status=data["raw_status"],
                unknown_status=data["unknown_status"],
                model=data["model"],
                created_at=_load_time(data["created_at"]),
                expires_at=_load_time(data["expires_at"]),
                images=tuple(ImageResult(**image) for image in _loads(data["images"]) or ()),
                cost=Cost(credits=cost["credits"], usd=cost["usd"]) if cost else None,
                error=TaskError(code=error["code"], message=error["message"]) if error else None,
                request=_loads(data["request"]),
                poll_url=data["poll_url"],
                base_url=data["base_url"],
                extra=_loads(data["extra"]) or {},
            )
            submitted_at = _load_time(data["submitted_at"])
            updated_at = _load_time(data["updated_at"])
        except (ValueError, TypeError, KeyError) as exc:
            raise LedgerError(
                f"The ledger at {self.path} holds an unreadable row for task "
                f"{data.get('task_id')!r}: {exc}."
            ) from exc
        assert submitted_at is not None and updated_at is not None
        return LedgerEntry(
            task=task,
            profile=data["profile"],
            submitted_at=submitted_at,
            updated_at=updated_at,
            downloaded=bool(data["downloaded"]),
            fingerprint=data["fingerprint"],
            batch_key=data["batch_key"],
        )


_COLUMN_NAMES: tuple[str, ...] = (
    "id",
    "provider",
    "task_id",
    "status",
    "raw_status",
    "unknown_status",
    "model",
    "base_url",
    "poll_url",
    "profile",
    "created_at",
    "expires_at",
    "submitted_at",
    "updated_at",
    "images",
    "cost",
    "error",
    "request",
    "extra",
    "downloaded",
    "fingerprint",
    "batch_key",
)
_COLUMNS = ", ".join(_COLUMN_NAMES)


def migrate(conn: sqlite3.Connection, version: int) -> None:
    """Apply every migration step after ``version`` (inside the caller's transaction)."""
    for step in range(version, SCHEMA_VERSION):
        for statement in _MIGRATIONS[step]:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {step + 1}")


def is_downloaded(task: Task) -> bool:
    """True when the task has images and every one has a saved path."""
    return bool(task.images) and all(image.path for image in task.images)


def merge_tasks(old: Task, new: Task) -> Task:
    """The stored task brought up to date by a newer look-up (see :meth:`Ledger.update`)."""
    if old.status.is_final and not new.status.is_final:
        status, raw_status, unknown_status = old.status, old.raw_status, old.unknown_status
    else:
        status, raw_status, unknown_status = new.status, new.raw_status, new.unknown_status
    return Task(
        task_id=new.task_id,
        provider=new.provider,
        status=status,
        raw_status=raw_status,
        unknown_status=unknown_status,
        model=_first(new.model, old.model),
        created_at=_first(new.created_at, old.created_at),
        expires_at=_first(new.expires_at, old.expires_at),
        images=merge_images(old.images, new.images),
        cost=_first(new.cost, old.cost),
        error=_first(new.error, old.error),
        request=_first(new.request, old.request),
        poll_url=_first(new.poll_url, old.poll_url),
        base_url=_first(new.base_url, old.base_url),
        extra={**old.extra, **new.extra},
    )


def _with_absolute_paths(task: Task) -> Task:
    """Saved paths made absolute when stored: `history` runs from other folders later."""
    if not any(image.path and image.path != "-" for image in task.images):
        return task
    images = tuple(
        image
        if not image.path or image.path == "-" or os.path.isabs(image.path)
        else ImageResult(**{**image.to_json(), "path": os.path.abspath(image.path)})
        for image in task.images
    )
    return task.evolve(images=images)


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _first(value: Any, fallback: Any) -> Any:
    return value if value is not None else fallback


def _cost_json(cost: Cost) -> dict[str, Any]:
    # Raw numbers, not Cost.to_json's tidied ones, so the round trip is exact.
    return {"credits": cost.credits, "usd": cost.usd}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _store_time(moment: datetime | None) -> str | None:
    """Fixed-width ISO 8601 UTC with microseconds, so text order is time order."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    utc = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def _load_time(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text.rstrip("Z")).replace(tzinfo=timezone.utc)
