"""``flux2 history``: the local ledger of submitted tasks, newest first."""

from __future__ import annotations

from typing import Annotated

import typer

from flux2_cli.commands._options import JsonOpt, QuietOpt


def history(
    limit: Annotated[int, typer.Option("--limit", help="How many tasks to show.", min=1)] = 20,
    pending: Annotated[
        bool,
        typer.Option(
            "--pending", metavar="", help="Only tasks still running or not yet downloaded."
        ),
    ] = False,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """List submitted tasks with their status, expiry and saved files."""
    from flux2_cli.jobs import as_seen_now
    from flux2_cli.ledger import Ledger
    from flux2_cli.output import Output
    from flux2_cli.task import format_time, provider_label

    output = Output(json_mode=json_output, quiet=quiet)
    with Ledger() as ledger:
        entries = ledger.history(limit=limit, pending_only=pending)
    tasks = [as_seen_now(entry.task) for entry in entries]
    if json_output:
        output.document([task.to_json() for task in tasks])
        return
    if not entries:
        output.info("No tasks yet.")
        return
    rows = []
    for entry, task in zip(entries, tasks, strict=True):
        paths = ", ".join(image.path for image in task.images if image.path) or "-"
        rows.append(
            [
                task.task_id,
                provider_label(task.provider, task.base_url),  # "sandbox: apiinone"
                task.status.value,
                format_time(entry.submitted_at),
                format_time(task.expires_at) or "-",
                paths,
                (task.request or {}).get("prompt", "")[:40],
            ]
        )
    output.table(
        None, ["task", "provider", "status", "submitted", "expires", "saved", "prompt"], rows
    )
