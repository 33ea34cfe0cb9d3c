"""``flux2 gen``: validate, submit one task, wait, download, print the paths."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from flux2_cli.commands._options import (
    ApiKeyOpt,
    BaseUrlOpt,
    EmbedOpt,
    FormatOpt,
    JsonOpt,
    ModeOpt,
    NameOpt,
    NoSidecarOpt,
    NoUpsampleOpt,
    OpenOpt,
    OutputOpt,
    OverwriteOpt,
    PreviewOpt,
    ProfileOpt,
    ProviderOpt,
    QuietOpt,
    RatioOpt,
    RegionOpt,
    ResOpt,
    SandboxOpt,
    TimeoutOpt,
    VerboseOpt,
)

if TYPE_CHECKING:
    from flux2_cli.build import Layer, OutputIntent
    from flux2_cli.context import Context
    from flux2_cli.providers.base import Provider
    from flux2_cli.request import GenerationRequest

REQUEST_PANEL = "Request"
MAX_COUNT = 100  # -n: more than this is a batch
DRY_RUN_STRING_CHARS = 120
FLOW_PANEL = "Flow"


def gen(
    prompt: Annotated[
        str | None,
        typer.Argument(
            help="What to draw; - reads it from stdin (optional with --from).",
            metavar="PROMPT",
            show_default=False,
        ),
    ] = None,
    ratio: RatioOpt = None,
    res: ResOpt = None,
    mode: ModeOpt = None,
    ref: Annotated[
        list[str] | None,
        typer.Option(
            "--ref",
            metavar="URL|PATH",
            help="Reference image URL (or local file where the provider takes inline images); "
            "repeatable, at most 8.",
            rich_help_panel=REQUEST_PANEL,
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", metavar="N", help="Random seed.", rich_help_panel=REQUEST_PANEL),
    ] = None,
    width: Annotated[
        int | None,
        typer.Option(
            "--width",
            metavar="W",
            help="Width in pixels (with --height).",
            rich_help_panel=REQUEST_PANEL,
        ),
    ] = None,
    height: Annotated[
        int | None,
        typer.Option(
            "--height",
            metavar="H",
            help="Height in pixels (with --width).",
            rich_help_panel=REQUEST_PANEL,
        ),
    ] = None,
    image_format: FormatOpt = None,
    safety: Annotated[
        int | None,
        typer.Option(
            "--safety",
            metavar="N",
            help="Moderation tolerance, in the provider's range.",
            rich_help_panel=REQUEST_PANEL,
        ),
    ] = None,
    callback_url: Annotated[
        str | None,
        typer.Option(
            "--callback-url",
            metavar="URL",
            help="Webhook called when the task ends.",
            rich_help_panel=REQUEST_PANEL,
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            metavar="KEY=VALUE",
            help="KEY=VALUE passed into the request body (VALUE parsed as JSON); repeatable.",
            rich_help_panel=REQUEST_PANEL,
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            metavar="NAME",
            help="Override the provider's model id.",
            rich_help_panel=REQUEST_PANEL,
        ),
    ] = None,
    from_ref: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="PATH|ID",
            help="Repeat an earlier request: a sidecar, an image with flux2's metadata, or a "
            "task id; flags given override single fields.",
            rich_help_panel=REQUEST_PANEL,
            show_default=False,
        ),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option(
            "-n",
            metavar="N",
            min=1,
            max=MAX_COUNT,
            help="N images of one prompt, as N tasks (seeds S, S+1, … with --seed S); "
            "{n} in --name (default 1).",
            rich_help_panel=REQUEST_PANEL,
            show_default=False,
        ),
    ] = None,  # None, not 1: a default Typer must convert costs Tab completion a pydantic import
    max_cost: Annotated[
        float | None,
        typer.Option(
            "--max-cost",
            min=0,
            metavar="CREDITS",
            help="Refuse to send anything (exit 2) when the estimate for all N is over CREDITS.",
            rich_help_panel=FLOW_PANEL,
            show_default=False,
        ),
    ] = None,
    no_upsample: NoUpsampleOpt = False,
    output_path: OutputOpt = None,
    name: NameOpt = None,
    overwrite: OverwriteOpt = False,
    no_sidecar: NoSidecarOpt = False,
    embed_metadata: EmbedOpt = False,
    open_flag: OpenOpt = None,
    preview_flag: PreviewOpt = None,
    no_wait: Annotated[
        bool,
        typer.Option(
            "--no-wait",
            metavar="",
            help="Submit only; print the task id.",
            rich_help_panel=FLOW_PANEL,
        ),
    ] = False,
    no_download: Annotated[
        bool,
        typer.Option(
            "--no-download",
            metavar="",
            help="Wait, then print URLs instead of downloading.",
            rich_help_panel=FLOW_PANEL,
        ),
    ] = False,
    timeout: TimeoutOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            metavar="",
            help="Print the exact HTTP request (key redacted) and the estimated cost; "
            "send nothing.",
            rich_help_panel=FLOW_PANEL,
        ),
    ] = False,
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
    """Generate an image: submit, wait with a live spinner, download, print the saved paths."""
    from flux2_cli.build import FLAG, Layer
    from flux2_cli.commands._common import make_context, read_prompt

    origin = _load_origin(from_ref) if from_ref is not None else None
    if prompt is None and origin is None:
        from flux2_cli.errors import UsageError

        raise UsageError(
            "Give a PROMPT (or - to read it from stdin), or --from PATH|ID to repeat an "
            "earlier request.",
            # As Typer's own usage errors are shown (cli.py): the usage line, then help.
            hints=["usage: flux2 gen [OPTIONS] [PROMPT]", "help:  flux2 gen --help"],
        )
    ctx = make_context(
        # The provider (and the sandbox) that made the earlier request, unless --provider
        # chooses another account.
        provider=provider or (origin.provider if origin is not None else None),
        base_url=base_url,
        api_key=api_key,
        profile=profile,
        region=region,
        sandbox=sandbox or (origin is not None and origin.sandbox and provider is None),
        json_mode=json_output,
        quiet=quiet,
        verbose=verbose,
        timeout=timeout,
    )
    try:
        flags = Layer(
            FLAG,
            {
                "prompt": read_prompt(prompt, ctx.output) if prompt is not None else None,
                "model": model,
                "mode": mode,
                "ratio": ratio,
                "res": res,
                "format": image_format,
                "safety": safety,
                "refs": tuple(ref or ()),
                "seed": seed,
                "width": width,
                "height": height,
                "callback_url": callback_url,
                "params": tuple(param or ()),
                "upsample": False if no_upsample else None,
            },
            labels={"prompt": "PROMPT (stdin)" if prompt == "-" else "PROMPT"},
        )
        origin_layers = []
        if origin is not None:
            from flux2_cli.origin import as_layer

            origin_layers.append(as_layer(origin, f"--from {origin.label}"))
            where = origin.provider or "provider unknown"
            if ctx.sandbox:
                where += ", on the sandbox"
            ctx.output.info(
                f"Repeating the request of {origin.label} ({where}); flags given override "
                "its fields."
            )
        _run(
            ctx,
            GenOptions(
                flags=flags,
                origin=tuple(origin_layers),
                count=count or 1,
                max_cost=max_cost,
                output=output_path,
                name=name,
                overwrite=overwrite,
                sidecar=not no_sidecar,
                embed_metadata=embed_metadata,
                no_wait=no_wait,
                no_download=no_download,
                dry_run=dry_run,
                open=open_flag,
                preview=preview_flag,
            ),
        )
    finally:
        ctx.close()


@dataclass(frozen=True)
class GenOptions:
    """What one gen call asks for: the request's flags (one layer), then output and flow."""

    flags: Layer
    origin: tuple[Layer, ...] = ()  # --from: below the flags, above the config
    count: int = 1  # -n
    max_cost: float | None = None
    output: str | None = None
    name: str | None = None
    overwrite: bool = False
    sidecar: bool = True
    embed_metadata: bool = False
    no_wait: bool = False
    no_download: bool = False
    dry_run: bool = False
    open: bool | None = None  # None: the config's open / preview
    preview: bool | None = None


