"""A misbehaving API server on 127.0.0.1 for end-to-end tests (run as a script, one mode each).

``python hostile_server.py MODE`` prints its base URL on the first line of stdout, then serves
API in One's dialect (``POST /api/v1/images/generations``, ``GET /api/v1/tasks/ID``) and an
image at ``/img.png``, misbehaving as MODE says:

- ``drip-status``: the status answer comes one byte every ``DRIP_S`` seconds;
- ``endless-status``: the status answer is chunked and never ends;
- ``drip-image``: the task is done at once; its image comes one byte every ``DRIP_S`` s;
- ``big-image``: the task is done at once; its image weighs about 1.5 MB;
- ``gzip-bomb``: the status answer is gzip that expands to hundreds of megabytes;
- ``deep-json``: the status answer is JSON nested 100,000 levels deep;
- ``key-echo``: the task fails with a message quoting the ``Authorization`` header sent,
  and a status answer echoing the key in a header and in an image URL's query;
- ``file-url`` / ``data-url`` / ``relative-url``: the task is done with that kind of URL only;
- ``far-expiry`` / ``negative-expiry``: the task is done, its ``expires_at``
  ``9999-12-31T23:59:59-05:00`` (past the calendar in UTC) or a negative unix time.

Every request is logged to stderr (method and path), so a test can count them.
Standard library only: it must not depend on flux2.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import socketserver
import struct
import sys
import threading
import time
import zlib

DRIP_S = 2.0
TASK_ID = "hostile-task-0001"
BOMB_BYTES = 256 * 1024 * 1024


def _png(width: int, height: int, pixels: bytes) -> bytes:
    """A true-colour PNG of ``pixels`` (rows of RGB, each led by filter byte 0)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(pixels, 1))
        + chunk(b"IEND", b"")
    )


def _noise_png(side: int) -> bytes:
    """A PNG of random pixels: it does not compress, so it weighs about side² × 3 bytes."""
    row = side * 3
    return _png(side, side, b"".join(b"\x00" + os.urandom(row) for _ in range(side)))


PNG_1X1 = _png(1, 1, b"\x00\xff\x00\x00")
BIG_SIDE = 700  # about 1.5 MB


def _head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _json(conn: socket.socket, data: object, extra: dict[str, str] | None = None) -> None:
    body = json.dumps(data).encode()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}
    conn.sendall(_head("200 OK", {**headers, **(extra or {})}) + body)


def _read_request(conn: socket.socket) -> tuple[str, str, dict[str, str]]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("client left")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0") or 0)
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    return method, path, headers


class Handler(socketserver.BaseRequestHandler):
    """One connection: one request, answered as the mode says, then closed."""

    server: Server

    def handle(self) -> None:
        conn: socket.socket = self.request
        try:
            method, path, headers = _read_request(conn)
        except (ConnectionError, ValueError, OSError):
            return
        sys.stderr.write(f"{method} {path}\n")
        sys.stderr.flush()
        base = self.server.base_url
        mode = self.server.mode
        try:
            if method == "POST":
                _json(conn, {"task_id": TASK_ID, "status": "pending"})
            elif path.startswith("/big.png"):
                body = self.server.big
                headers = {"Content-Type": "image/png", "Content-Length": str(len(body))}
                conn.sendall(_head("200 OK", headers) + body)
            elif path.startswith("/img.png"):
                self.image(conn)
            else:
                self.status(conn, mode, base, headers)
        except OSError:
            pass  # the client gave up (its deadline): that is the point

    def image(self, conn: socket.socket) -> None:
        headers = {"Content-Type": "image/png", "Content-Length": str(len(PNG_1X1))}
        conn.sendall(_head("200 OK", headers))
        for byte in PNG_1X1:
            conn.sendall(bytes([byte]))
            time.sleep(DRIP_S)

    def status(
        self, conn: socket.socket, mode: str, base: str, request_headers: dict[str, str]
    ) -> None:
        done = {"task_id": TASK_ID, "status": "completed", "images": [{"url": f"{base}/img.png"}]}
        if mode == "drip-status":
            body = json.dumps(done).encode()
            conn.sendall(_head("200 OK", {"Content-Length": str(len(body))}))
            for byte in body:
                conn.sendall(bytes([byte]))
                time.sleep(DRIP_S)
        elif mode == "endless-status":
            conn.sendall(_head("200 OK", {"Transfer-Encoding": "chunked"}))
            while True:
                conn.sendall(b"1\r\n \r\n")
                time.sleep(0.2)
        elif mode == "drip-image":
            _json(conn, done)
        elif mode == "big-image":
            _json(conn, {**done, "images": [{"url": f"{base}/big.png"}]})
        elif mode == "gzip-bomb":
            body = self.server.bomb
            headers = {
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
                "Content-Length": str(len(body)),
            }
            conn.sendall(_head("200 OK", headers) + body)
        elif mode == "deep-json":
            body = b"[" * 100_000 + b"]" * 100_000
            conn.sendall(_head("200 OK", {"Content-Length": str(len(body))}) + body)
        elif mode == "key-echo":
            auth = request_headers.get("authorization", "")
            key = auth.split(" ", 1)[-1]
            _json(
                conn,
                {
                    "task_id": TASK_ID,
                    "status": "failed",
                    "error": {"code": "bad_auth", "message": f"rejected header: {auth} ({key})"},
                    "images": [{"url": f"{base}/img.png?key={key}"}],
                },
                extra={"X-Echo": key},
            )
        elif mode in ("far-expiry", "negative-expiry"):
            expiry = "9999-12-31T23:59:59-05:00" if mode == "far-expiry" else -1763174708
            _json(conn, {**done, "expires_at": expiry})
        elif mode in ("file-url", "data-url", "relative-url"):
            url = {
                "file-url": "file:///etc/passwd",
                "data-url": "data:image/png;base64,iVBORw0KGgo=",
                "relative-url": "/img.png",
            }[mode]
            _json(conn, {"task_id": TASK_ID, "status": "completed", "images": [{"url": url}]})
        else:
            _json(conn, done)


class Server(socketserver.ThreadingTCPServer):
    """Threads per connection, so a dripping answer never blocks the next request."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, mode: str) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.mode = mode
        self.base_url = f"http://127.0.0.1:{self.server_address[1]}"
        self.bomb = (
            gzip.compress(b"\0" * BOMB_BYTES, compresslevel=1) if mode == "gzip-bomb" else b""
        )
        self.big = _noise_png(BIG_SIDE) if mode == "big-image" else b""


def main() -> None:
    """Serve until killed."""
    server = Server(sys.argv[1])
    print(server.base_url, flush=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    thread.join()


if __name__ == "__main__":
    main()
