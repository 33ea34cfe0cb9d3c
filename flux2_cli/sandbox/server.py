"""``flux2 sandbox serve``: the sandbox application on a real HTTP port, served by uvicorn."""

from __future__ import annotations

import socket
import sys

from flux2_cli.sandbox.settings import BROKE_KEY, INVALID_KEY, SandboxSettings

_ANY_HOSTS = ("0.0.0.0", "::", "")


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
            "  stop:     Ctrl-C",
        ]
    )


def serve(host: str, port: int, settings: SandboxSettings) -> None:
    """Serve until interrupted; the first stdout line is the base URL (with the real port)."""
    import uvicorn

    from flux2_cli.sandbox.app import create_app
    from flux2_cli.sandbox.state import StateStore
    from flux2_cli.sandbox.webhooks import Scanner

    sock = bind(host, port)
    url = base_url(host, sock.getsockname()[1])
    app = create_app(settings)
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
