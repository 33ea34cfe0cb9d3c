"""``flux2 batch FILE``: many prompts from a manifest, concurrently, resumable, with a lock file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer

from flux2_cli.commands._options import (
    ApiKeyOpt,
    BaseUrlOpt,
    EmbedOpt,
    JsonOpt,
    ModeOpt,
    NameOpt,
    NoSidecarOpt,
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
    complete_batch_format,
)

BATCH_PANEL = "Batch"
REQUEST_PANEL = "Request"


def batch(
    manifest: Annotated[
        Path,
        typer.Argument(
            help="JSON Lines (.jsonl), a JSON array (.json), CSV or TSV with a header row "
            "(.csv, .tsv) or plain text (one prompt a line); - reads stdin (give --format). "
            "Entries take gen's long option names, plus name and output; relative paths are "
            "taken from the manifest's folder.",
            metavar="FILE",
            show_default=False,
        ),
    ],
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            help="Tasks in flight at once (default 4, or config).",
            metavar="N",
            rich_help_panel=BATCH_PANEL,
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the plan and its estimated cost; send nothing.",
            rich_help_panel=BATCH_PANEL,
        ),
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Send nothing; exit 5 naming each entry new, missing, changed or stale "
            "(including made on another endpoint, such as the sandbox) against FILE.lock.json.",
            rich_help_panel=BATCH_PANEL,
        ),
    ] = False,
    max_cost: Annotated[
        float | None,
        typer.Option(
            "--max-cost",
            min=0,
            help="Refuse to start (exit 2) when the estimated cost is over CREDITS.",
            metavar="CREDITS",
            rich_help_panel=BATCH_PANEL,
            show_default=False,
        ),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="Take the K-th of N even, stable shares (e.g. 2/4); auto reads the CI's "
            "variables (GitLab, CircleCI, Buildkite, Kubernetes Indexed Jobs).",
            metavar="K/N|auto",
            rich_help_panel=BATCH_PANEL,
            show_default=False,
        ),
    ] = None,
    resubmit_unknown: Annotated[
        bool,
        typer.Option(
            "--resubmit-unknown",
            help="Submit again the entries whose earlier POST got no answer (may pay twice).",
            rich_help_panel=BATCH_PANEL,
        ),
    ] = False,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh",
            help="Generate anew instead of reusing a task the ledger holds for the same request "
            "from another manifest.",
            rich_help_panel=BATCH_PANEL,
        ),
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write a self-contained HTML page: a thumbnail per entry, prompt, seed, model, "
            "cost and status, filterable by status.",
            metavar="PATH.html",
            rich_help_panel=BATCH_PANEL,
            show_default=False,
        ),
    ] = None,
    contact_sheet: Annotated[
        Path | None,
        typer.Option(
            "--contact-sheet",
            help="Write a labelled grid of the entries' images as PNG.",
            metavar="PATH.png",
            rich_help_panel=BATCH_PANEL,
            show_default=False,
        ),
    ] = None,
    junit: Annotated[
        Path | None,
        typer.Option(
            "--junit",
            help="Write a JUnit XML report, one test case per entry (GitLab, Jenkins, CircleCI, "
            "Buildkite and GitHub test reports read it).",
            metavar="PATH",
            rich_help_panel=BATCH_PANEL,
            show_default=False,
        ),
    ] = None,
    lock: Annotated[
        Path | None,
        typer.Option(
            "--lock",
            help="The lock file (and its journal beside it) instead of FILE.lock.json; a "
            "manifest read from stdin keeps none without it.",
            metavar="PATH",
            rich_help_panel=BATCH_PANEL,
            show_default=False,
        ),
    ] = None,
    ratio: RatioOpt = None,
    res: ResOpt = None,
    mode: ModeOpt = None,
    formats: Annotated[
        list[str] | None,
        typer.Option(
            "--format",
            metavar="FORMAT",
            help="The images' format (png, jpeg, webp, as the provider allows) and/or the "
            "manifest's (jsonl, json, csv, tsv, txt: needed for -); repeatable.",
            autocompletion=complete_batch_format,
            rich_help_panel=REQUEST_PANEL,
            show_default=False,
        ),
    ] = None,
    safety: Annotated[
        int | None,
        typer.Option(
            "--safety",
            metavar="N",
            help="Moderation tolerance, in the provider's range.",
            rich_help_panel=REQUEST_PANEL,
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
    output_path: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            metavar="DIR",
            help="Folder for the images (an entry's own `output` wins).",
            rich_help_panel="Output",
            show_default=False,
        ),
    ] = None,
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
    """Run a manifest of prompts concurrently; re-runs resume and skip finished entries."""
    import shlex

    from flux2_cli.batch import BatchOptions, parse_shard, run_batch
    from flux2_cli.batch.manifest import KIND_ALIASES, KINDS, check_kind
    from flux2_cli.build import FLAG, Layer
    from flux2_cli.commands._common import make_context
    from flux2_cli.errors import UsageError

    shard_range = parse_shard(shard) if shard is not None else None
    manifest_kinds = {*KINDS, *KIND_ALIASES}
    kinds = [check_kind(f) for f in formats or () if f.strip().lower() in manifest_kinds]
    images = [f for f in formats or () if f.strip().lower() not in manifest_kinds]
    if len(kinds) > 1 or len(images) > 1:
        raise UsageError("--format: give at most one manifest format and one image format.")
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
        output_dir=output_path,
        name=name,
        timeout=timeout,
        concurrency=concurrency,
    )
    try:
        run_batch(
            ctx,
            BatchOptions(
                manifest=manifest,
                concurrency=ctx.settings.concurrency,
                dry_run=dry_run,
                check=check,
                max_cost=max_cost,
                shard=shard_range,
                resubmit_unknown=resubmit_unknown,
                overwrite=overwrite,
                sidecar=not no_sidecar,
                embed_metadata=embed_metadata,
                flags=Layer(
                    FLAG,
                    {
                        "model": model,
                        "mode": mode,
                        "ratio": ratio,
                        "res": res,
                        "format": images[0] if images else None,
                        "safety": safety,
                    },
                ),
                manifest_kind=kinds[0] if kinds else None,
                fresh=fresh,
                junit=junit,
                report=report,
                contact_sheet=contact_sheet,
                lock=lock,
                rerun=shlex.join(
                    _rerun_argv(
                        manifest,
                        sandbox=sandbox,
                        provider=provider,
                        base_url=base_url,
                        profile=profile,
                        region=region,
                        output=output_path,
                        shard=shard,
                        lock=lock,
                        request=[
                            *(["--format", value] for value in formats or ()),
                            ["--ratio", ratio],
                            ["--res", res],
                            ["--mode", mode],
                            ["--model", model],
                            ["--safety", None if safety is None else str(safety)],
                            ["--name", name],
                        ],
                    )
                ),
            ),
        )
    finally:
        ctx.close()


def _rerun_argv(
    manifest: Path,
    *,
    sandbox: bool,
    provider: str | None,
    base_url: str | None,
    profile: str | None,
    region: str | None,
    output: str | None,
    shard: str | None,
    lock: Path | None = None,
    request: Sequence[Sequence[str | None]] = (),
) -> list[str]:
    """``flux2 batch FILE`` with the flags that decide where and what a resume runs.

    The request's flags are the entries' defaults, so they are part of each entry's
    fingerprint: a resume without them would plan other requests and pay again for tasks
    already in flight. ``--format`` also says what a manifest on stdin is.
    """
    argv = ["flux2", "batch", str(manifest)]
    if sandbox:
        argv.append("--sandbox")
    for flag, value in (
        ("--provider", provider),
        ("--base-url", base_url),
        ("--profile", profile),
        ("--region", region),
        ("-o", output),
        ("--shard", shard),
        ("--lock", str(lock) if lock is not None else None),
        *((pair[0], pair[1]) for pair in request),
    ):
        if flag is not None and value is not None:
            argv += [flag, value]
    return argv
