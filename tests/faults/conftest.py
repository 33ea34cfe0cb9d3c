"""Fixtures for the fault tests: the sentinel key in the environment, a fake clock, API in One."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from tests.helpers import FakeTime, install_fake_time, run_cli

BASE = "https://apiin.one"
CREATE_URL = f"{BASE}/api/v1/images/generations"
IMAGE_URL = "https://cdn.apiin.one/out/fox.png?X-Amz-Signature=abc123secret"


def poll_url(task_id: str) -> str:
    """API in One's status path for ``task_id``."""
    return f"{BASE}/api/v1/tasks/{task_id}"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    """Every Context sleeps on a fake clock."""
    return install_fake_time(monkeypatch)


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch, sentinel_key: str) -> str:
    """The sentinel key is the user's key in every fault test."""
    monkeypatch.setenv("FLUX2_API_KEY", sentinel_key)
    return sentinel_key


def add_create(httpx_mock: HTTPXMock, task_id: str, **kw: Any) -> None:
    """One successful create answer."""
    httpx_mock.add_response(method="POST", url=CREATE_URL, json={"id": task_id}, **kw)


def add_running(httpx_mock: HTTPXMock, task_id: str, *, reusable: bool = False) -> None:
    """A poll answer saying the task still runs."""
    httpx_mock.add_response(
        method="GET",
        url=poll_url(task_id),
        json={"id": task_id, "status": "processing"},
        is_reusable=reusable,
    )


def add_done(httpx_mock: HTTPXMock, task_id: str, image: bytes | None = None) -> None:
    """A poll answer with the image URL, and (when given) the image itself."""
    httpx_mock.add_response(
        method="GET",
        url=poll_url(task_id),
        json={"id": task_id, "status": "completed", "images": [{"url": IMAGE_URL}]},
    )
    if image is not None:
        httpx_mock.add_response(
            method="GET", url=IMAGE_URL, content=image, headers={"Content-Type": "image/png"}
        )


def posts(httpx_mock: HTTPXMock) -> int:
    """How many create requests were sent."""
    return len(httpx_mock.get_requests(method="POST"))


def ledger_ids() -> list[str]:
    """Task ids in the ledger, through ``flux2 history --json``."""
    result = run_cli(["history", "--json"])
    assert result.exit_code == 0, result.output
    return [task["task_id"] for task in json.loads(result.stdout)]


def ledger_task(task_id: str) -> dict[str, Any]:
    """One task as ``flux2 history --json`` shows it."""
    result = run_cli(["history", "--json"])
    for task in json.loads(result.stdout):
        if task["task_id"] == task_id:
            return dict(task)
    raise AssertionError(f"{task_id} not in the ledger")


def leftovers(folder: Path) -> list[str]:
    """Every file in ``folder`` (temp files included), sorted."""
    if not folder.exists():
        return []
    return sorted(path.name for path in folder.rglob("*"))
