"""The Typer app, its commands in one block, and ``main()``: error -> message + exit code."""

from __future__ import annotations

import errno
import os
import re
import shlex
import signal
import sys
from typing import Annotated, Any, NoReturn

import typer

from flux2_cli import __version__
from flux2_cli.commands import _examples as examples
from flux2_cli.commands import (
    batch,
    credits,
    download,
    gen,
    history,
    providers,
    sandbox,
    status,
)
from flux2_cli.commands import config as config_command
from flux2_cli.commands import lock as lock_command
from flux2_cli.errors import (
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
    Flux2Error,
    InterruptSignal,
    TerminatedSignal,
)

# Click's "unexpected extra argument(s) (red fox)": the words a prompt lost to the shell.
_EXTRA_ARGS = re.compile(r"unexpected extra argument(?:s|\(s\))? \((.*)\)")


def _clean_metavars() -> None:
    """Help pages show ``PROMPT`` and ``--port PORT``, not ``{PROMPT}``, ``<str>``, ``<bool>``.

    Typer 0.29 prints a type placeholder beside every parameter and braces around required
    arguments in the usage line; gh, httpie and hf show a plain upper-case name. These are
    private Typer methods, so each is replaced only if present (tests/commands/test_help.py
    notices if they move).
    """
    from typer import core

    argument: Any = getattr(core, "TyperArgument", None)
    option: Any = getattr(core, "TyperOption", None)
    if argument is not None and hasattr(argument, "_usage_display_name"):

        def usage_name(self: Any) -> str:
            name = str(self.metavar or self.name).upper()
            name = name if self.required else f"[{name}]"
            many = self.nargs != 1 and not name.endswith("...")
            return name + ("..." if many else "")

        argument._usage_display_name = usage_name
        # The name column already says what the argument is; no type column beside it.
        argument.display_type_rich = lambda self, ctx: None
        argument.display_name_raw = property(lambda self: str(self.metavar or self.name).upper())
    if option is not None and hasattr(option, "display_type_rich"):

        def option_type(self: Any, ctx: Any) -> str | None:
            if self.metavar is not None:
                return str(self.metavar) or None
            if self.is_flag or self.count:
                return None
            return str(self.name).upper()

        option.display_type_rich = option_type


_clean_metavars()

