"""Hostile servers (reliability rows 56, 57, 60, 63, 64): no crash, no hang, no leak, no lost task.

Each test runs the real command (``run_cli``) against API in One faked with pytest-httpx, on a
fake clock; ``tests/e2e/test_hostile_e2e.py`` runs the same classes against a raw server.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock, IteratorStream

from flux2_cli.client import MAX_API_BODY_BYTES
from tests.faults.conftest import IMAGE_URL, add_create, ledger_task, poll_url
from tests.helpers import FakeTime, png_bytes, run_cli

PNG = png_bytes(32, 32)


def gen(out: Path, *extra: str) -> list[str]:
    return ["gen", "a red fox", "-o", f"{out}/", *extra]


def assert_resumable(stderr: str, task_id: str) -> None:
    assert f"flux2 status {task_id} --wait" in stderr, stderr
    assert f"flux2 download {task_id}" in stderr
    assert "Traceback" not in stderr and "This is a bug" not in stderr


def polls(httpx_mock: HTTPXMock, task_id: str) -> int:
    return len(httpx_mock.get_requests(method="GET", url=poll_url(task_id)))


# --------------------------------------------------------------------------- row 56


@pytest.mark.parametrize("kind", ["deep", "bomb"])
def test_row56_a_status_answer_too_deep_or_too_large_is_unexpected_and_resumable(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path, kind: str
) -> None:
    add_create(httpx_mock, "t56")
    if kind == "deep":
        httpx_mock.add_response(
            method="GET", url=poll_url("t56"), content=b"[" * 100_000 + b"]" * 100_000
        )
    else:
        bomb = gzip.compress(b"{" * (2 * MAX_API_BODY_BYTES), compresslevel=1)
        httpx_mock.add_response(
            method="GET", url=poll_url("t56"), content=bomb, headers={"Content-Encoding": "gzip"}
        )
    result = run_cli(gen(tmp_path / "out"))
    assert result.exit_code == 1, result.output
    assert "unexpected response" in result.stderr
    assert ("[[[[" if kind == "deep" else "larger than") in result.stderr
    assert_resumable(result.stderr, "t56")
    assert ledger_task("t56")["status"] in ("queued", "running")


# --------------------------------------------------------------------------- row 57


def test_row57_a_status_answer_dripping_a_byte_every_5s_ends_at_timeout(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path
) -> None:
    add_create(httpx_mock, "t57")
    body = json.dumps({"id": "t57", "status": "completed", "images": [{"url": IMAGE_URL}]})

    def drip() -> Iterator[bytes]:
        for char in body.encode():
            clock.now += 5.0
            yield bytes([char])

    httpx_mock.add_response(method="GET", url=poll_url("t57"), stream=IteratorStream(drip()))
    started = clock.now
    result = run_cli(gen(tmp_path / "out", "--timeout", "10"))
    assert result.exit_code == 6, result.output
    assert "timed out after 10 s" in result.stderr
    assert_resumable(result.stderr, "t57")
    assert clock.now - started <= 10 + 5 + 1  # one dripped byte past the deadline at most


# --------------------------------------------------------------------------- row 60


def test_row60_a_key_quoted_in_a_failed_task_reaches_no_output_and_no_file(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path, api_key: str
) -> None:
    # The sentinel sweep (tests/conftest.py) also reads the ledger and every other file.
    add_create(httpx_mock, "t60")
    httpx_mock.add_response(
        method="GET",
        url=poll_url("t60"),
        json={
            "id": "t60",
            "status": "failed",
            "error": {"code": "auth", "message": f"header 'x-key: {api_key}' refused"},
        },
        headers={"X-Echo": api_key},
    )
    result = run_cli(gen(tmp_path / "out", "--json", "--verbose"))
    assert result.exit_code == 5, result.output
    document = json.loads(result.stdout)
    assert document["error"]["message"] == "header 'x-key: ***' refused"
    assert api_key not in result.stdout and api_key not in result.stderr
    assert ledger_task("t60")["error"]["message"] == "header 'x-key: ***' refused"


# --------------------------------------------------------------------------- row 63


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "data:image/png;base64,iVBORw0KGgo=", "/out/fox.png"]
)
def test_row63_a_finished_task_with_only_a_refused_url_is_exit_8_at_once(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path, url: str
) -> None:
    add_create(httpx_mock, "t63")
    httpx_mock.add_response(
        method="GET",
        url=poll_url("t63"),
        json={"id": "t63", "status": "completed", "images": [{"url": url}]},
    )
    out = tmp_path / "out"
    result = run_cli(gen(out))
    assert result.exit_code == 8, result.output
    assert "refused URL scheme" in result.stderr
    assert "flux2 download t63" in result.stderr
    assert polls(httpx_mock, "t63") == 1  # not polled on until --timeout
    assert not out.exists()  # the folder made for it is removed again: nothing landed


# --------------------------------------------------------------------------- row 64


def test_row64_a_name_template_that_renders_empty_uses_the_fallback_name(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path
) -> None:
    add_create(httpx_mock, "t64abcdef")
    httpx_mock.add_response(
        method="GET",
        url=poll_url("t64abcdef"),
        json={"id": "t64abcdef", "status": "completed", "images": [{"url": IMAGE_URL}]},
    )
    httpx_mock.add_response(method="GET", url=IMAGE_URL, content=PNG)
    out = tmp_path / "out"
    result = run_cli(gen(out, "--name", "{seed}"))
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()).name == "image-t64abcde.png"
    assert sorted(path.name for path in out.iterdir()) == [
        "image-t64abcde.json",
        "image-t64abcde.png",
    ]
