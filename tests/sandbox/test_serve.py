"""``sandbox serve`` for real: a subprocess on 127.0.0.1 port 0, driven with plain urllib."""

from __future__ import annotations

import http.client
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRY = "from flux2_cli.commands.sandbox import app; app()"
START_TIMEOUT = 30.0


@dataclass
class Served:
    """A running ``sandbox serve``: its URL, its process and the file holding its stderr."""

    url: str
    process: subprocess.Popen[str]
    stderr: Path

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")


def start(tmp_path: Path, *extra: str, command: list[str] | None = None) -> Served:
    """``sandbox serve --port 0 --latency 0`` (stderr to a file: a pipe could fill and block)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    err_path = tmp_path / "serve-stderr.log"
    with open(err_path, "w") as err:
        proc = subprocess.Popen(
            [
                *(command or [sys.executable, "-c", ENTRY]),
                "serve",
                "--port",
                "0",
                "--latency",
                "0",
                "--state-dir",
                str(tmp_path / "state"),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        url = lines.get(timeout=START_TIMEOUT).strip()
    except queue.Empty:
        stop(proc)
        pytest.fail("sandbox serve printed no URL")
    assert url.startswith("http://127.0.0.1:"), url
    return Served(url, proc, err_path)


def stop(proc: subprocess.Popen[str]) -> None:
    """Terminate by pid (then kill), and close the pipe."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if proc.stdout:
        proc.stdout.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """A ``sandbox serve`` subprocess with no latency; always stopped."""
    running = start(tmp_path)
    try:
        yield running
    finally:
        stop(running.process)


@pytest.fixture
def server(served: Served) -> str:
    """The base URL of :func:`served`."""
    return served.url


def call(
    url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, dict(answer.headers), answer.read()


BEARER = {"Authorization": "Bearer plain-client"}


def test_four_dialects_over_real_http(server: str) -> None:
    created = call(f"{server}/api/v1/images/generations", {"prompt": "a lighthouse"}, BEARER)
    done = call(f"{server}/api/v1/tasks/{created['data']['task_id']}", headers=BEARER)
    status, headers, png = fetch(done["data"]["images"][0]["url"])
    assert (status, headers["content-type"]) == (200, "image/png")
    assert png.startswith(b"\x89PNG") and len(png) == int(headers["content-length"])

    created = call(
        f"{server}/v1/images/generations", {"prompt": "a lighthouse", "size": "16:9"}, BEARER
    )
    done = call(f"{server}/v1/tasks/{created['data'][0]['task_id']}", headers=BEARER)
    assert fetch(done["data"]["result"]["images"][0]["url"][0])[0] == 200

    created = call(
        f"{server}/model/v1/generation",
        {"model": "flux_2_pro", "prompt": "a lighthouse", "width": 64, "height": 64},
        BEARER,
    )
    done = call(f"{server}/model/v1/generation/task/{created['id']}", headers=BEARER)
    assert fetch(done["output"][0]["content"][0]["url"])[2].startswith(b"\xff\xd8")

    created = call(f"{server}/v1/flux-2-pro", {"prompt": "a lighthouse"}, {"x-key": "k"})
    assert created["polling_url"].startswith(server)
    done = call(created["polling_url"], headers={"x-key": "k"})
    assert done["status"] == "Ready"
    assert fetch(done["result"]["sample"])[0] == 200


def test_errors_over_real_http(server: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        call(
            f"{server}/v1/flux-2-pro", {"prompt": "a lighthouse"}, {"x-key": "sandbox-invalid-key"}
        )
    assert refused.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as invalid:
        call(f"{server}/v1/flux-2-pro", {"prompt": "a lighthouse", "width": 1000}, {"x-key": "k"})
    assert invalid.value.code == 422
    assert json.loads(invalid.value.read())["detail"][0]["loc"] == ["body", "width"]


def test_dropped_and_truncated_connections_over_real_http(server: str) -> None:
    created = call(
        f"{server}/api/v1/images/generations",
        {"prompt": "[sandbox:drop] [sandbox:truncate] a lighthouse"},
        BEARER,
    )
    poll = f"{server}/api/v1/tasks/{created['data']['task_id']}"
    with pytest.raises(
        (http.client.IncompleteRead, http.client.RemoteDisconnected, ConnectionError)
    ):
        call(poll, headers=BEARER)
    image_url = call(poll, headers=BEARER)["data"]["images"][0]["url"]
    with pytest.raises(http.client.IncompleteRead):
        fetch(image_url)


def test_one_access_log_line_per_request_with_the_injected_fault(tmp_path: Path) -> None:
    running = start(tmp_path, "--faults", "500=#1")
    try:
        with pytest.raises(urllib.error.HTTPError) as failed:
            call(f"{running.url}/api/v1/images/generations", {"prompt": "a fox"}, BEARER)
        assert failed.value.code == 500
        created = call(f"{running.url}/api/v1/images/generations", {"prompt": "a fox"}, BEARER)
        call(f"{running.url}/api/v1/tasks/{created['data']['task_id']}?x=1", headers=BEARER)
    finally:
        stop(running.process)
    lines = [line for line in running.log().splitlines() if " 127.0.0.1 " in line]
    assert len(lines) == 3, running.log()
    assert lines[0].endswith("fault: 500") and " POST /api/v1/images/generations 500 " in lines[0]
    assert " POST /api/v1/images/generations 200 " in lines[1] and "fault" not in lines[1]
    # The query string is not logged (image URLs carry signatures).
    assert "x=1" not in lines[2] and "?…" in lines[2]


def test_no_access_log_silences_it(tmp_path: Path) -> None:
    running = start(tmp_path, "--no-access-log")
    try:
        call(f"{running.url}/", headers=BEARER)
    finally:
        stop(running.process)
    assert " GET / " not in running.log()


def test_ctrl_c_stops_with_stopped_and_exit_0(tmp_path: Path) -> None:
    flux2 = Path(sys.executable).parent / "flux2"
    if not flux2.exists():
        pytest.skip("the flux2 command is not installed beside this interpreter")
    running = start(tmp_path, command=[str(flux2), "sandbox"])
    try:
        call(f"{running.url}/", headers=BEARER)
        running.process.send_signal(signal.SIGINT)
        code = running.process.wait(timeout=15)
    finally:
        stop(running.process)
    log = running.log()
    assert code == 0, log
    assert log.rstrip().endswith("stopped."), log
    assert "error" not in log and "interrupted" not in log
