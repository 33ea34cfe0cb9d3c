"""Shared test helpers: a fake clock, images, and running the CLI."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result


@dataclass
class FakeTime:
    """Stands in for the ``time`` module inside flux2_cli.context: sleeping advances the clock."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now


def install_fake_time(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    """Make every Context built from now on sleep on a fake clock."""
    fake = FakeTime()
    monkeypatch.setattr("flux2_cli.context.time", fake)
    return fake


def png_bytes(
    width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 40, 40)
) -> bytes:
    """A real PNG made with Pillow."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes(width: int = 64, height: int = 48) -> bytes:
    """A real JPEG made with Pillow."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


def run_cli(
    args: list[str], *, input: str | None = None, env: dict[str, Any] | None = None
) -> Result:
    """Invoke ``flux2`` in-process through ``cli.run`` so exit codes are the real ones."""
    from flux2_cli import cli

    runner = CliRunner()
    holder: dict[str, int] = {}

    def entry() -> None:
        holder["code"] = cli.run(args)

    import typer

    shim = typer.Typer()
    shim.command()(entry)
    result = runner.invoke(shim, [], input=input, env=env, catch_exceptions=False)
    result.exit_code = holder.get("code", result.exit_code)  # type: ignore[misc]
    return result


def run_in_terminal(args: list[str], columns: int, env_dir: Path) -> str:
    """``flux2 ARGS`` with stdout on a pseudo-terminal COLUMNS wide; what it printed."""
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": str(columns), "NO_COLOR": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", "from flux2_cli._entry import main; main()", *args],
        stdout=follower,
        stderr=subprocess.PIPE,
        env=env,
        cwd=env_dir,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(leader)
    assert process.returncode == 0
    return b"".join(chunks).decode().replace("\r\n", "\n")
