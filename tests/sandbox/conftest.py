"""Fixtures for the sandbox tests: a movable clock, settings on tmp_path, an embedded client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flux2_cli.providers.sandbox import SANDBOX_BASE_URL
from flux2_cli.sandbox.embedded import SandboxTransport
from flux2_cli.sandbox.faults import FaultSettings, parse_faults
from flux2_cli.sandbox.settings import SandboxSettings

START = 1_800_000_000.0
KEY = "test-key"
BEARER = {"Authorization": f"Bearer {KEY}"}
XKEY = {"x-key": KEY}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Sleeps:
    """Records the pauses the sandbox asks for instead of sleeping."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def async_sleep(self, seconds: float) -> None:
        self.calls.append(seconds)

    def sleep(self, seconds: float) -> None:
        self.calls.append(seconds)


class Sandbox:
    """An embedded sandbox for one test: settings, a client, and the knobs to move time."""

    def __init__(self, state_dir: Path, faults: FaultSettings | None = None, **kw: Any) -> None:
        self.clock = Clock()
        self.sleeps = Sleeps()
        self.settings = SandboxSettings(
            latency=2.0,
            state_dir=state_dir,
            clock=self.clock,
            sleep=self.sleeps.async_sleep,
            webhook_sleep=self.sleeps.sleep,
            faults=faults or FaultSettings(),
            **kw,
        )
        self.transport = SandboxTransport(self.settings)
        self.client = httpx.Client(transport=self.transport, base_url=SANDBOX_BASE_URL)
        self.sent: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.webhook_status: list[int] = []

    def record_webhooks(self, *statuses: int) -> None:
        """Replace webhook delivery by a recorder answering ``statuses`` in turn (then 200)."""
        import json

        self.webhook_status = list(statuses)

        def sender(url: str, body: bytes, headers: dict[str, str]) -> int:
            self.sent.append((url, json.loads(body), headers))
            return self.webhook_status.pop(0) if self.webhook_status else 200

        self.transport.app.state.sandbox.webhook_sender = sender

    def finish(self) -> None:
        """Move past the latency."""
        self.clock.advance(self.settings.latency + 0.01)


@pytest.fixture
def make_sandbox(tmp_path: Path) -> Iterator[Any]:
    """A factory: ``make_sandbox(faults="429=#1", credits=10)``."""
    made: list[Sandbox] = []

    def factory(faults: str = "", **kw: Any) -> Sandbox:
        sandbox = Sandbox(tmp_path / "state", parse_faults(faults, seed=7), **kw)
        made.append(sandbox)
        return sandbox

    yield factory
    for sandbox in made:
        sandbox.client.close()


@pytest.fixture
def sbx(make_sandbox: Any) -> Sandbox:
    """A fault-free embedded sandbox with a 2 s latency and a hand-moved clock."""
    sandbox: Sandbox = make_sandbox()
    return sandbox
