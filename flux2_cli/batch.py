"""Batch: manifests, planning, scheduling with a shared rate gate, resume, shards and lock files."""

from __future__ import annotations

import collections
import contextlib
import csv
import dataclasses
import difflib
import enum
import functools
import hashlib
import io
import json
import os
import queue
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flux2_cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_TASK_FAILED,
    EXIT_TERMINATED,
    ApiError,
    AuthError,
    CreditsError,
    DownloadError,
    Flux2Error,
    InterruptedError_,
    InterruptSignal,
    RateLimitError,
    SubmissionUnknownError,
    TaskFailedError,
    TerminatedSignal,
    UrlExpiredError,
    UsageError,
    WaitTimeoutError,
)
from flux2_cli.request import GenerationRequest, is_url
from flux2_cli.task import Cost, Task, TaskStatus, utc_now

if TYPE_CHECKING:
    from flux2_cli.context import Context
    from flux2_cli.providers.base import Provider

MAX_LINE_BYTES = 1_000_000
BOM = b"\xef\xbb\xbf"
LOCK_SUFFIX = ".lock.json"
LOCK_VERSION = 1
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
CSV_SUFFIXES = frozenset({".csv"})
# A 429 that got past the client's own retries pauses every worker, growing per round.
RATE_PAUSE_FIRST_S = 2.0
RATE_PAUSE_CAP_S = 60.0
RATE_MAX_ROUNDS = 6
EVENT_POLL_S = 0.2
# Look-ups near the learned task duration: every 5 % of it (at least 50 ms), up to twice it.
FINE_STEP_FRACTION = 0.025
FINE_STEP_MIN_S = 0.1
FINE_WINDOW = 2.0
# Until a duration is learned, one task of the run is polled at this share of its elapsed time
# (at least SENTINEL_MIN_S, at most the usual cap): the first wave then learns at once.
SENTINEL_FRACTION = 0.1
SENTINEL_MIN_S = 0.25
SENTINEL_MAX_S = 10.0
OUTCOME_UNKNOWN = "outcome_unknown"

STRING_KEYS = (
    "prompt",
    "ratio",
    "res",
    "mode",
    "format",
    "callback_url",
    "model",
    "name",
    "output",
)
INT_KEYS = ("seed", "width", "height", "safety")
LIST_KEYS = ("refs", "params")
ALIASES = {"ref": "refs", "param": "params"}
KNOWN_KEYS = (*STRING_KEYS, *INT_KEYS, *LIST_KEYS, *ALIASES)


class ManifestError(UsageError):
    """The manifest cannot be used (exit 2); the message names the line."""


class BatchError(Flux2Error):
    """Some entries failed, or (``--check``) some assets are out of date: exit 5."""

    exit_code = EXIT_TASK_FAILED


# --------------------------------------------------------------------------- manifests


@dataclass(frozen=True)
class ManifestEntry:
    """One entry as read: its 1-based number, the line it starts on, canonical values."""

    number: int
    line: int
    values: dict[str, Any]


@dataclass(frozen=True)
class EntryRequest:
    """The gen flags of one entry that are not settings (what ``GenOptions`` carries)."""

    prompt: str
    ratio_given: bool = False
    res_given: bool = False
    refs: tuple[str, ...] = ()
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    callback_url: str | None = None
    params: tuple[str, ...] = ()


RequestBuilder = Callable[["Context", "Provider", EntryRequest], GenerationRequest]


def lock_path(manifest: Path) -> Path:
    """``FILE.lock.json`` beside the manifest."""
    return manifest.with_name(manifest.name + LOCK_SUFFIX)


def manifest_kind(path: Path) -> str | None:
    """``jsonl``, ``csv`` or ``text`` from the extension; None when the content must decide."""
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in (".txt", ".text"):
        return "text"
    return None


