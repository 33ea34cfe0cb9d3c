"""Console-script entry point: answers ``flux2 --version`` before Typer loads, else runs the app."""

from __future__ import annotations

import os
import sys

# Not `from typing import TYPE_CHECKING`: importing typing alone costs a third of start-up.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

# Typer's completion protocol: a shell asks for completions by setting this variable.
COMPLETE_VAR = "_FLUX2_COMPLETE"


def main() -> NoReturn:
    """Run ``flux2``: a bare ``--version`` is answered here, everything else by the app."""
    # Only the exact `flux2 --version` is answered here: anything else (other flags, a completion
    # request) goes through Typer so parsing and errors stay exactly as the app defines them.
    if sys.argv[1:] == ["--version"] and not os.environ.get(COMPLETE_VAR):
        from flux2_cli import __version__

        try:
            sys.stdout.write(f"flux2 {__version__}\n")
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader went away (`flux2 --version | true`): stay quiet at exit too.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)

    # `import httpx` also imports httpx's own command line (httpx._main), which loads click,
    # pygments and Rich: ~70 ms of CPU in every command that talks HTTP, for a `httpx` command
    # flux2 never runs. A None entry in sys.modules makes that one import fail, and httpx then
    # defines its stub `main`, as it does when its CLI extras are not installed. The console
    # script only: a program importing flux2_cli as a library keeps httpx as it is.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    from flux2_cli.cli import main as app_main

    app_main()
