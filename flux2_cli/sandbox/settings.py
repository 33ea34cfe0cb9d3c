"""SandboxSettings: how the emulator behaves (latency, URL lifetimes, credits, faults, clock)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from flux2_cli.sandbox.faults import FaultSettings

DEFAULT_LATENCY = 2.0  # seconds from create to succeeded
DEFAULT_TTL = 24 * 3600.0  # image URL lifetime, seconds (apiinone, apimart, vtrix)
DEFAULT_BFL_TTL = 600.0  # BFL's signed URLs live about ten minutes
DEFAULT_CREDITS = 10_000  # starting balance of every key
QUEUED_FRACTION = 0.2  # share of the latency a task spends queued before running
SLOW_MARKER_FACTOR = 5.0  # [sandbox:slow] multiplies the latency by this
SLOW_DOWNLOAD_CHUNKS = 8  # a slow download is sent in this many pieces ...
SLOW_DOWNLOAD_DELAY = 0.5  # ... with this pause (seconds) before each

# Documented keys: any other non-empty key is accepted with DEFAULT_CREDITS.
INVALID_KEY = "sandbox-invalid-key"  # always refused: 401 in every dialect
BROKE_KEY = "sandbox-broke-key"  # starts with 0 credits: 402 (vtrix 403) on the first create


async def _asyncio_sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


@dataclass
class SandboxSettings:
    """Everything the sandbox application takes; defaults suit ``flux2 sandbox serve``.

    ``clock`` (unix seconds) decides every task's state, so tests move time instead of
    sleeping; ``sleep`` paces slow downloads and ``webhook_sleep`` the webhook back-off.
    """

    latency: float = DEFAULT_LATENCY
    ttl_seconds: float = DEFAULT_TTL
    bfl_ttl_seconds: float = DEFAULT_BFL_TTL
    credits: int = DEFAULT_CREDITS
    faults: FaultSettings = field(default_factory=FaultSettings)
    state_dir: Path | None = None
    state_dir_from: str | None = None  # where state_dir was set, for messages
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = _asyncio_sleep
    webhook_sleep: Callable[[float], None] = time.sleep
    webhook_timeout: float = 5.0
    slow_chunks: int = SLOW_DOWNLOAD_CHUNKS
    slow_delay: float = SLOW_DOWNLOAD_DELAY

    def checked_state_dir(self) -> Path:
        """The state folder, created if need be; UsageError (exit 2) naming its source if not.

        A folder that cannot be used is a setting to fix, not a server error: without this
        the application fails inside and the client reports a 500 with "check the provider's
        dashboard", which sends the user looking in the wrong place.
        """
        import os

        from flux2_cli.errors import UsageError

        path = self.resolved_state_dir()
        problem = None
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problem = exc.strerror or str(exc)
        else:
            if not os.access(path, os.W_OK | os.X_OK):
                problem = "not writable"
        if problem is not None:
            where = self.state_dir_source()
            target = "--state-dir" if where == "--state-dir" else "FLUX2_SANDBOX_DIR"
            raise UsageError(
                f"the sandbox's state folder {path} (from {where}) cannot be used: {problem}.",
                hints=[f"Point {target} at a folder you can write to."],
            )
        return path

    def state_dir_source(self) -> str:
        """Where the state folder comes from, for messages: a flag or a variable."""
        if self.state_dir_from:
            return self.state_dir_from
        return "--state-dir" if self.state_dir is not None else "the user cache folder"

    def resolved_state_dir(self) -> Path:
        """``state_dir`` if set, else ``flux2_cli.env.sandbox_dir()``."""
        if self.state_dir is not None:
            return Path(self.state_dir)
        from flux2_cli.env import sandbox_dir

        return sandbox_dir()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SandboxSettings:
        """Settings of the embedded mode: ``FLUX2_SANDBOX_LATENCY``, ``FLUX2_SANDBOX_FAULTS``
        and ``FLUX2_SANDBOX_DIR`` (else the cache dir); a bad value is a UsageError."""
        import os

        from flux2_cli import env as envmod
        from flux2_cli.errors import UsageError
        from flux2_cli.sandbox.faults import parse_faults

        environ: Mapping[str, str] = os.environ if env is None else env
        latency = DEFAULT_LATENCY
        raw_latency = environ.get(envmod.FLUX2_SANDBOX_LATENCY, "").strip()
        if raw_latency:
            try:
                latency = float(raw_latency)
            except ValueError:
                latency = -1.0
            if not 0 <= latency < 1e6:
                raise UsageError(
                    f"{envmod.FLUX2_SANDBOX_LATENCY}={raw_latency!r} is not a number of seconds."
                )
        raw_faults = environ.get(envmod.FLUX2_SANDBOX_FAULTS, "")
        try:
            faults = parse_faults(raw_faults)
        except ValueError as exc:
            raise UsageError(f"{envmod.FLUX2_SANDBOX_FAULTS}: {exc}") from None
        if environ.get(envmod.FLUX2_SANDBOX_DIR):
            source = envmod.FLUX2_SANDBOX_DIR
        elif environ.get(envmod.FLUX2_CACHE_DIR):
            source = envmod.FLUX2_CACHE_DIR
        else:
            source = f"the user cache folder; {envmod.FLUX2_SANDBOX_DIR} overrides it"
        return cls(
            latency=latency,
            faults=faults,
            state_dir=envmod.sandbox_dir(environ),
            state_dir_from=source,
        )
