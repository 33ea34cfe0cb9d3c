"""Tests of `flux2 config set/get/unset/list/path` through Typer's CliRunner."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from flux2_cli.commands.config import app as config_app
from flux2_cli.config import load_config
from flux2_cli.errors import Flux2Error

SENTINEL = "sk-SENTINEL-9f8e7d6c5b4a-wxyz"


def _app() -> typer.Typer:
    """flux2's own app; a stand-in with only `config` while cli.py cannot be imported yet."""
    try:
        from flux2_cli.cli import app
    except ImportError:  # the lead's cli.py is still gaining its commands
        stand_in = typer.Typer()
        stand_in.add_typer(config_app, name="config")
        stand_in.callback()(lambda: None)
        return stand_in
    return app


root = _app()


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def run(*args: str, input: str | None = None) -> Run:
    """Invoke `flux2 config ...`, mapping flux2 errors to exit codes as cli.main() does."""
    result = CliRunner().invoke(root, ["config", *args], input=input)
    code = result.exit_code
    stderr = result.stderr
    if isinstance(result.exception, Flux2Error):
        code = result.exception.exit_code
        stderr += str(result.exception) + "\n" + "\n".join(result.exception.hints)
    elif result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(code, result.stdout, stderr)


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "flux2" / "config.toml"
    monkeypatch.setenv("FLUX2_CONFIG", str(path))
    return path


def test_path_prints_flux2_config(cfg: Path) -> None:
    result = run("path")
    assert result.code == 0
    assert result.stdout == f"{cfg}\n"
    assert not cfg.exists()


def test_set_then_get_prints_the_bare_value(cfg: Path) -> None:
    result = run("set", "ratio", "16:9")
    assert result.code == 0
    assert result.stdout == ""
    assert f"Set ratio = 16:9 in {cfg}" in result.stderr
    result = run("get", "ratio")
    assert (result.code, result.stdout) == (0, "16:9\n")


def test_set_in_a_profile(cfg: Path) -> None:
    assert run("set", "res", "2k", "--profile", "work").code == 0
    assert load_config(cfg) == {"profiles": {"work": {"res": "2K"}}}
    assert run("get", "res", "--profile", "work").stdout == "2K\n"
    assert run("get", "res").stdout == ""


def test_get_of_an_unset_key_prints_nothing_and_exits_0(cfg: Path) -> None:
    result = run("get", "ratio")
    assert result.code == 0
    assert result.stdout == ""
    assert "ratio is not set" in result.stderr and "default: 1:1" in result.stderr


def test_unknown_key_suggests_the_nearest_and_exits_2(cfg: Path) -> None:
    result = run("set", "ration", "16:9")
    assert result.code == 2
    assert "did you mean 'ratio'?" in result.stderr
    assert not cfg.exists()
    assert run("get", "ration").code == 2


def test_invalid_value_exits_2_and_writes_nothing(cfg: Path) -> None:
    result = run("set", "concurrency", "100")
    assert result.code == 2
    assert "concurrency" in result.stderr
    assert not cfg.exists()


def test_set_api_key_from_stdin_strips_and_never_prints_it(cfg: Path) -> None:
    result = run("set", "api_key", "-", input=f"  {SENTINEL}\n")
    assert result.code == 0
    assert load_config(cfg) == {"api_key": SENTINEL}
    assert f"Set api_key in {cfg}" in result.stderr
    assert "shell history" not in result.stderr
    assert SENTINEL not in result.stdout + result.stderr
    assert SENTINEL[-4:] not in result.stdout + result.stderr


def test_set_api_key_on_the_command_line_warns_about_history(cfg: Path) -> None:
    result = run("set", "api_key", SENTINEL)
    assert result.code == 0
    assert "shell history" in result.stderr
    assert SENTINEL not in result.stdout + result.stderr


def test_control_characters_in_a_pasted_key_are_refused_without_echo(cfg: Path) -> None:
    result = run("set", "api_key", "-", input=SENTINEL[:12] + "\x1b[2~" + SENTINEL[12:])
    assert result.code == 2
    assert "control characters" in result.stderr
    assert SENTINEL[:12] not in result.stdout + result.stderr
    assert not cfg.exists()


