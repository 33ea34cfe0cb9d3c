"""`flux2 config`: read and write the TOML config file (set, get, unset, list, path)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from flux2_cli import env
from flux2_cli.errors import UsageError

app = typer.Typer(name="config", help="Read and write the TOML config.", no_args_is_help=True)

# The keys of flux2_cli.config.ALL_KEYS, spelled out so that building the help does not import
# the config module (and TOML) on every start; a test in test_config_command.py keeps them equal.
KEY_NAMES: tuple[str, ...] = (
    "provider",
    "api_key",
    "base_url",
    "model",
    "mode",
    "ratio",
    "res",
    "format",
    "safety",
    "output_dir",
    "name",
    "timeout",
    "poll_interval",
    "concurrency",
    "open",
    "preview",
    "profile",
)


def _complete_key(incomplete: str) -> list[str]:
    from flux2_cli.completers import config_keys

    return config_keys(incomplete)


def _complete_value(ctx: typer.Context, incomplete: str) -> list[str]:
    from flux2_cli.completers import config_values

    return config_values(ctx.params.get("key"), incomplete)


def _complete_profile(incomplete: str) -> list[str]:
    from flux2_cli.completers import profile_names

    return profile_names(incomplete)


KeyArg = Annotated[
    str,
    typer.Argument(
        help=f"One of: {', '.join(KEY_NAMES)}.", show_default=False, autocompletion=_complete_key
    ),
]
ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        "-p",
        metavar="NAME",
        # \[ keeps Rich from taking [profiles.NAME] for markup and dropping it.
        help="Act on \\[profiles.NAME] instead of the top level.",
        autocompletion=_complete_profile,
    ),
]


def _say(text: str, *, err: bool = False) -> None:
    """The one place this module prints: stdout for results, stderr (``err``) for people."""
    typer.echo(text, err=err)


def _warn(warnings: list[str]) -> None:
    for warning in warnings:
        _say(f"warning: {warning}", err=True)  # as Output.warn words it


def _where(profile: str | None) -> str:
    path = env.config_file()
    return f"{path} (profile {profile})" if profile else str(path)


def _render(value: Any) -> str:
    """A value as a script wants it: strings bare, numbers as written, tables as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def _read_stdin(key: str) -> str:
    """The value for ``VALUE`` = ``-``: a hidden prompt on a terminal, else all of stdin."""
    if sys.stdin is None:
        raise UsageError("VALUE is '-' but there is no stdin to read it from.")
    if sys.stdin.isatty():
        # README's "Set a key" quotes this prompt: keep the two alike.
        entered: str = typer.prompt(
            f"{key} (typing is hidden; Enter to finish)", hide_input=True, err=True
        )
        return entered
    return sys.stdin.read()


@app.command("set")
def set_command(
    key: KeyArg,
    value: Annotated[
        str,
        typer.Argument(
            help="The value; '-' reads it from stdin (keeps keys out of history).",
            autocompletion=_complete_value,
        ),
    ],
    profile: ProfileOpt = None,
) -> None:
    """Set KEY to VALUE in the config file (`flux2 config set api_key -` reads the key)."""
    from flux2_cli import config

    name = config.normalise_key_name(key)
    from_stdin = value == "-"
    raw = _read_stdin(name) if from_stdin else value
    typed = config.validate_value(name, raw.strip())
    path = config.set_value(name, typed, profile=profile)
    where = f"{path} (profile {profile})" if profile else str(path)
    if name in config.SECRET_KEYS:
        _say(f"Set {name} in {where}", err=True)
        if not from_stdin:
            _say(
                f"Note: the {name} is now in your shell history; "
                f"`flux2 config set {name} -` reads it from stdin instead.",
                err=True,
            )
    else:
        _say(f"Set {name} = {_render(typed)} in {where}", err=True)
    if name == config.PROFILE_KEY:
        profiles = config.list_values(path=path).get(config.PROFILES_TABLE, {})
        if typed not in profiles:
            _say(
                f"Note: profile {typed!r} has no settings yet; add some with "
                f"`flux2 config set KEY VALUE --profile {typed}`.",
                err=True,
            )


@app.command("get")
def get_command(key: KeyArg, profile: ProfileOpt = None) -> None:
    """Print KEY's value from the config file (the real key for api_key: scripts use it).

    An unset key prints nothing on stdout, a notice on stderr, and exits 0.
    """
    from flux2_cli import config

    name = config.normalise_key_name(key)
    warnings: list[str] = []
    value = config.get_value(name, profile=profile, warnings_out=warnings)
    _warn(warnings)
    if value is None:
        default = config.DEFAULTS.get(name)
        suffix = f" (default: {_render(default)})" if default is not None else ""
        _say(f"{name} is not set in {_where(profile)}{suffix}", err=True)
        return
    _say(_render(value))


@app.command("unset")
def unset_command(key: KeyArg, profile: ProfileOpt = None) -> None:
    """Remove KEY from the config file (or from one profile)."""
    from flux2_cli import config

    name = config.normalise_key_name(key)
    if config.unset_value(name, profile=profile):
        _say(f"Unset {name} in {_where(profile)}", err=True)
    else:
        _say(f"{name} was not set in {_where(profile)}", err=True)


def _lines(table: dict[str, Any], prefix: str = "") -> list[str]:
    lines: list[str] = []
    for key, value in table.items():
        if isinstance(value, dict):
            lines.extend(_lines(value, f"{prefix}{key}."))
        else:
            lines.append(f"{prefix}{key} = {_render(value)}")
    return lines


@app.command("list")
def list_command(
    json_out: Annotated[
        bool, typer.Option("--json", metavar="", help="One JSON object on stdout.")
    ] = False,
    show_secrets: Annotated[
        bool, typer.Option("--show-secrets", metavar="", help="Show API keys in full.")
    ] = False,
) -> None:
    """Show the config file's settings, `profiles.NAME.key = value` for profiles."""
    from flux2_cli import config

    warnings: list[str] = []
    path = env.config_file()
    values = config.list_values(show_secrets=show_secrets, path=path, warnings_out=warnings)
    _warn(warnings)
    if json_out:
        _say(json.dumps(values, ensure_ascii=False, indent=2, default=str))
        return
    if not values:
        _say(f"No settings in {path}", err=True)
        return
    for line in _lines(values):
        _say(line)


@app.command("path")
def path_command() -> None:
    """Print the config file's path (it may not exist yet)."""
    _say(str(env.config_file()))
