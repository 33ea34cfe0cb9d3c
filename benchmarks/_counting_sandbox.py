"""The sandbox server of ``flux2 sandbox serve``, wrapped to count what clients ask of it.

Run by ``batch_scale.py`` as its own process: it serves the same Starlette application as
``flux2 sandbox serve`` (same settings, same uvicorn options) behind an ASGI middleware that
counts creates, status look-ups and image downloads. ``GET /__bench/counts`` answers the counts
since the last call (and resets them) with this process's CPU seconds, so the benchmark can
tell status requests per task and server CPU per task for each client in turn.

    python benchmarks/_counting_sandbox.py --latency 2 --state-dir DIR
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from collections import Counter
from pathlib import Path
from typing import Any

COUNTS_PATH = "/__bench/counts"
BENCH_CREDITS = 10**9


def _kind(method: str, path: str) -> str:
    """Which of create, status, image, other a request is."""
    if method == "POST":
        return "create"
    if path.startswith("/files/"):
        return "image"
    if "/tasks/" in path or path.startswith("/v1/get_result") or "/task/" in path:
        return "status"
    return "other"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Counting:
    """ASGI middleware: counts each request by kind; serves the counts on COUNTS_PATH."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.counts: Counter[str] = Counter()
        self.cpu_mark = _cpu()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == COUNTS_PATH:
            now = _cpu()
            body = json.dumps({**self.counts, "server_cpu": now - self.cpu_mark}).encode()
            self.counts.clear()
            self.cpu_mark = now
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        self.counts[_kind(scope["method"], scope["path"])] += 1
        await self.app(scope, receive, send)


def main() -> None:
    """Serve until terminated; the first stdout line is the base URL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--state-dir", type=Path, required=True)
    args = parser.parse_args()

    import uvicorn

    from flux2_cli.sandbox.app import create_app
    from flux2_cli.sandbox.server import base_url, bind
    from flux2_cli.sandbox.settings import SandboxSettings

    # Every run of the benchmark pays with one key: the default balance (10,000 credits, 2,000
    # images) ran out during the third size and left the lean client polling a 402 forever.
    settings = SandboxSettings(
        latency=args.latency, state_dir=args.state_dir, credits=BENCH_CREDITS
    )
    sock = bind("127.0.0.1", 0)
    print(base_url("127.0.0.1", sock.getsockname()[1]), flush=True)
    config = uvicorn.Config(
        Counting(create_app(settings)),
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
    )
    uvicorn.Server(config).run(sockets=[sock])
    sys.exit(0)


if __name__ == "__main__":
    main()
