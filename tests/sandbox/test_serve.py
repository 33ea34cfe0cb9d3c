"""``sandbox serve`` for real: a subprocess on 127.0.0.1 port 0, driven with plain urllib."""

from __future__ import annotations

import http.client
import json
import os
import queue
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRY = "from flux2_cli.commands.sandbox import app; app()"
START_TIMEOUT = 30.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """A ``sandbox serve`` subprocess with no latency; yields its base URL; always stopped."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            ENTRY,
            "serve",
            "--port",
            "0",
            "--latency",
            "0",
            "--state-dir",
            str(tmp_path / "state"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        stdout = proc.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            url = lines.get(timeout=START_TIMEOUT).strip()
        except queue.Empty:
            pytest.fail("sandbox serve printed no URL")
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


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
