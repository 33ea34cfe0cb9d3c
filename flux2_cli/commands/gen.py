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
    OutputOpt,
    OverwriteOpt,
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
    from flux2_cli.build import Layer
    from flux2_cli.context import Context
    from flux2_cli.providers.base import Provider
    from flux2_cli.request import GenerationRequest

REQUEST_PANEL = "Request"
DRY_RUN_STRING_CHARS = 120
FLOW_PANEL = "Flow"


def gen(
    prompt: Annotated[
        str, typer.Argument(help="What to draw; - reads it from stdin.", metavar="PROMPT")
    ],
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
    no_upsample: NoUpsampleOpt = False,
    output_path: OutputOpt = None,
    name: NameOpt = None,
    overwrite: OverwriteOpt = False,
    no_sidecar: NoSidecarOpt = False,
    embed_metadata: EmbedOpt = False,
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
        flags = Layer(
            FLAG,
            {
                "prompt": read_prompt(prompt, ctx.output),
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
        _run(
            ctx,
            GenOptions(
                flags=flags,
                output=output_path,
                name=name,
                overwrite=overwrite,
                sidecar=not no_sidecar,
                embed_metadata=embed_metadata,
                no_wait=no_wait,
                no_download=no_download,
                dry_run=dry_run,
            ),
        )
    finally:
        ctx.close()


@dataclass(frozen=True)
class GenOptions:
    """What one gen call asks for: the request's flags (one layer), then output and flow."""

    flags: Layer
    output: str | None = None
    name: str | None = None
    overwrite: bool = False
    sidecar: bool = True
    embed_metadata: bool = False
    no_wait: bool = False
    no_download: bool = False
    dry_run: bool = False


def _run(ctx: Context, opts: GenOptions) -> None:
    from flux2_cli import jobs
    from flux2_cli.build import OUTPUT_INTENT, build_request, config_layers, output_intent
    from flux2_cli.commands._common import (
        finished_line,
        refuse_terminal_stdout,
        status_text,
        submitted_line,
    )
    from flux2_cli.download import DownloadOptions, check_destination, validate_template
    from flux2_cli.errors import InterruptedError_, TaskFailedError, WaitTimeoutError
    from flux2_cli.task import Task, short_id

    provider = ctx.provider()
    built = build_request(provider, [opts.flags, *config_layers(ctx.settings)])
    request = built.request
    if opts.output == "-" and (opts.no_wait or opts.no_download or ctx.output.json_mode):
        from flux2_cli.errors import UsageError

        raise UsageError(
            "-o - writes image bytes to stdout; it cannot go with --json, --no-wait or "
            "--no-download."
        )
    if opts.output == "-":
        refuse_terminal_stdout(ctx)
    intent = output_intent(opts.output, opts.name, ctx.settings)
    validate_template(intent.name)
    if not (opts.no_wait or opts.no_download):
        check_destination(intent.output, intent.source)
    for notice in built.notices:  # once every check has passed
        ctx.output.info(notice)
    if opts.dry_run:
        _print_dry_run(ctx, provider, request)
        return
    output = ctx.output
    started = ctx.clock()
    from flux2_cli.ledger import TaskUnrecordedError

    try:
        with jobs.interruptible(None):
            task = jobs.submit(ctx, provider, request)
    except TaskUnrecordedError as exc:
        # Paid for, but the ledger has no trace of it: scripts reading --json get the id too.
        if output.json_mode:
            _render(ctx, exc.task, "ids")
        raise
    task_id = task.task_id
    extra = dict(task.extra)
    if opts.no_download:  # `download --pending` leaves it alone unless asked
        extra[jobs.NO_DOWNLOAD] = True
    if opts.output not in (None, "-") or opts.name is not None:
        # A later `flux2 download ID` (or --pending) saves where this run was asked to.
        extra[OUTPUT_INTENT] = intent.to_json()
    if extra != task.extra:
        task = task.evolve(extra=extra)
        ctx.ledger().update(task)
    output.info(submitted_line(task))
    if opts.no_wait:
        _render(ctx, task, "ids")
        output.info(f"check on it: flux2 status {task_id} --wait")
        return
    seen = [task]

    def update(current: Task) -> None:
        seen[0] = current
        show(status_text(current))

    try:
        with jobs.interruptible(task_id), output.status(f"task {short_id(task_id)}") as show:
            show(status_text(task))
            task = jobs.wait(ctx, task, timeout=ctx.settings.timeout, on_update=update)
    except (TaskFailedError, WaitTimeoutError, InterruptedError_) as exc:
        # Scripts reading --json still get the task object (with its error, or as last seen)
        # before exit 5, 6, 130 or 143: the id is what they need to pick it up again.
        last = exc.task if isinstance(exc, (TaskFailedError, WaitTimeoutError)) else seen[0]
        if output.json_mode and isinstance(last, Task):
            _render(ctx, last, "ids")
        raise
    if opts.no_download:
        _render(ctx, task, "urls")
        return
    options = DownloadOptions(
        output=intent.output,
        name_template=intent.name,
        overwrite=opts.overwrite,
        sidecar=opts.sidecar and opts.output != "-",
        embed_metadata=opts.embed_metadata,
    )
    with jobs.interruptible(task_id):
        task = jobs.download(ctx, task, options)
    if opts.output != "-":
        _render(ctx, task, "paths")
    output.success(finished_line(task, ctx.clock() - started))


def _render(ctx: Context, task: Any, lines: str) -> None:
    from flux2_cli.commands._common import render_tasks

    render_tasks(ctx, [task], lines=lines, single=True)


def _print_dry_run(ctx: Context, provider: Provider, request: GenerationRequest) -> None:
    """The very request the client would send (key redacted), as the client prepares it."""
    from flux2_cli import jobs

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
        output.info(f"Estimated cost: {text} per image. Nothing was sent.")


def _shorten(value: Any) -> Any:
    """Long strings (inline base64 images) abbreviated for the screen."""
    if isinstance(value, dict):
        return {key: _shorten(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shorten(item) for item in value]
    if isinstance(value, str) and len(value) > 4 * DRY_RUN_STRING_CHARS:
        return f"{value[:DRY_RUN_STRING_CHARS]}… ({len(value)} characters)"
    return value