def _run(ctx: Context, opts: GenOptions) -> None:
    from flux2_cli import jobs
    from flux2_cli.build import build_request, config_layers, output_intent
    from flux2_cli.commands._common import refuse_terminal_stdout
    from flux2_cli.download import check_destination, validate_template
    from flux2_cli.errors import UsageError

    provider = ctx.provider()
    built = build_request(provider, [opts.flags, *opts.origin, *config_layers(ctx.settings)])
    requests = jobs.variants(built.request, opts.count)
    if opts.output == "-" and (
        opts.no_wait or opts.no_download or ctx.output.json_mode or opts.count > 1
    ):
        raise UsageError(
            "-o - writes image bytes to stdout; it cannot go with --json, --no-wait, "
            "--no-download or -n."
        )
    if opts.output == "-":
        refuse_terminal_stdout(ctx)
    intent = output_intent(opts.output, opts.name, ctx.settings)
    validate_template(intent.name)
    if opts.count > 1 and _one_file(intent.output):
        raise UsageError(
            f"-o {opts.output} names one file, but -n {opts.count} makes {opts.count} images.",
            hints=[
                "Give a folder (ending in /), and --name with {n} if you like: --name 'fox-{n}'."
            ],
        )
    if not (opts.no_wait or opts.no_download):
        check_destination(intent.output, intent.source)
    if opts.max_cost is not None:
        from flux2_cli.batch.flow import check_max_cost

        credits, _, unpriced = jobs.estimate_total(provider, requests)
        try:
            check_max_cost(provider, opts.max_cost, credits, unpriced)
        except UsageError as exc:
            exc.hints = ["Raise --max-cost, or ask for fewer images (-n)."] if not unpriced else []
            raise
    for notice in built.notices:  # once every check has passed
        ctx.output.info(notice)
    if opts.dry_run:
        _print_dry_run(ctx, provider, requests)
        return
    if len(requests) == 1:
        _run_one(ctx, provider, requests[0], opts, intent)
    else:
        _run_many(ctx, provider, requests, opts, intent)


