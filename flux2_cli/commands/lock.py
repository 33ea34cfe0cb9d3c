"""``flux2 lock merge MANIFEST LOCKFILE...``: fold CI shards' lock files into the manifest's."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flux2_cli.commands._options import (
    BaseUrlOpt,
    ProfileOpt,
    ProviderOpt,
    QuietOpt,
    RegionOpt,
    SandboxOpt,
    VerboseOpt,
)

app = typer.Typer(
    name="lock",
    help="The batch lock file beside a manifest (FILE.lock.json).",
    no_args_is_help=True,
)


@app.callback()
def lock() -> None:
    """The batch lock file beside a manifest (FILE.lock.json)."""


@app.command()
def merge(
    manifest: Annotated[
        Path,
        typer.Argument(
            help="The manifest whose lock file (FILE.lock.json) receives the merge.",
            metavar="MANIFEST",
            show_default=False,
        ),
    ],
    lock_files: Annotated[
        list[Path],
        typer.Argument(
            help="The shards' lock files (each read with the journal beside it).",
            metavar="LOCKFILE...",
            show_default=False,
        ),
    ],
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    provider: ProviderOpt = None,
    base_url: BaseUrlOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    sandbox: SandboxOpt = False,
) -> None:
    """Fold the shards' lock files into MANIFEST's lock file.

    Records naming the same task keep the furthest state; an entry with different tasks in
    different files is reported and left out (exit 5); records of entries not in MANIFEST are
    dropped with a notice. Give the options the batch ran with (--provider, --sandbox,
    --profile). Then, with every shard's outputs in place: flux2 batch MANIFEST --check.
    """
    from flux2_cli.batch.manifest import read_manifest
    from flux2_cli.batch.merge import merge_lock_files
    from flux2_cli.batch.plan import plan_entries
    from flux2_cli.commands._common import make_context

    ctx = make_context(
        provider=provider,
        base_url=base_url,
        profile=profile,
        region=region,
        sandbox=sandbox,
        quiet=quiet,
        verbose=verbose,
    )
    try:
        planned = plan_entries(ctx, ctx.provider(), manifest, read_manifest(manifest))
        merge_lock_files(ctx, manifest, planned, lock_files)
    finally:
        ctx.close()
