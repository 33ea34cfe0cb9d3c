"""``flux2 lock merge``: fold the lock files of CI shards into the manifest's own lock file.

The rule, for each entry of the manifest:

- Records come from the lock files given (each read with its journal, as a stopped runner left
  it). A record that names no task (a POST still in flight, or refused) yields to one that names
  a task. Records naming the same task are one story told at different moments (a runner
  stopped with the task ``submitted``, the runner that resumed it wrote ``finished``): the
  furthest state is kept.
- Records naming **different tasks** (or different requests) for one entry are a conflict: two
  runners paid for it. It is reported with both task ids and the files they came from, never
  resolved silently: the entry is left out of the merged lock (``--check`` then names it), the
  rest is written, and the command exits 5. Pass only the lock file you want for that entry
  (or re-run ``flux2 batch``) to settle it.
- An entry no file given mentions keeps the record the manifest's lock file already has.
- Records of entries that are not in the manifest are dropped, with a notice.

Records are matched to entries by key, else by request fingerprint (an entry renamed, an old
lock with line keys). Output paths stay as recorded (relative to the manifest's folder): put
each runner's outputs in place in the workspace before ``flux2 batch MANIFEST --check``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flux2_cli.batch.lock import LockFile, journal_path, lock_path
from flux2_cli.errors import EXIT_TASK_FAILED, Flux2Error, UsageError

if TYPE_CHECKING:
    from flux2_cli.batch.plan import PlannedEntry
    from flux2_cli.context import Context

# How far along an entry's record is: a later state of the same task wins.
STATE_RANK = {"submitting": 0, "unknown": 1, "submitted": 2, "failed": 3, "finished": 4}


class LockConflictError(Flux2Error):
    """Two lock files hold different tasks for one entry: reported, not resolved (exit 5)."""

    exit_code = EXIT_TASK_FAILED


@dataclass(frozen=True)
class EntryRef:
    """What the merge needs of a manifest entry."""

    key: str
    fingerprint: str
    line: int


@dataclass(frozen=True)
class Conflict:
    """Different records for one entry, with the files they came from."""

    entry: EntryRef
    records: tuple[tuple[str, dict[str, Any]], ...]

    def describe(self) -> str:
        """``fox (line 3): task A (shard-1/m.lock.json) vs task B (shard-2/m.lock.json)``."""
        told = " vs ".join(f"{_what(record)} ({source})" for source, record in self.records)
        return f"{self.entry.key} (line {self.entry.line}): {told}"


@dataclass
class MergeResult:
    """The merged records, what was dropped, and the conflicts."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (source, key)
    conflicts: list[Conflict] = field(default_factory=list)
    merged: int = 0  # entries taken from the given files


def merge_records(
    entries: Sequence[EntryRef],
    current: dict[str, dict[str, Any]],
    sources: Sequence[tuple[str, dict[str, dict[str, Any]]]],
) -> MergeResult:
    """Fold ``sources`` (name, records) over ``current`` for ``entries``; see the module doc."""
    by_key = {entry.key: entry for entry in entries}
    by_fingerprint = {entry.fingerprint: entry for entry in entries}
    found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    result = MergeResult()
    for source, records in sources:
        for key, record in sorted(records.items()):
            entry = by_key.get(key) or by_fingerprint.get(str(record.get("fingerprint")))
            if entry is None:
                result.dropped.append((source, key))
                continue
            found.setdefault(entry.key, []).append((source, record))
    for entry in entries:
        candidates = found.get(entry.key)
        if not candidates:
            kept = _current_record(entry, current)
            if kept is not None:
                result.records[entry.key] = kept
            continue
        chosen, conflict = _settle(entry, candidates)
        if conflict is not None:
            result.conflicts.append(conflict)
        elif chosen is not None:
            result.records[entry.key] = chosen
            result.merged += 1
    return result


def merge_lock_files(
    ctx: Context, manifest: Path, planned: Iterable[PlannedEntry], files: Sequence[Path]
) -> MergeResult:
    """Merge ``files`` into ``manifest``'s lock file and write it; LockConflictError at the end."""
    output = ctx.output
    target_path = lock_path(manifest)
    sources = []
    for path in files:
        # A runner killed outright (SIGKILL) may leave only the journal beside the manifest.
        if not path.is_file() and not journal_path(path).is_file():
            raise UsageError(
                f"lock merge: {path} is not a file (nor is its journal, {journal_path(path).name})."
            )
        lock = LockFile.load(path, warn=output.warn)
        sources.append((str(path), dict(lock.records)))
    target = LockFile.load(target_path, warn=output.warn)
    entries = [EntryRef(entry.key, entry.fingerprint, entry.line) for entry in planned]
    result = merge_records(entries, dict(target.records), sources)
    _save(target, result.records, {entry.key: entry.line for entry in entries})
    if result.dropped:
        keys = ", ".join(f"{key} ({source})" for source, key in result.dropped[:20])
        more = f" and {len(result.dropped) - 20} more" if len(result.dropped) > 20 else ""
        output.info(
            f"Dropped {len(result.dropped)} record{'' if len(result.dropped) == 1 else 's'} of "
            f"entries not in {manifest.name}: "
            f"{keys}{more}."
        )
    output.info(
        f"Merged {len(files)} lock file{'' if len(files) == 1 else 's'} into "
        f"{target_path.name}: {result.merged} "
        f"entr{'y' if result.merged == 1 else 'ies'} from them, {len(result.records)} in all."
    )
    if result.conflicts:
        raise LockConflictError(
            f"{len(result.conflicts)} entr{'y has' if len(result.conflicts) == 1 else 'ies have'}"
            " different tasks in different lock files; left out of the merge: "
            + "; ".join(conflict.describe() for conflict in result.conflicts[:20]),
            hints=[
                "Give only the lock file whose task you keep for each of them, or run "
                f"`flux2 batch {manifest}` to settle them (`--check` names them meanwhile)."
            ],
        )
    return result


def _settle(
    entry: EntryRef, candidates: list[tuple[str, dict[str, Any]]]
) -> tuple[dict[str, Any] | None, Conflict | None]:
    """One record from those the files hold for an entry, or the conflict between them."""
    named = [(source, record) for source, record in candidates if record.get("task_id")]
    pool = named or candidates
    stories: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
    for source, record in pool:
        story = (str(record.get("task_id") or ""), str(record.get("fingerprint") or ""))
        stories.setdefault(story, []).append((source, record))
    if len(stories) > 1:
        firsts = tuple(told[0] for told in stories.values())
        return None, Conflict(entry, firsts)
    (told,) = stories.values()
    _, best = max(told, key=lambda item: STATE_RANK.get(str(item[1].get("state")), 4))
    return best, None


def _current_record(entry: EntryRef, current: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    record = current.get(entry.key)
    if record is not None:
        return record
    for candidate in current.values():
        if candidate.get("fingerprint") == entry.fingerprint:
            return candidate
    return None


def _what(record: dict[str, Any]) -> str:
    task_id = record.get("task_id")
    state = record.get("state")
    text = f"task {task_id}" if task_id else "no task"
    return f"{text}, {state}" if state else text


def _save(lock: LockFile, records: dict[str, dict[str, Any]], lines: dict[str, int]) -> None:
    """Replace the lock file's records with ``records`` through the lock module's own writer.

    Version 2 files are sorted by key and carry no line; ``lines`` only names the entries.
    """
    lock.replace({key: record for key, record in records.items() if key in lines})