def _run_one(
    ctx: Context,
    provider: Provider,
    request: GenerationRequest,
    opts: GenOptions,
    intent: OutputIntent,
) -> None:
    """One task: any failure is the command's, with the task object first under --json."""
    from flux2_cli import jobs
    from flux2_cli.commands._common import finished_line, show_images
    from flux2_cli.errors import InterruptedError_, TaskFailedError, WaitTimeoutError
    from flux2_cli.task import Task

    started = ctx.clock()
    task = _submit(ctx, provider, request, opts, intent)
    if opts.no_wait:
        _render(ctx, [task], "ids")
        ctx.output.info(f"check on it: flux2 status {task.task_id} --wait")
        return
    seen = [task]
    try:
        task = _wait(ctx, task, seen)
    except (TaskFailedError, WaitTimeoutError, InterruptedError_) as exc:
        # Scripts reading --json still get the task object (with its error, or as last seen)
        # before exit 5, 6, 130 or 143: the id is what they need to pick it up again.
        last = exc.task if isinstance(exc, (TaskFailedError, WaitTimeoutError)) else seen[0]
        if ctx.output.json_mode and isinstance(last, Task):
            _render(ctx, [last], "ids")
        raise
    if opts.no_download:
        _render(ctx, [task], "urls")
        return
    with jobs.interruptible(task.task_id):
        task = jobs.download(ctx, task, _download_options(opts, intent))
    if opts.output != "-":
        _render(ctx, [task], "paths")
    ctx.output.success(finished_line(task, ctx.clock() - started))
    if opts.output != "-":
        show_images(ctx, [task], open_flag=opts.open, preview_flag=opts.preview)