def read_manifest(path: Path) -> list[ManifestEntry]:
    """Read and check a whole manifest; ManifestError (exit 2) names the file and line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise ManifestError(f"{path} is a folder, not a manifest.") from None
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read ({exc.strerror or exc}).") from None
    return parse_manifest(data, kind=manifest_kind(path), source=path.name)


def parse_manifest(
    data: bytes, *, kind: str | None = None, source: str = "manifest"
) -> list[ManifestEntry]:
    """Entries of a JSON Lines, CSV or plain-text manifest (``kind`` None: sniff the content)."""
    lines = _decode_lines(data, source)
    chosen = kind or sniff_kind(lines)
    if chosen == "jsonl":
        entries = _parse_jsonl(lines, source)
    elif chosen == "csv":
        entries = _parse_csv(lines, source)
    else:
        entries = _parse_text(lines, source)
    if not entries:
        raise ManifestError(f"{source}: holds no entries.")
    return entries


def sniff_kind(lines: list[str]) -> str:
    """Guess the format from the first non-blank line."""
    first = next((line.strip() for line in lines if line.strip()), "")
    if first.startswith("{"):
        return "jsonl"
    try:
        header = next(csv.reader([first]))
    except csv.Error:
        return "text"
    names = [_canonical(cell) for cell in header]
    if "prompt" in names and all(name in KNOWN_KEYS for name in names):
        return "csv"
    return "text"


def _fail(source: str, line: int, message: str, hints: list[str] | None = None) -> ManifestError:
    return ManifestError(f"{source}: line {line}: {message}", hints=hints)


def _decode_lines(data: bytes, source: str) -> list[str]:
    if data.startswith(BOM):
        data = data[len(BOM) :]
    lines: list[str] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if len(raw) > MAX_LINE_BYTES:
            raise _fail(
                source,
                number,
                f"the line is {len(raw):,} bytes, over the {MAX_LINE_BYTES:,}-byte limit.",
            )
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise _fail(
                source, number, f"not valid UTF-8 (byte {exc.start + 1} of the line)."
            ) from None
    return lines


def _canonical(key: str) -> str:
    return key.strip().lower().replace("-", "_")


def _unknown_key(source: str, line: int, key: str, what: str = "key") -> ManifestError:
    close = difflib.get_close_matches(_canonical(key), KNOWN_KEYS, n=1, cutoff=0.6)
    suggestion = f"; did you mean {close[0]!r}?" if close else ""
    return _fail(
        source,
        line,
        f"unknown {what} {key!r}{suggestion}",
        hints=["Keys: " + " ".join(sorted(KNOWN_KEYS))],
    )


def _parse_jsonl(lines: list[str], source: str) -> list[ManifestEntry]:
    entries: list[ManifestEntry] = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except ValueError as exc:
            detail = getattr(exc, "msg", str(exc))
            column = getattr(exc, "colno", None)
            where = f" at column {column}" if column else ""
            raise _fail(source, number, f"not valid JSON ({detail}{where}).") from None
        if isinstance(value, str):
            value = {"prompt": value}
        if not isinstance(value, dict):
            raise _fail(source, number, "expected a JSON object (or a string prompt).")
        entries.append(
            ManifestEntry(len(entries) + 1, number, _normalise(value, source, number, False))
        )
    return entries


def _parse_text(lines: list[str], source: str) -> list[ManifestEntry]:
    entries: list[ManifestEntry] = []
    for number, text in enumerate(lines, start=1):
        prompt = text.strip()
        if not prompt or prompt.startswith("#"):
            continue
        entries.append(ManifestEntry(len(entries) + 1, number, {"prompt": prompt}))
    return entries


def _parse_csv(lines: list[str], source: str) -> list[ManifestEntry]:
    start = next((index for index, line in enumerate(lines) if line.strip()), None)
    if start is None:
        return []
    reader = csv.reader(io.StringIO("\n".join(lines[start:])))
    header_line = start + 1
    try:
        header = next(reader)
    except csv.Error as exc:
        raise _fail(source, header_line, f"cannot read the CSV header ({exc}).") from None
    names: list[str] = []
    for cell in header:
        name = _canonical(cell)
        if name not in KNOWN_KEYS:
            raise _unknown_key(source, header_line, cell.strip(), "column")
        if ALIASES.get(name, name) in (ALIASES.get(other, other) for other in names):
            raise _fail(source, header_line, f"column {cell.strip()!r} given twice.")
        names.append(name)
    if "prompt" not in names:
        raise _fail(source, header_line, "the header has no 'prompt' column.")
    entries: list[ManifestEntry] = []
    consumed = reader.line_num
    while True:
        first_line = start + consumed + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise _fail(source, first_line, f"cannot read the CSV row ({exc}).") from None
        consumed = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(names):
            raise _fail(source, first_line, f"{len(row)} cells, but the header names {len(names)}.")
        raw = {name: cell for name, cell in zip(names, row, strict=False) if cell.strip()}
        entries.append(
            ManifestEntry(len(entries) + 1, first_line, _normalise(raw, source, first_line, True))
        )
    return entries


def _normalise(raw: dict[str, Any], source: str, line: int, from_csv: bool) -> dict[str, Any]:
    """Canonical keys and typed values; ManifestError for unknown keys and wrong types."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = _canonical(str(key))
        if name not in KNOWN_KEYS:
            raise _unknown_key(source, line, str(key))
        name = ALIASES.get(name, name)
        if value is None:
            continue
        if name in STRING_KEYS:
            if not isinstance(value, str):
                raise _fail(source, line, f"{name!r} must be a string, not {json.dumps(value)}.")
            values[name] = value.strip() if name != "prompt" else value
        elif name in INT_KEYS:
            values[name] = _as_int(name, value, source, line)
        elif name == "refs":
            values["refs"] = values.get("refs", ()) + _as_refs(value, source, line, from_csv)
        else:
            values["params"] = values.get("params", ()) + _as_params(value, source, line)
    if "prompt" not in values:
        raise _fail(source, line, "no 'prompt'.")
    return values


def _as_int(name: str, value: Any, source: str, line: int) -> int:
    if isinstance(value, bool):
        raise _fail(source, line, f"{name!r} must be an integer, not {json.dumps(value)}.")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _fail(source, line, f"{name!r} must be an integer, not {json.dumps(value)}.")


def _as_refs(value: Any, source: str, line: int, from_csv: bool) -> tuple[str, ...]:
    if isinstance(value, str):
        # A CSV cell holds several references separated by spaces or '|'.
        parts = value.replace("|", " ").split() if from_csv else [value.strip()]
        return tuple(part for part in parts if part)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(item.strip() for item in value if item.strip())
    raise _fail(source, line, "'refs' must be a list of URLs or paths.")


def _as_params(value: Any, source: str, line: int) -> tuple[str, ...]:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except ValueError:
                raise _fail(source, line, "'params' is not a valid JSON object.") from None
        else:
            return tuple(part.strip() for part in text.split(";") if part.strip())
    if isinstance(value, dict):
        return tuple(f"{key}={json.dumps(item)}" for key, item in value.items())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise _fail(source, line, "'params' must be an object (or a list of KEY=VALUE).")


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class PlannedEntry:
    """One validated entry: its request, fingerprint, lock key, output and price."""

    number: int
    line: int
    key: str
    name: str | None
    request: GenerationRequest
    provider: str
    model: str
    fingerprint: str
    output: str
    name_template: str
    estimate: Cost | None

    @property
    def label(self) -> str:
        """How people see the entry: its name or number, and its line."""
        return f"{self.key} (line {self.line})"


