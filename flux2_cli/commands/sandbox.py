"""``flux2 sandbox``: run the offline emulator of the providers' APIs as an HTTP server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="sandbox",
    help="The offline sandbox: every provider's API emulated locally, no key, no network.",
    no_args_is_help=True,
)


@app.callback()
def sandbox() -> None:
    """The offline sandbox: every provider's API emulated locally, no key, no network."""


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port; 0 picks a free one (printed first).")
    ] = 8765,
    latency: Annotated[
        float, typer.Option(min=0, help="Seconds a task takes from submit to done.")
    ] = 2.0,
    ttl: Annotated[
        float, typer.Option(min=0, help="Seconds image URLs live (apiinone, apimart, vtrix).")
    ] = 86400.0,
    bfl_ttl: Annotated[
        float, typer.Option("--bfl-ttl", min=0, help="Seconds bfl image URLs live.")
    ] = 600.0,
    faults: Annotated[
        str,
        typer.Option(
            help="Faults by rate or count, e.g. '429=0.2,500=#1,drop=0.05,retry_after=2'.",
        ),
    ] = "",
    fault_seed: Annotated[
        int | None,
        typer.Option("--fault-seed", help="Seed of the fault generator (repeatable runs)."),
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option("--state-dir", help="Where tasks, images and balances are kept."),
    ] = None,
    credits: Annotated[
        int, typer.Option(min=0, help="Starting balance of every key, in credits.")
    ] = 10_000,
) -> None:
    """Serve the sandbox over HTTP; prints its URL on the first stdout line. Ctrl-C stops it.

    It answers the apiinone, apimart, vtrix and bfl paths at one base URL, so any client can
    be pointed at it (for flux2: --base-url URL with the provider of your choice).
    """
    from flux2_cli.sandbox.faults import parse_faults
    from flux2_cli.sandbox.server import serve as run_server
    from flux2_cli.sandbox.settings import SandboxSettings

    try:
        fault_settings = parse_faults(faults, seed=fault_seed)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--faults") from None
    settings = SandboxSettings(
        latency=latency,
        ttl_seconds=ttl,
        bfl_ttl_seconds=bfl_ttl,
        credits=credits,
        faults=fault_settings,
        state_dir=state_dir,
    )
    try:
        run_server(host, port, settings)
    except OSError as exc:
        typer.echo(f"Error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(1) from None
