"""``flux2 status``: one look-up per task, or ``--wait`` until all of them are final."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from flux2_cli.commands._options import (
    ApiKeyOpt,
    BaseUrlOpt,
    JsonOpt,
    OpenOpt,
    PreviewOpt,
    ProfileOpt,
    ProviderOpt,
    QuietOpt,
    RegionOpt,
    SandboxOpt,
    TaskIdsArg,
    TimeoutOpt,
    VerboseOpt,
)
from flux2_cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    Flux2Error,
    InterruptedError_,
    InterruptSignal,
    TaskFailedError,
    TerminatedSignal,
)

if TYPE_CHECKING:
    from flux2_cli.context import Context
    from flux2_cli.output import LiveLines
    from flux2_cli.task import Task


def status(
    task_ids: TaskIdsArg,
    wait: Annotated[
        bool, typer.Option("--wait", metavar="", help="Poll until every task is final.")
    ] = False,
    timeout: TimeoutOpt = None,
    open_flag: OpenOpt = None,
    preview_flag: PreviewOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    provider: ProviderOpt = None,
    base_url: BaseUrlOpt = None,
    api_key: ApiKeyOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    sandbox: SandboxOpt = False,
) -> None:
    """Show each task's status, expiry, saved files, URLs and error.

    One result per id: an id that fails does not stop the others. The exit code is the
    highest of the per-id codes (0 found, 5 failed or not found, 6 still running after
    --wait --timeout, 2 ambiguous id, 3/7 key or service trouble).
    """
    from flux2_cli.commands._common import make_context

    ctx = make_context(
        provider=provider,
        base_url=base_url,
        api_key=api_key,
        profile=profile,
        region=region,
        sandbox=sandbox,
        json_mode=json_output,
        quiet=quiet,
        verbose=verbose,
        timeout=timeout,
    )
    try:
        if (open_flag or preview_flag) and not wait:
            ctx.output.info("--open and --preview go with --wait; nothing shown.")
        _run(ctx, task_ids, wait=wait, show=(open_flag, preview_flag) if wait else (False, False))
    finally:
        ctx.close()


def _run(
    ctx: Context,
    refs: list[str],
    *,
    wait: bool,
    show: tuple[bool | None, bool | None] = (False, False),
) -> None:
    from flux2_cli import jobs
    from flux2_cli.commands._ids import Outcomes, lookup

    outcomes = Outcomes(ctx, total=len(refs))
    found: dict[int, Task] = {}
    for index, ref in enumerate(refs):
        try:
            task, known = lookup(ctx, ref)
            if known and not wait:
                with jobs.interruptible(task.task_id):
                    task = jobs.refresh(ctx, task)
        except Flux2Error as exc:
            outcomes.failed(index, exc, ref)
            continue
        found[index] = task
        if not wait:
            _show(ctx, task)
            outcomes.done(index, task)
    if wait and found:
        for index, result in _wait_all(ctx, found).items():
            if isinstance(result, Flux2Error):
                outcomes.failed(index, result, refs[index])
                task_seen = getattr(result, "task", None)
                if task_seen is not None and not ctx.output.json_mode:
                    _show(ctx, task_seen)
            else:
                _show(ctx, result)
                outcomes.done(index, result)
    if wait:
        from flux2_cli.commands._common import show_images

        show_images(
            ctx, outcomes.tasks, open_flag=show[0], preview_flag=show[1], fetch_missing=True
        )
    outcomes.finish()


def _show(ctx: Context, task: Task) -> None:
    from flux2_cli.output import status_lines

    if ctx.output.json_mode:
        return
    for line in status_lines(task):
        ctx.output.result(line)


def _wait_all(ctx: Context, tasks: dict[int, Task]) -> dict[int, Task | Flux2Error]:
    """Poll every task in turn until each is final, one live line per task."""
    from flux2_cli import jobs
    from flux2_cli.errors import WaitTimeoutError, resume_hints
    from flux2_cli.output import LiveLines
    from flux2_cli.task import short_id

    labels = {index: short_id(task.task_id) for index, task in tasks.items()}
    if len(set(labels.values())) < len(labels):
        labels = {index: task.task_id for index, task in tasks.items()}
    results: dict[int, Task | Flux2Error] = {}
    current = dict(tasks)
    timeout = ctx.settings.timeout
    deadline = ctx.clock() + timeout
    intervals = jobs.poll_intervals(ctx.settings.poll_interval)
    with _interruptible(current), LiveLines(ctx.output, list(labels.values())) as live:
        pending = list(current)
        first = True
        while pending:
            if not first:
                remaining = deadline - ctx.clock()
                if remaining <= 0:
                    for index in pending:
                        task = current[index]
                        results[index] = WaitTimeoutError(
                            f"timed out after {timeout:g} s waiting for task {task.task_id} "
                            f"(last status {task.status.value}).",
                            task_id=task.task_id,
                            hints=resume_hints(task.task_id),
                            task=task,
                        )
                    break
                ctx.sleep(min(next(intervals), remaining))
            first = False
            for index in list(pending):
                task = current[index]
                try:
                    if not task.status.is_final:
                        task = jobs.refresh(ctx, task)
                    jobs.raise_if_failed(task)
                except Flux2Error as exc:
                    if exc.exit_code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
                        raise
                    if not isinstance(exc, TaskFailedError) and not any(
                        task.task_id in hint for hint in exc.hints
                    ):
                        exc.hints.extend(resume_hints(task.task_id))
                    _update(live, labels[index], task)
                    results[index] = exc
                    pending.remove(index)
                    continue
                current[index] = task
                _update(live, labels[index], task)
                if task.status.is_final:
                    results[index] = task
                    pending.remove(index)
    return dict(sorted(results.items()))


def _update(live: LiveLines, label: str, task: Task) -> None:
    from flux2_cli.commands._common import status_text

    live.update(label, status_text(task), final=task.status.is_final)


@contextmanager
def _interruptible(tasks: dict[int, Task]) -> Iterator[None]:
    """Ctrl-C / SIGTERM while waiting on several tasks: say which ones still run."""
    try:
        yield
    except (KeyboardInterrupt, InterruptSignal):
        raise _interrupted(tasks, EXIT_INTERRUPTED, "interrupted") from None
    except TerminatedSignal:
        raise _interrupted(tasks, EXIT_TERMINATED, "terminated") from None


def _interrupted(tasks: dict[int, Task], code: int, what: str) -> InterruptedError_:
    ids = [task.task_id for task in tasks.values() if not task.status.is_final]
    if not ids:
        ids = [task.task_id for task in tasks.values()]
    return InterruptedError_(
        f"{what}; the tasks go on at the provider: {', '.join(ids)}",
        exit_code=code,
        hints=[f"  flux2 status {' '.join(ids)} --wait"],
    )