def plan_entries(
    ctx: Context,
    provider: Provider,
    manifest: Path,
    entries: Iterable[ManifestEntry],
    build: RequestBuilder,
) -> list[PlannedEntry]:
    """Validate every entry (command-line options are the defaults); errors name the line."""
    from flux2_cli.download import validate_template

    settings = ctx.settings
    base = manifest.parent
    planned: list[PlannedEntry] = []
    seen_fingerprints: dict[str, int] = {}
    seen_keys: dict[str, int] = {}
    if settings.output_dir == "-":
        raise UsageError("-o - (image bytes on stdout) does not go with batch; give a folder.")
    default_output = _as_folder(settings.output_dir)
    for entry in entries:
        values = entry.values
        source = manifest.name
        entry_settings = dataclasses.replace(
            settings,
            ratio=values.get("ratio", settings.ratio),
            res=values.get("res", settings.res),
            mode=values.get("mode", settings.mode),
            format=values.get("format", settings.format),
            safety=values.get("safety", settings.safety),
            model=values.get("model", settings.model),
        )
        fields = EntryRequest(
            prompt=values["prompt"],
            ratio_given="ratio" in values,
            res_given="res" in values,
            refs=values.get("refs", ()),
            seed=values.get("seed"),
            width=values.get("width"),
            height=values.get("height"),
            callback_url=values.get("callback_url"),
            params=values.get("params", ()),
        )
        name = values.get("name") or None
        try:
            request = build(dataclasses.replace(ctx, settings=entry_settings), provider, fields)
            template = name or settings.name
            validate_template(template)
        except UsageError as exc:
            raise _fail(source, entry.line, exc.message, exc.hints) from None
        model = provider.model_for(request)
        fingerprint = request_fingerprint(request, provider.capabilities.id, model)
        # Identical entries are distinct images: each repeat gets its own fingerprint.
        repeat = seen_fingerprints.get(fingerprint, 0) + 1
        seen_fingerprints[fingerprint] = repeat
        if repeat > 1:
            fingerprint = hashlib.sha256(f"{fingerprint}#{repeat}".encode()).hexdigest()
        key = name if name and "{" not in name else f"#{entry.number}"
        if key in seen_keys:
            raise _fail(
                source, entry.line, f"name {key!r} is already used on line {seen_keys[key]}."
            )
        seen_keys[key] = entry.line
        output = values.get("output")
        if output == "-":
            raise _fail(source, entry.line, "'output' cannot be - in a batch; give a path.")
        planned.append(
            PlannedEntry(
                number=entry.number,
                line=entry.line,
                key=key,
                name=name,
                request=request,
                provider=provider.capabilities.id,
                model=model,
                fingerprint=fingerprint,
                output=_entry_output(output, base) if output else default_output,
                name_template=template,
                estimate=provider.estimate_cost(request),
            )
        )
    return planned


def request_fingerprint(request: GenerationRequest, provider: str, model: str) -> str:
    """The request's fingerprint, with the bytes of local reference files mixed in."""
    fingerprint = request.fingerprint(provider, model)
    local = [ref for ref in request.refs if not is_url(ref)]
    if not local:
        return fingerprint
    digest = hashlib.sha256(fingerprint.encode())
    for ref in local:
        digest.update(b"\0" + (file_sha256(Path(ref).expanduser()) or "missing").encode())
    return digest.hexdigest()


def _as_folder(output: str) -> str:
    if output in ("", "."):
        return "."
    return output if output.endswith(("/", os.sep)) else output + "/"


