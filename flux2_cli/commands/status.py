"""``flux2 status``: one look-up per task, or ``--wait`` until each is final."""

from __future__ import annotations

from typing import Annotated

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
    TimeoutOpt,
    VerboseOpt,
)


def status(
    task_ids: Annotated[
        list[str], typer.Argument(help="One or more task ids.", show_default=False)
    ],
    wait: Annotated[
        bool, typer.Option("--wait", metavar="", help="Poll until each task is final.")
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
    """Show a task's status, image URLs, expiry and error (exit 5 if it failed)."""
    from flux2_cli import jobs
    from flux2_cli.commands._common import make_context, render_status, status_text
    from flux2_cli.errors import TaskFailedError

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
        tasks = []
        for task_id in task_ids:
            task = jobs.find_task(ctx, task_id)
            if wait:
                with jobs.interruptible(task_id), ctx.output.status(f"task {task_id[:12]}") as show:
                    try:
                        task = jobs.wait(
                            ctx,
                            task,
                            timeout=ctx.settings.timeout,
                            poll_first=True,
                            on_update=lambda current: show(status_text(current)),
                        )
                    except TaskFailedError:
                        task = jobs.find_task(ctx, task_id)
            else:
                with jobs.interruptible(task_id):
                    task = jobs.refresh(ctx, task)
            tasks.append(task)
        render_status(ctx, tasks, single=len(task_ids) == 1)
        if wait:
            from flux2_cli.commands._common import show_images

            show_images(
                ctx, tasks, open_flag=open_flag, preview_flag=preview_flag, fetch_missing=True
            )
        elif open_flag or preview_flag:
            ctx.output.info("--open and --preview go with --wait; nothing shown.")
        for task in tasks:
            jobs.raise_if_failed(task)
    finally:
        ctx.close()
