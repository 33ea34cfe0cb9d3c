"""``flux2 history``: the local ledger of submitted tasks, newest first."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from flux2_cli.commands._options import JsonOpt, QuietOpt

if TYPE_CHECKING:
    from datetime import datetime

    from flux2_cli.ledger import LedgerEntry, Unanswered
    from flux2_cli.task import Task

DEFAULT_LIMIT = 20
STATUSES = ("queued", "running", "succeeded", "failed", "expired")
COLUMNS = ("task", "provider", "status", "submitted", "expires", "saved", "prompt")
_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _complete_status(incomplete: str) -> list[str]:
    return [value for value in STATUSES if value.startswith(incomplete)]


def _complete_provider(incomplete: str) -> list[str]:
    from flux2_cli.providers import provider_ids

    return [value for value in provider_ids() if value.startswith(incomplete)]


def history(
    # None, not 20, as the default: a Tab press then coerces nothing (no pydantic import).
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            metavar="N",
            help=f"How many tasks to show (default {DEFAULT_LIMIT}).",
            min=1,
            show_default=False,
        ),
    ] = None,
    pending: Annotated[
        bool,
        typer.Option(
            "--pending", metavar="", help="Only tasks still running or not yet downloaded."
        ),
    ] = False,
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider",
            metavar="ID",
            help="Only tasks of this provider (apiinone, apimart, vtrix, bfl, sandbox).",
            autocompletion=_complete_provider,
            show_default=False,
        ),
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            metavar="STATUS",
            help="Only tasks in this status (repeat, or comma-separate): "
            "queued running succeeded failed expired.",
            autocompletion=_complete_status,
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="WHEN",
            help="Only tasks submitted since WHEN: a duration ago (30m, 12h, 3d, 2w) or a "
            "date/time (2026-11-30, 2026-11-30T08:00; local time unless it has a zone).",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """List submitted tasks with their status, expiry and saved files.

    On a terminal: aligned columns that fit its width (prompts and paths are shortened, ids
    and times never). Piped: one tab-separated line per task, no header, nothing cut:
    task, provider, status, submitted, expires, saved (comma-separated), prompt.
    """
    from flux2_cli.jobs import as_seen_now
    from flux2_cli.ledger import Ledger
    from flux2_cli.output import Output
    from flux2_cli.task import utc_now

    now = utc_now()
    statuses = _statuses(status or [])
    provider_id = _provider(provider)
    start = parse_since(since, now) if since is not None else None
    output = Output(json_mode=json_output, quiet=quiet)
    with Ledger() as ledger:
        entries = ledger.filtered_history(
            limit=limit if limit is not None else DEFAULT_LIMIT,
            pending_only=pending,
            provider=provider_id,
            statuses=statuses,
            since=start,
            now=now,
        )
        # Never answered, so never a task: shown to people, on stderr, so that "check
        # `flux2 history`" after an unknown outcome finds it (stdout keeps its one shape).
        unanswered = (
            []
            if json_output or statuses or pending
            else ledger.unanswered(since=start or now - UNANSWERED_WINDOW, provider=provider_id)
        )
    tasks = [_as_shown(as_seen_now(entry.task, now)) for entry in entries]
    if json_output:
        output.document([task.to_json() for task in tasks])
        return
    if not entries:
        filtered = pending or provider_id or statuses or start
        output.info("No tasks match." if filtered else "No tasks yet.")
    else:
        _render(output, entries, tasks, now)
    _warn_unanswered(output, unanswered, now)


# How far back history looks for POSTs that got no answer.
UNANSWERED_WINDOW = timedelta(days=7)


def _warn_unanswered(output: object, unanswered: list[Unanswered], now: datetime) -> None:
    from flux2_cli.output import Output, neutralise, relative_time

    assert isinstance(output, Output)
    if not unanswered:
        return
    many = len(unanswered) > 1
    lines = [
        f"{len(unanswered)} submission{'s' if many else ''} got no answer, so "
        f"{'they have' if many else 'it has'} no task id (outcome unknown); the provider may "
        f"have made {'them' if many else 'it'}: look on its dashboard before sending "
        f"{'them' if many else 'it'} again."
    ]
    for item in unanswered:
        prompt = " ".join(item.prompt.split())
        prompt = prompt if len(prompt) <= 40 else prompt[:39] + "…"
        lines.append(
            f"  {relative_time(item.sent_at, now)}  {item.provider}  {item.base_url}  "
            f"{neutralise(prompt)}" + ("  (batch)" if item.batch else "")
        )
    output.warn("\n".join(lines))


def _as_shown(task: Task) -> Task:
    """A task whose images are known to be gone shows as expired, whatever the provider says."""
    from flux2_cli.ledger import IMAGES_GONE
    from flux2_cli.task import TaskStatus

    if task.extra.get(IMAGES_GONE) and task.status is TaskStatus.SUCCEEDED:
        return task.evolve(status=TaskStatus.EXPIRED)
    return task


def _render(output: object, entries: list[LedgerEntry], tasks: list[Task], now: datetime) -> None:
    from flux2_cli.output import Output, print_rows, relative_time
    from flux2_cli.task import format_time, provider_label

    assert isinstance(output, Output)
    tty = output.stdout_is_terminal
    rows: list[list[str]] = []
    for entry, task in zip(entries, tasks, strict=True):
        paths = [image.path for image in task.images if image.path and image.path != "-"]
        if tty:  # relative times, as gh shows them: short, and what a person wants to know
            saved = paths[0] + (f" (+{len(paths) - 1})" if len(paths) > 1 else "") if paths else "-"
            expires = relative_time(task.expires_at, now) if task.expires_at else "-"
            submitted = relative_time(entry.submitted_at, now)
        else:
            saved = ", ".join(paths) or "-"
            expires = format_time(task.expires_at) or "-"
            submitted = format_time(entry.submitted_at) or "-"
        prompt = " ".join(str((task.request or {}).get("prompt", "")).split())
        rows.append(
            [
                task.task_id,
                provider_label(task.provider, task.base_url),  # "sandbox: apiinone"
                task.status.value,
                submitted,
                expires,
                saved,
                prompt or "-",
            ]
        )
    # Prompts give way first, then paths (cut at their start: the file name stays); on a narrow
    # terminal the saved paths, then the provider, are left out rather than wrap every line.
    print_rows(output, COLUMNS, rows, shrink=(6,), shrink_left=(5,), droppable=(5, 1))


def _statuses(values: list[str]) -> tuple[str, ...]:
    from flux2_cli.errors import UsageError

    wanted: list[str] = []
    for value in values:
        for part in value.split(","):
            word = part.strip().lower()
            if not word:
                continue
            if word not in STATUSES:
                raise UsageError(f"--status {part.strip()!r}: choose from {', '.join(STATUSES)}.")
            if word not in wanted:
                wanted.append(word)
    return tuple(wanted)


def _provider(value: str | None) -> str | None:
    from flux2_cli.errors import UsageError
    from flux2_cli.providers import provider_ids

    if value is None:
        return None
    word = value.strip().lower()
    if word not in provider_ids():
        raise UsageError(f"--provider {value!r}: choose from {', '.join(provider_ids())}.")
    return word


def parse_since(text: str, now: datetime) -> datetime:
    """``--since``: ``30m``/``12h``/``3d``/``2w`` ago, or an ISO date/time (local if naive)."""
    import re
    from datetime import datetime, timedelta, timezone

    from flux2_cli.errors import UsageError

    value = text.strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(m|min|h|d|w)", value.lower())
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since {text!r}: give a duration (30m, 12h, 3d, 2w) or a date/time "
            "(2026-11-30 or 2026-11-30T08:00)."
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as a person means it
    return moment.astimezone(timezone.utc)
