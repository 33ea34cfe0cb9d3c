"""``flux2 download``: fetch a finished task's images (waiting first if it still runs)."""

from __future__ import annotations

from dataclasses import dataclass
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
    TaskIdsOptArg,
    TimeoutOpt,
    VerboseOpt,
)

if TYPE_CHECKING:
    from flux2_cli.context import Context
    from flux2_cli.download import DownloadOptions
    from flux2_cli.task import Task


def download(
    task_ids: TaskIdsOptArg = None,
    pending: Annotated[
        bool,
        typer.Option(
            "--pending",
            metavar="",
            help="Every finished task in the ledger not yet downloaded whose images are still "
            "there (each to where it was asked to go); lists the tasks still running.",
        ),
    ] = False,
    include_no_download: Annotated[
        bool,
        typer.Option(
            "--include-no-download",
            metavar="",
            help="With --pending: also the tasks made with `gen --no-download`.",
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
    """Download the images of finished tasks and print the saved paths.

    One result per id: a task that fails does not stop the others; the exit code is the
    highest of the per-id codes. With several ids (or --pending), -o names a folder.
    """
    from flux2_cli.commands._common import make_context
    from flux2_cli.download import DownloadOptions, validate_template
    from flux2_cli.errors import UsageError

    if not task_ids and not pending:
        raise UsageError("Name one or more task ids, or use --pending.")
    if task_ids and pending:
        raise UsageError("Give task ids or --pending, not both.")
    if include_no_download and not pending:
        raise UsageError("--include-no-download goes with --pending.")
    several = pending or len(task_ids or []) > 1
    if several and output_path is not None and _names_a_file(output_path):
        what = "--pending" if pending else f"{len(task_ids or [])} task ids"
        target = "sends one image to stdout" if output_path == "-" else "names one file"
        raise UsageError(
            f"-o {output_path} {target}, but {what} can save many images.",
            hints=[f"Give a folder instead, e.g. -o {_folder_like(output_path)} (ending in /)."]
            if output_path != "-"
            else [],
        )
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
        from flux2_cli.build import output_intent

        intent = output_intent(output_path, name, ctx.settings)
        validate_template(intent.name)
        options = DownloadOptions(
            output=intent.output,
            name_template=intent.name,
            overwrite=overwrite,
            sidecar=not no_sidecar and output_path != "-",
            embed_metadata=embed_metadata,
        )
        asked = Asked(output_path, name, open_flag, preview_flag)
        if pending:
            _pending(ctx, options, asked, every=include_no_download)
        else:
            _by_id(ctx, task_ids or [], options, asked)
    finally:
        ctx.close()


def _folder_like(output: str) -> str:
    """``out/one.png`` -> ``out/one/``: the folder a user probably meant."""
    from pathlib import PurePath

    path = PurePath(output)
    return f"{path.with_suffix('').as_posix()}/"


def _names_a_file(output: str) -> bool:
    """True when ``-o`` names one file (or stdout), not a folder."""
    import os
    from pathlib import Path

    if output == "-":
        return True
    separators = tuple(sep for sep in (os.sep, os.altsep, "/") if sep)
    return not (output.endswith(separators) or Path(output).expanduser().is_dir())


@dataclass(frozen=True)
class Asked:
    """``-o`` and ``--name`` as given on this command line (None: not given)."""

    output: str | None
    name: str | None
    open: bool | None = None  # --open / --preview (None: the config's)
    preview: bool | None = None


def _by_id(ctx: Context, refs: list[str], options: DownloadOptions, asked: Asked) -> None:
    from flux2_cli.commands._ids import Outcomes, lookup
    from flux2_cli.errors import Flux2Error

    outcomes = Outcomes(ctx, total=len(refs), summary="not downloaded")
    for index, ref in enumerate(refs):
        try:
            task, _ = lookup(ctx, ref)
            task = _fetch(ctx, task, intended_options(ctx, task, options, asked))
        except Flux2Error as exc:
            outcomes.failed(index, exc, ref)
            continue
        outcomes.done(index, task)
        _paths(ctx, task, asked.output)
    if asked.output != "-":
        _show_images(ctx, outcomes.tasks, asked)
    outcomes.finish(json_document=asked.output != "-")


def _pending(ctx: Context, options: DownloadOptions, asked: Asked, *, every: bool) -> None:
    from flux2_cli import jobs
    from flux2_cli.commands._ids import Outcomes
    from flux2_cli.errors import Flux2Error

    ready, running = jobs.pending_downloads(ctx, warn=ctx.output.warn, include_no_download=every)
    if running:
        ids = " ".join(task.task_id for task in running)
        ctx.output.info(
            f"{len(running)} {'task' if len(running) == 1 else 'tasks'} still running, "
            f"not downloaded yet: {ids}"
            " (run `flux2 download --pending` again later)"
        )
    if not ready:
        ctx.output.info("Nothing to download: no finished task is waiting in the ledger.")
    outcomes = Outcomes(ctx, total=len(ready), single=False, summary="not downloaded")
    for index, task in enumerate(ready):
        try:
            done = _fetch(ctx, task, intended_options(ctx, task, options, asked))
        except Flux2Error as exc:
            outcomes.failed(index, exc, task.task_id)
            continue
        outcomes.done(index, done)
        _paths(ctx, done, None)
    _show_images(ctx, outcomes.tasks, asked)
    outcomes.finish()


def intended_options(
    ctx: Context, task: Task, options: DownloadOptions, asked: Asked
) -> DownloadOptions:
    """Where one task's images go: -o/--name given now win, else the task's own output intent
    (the -o/--name it was submitted with, kept in the ledger), else the config default."""
    from dataclasses import replace

    from flux2_cli.build import OUTPUT_INTENT, output_intent

    stored = task.extra.get(OUTPUT_INTENT)
    if not isinstance(stored, dict):
        return options
    intent = output_intent(asked.output, asked.name, ctx.settings, stored)
    return replace(options, output=intent.output, name_template=intent.name)


def _fetch(ctx: Context, task: Task, options: DownloadOptions) -> Task:
    """Wait for a task that still runs, then download its images."""
    from flux2_cli import jobs
    from flux2_cli.commands._common import status_text
    from flux2_cli.errors import UrlExpiredError
    from flux2_cli.task import short_id

    with jobs.interruptible(task.task_id):
        if not task.status.is_final or not task.images:
            with ctx.output.status(f"task {short_id(task.task_id)}") as show:
                task = jobs.wait(
                    ctx,
                    task,
                    timeout=ctx.settings.timeout,
                    poll_first=True,
                    on_update=lambda current: show(status_text(current)),
                )
        try:
            return jobs.download(ctx, task, options)
        except UrlExpiredError as exc:
            ctx.ledger().mark_gone(task)
            exc.hints.append(
                f"Marked task {short_id(task.task_id)} as gone: `download --pending` leaves "
                "it out from now on."
            )
            raise


def _show_images(ctx: Context, tasks: list[Task], asked: Asked) -> None:
    """``--open``/``--preview`` (or the config's) on the images just saved."""
    from flux2_cli.commands._common import show_images

    show_images(ctx, tasks, open_flag=asked.open, preview_flag=asked.preview)


def _paths(ctx: Context, task: Task, output: str | None) -> None:
    """The saved paths on stdout as each task lands (nothing when -o - sent the bytes)."""
    if output == "-" or ctx.output.json_mode:
        return
    for image in task.images:
        if image.path and image.path != "-":
            ctx.output.result(image.path)
