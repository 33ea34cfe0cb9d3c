"""What to do with each entry: skip, download, poll, submit, or report an unknown outcome.

The lock file (with its journal) comes first: it travels with the manifest, so a fresh machine
resumes what another one submitted. The ledger (this machine's history) fills in what the lock
does not know: a POST answered just before a kill, a task of another manifest.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flux2_cli.atomic import file_sha256
from flux2_cli.batch.lock import (
    FINISHED,
    SUBMITTED,
    SUBMITTING,
    UNKNOWN,
    LockFile,
    endpoint_id,
    task_from_record,
)
from flux2_cli.batch.plan import PlannedEntry
from flux2_cli.task import Task, TaskStatus, utc_now

if TYPE_CHECKING:
    from flux2_cli.context import Context


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
    source: str = "new"  # lock | ledger (this manifest's task) | reused (another's) | new
    # A finished task whose files are gone, fetched again: if the provider no longer has it,
    # it is generated anew in the same run.
    refetch: bool = False

    @property
    def pays(self) -> bool:
        """True when this decision sends a paid POST."""
        return self.action is Action.SUBMIT


def decide(
    ctx: Context,
    entry: PlannedEntry,
    lock: LockFile,
    *,
    resubmit_unknown: bool,
    manifest: Path | None = None,
    fresh: bool = False,
    endpoint: str | None = None,
    base_url: str | None = None,
) -> Decision:
    """Skip, download, poll, submit or report unknown — from the lock file, then the ledger.

    ``endpoint`` is where this run makes tasks: a record or ledger task made elsewhere (the
    sandbox, another host) is not up to date and is generated anew. A task of the same request
    made for another manifest is reused, brought into this entry's output and
    reported so, unless ``fresh``; its images elsewhere are not taken.
    """
    found = lock.lookup(entry.key, entry.fingerprint)
    record = found[1] if found is not None else None
    if (
        record is not None
        and endpoint is not None
        and record.get("endpoint") not in (None, endpoint)
    ):
        record = None  # made elsewhere: regenerate here
    state = record.get("state", FINISHED) if record is not None else None
    if record is not None and state == FINISHED and lock.files_problem(record) is None:
        return Decision(entry, Action.SKIP, record=record, source="lock")
    ledger = ctx.ledger()
    known = ledger.find_by_fingerprint(entry.fingerprint)
    if known is not None and endpoint is not None:
        made = endpoint_id(known.task.provider, known.task.base_url)
        if made != endpoint:
            known = None
    task_id = record.get("task_id") if record is not None else None
    if (
        record is not None
        and task_id
        and state in (FINISHED, SUBMITTED)
        and (known is None or known.task.task_id != task_id)
    ):
        # Submitted elsewhere (another runner): look it up, never pay for it again.
        return Decision(
            entry,
            Action.POLL,
            task=task_from_record(record, base_url or "", entry.request.to_json()),
            record=record,
            source="lock",
            refetch=state == FINISHED,
        )
    if known is not None and manifest is not None and not _made_for(known.batch_key, manifest):
        if fresh:
            return Decision(entry, Action.SUBMIT, record=record)
        task = known.task
        if not task.status.is_final:
            return Decision(entry, Action.POLL, task=task, record=record, source="reused")
        if task.status is TaskStatus.SUCCEEDED and (
            task.expires_at is None or task.expires_at > utc_now()
        ):
            return Decision(entry, Action.DOWNLOAD, task=task, record=record, source="reused")
        known = None  # failed or expired: generate anew
    if known is not None:
        task = known.task
        if not task.status.is_final:
            return Decision(entry, Action.POLL, task=task, record=record, source="ledger")
        if task.status is TaskStatus.SUCCEEDED:
            if _saved_intact(task):
                return Decision(entry, Action.SKIP, task=task, record=record, source="ledger")
            if task.expires_at is None or task.expires_at > utc_now():
                return Decision(entry, Action.DOWNLOAD, task=task, record=record, source="ledger")
        return Decision(entry, Action.SUBMIT, record=record)  # failed or expired: generate again
    lock_unknown = state in (SUBMITTING, UNKNOWN)
    if (lock_unknown or ledger.open_intents(entry.fingerprint)) and not resubmit_unknown:
        if _replays_duplicates(entry.provider):
            # The same entry and attempt send the same Idempotency-Key: the provider replays
            # the lost answer instead of billing a second task (reliability row 66).
            return Decision(entry, Action.SUBMIT, record=record)
        return Decision(
            entry, Action.UNKNOWN, record=record, source="lock" if lock_unknown else "new"
        )
    return Decision(entry, Action.SUBMIT, record=record)  # new, changed, failed or elsewhere


def _replays_duplicates(provider_id: str) -> bool:
    from flux2_cli.providers import get_provider

    return get_provider(provider_id).capabilities.idempotent_create


def _made_for(batch_key: str | None, manifest: Path) -> bool:
    """True when a ledger task was submitted for an entry of this manifest (or nobody knows)."""
    return batch_key is None or batch_key.startswith(f"{manifest.resolve()}#")


def _saved_intact(task: Task) -> bool:
    if not task.images:
        return False
    for image in task.images:
        if not image.path or image.path == "-" or not image.sha256:
            return False
        if file_sha256(Path(image.path)) != image.sha256:
            return False
    return True