def _entry_output(output: str, base: Path) -> str:
    """An entry's ``output``, relative paths taken from the manifest's folder."""
    path = Path(output).expanduser()
    if not path.is_absolute():
        path = base / path
    text = str(path)
    return text + "/" if output.endswith(("/", os.sep)) else text


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` (1 ≤ K ≤ N) or a UsageError."""
    part, sep, whole = text.partition("/")
    try:
        k, n = int(part), int(whole)
    except ValueError:
        k = n = 0
    if not sep or n < 1 or not 1 <= k <= n:
        raise UsageError(f"--shard {text!r}: expected K/N with 1 ≤ K ≤ N, such as 2/4.")
    return k, n


def select_shard(planned: list[PlannedEntry], k: int, n: int) -> list[PlannedEntry]:
    """Shard ``k`` of ``n``: a stable split by fingerprint (the same entries every run)."""
    return [entry for entry in planned if int(entry.fingerprint, 16) % n == k - 1]


# --------------------------------------------------------------------------- the lock file


def file_sha256(path: Path) -> str | None:
    """The sha256 of a file, or None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


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
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.base)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
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


# --------------------------------------------------------------------------- deciding


class Action(str, enum.Enum):
    """What a run does for an entry."""

    SKIP = "skip"  # up to date (lock file or ledger): no request at all
    DOWNLOAD = "download"  # finished earlier, not (or no longer) saved
    POLL = "poll"  # submitted earlier, still running: resume polling
    SUBMIT = "submit"  # the one paid POST
    UNKNOWN = "unknown"  # a POST whose answer never arrived: not resubmitted silently


@dataclass(frozen=True)
class Decision:
    """The action for one entry, with the task the ledger knows and the lock record."""

    entry: PlannedEntry
    action: Action
    task: Task | None = None
    record: dict[str, Any] | None = None
    source: str = "new"  # lock | ledger | new

    @property
    def pays(self) -> bool:
        """True when this decision sends a paid POST."""
        return self.action is Action.SUBMIT


def decide(
    ctx: Context, entry: PlannedEntry, lock: LockFile, *, resubmit_unknown: bool
) -> Decision:
    """Skip, download, poll, submit or report unknown — from the lock file and the ledger."""
    record = lock.record_for(entry.key, entry.fingerprint)
    if record is not None:
        return Decision(entry, Action.SKIP, record=record, source="lock")
    ledger = ctx.ledger()
    known = ledger.find_by_fingerprint(entry.fingerprint)
    if known is not None:
        task = known.task
        if not task.status.is_final:
            return Decision(entry, Action.POLL, task=task, source="ledger")
        if task.status is TaskStatus.SUCCEEDED:
            if _saved_intact(task):
                return Decision(entry, Action.SKIP, task=task, source="ledger")
            if task.expires_at is None or task.expires_at > utc_now():
                return Decision(entry, Action.DOWNLOAD, task=task, source="ledger")
        return Decision(entry, Action.SUBMIT)  # failed or expired: generate again
    if ledger.open_intents(entry.fingerprint) and not resubmit_unknown:
        return Decision(entry, Action.UNKNOWN)
    return Decision(entry, Action.SUBMIT)


def _saved_intact(task: Task) -> bool:
    if not task.images:
        return False
    for image in task.images:
        if not image.path or image.path == "-" or not image.sha256:
            return False
        if file_sha256(Path(image.path)) != image.sha256:
            return False
    return True


# --------------------------------------------------------------------------- running


class _Learned(Exception):
    """Raised inside a waiting worker's sleep when the run has just learned the task duration."""


class _Stopped(BaseException):
    """Unwinds a worker when the run is stopped (Ctrl-C, SIGTERM, a fatal error)."""


class RateGate:
    """A shared "not before" moment: after a 429 every worker pauses before its next call."""

    def __init__(self, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._not_before = float("-inf")
        self.pauses = 0

    def slow_down(self, seconds: float) -> None:
        """Push the shared moment at least ``seconds`` into the future."""
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + seconds)
            self.pauses += 1

    def wait(self) -> None:
        """Sleep until the shared moment has passed."""
        while True:
            with self._lock:
                delay = self._not_before - self._clock()
            if delay <= 0:
                return
            self._sleep(delay)


class Durations:
    """How long this run's tasks take: per finished task, the last moment it was still pending.

    The median of the latest ``window`` of them is a lower bound shared by the run's tasks.
    """

    def __init__(self, window: int) -> None:
        self._recent: collections.deque[float] = collections.deque(maxlen=window)
        self._lock = threading.Lock()
        self.learned = threading.Event()  # set by the first finished task

    def add(self, still_pending_at: float) -> None:
        """Record one finished task's last pending moment (seconds after its submit)."""
        with self._lock:
            self._recent.append(still_pending_at)
        self.learned.set()

    def estimate(self) -> float | None:
        """The expected duration, or None before any task has finished."""
        with self._lock:
            if not self._recent:
                return None
            return float(statistics.median(self._recent))


@dataclass(frozen=True)
class BatchOptions:
    """What ``flux2 batch`` was asked to do, besides the settings."""

    manifest: Path
    concurrency: int = 4
    dry_run: bool = False
    check: bool = False
    max_cost: float | None = None
    shard: tuple[int, int] | None = None
    resubmit_unknown: bool = False
    overwrite: bool = False
    sidecar: bool = True
    embed_metadata: bool = False


@dataclass
class Outcome:
    """How one entry ended."""

    decision: Decision
    status: str  # done | failed | skipped
    task: Task | None = None
    error: Flux2Error | None = None
    submitted: bool = False

    @property
    def entry(self) -> PlannedEntry:
        """The entry."""
        return self.decision.entry

    def paths(self, lock: LockFile) -> list[str]:
        """The saved image paths."""
        if self.task is not None and self.task.images:
            return [image.path for image in self.task.images if image.path and image.path != "-"]
        record = self.decision.record or {}
        return [str(lock.resolve(str(item["path"]))) for item in record.get("outputs") or []]

    def to_json(self) -> dict[str, Any]:
        """The JSON line of ``--json``."""
        entry = self.entry
        return {
            "entry": entry.number,
            "name": entry.name,
            "key": entry.key,
            "line": entry.line,
            "status": self.status,
            "source": "submitted" if self.submitted else self.decision.source,
            "fingerprint": entry.fingerprint,
            "task": self.task.to_json() if self.task is not None else None,
            "error": error_json(self.error) if self.error is not None else None,
        }


@dataclass
class Summary:
    """The totals of a run."""

    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    credits: float = 0.0
    wall_seconds: float = 0.0
    failures: list[Outcome] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The closing object of ``--json``."""
        return {
            "summary": True,
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
            "credits": _tidy(self.credits),
            "wall_seconds": round(self.wall_seconds, 3),
            "failed_entries": [outcome.entry.key for outcome in self.failures],
        }


def error_json(error: Flux2Error) -> dict[str, Any]:
    """A failure as ``{"code", "message", "exit_code"}``."""
    return {"code": error_code(error), "message": error.message, "exit_code": error.exit_code}


def error_code(error: Flux2Error) -> str:
    """A short stable code for a failure."""
    if isinstance(error, SubmissionUnknownError) or getattr(error, "code", None) == OUTCOME_UNKNOWN:
        return OUTCOME_UNKNOWN
    if isinstance(error, TaskFailedError):
        return error.code or "task_failed"
    if isinstance(error, ApiError):
        return error.code or (f"http_{error.status_code}" if error.status_code else "api_error")
    if isinstance(error, WaitTimeoutError):
        return "timeout"
    if isinstance(error, UrlExpiredError):
        return "url_expired"
    if isinstance(error, DownloadError):
        return "download_failed"
    return type(error).__name__.lower()


class _UnknownOutcome(Flux2Error):
    exit_code = EXIT_TASK_FAILED
    code = OUTCOME_UNKNOWN


class Runner:
    """Runs the decided entries with ``concurrency`` workers on one Context."""

    def __init__(self, ctx: Context, provider: Provider, options: BatchOptions) -> None:
        self.ctx = ctx
        self.provider = provider
        self.options = options
        self.stop = threading.Event()
        real_sleep = ctx.sleep
        stop = self.stop

        def sleep(seconds: float) -> None:
            # Sleeping workers wake up at once when the run stops (Ctrl-C, a fatal error).
            if stop.is_set():
                raise _Stopped()
            if real_sleep is time.sleep:
                if stop.wait(seconds):
                    raise _Stopped()
            else:
                real_sleep(seconds)

        ctx.sleep = sleep
        self.gate = RateGate(ctx.clock, sleep)
        self.durations = Durations(window=max(1, options.concurrency))
        self._sentinel_lock = threading.Lock()
        self._sentinel_claimed = False
        learned = self.durations.learned

        def sleep_until_learned(seconds: float) -> None:
            # A first-wave worker on the usual schedule wakes as soon as a duration is known.
            if real_sleep is time.sleep:
                end = time.monotonic() + seconds
                while (left := end - time.monotonic()) > 0:
                    if stop.is_set():
                        raise _Stopped()
                    if learned.wait(min(left, EVENT_POLL_S)):
                        raise _Learned()
            else:
                sleep(seconds)
                if learned.is_set():
                    raise _Learned()

        self.sleep_until_learned = sleep_until_learned
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()

    def _claim_sentinel(self) -> bool:
        """True for the one task of the run that is polled finely until it ends."""
        with self._sentinel_lock:
            if self._sentinel_claimed:
                return False
            self._sentinel_claimed = True
            return True

    def prepare(self, decisions: list[Decision]) -> None:
        """Open the ledger and one client per endpoint before any thread starts."""
        self.ctx.ledger()
        endpoints = {(self.provider.capabilities.id, self.ctx.base_url(self.provider))}
        for decision in decisions:
            if decision.task is not None and decision.action is not Action.SKIP:
                provider = self.ctx.provider(decision.task.provider)
                base_url = decision.task.base_url or self.ctx.base_url(provider)
                endpoints.add((provider.capabilities.id, base_url))
        for provider_id, base_url in sorted(endpoints):
            self.ctx.client(self.ctx.provider(provider_id), base_url)

    def run(self, work: list[Decision]) -> Iterator[tuple[str, Any]]:
        """Start the workers; yield ``("start", Decision)`` and ``("end", Outcome)`` events.

        A task worker holds one of the ``concurrency`` slots from submit until the task ends,
        then hands the download to a download worker and takes the next entry: downloads
        overlap the next tasks instead of keeping a slot (and the provider) idle.
        """
        todo: queue.Queue[Decision] = queue.Queue()
        for decision in work:
            todo.put(decision)
        fetch: queue.Queue[tuple[Decision, Task, bool]] = queue.Queue()
        count = min(self.options.concurrency, len(work))
        threads = [
            threading.Thread(target=self._worker, args=(todo, fetch), daemon=True, name=f"task-{n}")
            for n in range(count)
        ] + [
            threading.Thread(target=self._fetcher, args=(fetch,), daemon=True, name=f"fetch-{n}")
            for n in range(count)
        ]
        for thread in threads:
            thread.start()
        remaining = len(work)
        while remaining:
            try:
                kind, payload = self.events.get(timeout=EVENT_POLL_S)
            except queue.Empty:
                if not any(thread.is_alive() for thread in threads) and self.events.empty():
                    raise RuntimeError("batch workers stopped without reporting") from None
                continue
            if kind == "fatal":
                self.stop.set()
                raise payload
            if kind == "end":
                remaining -= 1
            yield kind, payload

    def _worker(
        self, todo: queue.Queue[Decision], fetch: queue.Queue[tuple[Decision, Task, bool]]
    ) -> None:
        while not self.stop.is_set():
            try:
                decision = todo.get_nowait()
            except queue.Empty:
                return
            self.events.put(("start", decision))
            self._guarded(functools.partial(self._task_phase, decision, fetch))

    def _fetcher(self, fetch: queue.Queue[tuple[Decision, Task, bool]]) -> None:
        while not self.stop.is_set():
            try:
                decision, task, submitted = fetch.get(timeout=EVENT_POLL_S)
            except queue.Empty:
                continue
            self._guarded(functools.partial(self._download_phase, decision, task, submitted))

    def _guarded(self, step: Callable[[], Outcome | None]) -> None:
        """Run one step; report its outcome, or a fatal error to the main thread."""
        try:
            outcome = step()
        except _Stopped:
            return
        except (AuthError, CreditsError) as exc:
            # The account itself is refused: every other entry would fail the same way.
            self.stop.set()
            self.events.put(("fatal", exc))
            return
        except BaseException as exc:  # a bug: surface it in the main thread
            self.stop.set()
            self.events.put(("fatal", exc))
            return
        if outcome is not None:
            self.events.put(("end", outcome))

    def _task_phase(
        self, decision: Decision, fetch: queue.Queue[tuple[Decision, Task, bool]]
    ) -> Outcome | None:
        """Submit (or resume) and wait; a succeeded task goes on to the download workers."""
        from flux2_cli import jobs

        task = decision.task
        submitted = False
        try:
            submitted_at = None
            if decision.action is Action.SUBMIT:
                submitted_at = self.ctx.clock()
                task = self._submit(decision.entry)
                submitted = True
            assert task is not None
            if not task.status.is_final:
                task = self._wait(task, resumed=not submitted, submitted_at=submitted_at)
            jobs.raise_if_failed(task)
        except (AuthError, CreditsError, _Stopped):
            raise
        except Flux2Error as exc:
            latest = getattr(exc, "task", None)  # a timeout carries the last state seen
            if isinstance(latest, Task):
                task = latest
            return Outcome(decision, "failed", task=task, error=exc, submitted=submitted)
        fetch.put((decision, task, submitted))
        return None

    def _download_phase(self, decision: Decision, task: Task, submitted: bool) -> Outcome:
        try:
            task = self._download(decision, task)
        except (AuthError, CreditsError, _Stopped):
            raise
        except Flux2Error as exc:
            return Outcome(decision, "failed", task=task, error=exc, submitted=submitted)
        return Outcome(decision, "done", task=task, submitted=submitted)

    def _submit(self, entry: PlannedEntry) -> Task:
        from flux2_cli import jobs

        ledger = self.ctx.ledger()
        stale_intents = ledger.open_intents(entry.fingerprint)
        rounds = 0
        while True:
            self.gate.wait()
            try:
                task = jobs.submit(
                    self.ctx,
                    self.provider,
                    entry.request,
                    fingerprint=entry.fingerprint,
                    batch_key=f"{self.options.manifest.resolve()}#{entry.key}",
                )
                break
            except RateLimitError:
                rounds += 1
                if rounds > RATE_MAX_ROUNDS:
                    raise
                self.gate.slow_down(self._pause(rounds))
        for intent in stale_intents:
            # --resubmit-unknown: the old unanswered POST is settled by this new task.
            ledger.close_intent(intent)
        return task

    def _wait(self, task: Task, *, resumed: bool, submitted_at: float | None = None) -> Task:
        """Poll until final: finely near the learned duration, else on the usual schedule.

        Before anything is learned, one task (the sentinel) is polled finely and the others
        wait on the usual schedule, woken as soon as the sentinel's duration is known.
        """
        from flux2_cli import jobs

        clock = self.ctx.clock
        timeout = self.ctx.settings.timeout
        deadline = clock() + timeout
        poll_first = resumed
        fine_done = submitted_at is None or resumed
        rounds = 0
        last_pending: list[float] = []
        latest = [task]

        def seen(current: Task) -> None:
            latest[0] = current
            if submitted_at is not None and not current.status.is_final:
                last_pending[:] = [clock() - submitted_at]

        while True:
            try:
                if not fine_done and submitted_at is not None:
                    if self.durations.estimate() is not None:
                        task = self._poll_near_expected(task, submitted_at, deadline, seen)
                        fine_done = True
                    elif self._claim_sentinel():
                        task = self._poll_as_sentinel(task, submitted_at, deadline, seen)
                        fine_done = True
                if not task.status.is_final:
                    task = jobs.wait(
                        self.ctx,
                        task,
                        timeout=max(0.0, deadline - clock()),
                        poll_first=poll_first,
                        on_update=seen,
                        sleep=None if fine_done else self.sleep_until_learned,
                    )
                if last_pending and task.status is TaskStatus.SUCCEEDED:
                    self.durations.add(last_pending[0])
                return task
            except _Learned:
                task = latest[0]  # back to the top: the fine look-ups around the duration
            except WaitTimeoutError as exc:
                error = WaitTimeoutError(
                    f"timed out after {timeout:g} s waiting for task {task.task_id}",
                    task_id=task.task_id,
                    hints=exc.hints,
                )
                error.task = getattr(exc, "task", None)  # type: ignore[attr-defined,unused-ignore]
                raise error from None
            except RateLimitError:
                rounds += 1
                if rounds > RATE_MAX_ROUNDS:
                    raise
                self.gate.slow_down(self._pause(rounds))
                self.gate.wait()
                stored = self.ctx.ledger().get(task.task_id, task.provider)
                task = stored.task if stored is not None else task
                poll_first = True

    def _poll_as_sentinel(
        self,
        task: Task,
        submitted_at: float,
        deadline: float,
        seen: Callable[[Task], None],
    ) -> Task:
        """Poll at a tenth of the elapsed time (0.25 s to 10 s) until the task ends."""
        from flux2_cli import jobs

        clock = self.ctx.clock
        while not task.status.is_final:
            elapsed = max(0.0, clock() - submitted_at)
            step = min(SENTINEL_MAX_S, max(SENTINEL_MIN_S, SENTINEL_FRACTION * elapsed))
            if clock() + step >= deadline:
                break  # the usual schedule reports the timeout
            self.ctx.sleep(step)
            task = jobs.refresh(self.ctx, task)
            seen(task)
        return task

    def _poll_near_expected(
        self,
        task: Task,
        submitted_at: float,
        deadline: float,
        seen: Callable[[Task], None],
    ) -> Task:
        """Short look-ups around the duration this run has learned, before the usual schedule.

        Tasks of one batch take about as long as each other, so once a few have finished, a
        poll just before that moment, then every 5 % of it, finds the next ones done at once
        instead of up to half an interval late. Nothing learned yet: nothing done here.
        """
        from flux2_cli import jobs

        expected = self.durations.estimate()
        if expected is None:  # pragma: no cover - callers check first
            return task
        clock = self.ctx.clock
        step = max(FINE_STEP_MIN_S, FINE_STEP_FRACTION * expected)
        moment = submitted_at + expected - step
        while not task.status.is_final and moment <= submitted_at + FINE_WINDOW * expected:
            if moment >= deadline:
                break
            delay = moment - clock()
            if delay > 0:
                self.ctx.sleep(delay)
            task = jobs.refresh(self.ctx, task)
            seen(task)
            moment = max(moment, clock()) + step
        return task

    def _download(self, decision: Decision, task: Task) -> Task:
        from flux2_cli import jobs
        from flux2_cli.download import DownloadOptions

        entry = decision.entry
        options = DownloadOptions(
            output=entry.output,
            name_template=entry.name_template,
            # A task fetched again (a resumed run) replaces its own earlier, partial copy.
            overwrite=self.options.overwrite or decision.source == "ledger",
            sidecar=self.options.sidecar,
            embed_metadata=self.options.embed_metadata,
        )
        return jobs.download(self.ctx, task, options)

    @staticmethod
    def _pause(rounds: int) -> float:
        return float(min(RATE_PAUSE_CAP_S, RATE_PAUSE_FIRST_S * 2.0 ** (rounds - 1)))


# --------------------------------------------------------------------------- the command


def run_batch(ctx: Context, options: BatchOptions, build: RequestBuilder) -> Summary | None:
    """``flux2 batch``: validate everything, then check, plan, or run. Raises BatchError (5)."""
    provider = ctx.provider()
    entries = read_manifest(options.manifest)
    planned = plan_entries(ctx, provider, options.manifest, entries, build)
    if options.shard is not None:
        planned = select_shard(planned, *options.shard)
    lock = LockFile.load(lock_path(options.manifest), warn=ctx.output.warn)
    if options.check:
        check(ctx, planned, lock)
        return None
    decisions = [
        decide(ctx, entry, lock, resubmit_unknown=options.resubmit_unknown) for entry in planned
    ]
    credits, usd, unpriced = estimate(decisions)
    if options.dry_run:
        print_plan(ctx, decisions, credits, usd, unpriced)
    if options.max_cost is not None:
        check_max_cost(provider, options.max_cost, credits, unpriced)
    if options.dry_run:
        return None
    if not options.shard:
        lock.keep_only(entry.key for entry in planned)
    return execute(ctx, provider, options, decisions, lock)


def estimate(decisions: list[Decision]) -> tuple[float, float, int]:
    """Estimated credits and dollars of the entries to submit, and how many have no price."""
    credits = usd = 0.0
    unpriced = 0
    for decision in decisions:
        if not decision.pays:
            continue
        cost = decision.entry.estimate
        if cost is None or cost.credits is None:
            unpriced += 1
            continue
        credits += cost.credits
        usd += cost.usd or 0.0
    return credits, usd, unpriced


def check_max_cost(provider: Provider, max_cost: float, credits: float, unpriced: int) -> None:
    """UsageError (exit 2) before the first POST when the estimate is over ``--max-cost``."""
    if unpriced:
        raise UsageError(
            f"--max-cost cannot be checked: {provider.capabilities.id} publishes no price for "
            f"{unpriced} entr{'y' if unpriced == 1 else 'ies'}; nothing was sent."
        )
    if credits > max_cost:
        raise UsageError(
            f"the estimated cost, {credits:g} credits, is over --max-cost {max_cost:g}; "
            "nothing was sent.",
            hints=["Raise --max-cost, or split the work with --shard K/N."],
        )


def print_plan(
    ctx: Context, decisions: list[Decision], credits: float, usd: float, unpriced: int
) -> None:
    """``--dry-run``: one row (or JSON line) per entry, then the total. Nothing is sent."""
    output = ctx.output
    rows = []
    for decision in decisions:
        entry = decision.entry
        cost = entry.estimate if decision.pays else None
        if output.json_mode:
            output.json_line(
                {
                    "entry": entry.number,
                    "name": entry.name,
                    "key": entry.key,
                    "line": entry.line,
                    "action": decision.action.value,
                    "fingerprint": entry.fingerprint,
                    "estimated_cost": cost.to_json() if cost is not None else None,
                    "request": entry.request.to_json(),
                }
            )
        credit_text = "" if cost is None or cost.credits is None else f"{cost.credits:g}"
        rows.append(
            [
                entry.key,
                entry.line,
                decision.action.value,
                _short(entry.request.prompt),
                credit_text,
            ]
        )
    submits = sum(1 for decision in decisions if decision.pays)
    if output.json_mode:
        output.json_line(
            {
                "summary": True,
                "dry_run": True,
                "total": len(decisions),
                "to_submit": submits,
                "estimated_credits": _tidy(credits),
                "estimated_usd": round(usd, 4),
                "unpriced": unpriced,
            }
        )
        return
    output.table(None, ["entry", "line", "action", "prompt", "credits"], rows)
    note = f" ({unpriced} without a published price)" if unpriced else ""
    output.info(
        f"Plan: {len(decisions)} entries, {submits} to submit; estimated cost {credits:g} "
        f"credits (≈ ${usd:.2f}){note}. Nothing was sent."
    )


def check(ctx: Context, planned: list[PlannedEntry], lock: LockFile) -> None:
    """``--check``: compare the manifest with the lock file and the files; send nothing."""
    output = ctx.output
    problems: list[tuple[PlannedEntry, str]] = []
    for entry in planned:
        problem = lock.problem(entry.key, entry.fingerprint)
        state = "ok" if problem is None else problem.split(":")[0]
        if output.json_mode:
            output.json_line(
                {
                    "entry": entry.number,
                    "name": entry.name,
                    "key": entry.key,
                    "line": entry.line,
                    "status": state,
                    "reason": problem,
                }
            )
        if problem is not None:
            problems.append((entry, problem))
            output.result(f"{state}\t{entry.key}\tline {entry.line}\t{problem}")
    if output.json_mode:
        counts = {"missing": 0, "changed": 0, "stale": 0}
        for _, problem in problems:
            counts[problem.split(":")[0]] += 1
        output.json_line(
            {"summary": True, "check": True, "ok": len(planned) - len(problems), **counts}
        )
    if not problems:
        output.info(f"All {len(planned)} entries are up to date ({lock.path.name}).")
        return
    named = ", ".join(f"{entry.label}: {problem}" for entry, problem in problems[:20])
    more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
    raise BatchError(
        f"{len(problems)} of {len(planned)} entries are out of date: {named}{more}",
        hints=[
            f"Run `flux2 batch {lock.path.name[: -len(LOCK_SUFFIX)]}` to bring them up to date."
        ],
    )


def execute(
    ctx: Context,
    provider: Provider,
    options: BatchOptions,
    decisions: list[Decision],
    lock: LockFile,
) -> Summary:
    """Run the entries: skips at once, the rest on the workers; the summary, or BatchError."""
    output = ctx.output
    started = ctx.clock()
    summary = Summary(total=len(decisions))
    running = 0
    finished = 0

    with output.progress("batch", len(decisions)) as advance:

        def report(outcome: Outcome) -> None:
            nonlocal finished
            finished += 1
            entry = outcome.entry
            if outcome.status == "done":
                summary.done += 1
                if outcome.submitted and outcome.task is not None and outcome.task.cost:
                    summary.credits += outcome.task.cost.credits or 0.0
            elif outcome.status == "skipped":
                summary.skipped += 1
            else:
                summary.failed += 1
                summary.failures.append(outcome)
            if outcome.status == "done" and outcome.task is not None:
                lock.put(entry.key, lock_record(lock, entry, outcome.task))
            elif outcome.status == "skipped":
                if outcome.task is not None:
                    lock.put(entry.key, lock_record(lock, entry, outcome.task))
                elif outcome.decision.record is not None:
                    lock.put(entry.key, {**outcome.decision.record, "line": entry.line})
            if output.json_mode:
                output.json_line(outcome.to_json())
            elif outcome.status != "failed":
                for path in outcome.paths(lock):
                    output.result(path)
            line = None if output.json_mode else _progress_line(outcome, finished, summary.total)
            advance(
                done=summary.done + summary.skipped,
                failed=summary.failed,
                running=running,
                credits=summary.credits,
                line=line,
            )

        work: list[Decision] = []
        for decision in decisions:
            if decision.action is Action.SKIP:
                report(Outcome(decision, "skipped", task=decision.task))
            elif decision.action is Action.UNKNOWN:
                error = _UnknownOutcome(
                    "a POST for this entry got no answer in an earlier run; the task may exist "
                    "at the provider (outcome unknown).",
                    hints=["Check `flux2 history`, then re-run with --resubmit-unknown."],
                )
                report(Outcome(decision, "failed", error=error))
            else:
                work.append(decision)
        if work:
            runner = Runner(ctx, provider, options)
            runner.prepare(work)
            try:
                for kind, payload in runner.run(work):
                    if kind == "start":
                        running += 1
                    else:
                        running -= 1
                        report(payload)
            except (KeyboardInterrupt, InterruptSignal):
                runner.stop.set()
                raise _interrupted(options, running, EXIT_INTERRUPTED, "interrupted") from None
            except TerminatedSignal:
                runner.stop.set()
                raise _interrupted(options, running, EXIT_TERMINATED, "terminated") from None
            finally:
                runner.stop.set()
    summary.wall_seconds = max(0.0, ctx.clock() - started)
    if output.json_mode:
        output.json_line(summary.to_json())
    else:
        _print_summary(ctx, summary)
    if summary.failures:
        raise _failed(options, summary)
    return summary


def _interrupted(options: BatchOptions, running: int, code: int, what: str) -> InterruptedError_:
    return InterruptedError_(
        f"{what}; {running} entr{'y was' if running == 1 else 'ies were'} in flight "
        "(recorded in the ledger).",
        exit_code=code,
        hints=[
            f"Re-run `flux2 batch {options.manifest}` to resume: submitted tasks are polled, "
            "not paid for again; finished entries are skipped."
        ],
    )


def _failed(options: BatchOptions, summary: Summary) -> BatchError:
    failures = summary.failures
    names = ", ".join(outcome.entry.label for outcome in failures[:20])
    more = f" (and {len(failures) - 20} more)" if len(failures) > 20 else ""
    hints = []
    for outcome in failures[:20]:
        assert outcome.error is not None
        hints.append(f"{outcome.entry.label}: {outcome.error.message}")
    if any(error_code(outcome.error) == OUTCOME_UNKNOWN for outcome in failures if outcome.error):
        hints.append(
            "Entries whose outcome is unknown may exist at the provider; check `flux2 history` "
            "or the dashboard, then re-run with --resubmit-unknown to submit them again."
        )
    hints.append(
        f"Re-run `flux2 batch {options.manifest}` to retry: finished entries are skipped and "
        "submitted ones resumed, not paid for again."
    )
    return BatchError(
        f"{len(failures)} of {summary.total} entries failed: {names}{more}", hints=hints
    )


def _progress_line(outcome: Outcome, finished: int, total: int) -> str:
    entry = outcome.entry
    prefix = f"[{finished}/{total}] {outcome.status} {entry.label}"
    if outcome.status == "failed" and outcome.error is not None:
        return f"{prefix}: {outcome.error.message}"
    if outcome.status == "skipped":
        return f"{prefix}: up to date ({outcome.decision.source})"
    task_id = outcome.task.task_id if outcome.task is not None else ""
    return f"{prefix}: task {task_id}"


def _print_summary(ctx: Context, summary: Summary) -> None:
    """The closing table, on stderr (stdout carries only the saved paths)."""
    headers = ["done", "failed", "skipped", "credits", "wall time"]
    values = [
        str(summary.done),
        str(summary.failed),
        str(summary.skipped),
        f"{summary.credits:g}",
        f"{summary.wall_seconds:.1f} s",
    ]
    widths = [max(len(h), len(v)) for h, v in zip(headers, values, strict=True)]
    ctx.output.info("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    ctx.output.info("  ".join(v.rjust(w) for v, w in zip(values, widths, strict=True)))


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _tidy(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 4)
