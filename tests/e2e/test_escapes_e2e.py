"""Reliability row 61 end to end: a server whose task error carries terminal escape sequences.

A small raw HTTP server (a subprocess on 127.0.0.1, started and stopped by pid) speaks API in
One's dialect: the create call answers a task id, every poll answers the task as failed with a
message holding an OSC 52 clipboard write, a line erase, a carriage return and a one-byte CSI.
The installed flux2 must print that message inert on stderr, keep it escaped in ``--json``,
and still exit 5.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

RAW_CONTROLS = ("\x1b", "\x07", "\r", "\x9b")
HOSTILE_SERVER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MESSAGE = "model crashed\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[2K\rall good\x9b2J"

class Handler(BaseHTTPRequestHandler):
    def _send(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send({"code": 200, "message": "success",
                    "data": {"task_id": "esc-task-1", "status": "IN_PROGRESS"}})

    def do_GET(self):
        self._send({"code": 200, "message": "success", "data": {
            "task_id": "esc-task-1", "status": "FAILED", "images": [],
            "error": {"code": "boom\x1b[31m", "message": MESSAGE}}})

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
"""


@pytest.fixture
def hostile_server(tmp_path: Path) -> Iterator[str]:
    """The raw server's base URL; the process is stopped by its pid whatever happens."""
    script = tmp_path / "hostile_server.py"
    script.write_text(HOSTILE_SERVER, encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        if process.stdout:
            process.stdout.close()


def test_escape_sequences_in_a_task_error_are_printed_inert(
    hostile_server: str, run_flux2: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    account = ["--provider", "apiinone", "--base-url", hostile_server, "--api-key", "e2e-k"]
    result = run_flux2("gen", "a red fox", *account, "--timeout", "30")
    assert result.returncode == 5, result.stderr
    assert not any(char in result.stderr for char in RAW_CONTROLS), repr(result.stderr)
    assert "\\x1b]52;c;ZWNobyBwd25lZA==\\x07\\x1b[2K\\x0dall good\\x9b2J" in result.stderr

    as_json = run_flux2("gen", "a red fox", *account, "--timeout", "30", "--json")
    assert as_json.returncode == 5
    assert not any(char in as_json.stdout + as_json.stderr for char in RAW_CONTROLS)
    error = json.loads(as_json.stdout)["error"]
    # Escaped as JSON escapes them: a reader gets the server's text back exactly.
    assert error["message"].endswith("\x1b[2K\rall good\x9b2J")
    assert "\\u001b]52;c;" in as_json.stdout and "\\u009b" in as_json.stdout
