"""Helpers shared by the commands: building the context and rendering tasks."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from flux2_cli.context import Context
from flux2_cli.errors import UsageError
from flux2_cli.output import Output
from flux2_cli.task import Task


def make_context(
    *,
    provider: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    profile: str | None = None,
    region: str | None = None,
    sandbox: bool = False,
    json_mode: bool = False,
    quiet: bool = False,
    verbose: bool = False,
    **settings: Any,
) -> Context:
    """Resolve settings from flags, environment and config into a Context."""
    values: dict[str, Any] = {
        "provider": provider,
        "base_url": base_url,
        "api_key": api_key,
        "profile": profile,
        **settings,
    }
    ctx = Context.create(values, json_mode=json_mode, quiet=quiet, verbose=verbose, sandbox=sandbox)
    if region is not None:
        apply_region(ctx, region, base_url)
    return ctx


def apply_region(ctx: Context, region: str, base_url: str | None) -> None:
    """``--region`` picks one of the provider's regional hosts."""
    if base_url is not None:
        raise UsageError("--region and --base-url go separately; give one of them.")
    caps = ctx.provider().capabilities
    host = caps.regions.get(region.strip().lower())
    if host is None:
        offered = ", ".join(caps.regions) or "none"
        raise UsageError(
            f"--region {region!r}: not offered (provider {caps.id}; regions: {offered})."
        )
    ctx.settings = _with_base_url(ctx, host)


def _with_base_url(ctx: Context, host: str) -> Any:
    from dataclasses import replace

    return replace(ctx.settings, base_url=host)