app = typer.Typer(
    name="flux2",
    help="Generate images with FLUX.2 through hosted APIs.",
    no_args_is_help=True,
    # Locals hold API keys: never print them in tracebacks.
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"flux2 {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Generate images with FLUX.2 through hosted APIs.

    Exit codes: 0 ok, 1 unexpected error, 2 bad input, 3 key missing or refused, 4 out of
    credits, 5 task failed, 6 timed out, 7 service unreachable, 8 download failed or expired,
    130 interrupted, 143 terminated.
    """


app.command("gen")(gen.gen)
app.command("status")(status.status)
app.command("download")(download.download)
app.add_typer(config_command.app, name="config")
app.command("history")(history.history)
app.command("credits")(credits.credits)
app.command("providers")(providers.providers)
app.command("batch")(batch.batch)
app.add_typer(lock_command.app, name="lock")
app.add_typer(sandbox.app, name="sandbox")
examples.attach(app)


def _on_sigterm(signum: int, frame: object) -> None:
    from flux2_cli.errors import TerminatedSignal

    raise TerminatedSignal()


def _on_sigint(signum: int, frame: object) -> None:
    from flux2_cli.errors import InterruptSignal

    raise InterruptSignal()


def run(argv: list[str] | None = None) -> int:
    """Run the app and map every outcome to an exit code (the one place that does)."""
    args = list(argv if argv is not None else sys.argv[1:])
    verbose = any(arg in ("-v", "--verbose") for arg in args)
    try:
        # Not standalone: Click's usage errors come here and are told in flux2's one style.
        code = app(args=args, prog_name="flux2", standalone_mode=False)
    except SystemExit as exc:
        if _after_broken_pipe(exc):
            return 0
        return _exit_code(exc.code)
    except typer.TyperException as exc:  # Click's usage errors (Typer's copy)
        return _report_usage(exc, args)
    except typer.Abort:
        _report("aborted.", [], args)
        return EXIT_UNEXPECTED
    except Flux2Error as exc:
        _report(exc.message, exc.hints, args)
        return exc.exit_code
    except (KeyboardInterrupt, InterruptSignal):
        _report("interrupted.", [], args)
        return EXIT_INTERRUPTED
    except TerminatedSignal:
        _report("terminated.", [], args)
        return EXIT_TERMINATED
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if verbose:
            import traceback

            from flux2_cli.output import neutralise
            from flux2_cli.redact import scrub_all

            text = "".join(traceback.format_exception(exc))
            sys.stderr.write(neutralise(scrub_all(text, _keys_in_use(args))))
        _report(
            f"unexpected error: {type(exc).__name__}: {exc}",
            ["This is a bug in flux2; re-run with --verbose for the traceback."],
            args,
        )
        return EXIT_UNEXPECTED
    return code if isinstance(code, int) else 0


def _report_usage(exc: typer.TyperException, args: list[str]) -> int:
    """A usage error as ``error: …`` plus hints, like flux2's own errors (not Rich's box).

    A command group run bare (``flux2``, ``flux2 config``) has already printed its help on
    stdout: that is a request for help, exit 0, as ``gh`` and ``hf`` answer it.
    """
    if type(exc).__name__ == "NoArgsIsHelpError":
        return 0
    message = exc.format_message()
    if message.startswith("Got "):
        message = message[len("Got ") :]
    message = message[:1].lower() + message[1:]
    hints: list[str] = []
    ctx = getattr(exc, "ctx", None)
    extra = _EXTRA_ARGS.match(message)
    if extra and ctx is not None and "prompt" in ctx.params:
        words = " ".join([str(ctx.params.get("prompt") or ""), extra.group(1)]).strip()
        hints.append(f"A prompt is one argument; quote it: {ctx.command_path} {shlex.quote(words)}")
    if ctx is not None:
        hints.append(ctx.get_usage().replace("Usage:", "usage:", 1))
        hints.append(f"help:  {ctx.command_path} --help")
    _report(message, hints, args)
    return exc.exit_code


def _after_broken_pipe(exc: SystemExit) -> bool:
    """Typer exits 1 when stdout's reader has gone (`flux2 --help | head -0`); flux2 says 0.

    Output already treats a closed pipe as success (`flux2 gen x | head -1`); this covers text
    that Typer itself writes (help, `config path`), so `set -o pipefail` scripts behave alike.
    """
    cause = exc.__context__
    return isinstance(cause, OSError) and cause.errno == errno.EPIPE


def _exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return EXIT_USAGE


def _report(message: str, hints: list[str], args: list[str]) -> None:
    from flux2_cli.output import Output

    output = Output()
    for key in _keys_in_use(args):
        output.secrets.add(key)
    output.error(message, hints)


def _keys_in_use(args: list[str]) -> list[str]:
    """Every API key this run may hold (``--api-key``, the environment, the config file).

    The last error is scrubbed of all of them: it may quote anything, and there is no
    process-wide registry of keys to consult.
    """
    import os

    from flux2_cli import env

    keys = [os.environ.get(name) for name in (env.FLUX2_API_KEY, *env.PROVIDER_KEY_VARS.values())]
    for index, arg in enumerate(args):
        if arg == "--api-key" and index + 1 < len(args):
            keys.append(args[index + 1])
        elif arg.startswith("--api-key="):
            keys.append(arg.split("=", 1)[1])
    try:
        from flux2_cli.config import load_config

        data = load_config()
        profiles = data.get("profiles")
        tables = [data, *(profiles.values() if isinstance(profiles, dict) else ())]
        keys.extend(table.get("api_key") for table in tables if isinstance(table, dict))
    except Exception:  # an unreadable config file is reported elsewhere; scrub what we have
        pass
    return [key for key in keys if isinstance(key, str) and key]


# Typer's completion protocol: the shell scripts in completions/ set this variable.
COMPLETE_VAR = "_FLUX2_COMPLETE"
# Rich's markup tags ([bold], [/], [link=...]); an escaped \[ is kept.
_MARKUP_TAG = re.compile(r"(?<!\\)\[[a-z#/@][^\[\]]*?\]")


def _lighten_completion() -> None:
    """Keep pydantic and Rich out of a Tab press: Typer 0.29 pulls in both without needing them.

    Typer builds each parameter's pydantic TypeAdapter before noticing that the value is None
    (which it passes through untouched), so every completion request imported pydantic (~50 ms)
    for the defaults of --help and the None-default options; and its zsh/fish/PowerShell classes
    strip markup from help texts by rendering them with Rich (another ~40 ms). These touch
    private Typer names, so each step is skipped if the name is gone; tests/test_startup.py
    notices if that happens.
    """
    from typer import _completion_classes, core

    parameter_class: Any = getattr(core, "_TyperParameter", None)
    build: Any = getattr(parameter_class, "get_runtime_param", None)
    if build is not None:

        class _NoneFirst:
            """Answers None as Typer's RuntimeParam.coerce does; builds the real one otherwise."""

            def __init__(self, parameter: Any) -> None:
                self._parameter = parameter

            def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
                if value is None:
                    return () if (param.multiple or param.nargs == -1) else None
                return build(self._parameter).coerce(value, param=param, ctx=ctx)

        def get_runtime_param(self: Any) -> _NoneFirst:
            # A method, so that each parameter gets its own wrapper (a class assigned here
            # would be called without the parameter, and every value would parse as None).
            return _NoneFirst(self)

        parameter_class.get_runtime_param = get_runtime_param
    if hasattr(_completion_classes, "_sanitize_help_text"):
        _completion_classes._sanitize_help_text = _plain_help


def _plain_help(text: str) -> str:
    """Help text for a completion menu: markup tags dropped, on one line (as Rich would render)."""
    return " ".join(_MARKUP_TAG.sub("", text).split())


def main() -> NoReturn:
    """Console-script entry point."""
    if os.environ.get(COMPLETE_VAR):
        _lighten_completion()
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, _on_sigint)
    sys.exit(run())