def _run_many(
    ctx: Context,
    provider: Provider,
    requests: list[GenerationRequest],
    opts: GenOptions,
    intent: OutputIntent,
) -> None:
    """-n N: every task submitted first (they run side by side at the provider), then each
    waited for and downloaded; one failing does not stop the others, the worst exit code wins."""
    from flux2_cli import jobs
    from flux2_cli.commands._common import finished_line, show_images
    from flux2_cli.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, Flux2Error
    from flux2_cli.task import Task

    tasks: list[Task] = []
    errors: list[Flux2Error] = []
    intents = [numbered(intent, number) for number in range(1, len(requests) + 1)]
    for request, each in zip(requests, intents, strict=True):
        try:
            tasks.append(_submit(ctx, provider, request, opts, each))
        except Flux2Error as exc:
            if not tasks or exc.exit_code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
                raise
            # Those already submitted are paid for: see them through, then report this.
            errors.append(exc)
            ctx.output.error(f"task {len(tasks) + 1} of {len(requests)}: {exc.message}")
            break
    if opts.no_wait:
        _render(ctx, tasks, "ids")
        ids = " ".join(task.task_id for task in tasks)
        ctx.output.info(f"check on them: flux2 status {ids} --wait")
        _raise_worst(errors, len(requests))
        return
    finished: list[Task] = []
    started = ctx.clock()
    for index, task in enumerate(tasks):
        seen = [task]
        try:
            task = _wait(ctx, task, seen, f" ({index + 1}/{len(tasks)})")
            if not opts.no_download:
                with jobs.interruptible(task.task_id):
                    task = jobs.download(ctx, task, _download_options(opts, intents[index]))
        except Flux2Error as exc:
            if exc.exit_code in (EXIT_INTERRUPTED, EXIT_TERMINATED):
                raise
            errors.append(exc)
            ctx.output.error(exc.message, exc.hints)
            task = getattr(exc, "task", None) or seen[0]
        finished.append(task)
    _render(ctx, finished, "urls" if opts.no_download else "paths")
    if not opts.no_download:
        elapsed = ctx.clock() - started
        for task in finished:
            if any(image.path for image in task.images):
                ctx.output.success(finished_line(task, elapsed))
        show_images(ctx, finished, open_flag=opts.open, preview_flag=opts.preview)
    _raise_worst(errors, len(requests))


def _submit(
    ctx: Context,
    provider: Provider,
    request: GenerationRequest,
    opts: GenOptions,
    intent: OutputIntent,
) -> Any:
    from flux2_cli import jobs
    from flux2_cli.build import OUTPUT_INTENT
    from flux2_cli.ledger import TaskUnrecordedError

    try:
        with jobs.interruptible(None):
            task = jobs.submit(ctx, provider, request)
    except TaskUnrecordedError as exc:
        # Paid for, but the ledger has no trace of it: scripts reading --json get the id too.
        if ctx.output.json_mode:
            _render(ctx, [exc.task], "ids")
        raise
    extra = dict(task.extra)
    if opts.no_download:  # `download --pending` leaves it alone unless asked
        extra[jobs.NO_DOWNLOAD] = True
    if opts.output not in (None, "-") or opts.name is not None:
        # A later `flux2 download ID` (or --pending) saves where this run was asked to.
        extra[OUTPUT_INTENT] = intent.to_json()
    if extra != task.extra:
        task = task.evolve(extra=extra)
        ctx.ledger().update(task)
    from flux2_cli.commands._common import submitted_line

    ctx.output.info(submitted_line(task))
    return task


def _wait(ctx: Context, task: Any, seen: list[Any], suffix: str = "") -> Any:
    """Poll behind a spinner (plain lines off a terminal); ``seen[0]`` is the last state."""
    from flux2_cli import jobs
    from flux2_cli.commands._common import status_text
    from flux2_cli.task import short_id

    def update(current: Any) -> None:
        seen[0] = current
        show(status_text(current))

    label = f"task {short_id(task.task_id)}{suffix}"
    with jobs.interruptible(task.task_id), ctx.output.status(label) as show:
        show(status_text(task))
        return jobs.wait(ctx, task, timeout=ctx.settings.timeout, on_update=update)


def _download_options(opts: GenOptions, intent: OutputIntent) -> Any:
    """Where and how the images are saved."""
    from flux2_cli.download import DownloadOptions

    return DownloadOptions(
        output=intent.output,
        name_template=intent.name,
        overwrite=opts.overwrite,
        sidecar=opts.sidecar and opts.output != "-",
        embed_metadata=opts.embed_metadata,
    )


def numbered(intent: OutputIntent, number: int) -> OutputIntent:
    """-n: the intent of task ``number``, ``{n}`` in its name replaced by the number (1…N)."""
    from dataclasses import replace

    return replace(intent, name=intent.name.replace("{n}", str(number)))


