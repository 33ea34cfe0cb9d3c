"""Help pages and usage errors: clean metavars, examples, one error style, bare commands."""

from __future__ import annotations

import re

import pytest

from tests.helpers import run_cli

# Typer's type placeholders and the braces it puts around required arguments.
PLACEHOLDER = re.compile(r"<(?:bool|str|int|float|path|list\[[^\]]*\])>|\{[A-Z_]+\}")


def command_paths() -> list[list[str]]:
    """Every command flux2 registers, as argv prefixes (``["config", "set"]``)."""
    from flux2_cli.cli import app

    paths: list[list[str]] = []

    def walk(typer_app: object, prefix: list[str]) -> None:
        for info in typer_app.registered_commands:  # type: ignore[attr-defined]
            paths.append([*prefix, info.name or info.callback.__name__])
        for group in typer_app.registered_groups:  # type: ignore[attr-defined]
            walk(group.typer_instance, [*prefix, group.name])

    walk(app, [])
    return paths


@pytest.mark.parametrize("path", command_paths(), ids=" ".join)
def test_every_command_help_has_clean_metavars_and_examples(path: list[str]) -> None:
    result = run_cli([*path, "--help"])
    assert result.exit_code == 0, result.output
    assert not PLACEHOLDER.search(result.stdout), PLACEHOLDER.search(result.stdout)
    assert "Examples:" in result.stdout
    assert f"flux2 {' '.join(path)}" in result.stdout.split("Examples:", 1)[1]


@pytest.mark.parametrize("group", [[], ["config"], ["sandbox"]], ids=repr)
def test_group_help_has_no_placeholders(group: list[str]) -> None:
    result = run_cli([*group, "--help"])
    assert result.exit_code == 0
    assert not PLACEHOLDER.search(result.stdout)


def test_usage_line_names_the_prompt_plainly() -> None:
    # PROMPT is optional since `gen --from` repeats an earlier request without one.
    assert "Usage: flux2 gen [OPTIONS] [PROMPT]" in run_cli(["gen", "--help"]).stdout


def test_config_set_help_keeps_the_bracketed_table_name() -> None:
    assert (
        "Act on [profiles.NAME] instead of the top level"
        in run_cli(["config", "set", "--help"]).stdout
    )


@pytest.mark.parametrize("group", [[], ["config"], ["sandbox"]], ids=repr)
def test_a_bare_group_prints_its_help_and_exits_0(group: list[str]) -> None:
    result = run_cli(group)
    assert result.exit_code == 0
    assert "Usage: flux2" in result.stdout
    assert result.stderr == ""


def test_an_unquoted_prompt_gets_a_hint_to_quote_it() -> None:
    result = run_cli(["gen", "a", "red", "fox", "--sandbox"])
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "error: unexpected extra argument(s) (red fox)"
    assert "quote it: flux2 gen 'a red fox'" in lines[1]


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        (["gen", "--bogus", "x"], "error: no such option: --bogus"),
        (["gen"], "error: Give a PROMPT (or - to read it from stdin), or --from PATH|ID"),
        (["sandbox", "serve", "--port", "x"], "error: invalid value for '--port'"),
    ],
)
def test_usage_errors_take_flux2_one_line_style(args: list[str], first_line: str) -> None:
    result = run_cli(args)
    assert result.exit_code == 2
    assert result.stderr.startswith(first_line)
    assert "╭" not in result.stderr and "Error" not in result.stderr
    assert f"  usage: flux2 {args[0]}" in result.stderr
    assert "  help:  flux2" in result.stderr


def test_quiet_and_verbose_together_are_refused() -> None:
    result = run_cli(["gen", "a red fox", "--sandbox", "-q", "-v"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --quiet and --verbose contradict each other")
