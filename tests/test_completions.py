"""Shell completion: committed scripts match the app, and real completion requests answer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flux2_cli.cli import COMPLETE_VAR
from flux2_cli.request import RATIOS

ROOT = Path(__file__).resolve().parent.parent
BIN_DIR = Path(sys.executable).parent
FLUX2 = BIN_DIR / "flux2"
SEVEN_RATIOS = ["1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3"]


def flux2_command() -> list[str]:
    """The installed console script when there is one, else the same entry point via -c."""
    if FLUX2.exists():
        return [str(FLUX2)]
    return [sys.executable, "-c", "from flux2_cli._entry import main; main()"]


def complete(**env: str) -> list[str]:
    """Run one completion request through the real command; return the lines it printed."""
    result = subprocess.run(
        flux2_command(),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_committed_scripts_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen-completions"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_check_fails_on_a_stale_script(tmp_path: Path) -> None:
    # A copy of the repo's generator and package, with one script edited: --check must fail.
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "gen-completions", tmp_path / "scripts")
    shutil.copytree(ROOT / "completions", tmp_path / "completions")
    shutil.copytree(ROOT / "flux2_cli", tmp_path / "flux2_cli")
    stale = tmp_path / "completions" / "flux2.bash"
    stale.write_text(stale.read_text() + "# edited\n")
    result = subprocess.run(
        [sys.executable, str(tmp_path / "scripts" / "gen-completions"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "flux2.bash" in result.stderr


def test_the_seven_ratios_are_the_requests() -> None:
    assert list(RATIOS) == SEVEN_RATIOS


def test_bash_completes_ge_to_gen() -> None:
    assert complete(
        **{COMPLETE_VAR: "complete_bash", "COMP_WORDS": "flux2 ge", "COMP_CWORD": "1"}
    ) == ["gen"]


def test_bash_offers_the_seven_ratios_after_ratio() -> None:
    lines = complete(
        **{COMPLETE_VAR: "complete_bash", "COMP_WORDS": "flux2 gen --ratio ", "COMP_CWORD": "3"}
    )
    assert lines == SEVEN_RATIOS


def test_bash_filters_ratios_by_prefix() -> None:
    lines = complete(
        **{COMPLETE_VAR: "complete_bash", "COMP_WORDS": "flux2 gen -r 1", "COMP_CWORD": "3"}
    )
    assert lines == ["1:1", "16:9"]


def test_zsh_completes_ge_to_gen_with_its_help() -> None:
    text = "\n".join(complete(**{COMPLETE_VAR: "complete_zsh", "_TYPER_COMPLETE_ARGS": "flux2 ge"}))
    assert text.startswith("_arguments")
    assert '"gen":"' in text


def test_zsh_offers_the_seven_ratios() -> None:
    text = "\n".join(
        complete(**{COMPLETE_VAR: "complete_zsh", "_TYPER_COMPLETE_ARGS": "flux2 gen --ratio "})
    )
    for ratio in SEVEN_RATIOS:
        assert '"' + ratio.replace(":", "\\\\:") + '"' in text


def test_fish_completes_ge_to_gen() -> None:
    lines = complete(
        **{
            COMPLETE_VAR: "complete_fish",
            "_TYPER_COMPLETE_FISH_ACTION": "get-args",
            "_TYPER_COMPLETE_ARGS": "flux2 ge",
        }
    )
    assert [line.split("\t")[0] for line in lines] == ["gen"]


def test_fish_help_texts_stay_on_one_line() -> None:
    # Each line is one candidate for fish: a wrapped help text would invent bogus ones.
    lines = complete(
        **{
            COMPLETE_VAR: "complete_fish",
            "_TYPER_COMPLETE_FISH_ACTION": "get-args",
            "_TYPER_COMPLETE_ARGS": "flux2 gen --",
        }
    )
    assert lines
    assert all(line.startswith("--") for line in lines), lines


def test_powershell_offers_the_seven_ratios() -> None:
    lines = complete(
        **{
            COMPLETE_VAR: "complete_powershell",
            "_TYPER_COMPLETE_ARGS": "flux2 gen --ratio",
            "_TYPER_COMPLETE_WORD_TO_COMPLETE": "",
        }
    )
    assert [line.split(":::")[0] for line in lines] == SEVEN_RATIOS


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_bash_script_drives_completion_in_bash(tmp_path: Path) -> None:
    # The committed script, sourced by a real bash, with flux2 first on PATH.
    script = ROOT / "completions" / "flux2.bash"
    program = (
        f"source {script}\n"
        'COMP_WORDS=(flux2 gen --ratio "")\n'
        "COMP_CWORD=3\n"
        "_flux2_completion flux2\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    launcher = bin_dir / "flux2"
    launcher.write_text(
        "#!/bin/sh\n" + " ".join(f"'{part}'" for part in flux2_command()) + ' "$@"\n'
    )
    launcher.chmod(0o755)
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == SEVEN_RATIOS


def test_powershell_script_binds_tab_for_flux2_only() -> None:
    # Before: `Set-PSReadLineKeyHandler -Chord Tab -Function MenuComplete`, for every command.
    script = (ROOT / "completions" / "flux2.ps1").read_text()
    assert "-Function MenuComplete" not in script
    assert "'^\\s*flux2(\\.exe)?(\\s|$)'" in script
    assert "$global:Flux2PreviousTab" in script


def seed_ledger(*task_ids: str) -> None:
    from flux2_cli.ledger import Ledger
    from flux2_cli.task import Task

    with Ledger() as ledger:
        for task_id in task_ids:
            ledger.record_submit(Task(task_id=task_id, provider="apiinone"))


@pytest.mark.parametrize("command", ["status", "download"])
def test_task_ids_complete_from_the_ledger_newest_first(command: str) -> None:
    seed_ledger("sbx111aaa_flux2", "sbx222bbb_flux2", "task_01XYZ")
    lines = complete(
        **{COMPLETE_VAR: "complete_bash", "COMP_WORDS": f"flux2 {command} sbx", "COMP_CWORD": "2"}
    )
    assert lines == ["sbx222bbb_flux2", "sbx111aaa_flux2"]
    everything = complete(
        **{COMPLETE_VAR: "complete_bash", "COMP_WORDS": f"flux2 {command} ", "COMP_CWORD": "2"}
    )
    assert everything == ["task_01XYZ", "sbx222bbb_flux2", "sbx111aaa_flux2", "last"]


def test_task_ids_complete_to_nothing_and_create_no_ledger_without_one(
    isolated_environment: Path,
) -> None:
    lines = complete(
        **{COMPLETE_VAR: "complete_bash", "COMP_WORDS": "flux2 status ", "COMP_CWORD": "2"}
    )
    assert [line for line in lines if line] == []
    assert not (isolated_environment / "data" / "ledger.sqlite3").exists()


@pytest.mark.parametrize("command", ["set", "get", "unset"])
def test_config_keys_complete(command: str) -> None:
    lines = complete(
        **{
            COMPLETE_VAR: "complete_bash",
            "COMP_WORDS": f"flux2 config {command} po",
            "COMP_CWORD": "3",
        }
    )
    assert lines == ["poll_interval"]


def test_profile_names_complete_for_profile(isolated_environment: Path) -> None:
    config = isolated_environment / "config" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('[profiles.work]\nratio = "16:9"\n[profiles.home]\nres = "2K"\n')
    config.chmod(0o600)
    for words, cword in (("flux2 gen --profile ", "3"), ("flux2 config set --profile ", "4")):
        lines = complete(
            **{COMPLETE_VAR: "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword}
        )
        assert lines == ["home", "work"], words


def test_the_lightened_completion_still_parses_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Completers of ids and profiles read the other parameters: they must not be None."""
    import typer
    from typer import _completion_classes, core

    from flux2_cli import cli

    monkeypatch.setattr(
        core._TyperParameter, "get_runtime_param", core._TyperParameter.get_runtime_param
    )
    monkeypatch.setattr(
        _completion_classes, "_sanitize_help_text", _completion_classes._sanitize_help_text
    )
    cli._lighten_completion()
    command = typer.main.get_command(cli.app)
    gen = command.commands["gen"]  # type: ignore[attr-defined]
    params = {param.name: param for param in gen.params}
    ctx = gen.make_context("gen", ["a red fox"], resilient_parsing=True)
    assert params["provider"].process_value(ctx, "bfl") == "bfl"
    assert params["seed"].process_value(ctx, "7") == 7
    assert params["ref"].process_value(ctx, ("a.png", "b.png")) == ["a.png", "b.png"]
    assert params["provider"].process_value(ctx, None) is None
    assert params["ref"].process_value(ctx, None) == ()


def test_config_set_completes_the_values_of_a_key_with_a_fixed_set() -> None:
    lines = complete(
        **{COMPLETE_VAR: "complete_bash", "COMP_WORDS": "flux2 config set mode ", "COMP_CWORD": "4"}
    )
    assert lines == ["pro", "flex"]


def test_task_ids_come_with_their_status_and_prompt_where_the_shell_shows_help() -> None:
    from flux2_cli.ledger import Ledger
    from flux2_cli.task import Task

    with Ledger() as ledger:
        ledger.record_submit(
            Task(task_id="sbx111aaa_flux2", provider="apiinone", request={"prompt": "a red fox"})
        )
    lines = complete(
        **{
            COMPLETE_VAR: "complete_fish",
            "_TYPER_COMPLETE_FISH_ACTION": "get-args",
            "_TYPER_COMPLETE_ARGS": "flux2 download ",
        }
    )
    assert lines == [
        "sbx111aaa_flux2\tqueued · a red fox",
        "last\tthe newest task (sbx111aaa_flux2)",
    ]
