"""Start-up: what a fresh interpreter imports for --version, --help and a Tab press."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flux2_cli import __version__
from flux2_cli.cli import COMPLETE_VAR

HEAVY = ("httpx", "sqlite3", "_sqlite3", "PIL", "starlette", "uvicorn", "anyio", "h11")
RICH = ("rich",)
# Typer 0.29 imports pydantic lazily, to coerce values; a Tab press coerces nothing.
PYDANTIC = ("pydantic", "pydantic_core")

# Runs the console-script entry point like the installed `flux2`, then records sys.modules
# (before importing anything itself; a None entry is an import blocked, not a module loaded)
# in the file named by argv[1].
WRAPPER = """
import sys
out, args = sys.argv[1], sys.argv[2:]
sys.argv = ["flux2", *args]
try:
    from flux2_cli._entry import main
    main()
except SystemExit:
    pass
finally:
    loaded = sorted(name for name, module in sys.modules.items() if module is not None)
    with open(out, "w") as handle:
        handle.write("\\n".join(loaded))
"""


def run_fresh(tmp_path: Path, args: list[str], env: dict[str, str] | None = None) -> set[str]:
    """Run ``flux2 ARGS`` in a fresh interpreter; return the modules it had loaded at exit."""
    out = tmp_path / "modules.txt"
    result = subprocess.run(
        [sys.executable, "-c", WRAPPER, str(out), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return set(out.read_text().split("\n"))


def loaded(modules: set[str], roots: tuple[str, ...]) -> list[str]:
    """The modules of ``roots`` (packages and their submodules) among ``modules``."""
    return sorted(m for m in modules if m.split(".")[0] in roots)


def test_version_is_answered_before_typer_loads(tmp_path: Path) -> None:
    modules = run_fresh(tmp_path, ["--version"])
    assert loaded(modules, ("typer", "click", *RICH, *PYDANTIC, *HEAVY)) == []
    assert "flux2_cli.cli" not in modules


def test_version_prints_the_version() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from flux2_cli._entry import main; main()", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, f"flux2 {__version__}\n")


def test_other_version_forms_go_through_the_app(tmp_path: Path) -> None:
    # Only the bare `--version` is short-circuited; with other arguments Typer decides.
    modules = run_fresh(tmp_path, ["--version", "--help"])
    assert "typer" in modules


@pytest.mark.parametrize("args", [["--help"], ["gen", "--help"], ["-h"]])
def test_help_imports_nothing_heavy(tmp_path: Path, args: list[str]) -> None:
    modules = run_fresh(tmp_path, args)
    assert loaded(modules, HEAVY) == []
    assert "typer" in modules


COMPLETION_REQUESTS = {
    "bash-command": {COMPLETE_VAR: "complete_bash", "COMP_WORDS": "flux2 ge", "COMP_CWORD": "1"},
    "bash-ratio": {
        COMPLETE_VAR: "complete_bash",
        "COMP_WORDS": "flux2 gen --ratio ",
        "COMP_CWORD": "3",
    },
    "bash-provider": {
        COMPLETE_VAR: "complete_bash",
        "COMP_WORDS": "flux2 status --provider ",
        "COMP_CWORD": "3",
    },
    "zsh": {COMPLETE_VAR: "complete_zsh", "_TYPER_COMPLETE_ARGS": "flux2 gen --r"},
    "fish": {
        COMPLETE_VAR: "complete_fish",
        "_TYPER_COMPLETE_FISH_ACTION": "get-args",
        "_TYPER_COMPLETE_ARGS": "flux2 ",
    },
    "powershell": {
        COMPLETE_VAR: "complete_powershell",
        "_TYPER_COMPLETE_ARGS": "flux2 gen --",
        "_TYPER_COMPLETE_WORD_TO_COMPLETE": "--",
    },
}


@pytest.mark.parametrize("name", sorted(COMPLETION_REQUESTS))
def test_completion_request_imports_no_rich_pydantic_or_heavy(tmp_path: Path, name: str) -> None:
    modules = run_fresh(tmp_path, [], COMPLETION_REQUESTS[name])
    assert loaded(modules, (*RICH, *PYDANTIC, *HEAVY)) == []
    assert "flux2_cli.cli" in modules


def test_importing_the_cli_module_imports_nothing_heavy(tmp_path: Path) -> None:
    out = tmp_path / "modules.json"
    program = (
        "import sys, flux2_cli.cli\n"
        "loaded = sorted(sys.modules)\n"
        "import json\n"
        f"open({str(out)!r}, 'w').write(json.dumps(loaded))\n"
    )
    subprocess.run([sys.executable, "-c", program], check=True, timeout=60)
    modules = set(json.loads(out.read_text()))
    assert loaded(modules, (*RICH, *PYDANTIC, *HEAVY)) == []


SQLITE = ("sqlite3", "_sqlite3")


@pytest.mark.parametrize(
    "words",
    ["flux2 config set ", "flux2 config get po", "flux2 gen --profile ", "flux2 history --status "],
)
def test_completing_keys_profiles_and_statuses_opens_no_ledger(tmp_path: Path, words: str) -> None:
    cword = str(len(words.split()) - (0 if words.endswith(" ") else 1))
    env = {COMPLETE_VAR: "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword}
    modules = run_fresh(tmp_path, [], env)
    assert loaded(modules, (*RICH, *PYDANTIC, *HEAVY)) == []


def test_completing_task_ids_loads_sqlite_but_no_rich_or_pydantic(tmp_path: Path) -> None:
    from flux2_cli.ledger import Ledger
    from flux2_cli.task import Task

    data = tmp_path / "data"
    with Ledger(data / "ledger.sqlite3") as ledger:
        ledger.record_submit(Task(task_id="sbx111aaa_flux2", provider="apiinone"))
    env = {
        COMPLETE_VAR: "complete_bash",
        "COMP_WORDS": "flux2 status ",
        "COMP_CWORD": "2",
        "FLUX2_DATA_DIR": str(data),
    }
    modules = run_fresh(tmp_path, [], env)
    assert loaded(modules, SQLITE)  # the one completer that needs it
    assert loaded(modules, (*RICH, *PYDANTIC, "httpx", "PIL", "starlette")) == []


def test_issue15_a_command_that_talks_http_loads_no_httpx_command_line(tmp_path: Path) -> None:
    # httpx's own CLI (click, pygments, Rich) cost ~70 ms of CPU in every real command.
    modules = run_fresh(
        tmp_path,
        ["gen", "a fox", "--provider", "apiinone", "--api-key", "k", "--dry-run"],
        env={"FLUX2_CONFIG": str(tmp_path / "c.toml"), "FLUX2_DATA_DIR": str(tmp_path / "d")},
    )
    assert "httpx" in modules
    assert loaded(modules, ("click", "pygments")) == []
