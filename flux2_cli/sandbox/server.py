"""``flux2 sandbox serve``: the sandbox application on a real HTTP port, served by uvicorn."""

from __future__ import annotations

import contextlib
import socket
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from flux2_cli.sandbox.settings import BROKE_KEY, INVALID_KEY, SandboxSettings

_ANY_HOSTS = ("0.0.0.0", "::", "")
FAULT_HEADER = b"x-sandbox-fault"  # app.FAULT_HEADER, lower-cased as ASGI sends header names

Message = MutableMapping[str, Any]
Asgi = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]


def access_line(
    client: str, method: str, path: str, query: bool, status: int | None, ms: float, fault: str
) -> str:
    """One access-log line: time, client, request, status, duration, and any injected fault.

    The query string is not shown (image URLs carry signatures); ``?…`` says there was one.
    A response that never started (a dropped connection) shows ``---`` for the status.
    """
    stamp = time.strftime("%H:%M:%S")
    target = path + ("?…" if query else "")
    shown = str(status) if status else "---"
    line = f"{stamp} {client} {method} {target} {shown} {ms:.0f} ms"
    return line + (f"  fault: {fault}" if fault else "")


class AccessLog:
    """ASGI middleware: one line per request on ``write`` once the answer is sent (or dropped)."""

    def __init__(self, app: Asgi, write: Callable[[str], None]) -> None:
        self.app = app
        self.write = write

    async def __call__(
        self,
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        """Pass the request through, noting the status and the fault header on the way out."""
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        seen: dict[str, Any] = {"status": None, "fault": ""}

        async def noting_send(message: Message) -> None:
            if message.get("type") == "http.response.start":
                seen["status"] = message.get("status")
                for name, value in message.get("headers", []):
                    if name.lower() == FAULT_HEADER:
                        seen["fault"] = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, noting_send)
        finally:
            client = scope.get("client") or ("-", 0)
            self.write(
                access_line(
                    str(client[0]),
                    str(scope.get("method", "-")),
                    str(scope.get("path", "/")),
                    bool(scope.get("query_string")),
                    seen["status"],
                    (time.monotonic() - started) * 1000,
                    seen["fault"],
                )
            )


def _log(line: str) -> None:
    # stderr gone: serving matters more than the log
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr, flush=True)


def base_url(host: str, port: int) -> str:
    """The URL clients should use for a server bound to ``host``:``port``."""
    shown = "127.0.0.1" if host in _ANY_HOSTS else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (``0`` picks a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def banner(url: str, settings: SandboxSettings) -> str:
    """The start-up lines (stderr): where, which keys, how it behaves. No key is secret here."""
    return "\n".join(
        [
            f"flux2 sandbox listening on {url}",
            f"  state:    {settings.resolved_state_dir()}",
            f"  latency:  {settings.latency:g} s; image URLs live {settings.ttl_seconds:g} s "
            f"(bfl {settings.bfl_ttl_seconds:g} s)",
            f"  faults:   {settings.faults.describe()}",
            f"  keys:     any non-empty key works ({settings.credits} credits to start);",
            f"            {INVALID_KEY} is refused (401); {BROKE_KEY} has no credits",
            f"  try:      flux2 gen 'a lighthouse at dusk' --provider apiinone --base-url {url}"
            " --api-key test",
            "  log:      one line per request below (--no-access-log to silence)",
            "  stop:     Ctrl-C",
        ]
    )


def serve(host: str, port: int, settings: SandboxSettings, *, access_log: bool = True) -> None:
    """Serve until interrupted; the first stdout line is the base URL (with the real port).

    ``OSError`` from binding (a port in use) is raised before anything is printed.
    """
    import uvicorn

    from flux2_cli.sandbox.app import create_app
    from flux2_cli.sandbox.state import StateStore
    from flux2_cli.sandbox.webhooks import Scanner

    settings.checked_state_dir()
    sock = bind(host, port)
    url = base_url(host, sock.getsockname()[1])
    app: Any = create_app(settings)
    if access_log:
        app = AccessLog(app, _log)
    scanner = Scanner(StateStore(settings.resolved_state_dir()), settings)
    print(url, flush=True)
    print(banner(url, settings), file=sys.stderr, flush=True)
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", server_header=False
    )
    server = uvicorn.Server(config)
    scanner.start()
    try:
        server.run(sockets=[sock])
    finally:
        scanner.stop()
        sock.close()
