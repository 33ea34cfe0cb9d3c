"""``flux2 download``: fetch a finished task's images (waiting first if it still runs)."""

from __future__ import annotations

from typing import Annotated

import typer

from flux2_cli.commands._options import (
    ApiKeyOpt,
    BaseUrlOpt,
    EmbedOpt,
    JsonOpt,
    NameOpt,
    NoSidecarOpt,
    OutputOpt,
    OverwriteOpt,
    ProfileOpt,
    ProviderOpt,
    QuietOpt,
    RegionOpt,
    SandboxOpt,
    TimeoutOpt,
    VerboseOpt,
)


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
    from flux2_cli.commands._common import make_context, render_tasks, status_text
    from flux2_cli.download import DownloadOptions, validate_template
    from flux2_cli.errors import Flux2Error, UsageError

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
            tasks = [entry.task for entry in ctx.ledger().downloadable()]
            if not tasks:
                ctx.output.info("Nothing to download: no finished task is waiting in the ledger.")
        else:
            tasks = [jobs.find_task(ctx, task_id) for task_id in task_ids or []]
        done = []
        first_error: Flux2Error | None = None
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
                    done.append(jobs.download(ctx, task, options))
            except Flux2Error as exc:
                if len(tasks) == 1 or exc.exit_code in (130, 143):
                    raise
                ctx.output.error(f"{task.task_id}: {exc.message}", exc.hints)
                first_error = first_error or exc
        if output_path != "-":
            render_tasks(
                ctx, done, lines="paths", single=bool(task_ids) and len(task_ids or []) == 1
            )
        if first_error is not None:
            raise first_error
    finally:
        ctx.close()
