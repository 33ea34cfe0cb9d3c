"""The embedded sandbox: a synchronous httpx transport that runs the application in-process.

``--provider sandbox`` and ``--sandbox`` route requests for ``SANDBOX_BASE_URL`` here: no
socket, no key, no network. State lives on disk (``FLUX2_SANDBOX_DIR`` or the cache dir), so
a task created by one ``flux2`` process is polled and downloaded by another. Image URLs carry
the request's own base URL, so they route back through the same transport.

A response the application leaves incomplete (a dropped or truncated fault) raises
``httpx.RemoteProtocolError`` when its body is read, as it does against ``sandbox serve``.
Bodies are collected whole before they are returned, so a slow download is slow as a whole.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx

from flux2_cli.sandbox.settings import SandboxSettings

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass
class _Collected:
    status: int = 0
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    started: bool = False
    complete: bool = False


class _Body(httpx.SyncByteStream):
    """The collected body; raises at its end when the application never completed it."""

    def __init__(self, collected: _Collected, request: httpx.Request) -> None:
        self._collected = collected
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        yield from self._collected.chunks
        if not self._collected.complete:
            received = sum(len(chunk) for chunk in self._collected.chunks)
            raise httpx.RemoteProtocolError(
                "peer closed connection without sending complete message body "
                f"(received {received} bytes)",
                request=self._request,
            )


class SandboxTransport(httpx.BaseTransport):
    """Sends every request to the sandbox application, whatever its host."""

    def __init__(self, settings: SandboxSettings | None = None) -> None:
        from flux2_cli.sandbox.app import create_app

        self.settings = settings if settings is not None else SandboxSettings.from_env()
        self.settings.checked_state_dir()
        self.app = create_app(self.settings)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Run the application on ``request`` and hand back its answer."""
        body = request.read()
        collected = _run(lambda: self._call(request, body))
        if not collected.started:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        return httpx.Response(
            collected.status,
            headers=collected.headers,
            stream=_Body(collected, request),
            request=request,
        )

    async def _call(self, request: httpx.Request, body: bytes) -> _Collected:
        url = request.url
        raw_path, _, _ = url.raw_path.partition(b"?")
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "scheme": url.scheme,
            "path": unquote(raw_path.decode("ascii")),
            "raw_path": raw_path,
            "query_string": url.query,
            "root_path": "",
            "headers": [(key.lower(), value) for key, value in request.headers.raw],
            "client": ("127.0.0.1", 0),
            "server": (url.host, url.port or _DEFAULT_PORTS.get(url.scheme, 80)),
        }
        collected = _Collected()
        request_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal request_sent
            if not request_sent:
                request_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                collected.started = True
                collected.status = int(message["status"])
                collected.headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                collected.chunks.append(bytes(message.get("body", b"")))
                if not message.get("more_body", False):
                    collected.complete = True

        try:
            await self.app(scope, receive, send)
        except Exception:
            # As a server would: an application error is a 500 (or a cut connection if the
            # answer had already begun).
            if not collected.started:
                collected.started = collected.complete = True
                collected.status = 500
                collected.headers = [(b"content-type", b"text/plain; charset=utf-8")]
                collected.chunks = [b"Internal Server Error"]
        return collected


def transport(settings: SandboxSettings | None = None) -> httpx.BaseTransport:
    """A sync httpx transport running the sandbox in-process (settings from the environment
    when not given: ``FLUX2_SANDBOX_LATENCY``, ``FLUX2_SANDBOX_FAULTS``, ``FLUX2_SANDBOX_DIR``)."""
    return SandboxTransport(settings)


def _run(factory: Callable[[], Coroutine[Any, Any, _Collected]]) -> _Collected:
    """Run ``factory()`` (a coroutine) to completion, even when called inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()
