"""End-to-end fixtures: the installed ``flux2`` run as a subprocess against ``sandbox serve``.

``sandbox_server(latency=..., faults=...)`` starts ``flux2 sandbox serve --port 0`` on 127.0.0.1
with its own state folder, waits (bounded) for the URL on its first stdout line, and stops it by
its pid in a finalizer whatever happens. ``run_flux2(*args)`` runs the installed command with a
timeout and a copy of the test's isolated environment (see tests/conftest.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# The console script installed beside this interpreter (.venv/bin/flux2): what users run.
FLUX2_BIN = Path(sys.executable).parent / ("flux2.exe" if os.name == "nt" else "flux2")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
RUN_TIMEOUT = 90.0
TEST_KEY = "e2e-test-key"


@dataclass
class SandboxServer:
    """A running ``flux2 sandbox serve``: its base URL, state folder and process."""

    url: str
    state_dir: Path
    process: subprocess.Popen[bytes]
    log_dir: Path
    args: list[str] = field(default_factory=list)

    def tasks_created(self) -> int:
        """How many tasks the server has stored (``tasks/<id>.json`` in its state folder)."""
        folder = self.state_dir / "tasks"
        if not folder.is_dir():
            return 0
        return sum(1 for path in folder.glob("*.json") if not path.name.startswith("."))

    def task_ids(self) -> set[str]:
        """The ids of the stored tasks."""
        folder = self.state_dir / "tasks"
        if not folder.is_dir():
            return set()
        return {path.stem for path in folder.glob("*.json") if not path.name.startswith(".")}

    def log(self) -> str:
        """What the server wrote on stderr so far (its banner, and any traceback)."""
        path = self.log_dir / "stderr.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Terminate by pid, wait a few seconds, then kill; safe to call twice."""
        _stop(self.process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT)


def _require_installed() -> None:
    if not FLUX2_BIN.exists():
        pytest.skip(f"the flux2 command is not installed at {FLUX2_BIN} (pip install -e .)")


@pytest.fixture
def sandbox_server(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., SandboxServer]:
    """A factory: ``sandbox_server(latency=0.3, faults="", state_dir=None, extra_args=())``.

    Each call starts one server (several may share a ``state_dir``, as separate flux2 processes
    and servers share one on disk). Every server is stopped when the test ends.
    """
    _require_installed()
    counter = iter(range(1, 1000))

    def start(
        latency: float = 0.3,
        faults: str = "",
        state_dir: Path | None = None,
        extra_args: Sequence[str] = (),
    ) -> SandboxServer:
        number = next(counter)
        log_dir = tmp_path / f"server-{number}"
        log_dir.mkdir(parents=True)
        state = state_dir if state_dir is not None else tmp_path / f"server-{number}-state"
        args = [
            str(FLUX2_BIN),
            "sandbox",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--state-dir",
            str(state),
            "--latency",
            str(latency),
        ]
        if faults:
            args += ["--faults", faults]
        args += list(extra_args)
        # Files, not pipes: nothing can block on a full pipe, and the logs survive a failure.
        with (
            open(log_dir / "stdout.log", "wb") as out,
            open(log_dir / "stderr.log", "wb") as err,
        ):
            process = subprocess.Popen(
                args, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=os.environ.copy()
            )
        request.addfinalizer(lambda: _stop(process))
        server = SandboxServer(url="", state_dir=state, process=process, log_dir=log_dir, args=args)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            text = (log_dir / "stdout.log").read_text(encoding="utf-8", errors="replace")
            if "\n" in text:
                server.url = text.split("\n", 1)[0].strip()
                break
            if process.poll() is not None:
                pytest.fail(f"sandbox serve exited {process.returncode}:\n{server.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"sandbox serve printed no URL in {START_TIMEOUT:g} s:\n{server.log()}")
            time.sleep(0.05)
        assert server.url.startswith("http://127.0.0.1:"), server.url
        return server

    return start


@pytest.fixture
def run_flux2(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the installed flux2 with a timeout, in ``tmp_path``, with the isolated environment.

    ``run_flux2(*args, timeout=90, env=None, cwd=None, input=None)``; ``env`` adds to (or, with
    a None value, removes from) a copy of ``os.environ``.
    """
    _require_installed()

    def run(
        *args: str,
        timeout: float = RUN_TIMEOUT,
        env: dict[str, str | None] | None = None,
        cwd: Path | None = None,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        environment = os.environ.copy()
        for name, value in (env or {}).items():
            if value is None:
                environment.pop(name, None)
            else:
                environment[name] = value
        return subprocess.run(
            [str(FLUX2_BIN), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd or tmp_path,
            env=environment,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    return run


def account(provider: str, server: SandboxServer, key: str = TEST_KEY) -> list[str]:
    """The flags that point flux2 at ``server`` in ``provider``'s dialect."""
    return ["--provider", provider, "--base-url", server.url, "--api-key", key]


@pytest.fixture
def e2e_account() -> Callable[..., list[str]]:
    """``e2e_account(provider, server, key=TEST_KEY)``: --provider/--base-url/--api-key flags."""
    return account


HOSTILE_SERVER = Path(__file__).with_name("hostile_server.py")


@pytest.fixture
def hostile() -> Iterator[Callable[[str], str]]:
    """``hostile(mode)``: start ``hostile_server.py MODE``; its base URL. Stopped by pid."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(mode: str) -> str:
        process = subprocess.Popen(
            [sys.executable, str(HOSTILE_SERVER), mode],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        processes.append(process)
        assert process.stdout is not None
        line = process.stdout.readline().decode().strip()
        assert line.startswith("http://127.0.0.1:"), line
        return line

    yield start
    for process in processes:
        _stop(process)