def read_prompt(prompt: str, output: Output | None = None) -> str:
    """The prompt, or stdin when it is ``-`` (stdin is never read otherwise).

    On a terminal, a silent wait would look like a hang: say how to end the input.
    """
    if prompt == "-":
        if output is not None and output.stdin_is_terminal:
            end = "Ctrl-Z then Enter" if sys.platform == "win32" else "Ctrl-D"
            output.info(f"reading the prompt from stdin; end with {end}")
        stream = getattr(sys.stdin, "buffer", None)
        if stream is None:
            return sys.stdin.read()
        data = stream.read()
        try:
            return str(data.decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise UsageError(
                f"PROMPT (stdin): is not valid UTF-8 (byte {exc.start + 1}); save it as UTF-8."
            ) from None
    return prompt


def refuse_terminal_stdout(ctx: Context) -> None:
    """``-o -`` with a terminal on stdout: refused, as curl and httpie refuse binary output."""
    if ctx.output.stdout_is_terminal:
        raise UsageError(
            "-o - would write the image's bytes to your terminal.",
            hints=[
                "Redirect or pipe stdout: flux2 gen PROMPT -o - > image.png",
                "Or save to a file or folder: -o image.png, -o out/",
            ],
        )


def submitted_line(task: Task) -> str:
    """``Submitted task ID (provider, model).``, saying when the task runs on the sandbox."""
    from flux2_cli.task import SIMULATED, provider_label

    label = provider_label(task.provider, task.base_url)
    note = f" {SIMULATED.capitalize()}." if task.sandbox else ""
    return f"Submitted task {task.task_id} ({label}, {task.model}).{note}"


def finished_line(task: Task, seconds: float) -> str:
    """The closing line of ``gen``: ``fox.png · 1440×1440 PNG · 64 KB · 5 credits · 2.3 s``."""
    from pathlib import Path

    from flux2_cli.output import format_cost

    parts: list[str] = []
    saved = [image for image in task.images if image.path]
    if saved:
        first = saved[0]
        name = "stdout" if first.path == "-" else Path(first.path or "").name
        parts.append(name + (f" (+{len(saved) - 1} more)" if len(saved) > 1 else ""))
        if first.width and first.height:
            kind = (first.format or "").upper()
            parts.append(f"{first.width}×{first.height}" + (f" {kind}" if kind else ""))
        total = sum(image.bytes or 0 for image in saved)
        if total:
            parts.append(format_size(total))
    elif task.images:
        parts.append(f"{len(task.images)} image URL{'s' if len(task.images) > 1 else ''}")
    if task.cost is not None:
        parts.append(format_cost(task.cost.credits, task.cost.usd, simulated=task.sandbox))
    parts.append(f"{seconds:.1f} s")
    return " · ".join(parts)


def format_size(size: int) -> str:
    """Bytes for people: ``812 B``, ``64 KB``, ``3.2 MB`` (powers of 1024, as ls -h)."""
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def render_tasks(ctx: Context, tasks: Sequence[Task], *, lines: str, single: bool) -> None:
    """JSON (an object for one task, an array for several) or one result line per item.

    ``lines`` picks what a human sees on stdout: ``paths``, ``urls`` or ``ids``.
    """
    output = ctx.output
    if output.json_mode:
        documents = [task.to_json() for task in tasks]
        output.document(documents[0] if single and len(documents) == 1 else documents)
        return
    for task in tasks:
        if lines == "ids":
            output.result(task.task_id)
            continue
        for image in task.images:
            if lines == "paths" and image.path and image.path != "-":
                output.result(image.path)
            elif lines == "urls":
                output.result(image.url)


def render_status(ctx: Context, tasks: Sequence[Task], *, single: bool) -> None:
    """Status look-ups: JSON, or a short block per task on stdout."""
    from flux2_cli.jobs import as_seen_now
    from flux2_cli.task import format_time

    output = ctx.output
    tasks = [as_seen_now(task) for task in tasks]
    if output.json_mode:
        render_tasks(ctx, tasks, lines="ids", single=single)
        return
    for task in tasks:
        line = f"{task.task_id}  {task.status.value}"
        if task.raw_status and task.raw_status.lower() != task.status.value:
            line += f" ({task.raw_status})"
        if task.expires_at:
            line += f"  expires {format_time(task.expires_at)}"
        output.result(line)
        for image in task.images:
            output.result(f"  {image.url}")
        if task.error:
            code = f"[{task.error.code}] " if task.error.code else ""
            output.result(f"  error: {code}{task.error.message}")


def status_text(task: Task) -> str:
    """The status shown while waiting: normalised, with the raw word when it is unknown."""
    if task.unknown_status:
        return f"{task.status.value} (provider says {task.unknown_status!r})"
    return task.status.value


def show_images(
    ctx: Context,
    tasks: Sequence[Task],
    *,
    open_flag: bool | None,
    preview_flag: bool | None,
    fetch_missing: bool = False,
) -> None:
    """``--open``/``--preview`` (else the config's ``open``/``preview``) on the tasks' images.

    Saved files are shown. With ``fetch_missing`` (``status --wait``) an image not saved yet is
    fetched into a temporary folder first: removed after drawing, but left for the viewer to
    read when it is opened (a viewer may read the file long after flux2 has exited).
    """
    open_viewer = ctx.settings.open if open_flag is None else open_flag
    preview = ctx.settings.preview if preview_flag is None else preview_flag
    if not (open_viewer or preview):
        return
    import shutil
    import tempfile
    from pathlib import Path

    from flux2_cli import preview as viewer

    if viewer.blocked(ctx.output, open_viewer=open_viewer, preview=preview):
        return
    paths: list[str] = []
    unsaved: list[Task] = []
    for task in tasks:
        for image in task.images:
            if image.path and image.path != "-" and Path(image.path).is_file():
                paths.append(image.path)
            elif fetch_missing and image.url and task not in unsaved:
                unsaved.append(task)
    folder = tempfile.mkdtemp(prefix="flux2-view-") if unsaved else None
    try:
        if folder is not None:
            from flux2_cli import jobs
            from flux2_cli.errors import Flux2Error

            for task in unsaved:
                try:
                    copy = jobs.fetch_copy(ctx, task, folder)
                except Flux2Error as exc:  # the look-up worked; a picture that will not come
                    ctx.output.warn(f"--open/--preview: {exc.message}")  # is a notice
                    continue
                paths.extend(image.path for image in copy.images if image.path)
        viewer.show(
            ctx.output,
            open_targets=paths if open_viewer else [],
            preview_paths=paths if preview else [],
        )
    finally:
        if folder is not None and not open_viewer:
            shutil.rmtree(folder, ignore_errors=True)
