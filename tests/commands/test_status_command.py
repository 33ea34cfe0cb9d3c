"""`flux2 status`: one result per id, short ids and `last`, unknown ids, relative expiry, --wait."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock

from flux2_cli.ledger import Ledger
from flux2_cli.task import ImageResult, Task, TaskStatus, format_time, short_id, utc_now
from tests.helpers import FakeTime, install_fake_time, run_cli

BASE = "https://apiin.one"
A = "sbx6e208ca2a1f34c0b9d7e_flux2"
B = "sbx6e2ff84e0c7d4b1a2b3c_flux2"
C = "task_01KFG5BBFNK1YQDTJDZY0P0QT2"
ENTRY = "from flux2_cli._entry import main; main()"


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    return install_fake_time(monkeypatch)


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX2_API_KEY", "k-test")


def seed(*tasks: Task) -> None:
    """Record tasks in the ledger, oldest first."""
    with Ledger() as ledger:
        for task in tasks:
            ledger.record_submit(task)


def running(task_id: str) -> Task:
    return Task(task_id=task_id, provider="apiinone", status=TaskStatus.RUNNING, base_url=BASE)


def answer(httpx_mock: HTTPXMock, task_id: str, status: str, **extra: object) -> None:
    httpx_mock.add_response(
        method="GET",
        url=f"{BASE}/api/v1/tasks/{task_id}",
        json={"code": 200, "data": {"task_id": task_id, "status": status, **extra}},
    )


def submit(prompt: str) -> str:
    """``gen --no-wait`` on the sandbox; the task id."""
    result = run_cli(["gen", prompt, "--provider", "sandbox", "--no-wait", "-q"])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def test_one_unknown_id_fails_on_its_own_and_the_others_are_shown() -> None:
    # Before: the unknown id sent the whole command to exit 3 with nothing shown for the others.
    first, second = submit("a red fox"), submit("a blue fox")
    result = run_cli(["status", first, second, "typo"])
    assert result.exit_code == 3, result.output  # typo: no key for the default provider
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{first}  succeeded"), result.stdout
    assert any(line.startswith(f"{second}  succeeded") for line in lines)
    assert (
        "typo: not in the local ledger; looking it up at apiinone "
        "(the default; pass --provider)" in result.stderr
    )
    assert "1 of 3 tasks" in result.stderr and "still running" not in result.stderr


def test_download_of_an_unknown_id_never_claims_it_is_running() -> None:
    result = run_cli(["download", "typo"])
    assert result.exit_code == 3
    assert "still running" not in result.stderr
    assert "not in the local ledger" in result.stderr


def test_unknown_id_not_at_the_provider_suggests_a_near_ledger_id(
    httpx_mock: HTTPXMock, key: None
) -> None:
    seed(running(A))
    mistyped = A[:-1] + "3"
    httpx_mock.add_response(
        method="GET", url=f"{BASE}/api/v1/tasks/{mistyped}", status_code=404, json={}
    )
    result = run_cli(["status", mistyped])
    assert result.exit_code == 5, result.output
    assert "not found at apiinone, nor in the local ledger" in result.stderr
    assert "Did you mean" in result.stderr and A in result.stderr
    assert "still running" not in result.stderr


def test_unknown_id_says_when_the_provider_came_from_the_flag(key: None) -> None:
    result = run_cli(["status", "typo42", "--provider", "sandbox"])
    assert result.exit_code == 5
    assert "looking it up at sandbox (from --provider)" in result.stderr


def test_exit_code_is_the_highest_of_the_ids(httpx_mock: HTTPXMock, key: None) -> None:
    seed(running(A), running(C))
    answer(httpx_mock, A, "FAILED", error={"code": "x", "message": "boom"})
    httpx_mock.add_response(method="GET", url=f"{BASE}/api/v1/tasks/{C}", status_code=503)
    httpx_mock.add_response(
        method="GET", url=f"{BASE}/api/v1/tasks/{C}", status_code=503, is_reusable=True
    )
    result = run_cli(["status", A, C])
    assert result.exit_code == 7, result.output  # 5 for A, 7 for C: the highest wins
    assert result.stdout.startswith(f"{A}  failed")


@pytest.mark.parametrize("ref", [A[:6], A[:10], short_id(A), short_id(A)[:6], C.lower()[:12]])
def test_a_unique_prefix_or_short_id_names_the_task(
    httpx_mock: HTTPXMock, key: None, ref: str
) -> None:
    seed(running(A), running(C))
    target = C if ref.startswith("task") else A
    answer(httpx_mock, target, "IN_PROGRESS")
    result = run_cli(["status", ref, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["task_id"] == target


def test_an_ambiguous_prefix_lists_the_candidates_exit_2(key: None) -> None:
    seed(running(A), running(B))
    result = run_cli(["status", "sbx6e2"])
    assert result.exit_code == 2, result.output
    assert "matches 2 tasks" in result.stderr and A in result.stderr and B in result.stderr


def test_a_prefix_shorter_than_six_characters_is_refused(key: None) -> None:
    seed(running(A))
    result = run_cli(["status", "sbx6e"])
    assert result.exit_code == 2
    assert "at least 6 characters" in result.stderr and A in result.stderr


def test_last_is_the_newest_task(httpx_mock: HTTPXMock, key: None) -> None:
    seed(running(A), running(C))
    answer(httpx_mock, C, "IN_PROGRESS")
    result = run_cli(["status", "last", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["task_id"] == C


def test_last_with_an_empty_ledger_is_a_usage_error() -> None:
    result = run_cli(["status", "last"])
    assert result.exit_code == 2 and "has none yet" in result.stderr


def test_status_says_expires_in_hours_and_shows_saved_paths(
    httpx_mock: HTTPXMock, key: None, tmp_path: Path
) -> None:
    saved = str(tmp_path / "red-fox.png")
    expires = utc_now() + timedelta(hours=23, minutes=30)
    seed(
        Task(
            task_id=A,
            provider="apiinone",
            status=TaskStatus.SUCCEEDED,
            base_url=BASE,
            expires_at=expires,
            images=(ImageResult(url="https://cdn.apiin.one/a.png", path=saved),),
        )
    )
    answer(
        httpx_mock,
        A,
        "COMPLETED",
        images=[{"url": "https://cdn.apiin.one/a.png"}],
        expires_at=format_time(expires),
    )
    result = run_cli(["status", A])
    assert result.exit_code == 0, result.output
    assert "expires in 23 h" in result.stdout
    assert f"saved: {saved}" in result.stdout


def test_wait_with_several_ids_follows_all_of_them(
    httpx_mock: HTTPXMock, key: None, clock: FakeTime
) -> None:
    # Before: one task at a time, the second not even looked at while the first ran.
    seed(running(A), running(C))
    answer(httpx_mock, A, "IN_PROGRESS")
    answer(httpx_mock, C, "IN_PROGRESS")
    answer(httpx_mock, A, "COMPLETED", images=[{"url": "https://cdn.apiin.one/a.png"}])
    answer(httpx_mock, C, "COMPLETED", images=[{"url": "https://cdn.apiin.one/c.png"}])
    result = run_cli(["status", A, C, "--wait"])
    assert result.exit_code == 0, result.output
    # both polled in each round: A, C, A, C
    polled = [str(request.url).rsplit("/", 1)[1] for request in httpx_mock.get_requests()]
    assert polled == [A, C, A, C]
    assert f"task {short_id(A)}: running" in result.stderr
    assert f"task {short_id(C)}: succeeded" in result.stderr
    assert result.stdout.count("succeeded") == 2


def test_wait_timeout_with_several_ids_is_exit_6(
    httpx_mock: HTTPXMock, key: None, clock: FakeTime
) -> None:
    seed(running(A), running(C))
    httpx_mock.add_response(
        method="GET",
        url=f"{BASE}/api/v1/tasks/{A}",
        json={"code": 200, "data": {"task_id": A, "status": "IN_PROGRESS"}},
        is_reusable=True,
    )
    answer(httpx_mock, C, "COMPLETED", images=[{"url": "https://cdn.apiin.one/c.png"}])
    result = run_cli(["status", A, C, "--wait", "--timeout", "5"])
    assert result.exit_code == 6, result.output
    assert f"timed out after 5 s waiting for task {A}" in result.stderr
    assert f"{C}  succeeded" in result.stdout


def test_wait_on_a_terminal_draws_one_live_display_of_every_task(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import os
    import pty
    import subprocess
    import sys

    monkeypatch.setenv("FLUX2_SANDBOX_LATENCY", "1.5")
    first, second = submit("a red fox"), submit("a blue fox")
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "status", first, second, "--wait"],
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**os.environ, "COLUMNS": "100"},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    stdout, _ = process.communicate(timeout=60)
    os.close(leader)
    screen = b"".join(chunks).decode(errors="replace")
    assert process.returncode == 0, screen
    assert f"task {short_id(first)}:" in screen and f"task {short_id(second)}:" in screen
    assert "\x1b[" in screen  # drawn live (cursor movement), not one plain line per change
    assert stdout.decode().count("succeeded") == 2


def test_ctrl_c_while_waiting_on_several_names_every_task_still_running(
    httpx_mock: HTTPXMock, key: None, clock: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(running(A), running(C))
    answer(httpx_mock, A, "IN_PROGRESS")
    answer(httpx_mock, C, "IN_PROGRESS")

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(clock, "sleep", interrupted)
    result = run_cli(["status", A, C, "--wait"])
    assert result.exit_code == 130, result.output
    assert f"the tasks go on at the provider: {A}, {C}" in result.stderr
    assert f"flux2 status {A} {C} --wait" in result.stderr
