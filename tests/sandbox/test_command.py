"""``flux2 sandbox``: the Typer command's options, errors, and its light imports."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from flux2_cli.commands import sandbox as command
from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]


def _root() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(command.app, name="sandbox")
    return root


def test_help_lists_serve_and_its_options() -> None:
    result = CliRunner().invoke(_root(), ["sandbox", "serve", "--help"])
    assert result.exit_code == 0
    for option in (
        "--host",
        "--port",
        "--latency",
        "--ttl",
        "--bfl-ttl",
        "--faults",
        "--fault-seed",
        "--state-dir",
        "--credits",
    ):
        assert option in result.output


def test_bad_faults_are_a_usage_error() -> None:
    result = CliRunner().invoke(_root(), ["sandbox", "serve", "--faults", "bogus=1"])
    assert result.exit_code == 2
    assert "bogus" in result.output


def test_options_become_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def fake_serve(host: str, port: int, settings: Any, access_log: bool = True) -> None:
        seen.update(host=host, port=port, settings=settings)

    monkeypatch.setattr("flux2_cli.sandbox.server.serve", fake_serve)
    result = CliRunner().invoke(
        _root(),
        [
            "sandbox",
            "serve",
            "--port",
            "0",
            "--latency",
            "0.5",
            "--ttl",
            "60",
            "--bfl-ttl",
            "5",
            "--faults",
            "429=#2",
            "--fault-seed",
            "4",
            "--state-dir",
            str(tmp_path),
            "--credits",
            "12",
        ],
    )
    assert result.exit_code == 0, result.output
    settings = seen["settings"]
    assert (seen["host"], seen["port"]) == ("127.0.0.1", 0)
    assert (settings.latency, settings.ttl_seconds, settings.bfl_ttl_seconds) == (0.5, 60, 5)
    assert settings.faults.counts == {"429": 2} and settings.faults.seed == 4
    assert settings.state_dir == tmp_path and settings.credits == 12


def test_a_busy_port_is_exit_2_with_a_port_0_hint() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_cli(["sandbox", "serve", "--port", str(port), "--latency", "0"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: --host 127.0.0.1 --port {port}: cannot listen")
    assert "Address already in use" in result.stderr
    assert "--port 0" in result.stderr


def test_help_lists_every_prompt_marker() -> None:
    from flux2_cli.sandbox.faults import MARKERS

    result = run_cli(["sandbox", "--help"])
    assert result.exit_code == 0
    for marker in MARKERS:
        assert f"[sandbox:{marker}]" in result.stdout, marker


def test_importing_the_command_stays_light() -> None:
    code = (
        "import sys, flux2_cli.commands.sandbox, flux2_cli.sandbox\n"
        "heavy = ('httpx', 'starlette', 'PIL', 'uvicorn', 'anyio')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == ""