def test_empty_stdin_is_refused(cfg: Path) -> None:
    result = run("set", "api_key", "-", input="\n")
    assert result.code == 2
    assert "empty" in result.stderr


def test_get_api_key_prints_the_real_key(cfg: Path) -> None:
    run("set", "api_key", "-", input=SENTINEL)
    assert run("get", "api_key").stdout == f"{SENTINEL}\n"


def test_list_redacts_and_never_shows_the_key(cfg: Path) -> None:
    run("set", "api_key", "-", input=SENTINEL)
    run("set", "ratio", "4:3")
    run("set", "timeout", "30", "--profile", "work")
    result = run("list")
    assert result.code == 0
    assert result.stdout.splitlines() == [
        "api_key = …wxyz",
        "ratio = 4:3",
        "profiles.work.timeout = 30.0",
    ]
    assert SENTINEL not in result.stdout + result.stderr


def test_list_json_is_one_redacted_object(cfg: Path) -> None:
    run("set", "api_key", "-", input=SENTINEL)
    run("set", "api_key", "-", "--profile", "ci", input=SENTINEL + "-ci")
    result = run("list", "--json")
    assert result.code == 0
    document = json.loads(result.stdout)
    assert document == {"api_key": "…wxyz", "profiles": {"ci": {"api_key": "…z-ci"}}}
    assert SENTINEL not in result.stdout + result.stderr


def test_list_show_secrets(cfg: Path) -> None:
    run("set", "api_key", "-", input=SENTINEL)
    assert json.loads(run("list", "--json", "--show-secrets").stdout) == {"api_key": SENTINEL}
    assert f"api_key = {SENTINEL}" in run("list", "--show-secrets").stdout


def test_list_of_an_empty_config(cfg: Path) -> None:
    result = run("list")
    assert (result.code, result.stdout) == (0, "")
    assert "No settings" in result.stderr
    assert json.loads(run("list", "--json").stdout) == {}


def test_unset(cfg: Path) -> None:
    run("set", "ratio", "4:3")
    result = run("unset", "ratio")
    assert result.code == 0 and "Unset ratio" in result.stderr
    assert load_config(cfg) == {}
    result = run("unset", "ratio")
    assert result.code == 0 and "was not set" in result.stderr


def test_setting_a_default_profile_that_does_not_exist_notes_it(cfg: Path) -> None:
    result = run("set", "profile", "work")
    assert result.code == 0
    assert "has no settings yet" in result.stderr


def test_corrupt_file_exits_2_and_is_kept_byte_for_byte(cfg: Path) -> None:
    corrupt = f'api_key = "{SENTINEL}"\nratio = 16:9\n'.encode()
    cfg.parent.mkdir(parents=True)
    cfg.write_bytes(corrupt)
    for args in (("set", "ratio", "1:1"), ("unset", "ratio"), ("get", "ratio"), ("list",)):
        result = run(*args)
        assert result.code == 2, args
        assert str(cfg) in result.stderr and "line 2" in result.stderr
        assert SENTINEL not in result.stdout + result.stderr
    assert cfg.read_bytes() == corrupt


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_list_warns_about_a_readable_file_and_set_fixes_it(cfg: Path) -> None:
    cfg.parent.mkdir(parents=True)
    cfg.write_text('ratio = "4:3"\n')
    os.chmod(cfg, 0o644)
    result = run("list")
    assert result.code == 0
    assert "readable by other users" in result.stderr
    assert run("set", "res", "2K").code == 0
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    assert stat.S_IMODE(cfg.parent.stat().st_mode) == 0o700
    assert "readable" not in run("list").stderr


def test_no_args_shows_help(cfg: Path) -> None:
    result = CliRunner().invoke(root, ["config"])
    assert "set" in result.output and "list" in result.output


def test_help_key_names_match_the_config_keys() -> None:
    from flux2_cli import config
    from flux2_cli.commands.config import KEY_NAMES

    assert KEY_NAMES == config.ALL_KEYS