def _raise_worst(errors: list[Any], total: int) -> None:
    """Several failures: one summary with the highest of their exit codes."""
    if not errors:
        return
    from flux2_cli.errors import Flux2Error

    summary = Flux2Error(f"{len(errors)} of {total} tasks did not finish; see above.")
    summary.exit_code = max(error.exit_code for error in errors)
    raise summary


def _one_file(output: str) -> bool:
    """True when ``-o`` names one file, not a folder."""
    import os
    from pathlib import Path

    separators = tuple(sep for sep in (os.sep, os.altsep, "/") if sep)
    return not (output.endswith(separators) or Path(output).expanduser().is_dir())


def _load_origin(ref: str) -> Any:
    """``--from``: the earlier request (a task id is looked up in the ledger)."""
    from flux2_cli.origin import load_origin

    def lookup(text: str) -> Any:
        from flux2_cli.ledger import Ledger

        with Ledger() as ledger:
            return ledger.resolve(text)

    return load_origin(ref, lookup=lookup)


def _render(ctx: Context, tasks: list[Any], lines: str) -> None:
    from flux2_cli.commands._common import render_tasks

    render_tasks(ctx, tasks, lines=lines, single=len(tasks) == 1)


def _print_dry_run(ctx: Context, provider: Provider, requests: list[GenerationRequest]) -> None:
    """The very request the client would send (key redacted), as the client prepares it; with
    -n, the first of them, and the cost of all."""
    from flux2_cli import jobs

    request = requests[0]
    count = len(requests)

    base_url = ctx.base_url(provider)
    call = jobs.create_call(ctx, provider, request, fingerprint=None)
    client = ctx.preview_client(provider, base_url)
    try:
        prepared = client.prepare(call)
    finally:
        client.close()
    cost = provider.estimate_cost(request)
    try:
        body: Any = json.loads(prepared.body) if prepared.body else None
    except ValueError:
        body = prepared.body.decode("utf-8", "replace")
    output = ctx.output
    if not ctx.settings.api_key and provider.capabilities.requires_key and not ctx.sandbox:
        output.warn("no API key is set; a real run would stop with exit 3.")
    if output.json_mode:
        output.document(
            {
                "dry_run": True,
                "method": prepared.method,
                "url": prepared.url,
                "headers": prepared.headers,
                "body": _shorten(body),
                "estimated_cost": cost.to_json() if cost else None,
                "count": count,
                "estimated_total": _total_json(provider, requests),
                "request": request.to_json(),
            }
        )
        return
    output.result(f"{prepared.method} {prepared.url}")
    for header, value in prepared.headers.items():
        output.result(f"{header}: {value}")
    output.result("")
    output.result(json.dumps(_shorten(body), indent=2, ensure_ascii=False))
    if cost is None:
        output.info(f"Estimated cost: not published by {provider.capabilities.id}.")
    else:
        from flux2_cli.output import format_cost

        simulated = ctx.sandbox or provider.capabilities.id == "sandbox"
        text = format_cost(cost.credits, cost.usd, simulated=simulated)
        total = ""
        if count > 1:
            credits, usd, _ = jobs.estimate_total(provider, requests)
            total = f", × {count} tasks = {format_cost(credits, usd)}"
            if request.seed is not None:
                total += f" (seeds {request.seed}…{requests[-1].seed})"
        output.info(f"Estimated cost: {text} per image{total}. Nothing was sent.")


def _total_json(provider: Provider, requests: list[GenerationRequest]) -> dict[str, Any] | None:
    """The estimate for every task of -n, or None when the provider publishes no price."""
    from flux2_cli import jobs

    credits, usd, unpriced = jobs.estimate_total(provider, requests)
    if unpriced:
        return None
    return {"credits": credits, "usd": round(usd, 6)}


def _shorten(value: Any) -> Any:
    """Long strings (inline base64 images) abbreviated for the screen."""
    if isinstance(value, dict):
        return {key: _shorten(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shorten(item) for item in value]
    if isinstance(value, str) and len(value) > 4 * DRY_RUN_STRING_CHARS:
        return f"{value[:DRY_RUN_STRING_CHARS]}… ({len(value)} characters)"
    return value
