"""``flux2 sandbox``: run the offline emulator of the providers' APIs as an HTTP server."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Annotated

import typer

from flux2_cli.errors import InterruptSignal

# The help is the callback's docstring (it lists the prompt markers).
app = typer.Typer(name="sandbox", no_args_is_help=True)


@app.callback()
def sandbox() -> None:
    """The offline sandbox: every provider's API emulated locally, no key, no network.

    With any command: --sandbox, or --provider sandbox. Nothing is charged;
    images carry a SANDBOX mark.

    Markers anywhere in a prompt force an outcome (any case, combinable):
      \\[sandbox:fail]      the task ends failed (exit 5)
      \\[sandbox:moderate]  the task ends moderated (exit 5)
      \\[sandbox:slow]      the task takes five times the latency
      \\[sandbox:never]     the task never finishes (--timeout: exit 6)
      \\[sandbox:429]       the first create is answered 429, Retry-After: 1
      \\[sandbox:500]       the first create is answered 500 (not retried: exit 7)
      \\[sandbox:drop]      the first poll's connection is dropped (retried)
      \\[sandbox:html]      the image URL answers an HTML page (exit 8)
      \\[sandbox:truncate]  the image body is cut short (retried, then exit 8)
      \\[sandbox:expired]   the image URL is already expired (exit 8)
      \\[sandbox:moderate_request]  moderated before generating
      \\[sandbox:lost]      the first two polls answer "not found", then it is found
      \\[sandbox:fail422]   the task fails; its poll answers HTTP 422
      \\[sandbox:bare_poll] bfl: the polling_url has no ?id=
      \\[sandbox:lose_answer]  the first create's answer is lost
    """


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
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="One line per request on stderr, with any injected fault.",
        ),
    ] = True,
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
        run_server(host, port, settings, access_log=access_log)
    except OSError as exc:
        from flux2_cli.errors import UsageError

        hints = ["Pick another with --port N, or let the system choose: --port 0"]
        if exc.errno == errno.EADDRINUSE:
            hints.insert(0, "Another program (or another sandbox) is listening there.")
        raise UsageError(
            f"--host {host} --port {port}: cannot listen there: {exc.strerror or exc}.",
            hints=hints,
        ) from None
    except (KeyboardInterrupt, InterruptSignal):
        # Ctrl-C is the documented way to stop a server: a normal end, exit 0.
        typer.echo("stopped.", err=True)
