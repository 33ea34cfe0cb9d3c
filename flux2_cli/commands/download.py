"""``flux2 download``: fetch a finished task's images (waiting first if it still runs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from flux2_cli.commands._options import (
    ApiKeyOpt,
    BaseUrlOpt,
    EmbedOpt,
    JsonOpt,
    NameOpt,
    NoSidecarOpt,
    OpenOpt,
    OutputOpt,
    OverwriteOpt,
    PreviewOpt,
    ProfileOpt,
    ProviderOpt,
    QuietOpt,
    RegionOpt,
    SandboxOpt,
    TimeoutOpt,
    VerboseOpt,
)
from flux2_cli.errors import EXIT_INTERRUPTED, EXIT_TERMINATED

if TYPE_CHECKING:
    from flux2_cli.context import Context
    from flux2_cli.task import Task


def download(
    task_ids: Annotated[
        list[str] | None, typer.Argument(help="Task ids to download.", show_default=False)
    ] = None,
    pending: Annotated[
        bool,
        typer.Option(
            "--pending",
            metavar="",
            help="Every finished task in the ledger not yet downloaded whose URLs still live.",
        ),
    ] = False,
    output_path: OutputOpt = None,
    name: NameOpt = None,
    overwrite: OverwriteOpt = False,
    no_sidecar: NoSidecarOpt = False,
    embed_metadata: EmbedOpt = False,
    open_flag: OpenOpt = None,
    preview_flag: PreviewOpt = None,
    timeout: TimeoutOpt = None,
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
    """Download the images of finished tasks and print the saved paths."""
    from flux2_cli import jobs
    from flux2_cli.commands._common import make_context, status_text
    from flux2_cli.download import DownloadOptions, validate_template
    from flux2_cli.errors import Flux2Error, TaskFailedError, UsageError
    from flux2_cli.task import Task

    if not task_ids and not pending:
        raise UsageError("Name one or more task ids, or use --pending.")
    if task_ids and pending:
        raise UsageError("Give task ids or --pending, not both.")
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
        output_dir=output_path,
        name=name,
    )
    try:
        if output_path == "-" and (pending or len(task_ids or []) > 1):
            raise UsageError("-o - takes exactly one task id.")
        validate_template(ctx.settings.name)
        options = DownloadOptions(
            output=ctx.settings.output_dir,
            name_template=ctx.settings.name,
            overwrite=overwrite,
            sidecar=not no_sidecar and output_path != "-",
            embed_metadata=embed_metadata,
        )
        if pending:
            tasks = jobs.pending_downloads(ctx, warn=ctx.output.warn)
            if not tasks:
                ctx.output.info("Nothing to download: no finished task is waiting in the ledger.")
        else:
            tasks = [jobs.find_task(ctx, task_id) for task_id in task_ids or []]
        single = not pending and len(tasks) == 1
        shown: list[Task] = []
        failed: list[tuple[str, Flux2Error]] = []
        for task in tasks:
            try:
                with jobs.interruptible(task.task_id):
                    if not task.status.is_final or not task.images:
                        with ctx.output.status(f"task {task.task_id[:12]}") as show:
                            task = jobs.wait(
                                ctx,
                                task,
                                timeout=ctx.settings.timeout,
                                poll_first=True,
                                on_update=lambda current: show(status_text(current)),
                            )
                    shown.append(jobs.download(ctx, task, options))
            except Flux2Error as exc:
                if exc.exit_code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
                    raise
                if isinstance(exc, TaskFailedError) and isinstance(exc.task, Task):
                    shown.append(exc.task)  # --json: the failed task, with its error
                if single:
                    if shown:
                        _render(ctx, shown, output_path, single=True)
                    raise
                named = task.task_id in exc.message
                ctx.output.error(
                    exc.message if named else f"{task.task_id}: {exc.message}", exc.hints
                )
                failed.append((task.task_id, exc))
        _render(ctx, shown, output_path, single=single)
        if output_path != "-":
            from flux2_cli.commands._common import show_images

            show_images(ctx, shown, open_flag=open_flag, preview_flag=preview_flag)
        if failed:
            ids = ", ".join(task_id for task_id, _ in failed)
            summary = Flux2Error(f"{len(failed)} of {len(tasks)} tasks not downloaded: {ids}")
            summary.exit_code = failed[0][1].exit_code
            raise summary
    finally:
        ctx.close()


def _render(ctx: Context, tasks: list[Task], output_path: str | None, *, single: bool) -> None:
    """Saved paths (or the task objects with --json); nothing when -o - sent the bytes."""
    from flux2_cli.commands._common import render_tasks

    if output_path != "-":
        render_tasks(ctx, tasks, lines="paths", single=single)
