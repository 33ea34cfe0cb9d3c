"""Rows 14–21 of reliability.md through ``flux2 gen``: polling faults never lose a paid task."""

from __future__ import annotations

import httpx
import pytest
from pytest_httpx import HTTPXMock

from flux2_cli import errors
from tests.faults.conftest import (
    IMAGE_URL,
    add_create,
    add_done,
    add_running,
    ledger_ids,
    ledger_task,
    poll_url,
    posts,
)
from tests.helpers import FakeTime, install_fake_time, png_bytes, run_cli


def assert_resume_hints(stderr: str, task_id: str) -> None:
    assert f"flux2 status {task_id} --wait" in stderr
    assert f"flux2 download {task_id}" in stderr


def test_row14_poll_503_storm_is_bounded_then_exit7_task_kept(
    httpx_mock: HTTPXMock, clock: FakeTime
) -> None:
    add_create(httpx_mock, "t14")
    for _ in range(5):
        httpx_mock.add_response(method="GET", url=poll_url("t14"), status_code=503)
    result = run_cli(["gen", "a red fox", "-q"])
    assert result.exit_code == 7
    assert len(httpx_mock.get_requests(method="GET")) == 5  # 1 + 4 retries, then stop
    # one poll interval, then four bounded backoffs
    assert len(clock.sleeps) == 5 and all(0 <= s <= 30 for s in clock.sleeps)
    assert "t14" in result.stderr  # printed even with --quiet: it is in the error
    assert_resume_hints(result.stderr, "t14")
    assert posts(httpx_mock) == 1
    assert ledger_ids() == ["t14"]


def test_row15_intermittent_read_error_and_502_while_polling_are_retried(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: object
) -> None:
    add_create(httpx_mock, "t15")
    httpx_mock.add_exception(httpx.ReadError("connection reset"), url=poll_url("t15"))
    httpx_mock.add_response(method="GET", url=poll_url("t15"), status_code=502)
    add_running(httpx_mock, "t15")
    httpx_mock.add_exception(httpx.ReadTimeout("slow"), url=poll_url("t15"))
    add_done(httpx_mock, "t15", png_bytes())
    result = run_cli(["gen", "a red fox", "-o", f"{tmp_path}/"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(".png")
    assert posts(httpx_mock) == 1


def test_row16_never_finishing_task_grows_intervals_then_exit6_not_cancelled(
    httpx_mock: HTTPXMock, clock: FakeTime
) -> None:
    add_create(httpx_mock, "t16")
    add_running(httpx_mock, "t16", reusable=True)
    result = run_cli(["gen", "a red fox", "--timeout", "120"])
    assert result.exit_code == 6
    assert "t16" in result.stderr and "timed out" in result.stderr
    assert_resume_hints(result.stderr, "t16")
    sleeps = clock.sleeps
    assert 0.9 <= sleeps[0] <= 1.1  # about 1 s first
    assert sleeps[1] > sleeps[0] and sleeps[3] > sleeps[1]  # growing
    assert all(s <= 11.0 for s in sleeps)  # capped at 10 s plus jitter
    assert max(sleeps) >= 9.0  # and it does reach the cap
    assert len(set(round(s, 6) for s in sleeps[6:-1])) > 1  # jitter: not one fixed value
    assert sum(sleeps) == pytest.approx(120.0)  # waited exactly until --timeout
    # the task is left running: no cancel, no second POST
    methods = {request.method for request in httpx_mock.get_requests()}
    assert methods == {"POST", "GET"}
    assert posts(httpx_mock) == 1
    assert ledger_task("t16")["status"] == "running"


@pytest.mark.parametrize(
    "body", [{"message": "Task not found"}, {"error": {"code": 404, "message": "Task not found"}}]
)
def test_row17_poll_404_task_not_found_is_exit5_and_marked_in_the_ledger(
    httpx_mock: HTTPXMock, clock: FakeTime, body: dict[str, object]
) -> None:
    add_create(httpx_mock, "t17")
    httpx_mock.add_response(method="GET", url=poll_url("t17"), status_code=404, json=body)
    result = run_cli(["gen", "a red fox"])
    assert result.exit_code == 5
    assert "task not found or expired" in result.stderr
    assert "t17" in result.stderr
    assert len(httpx_mock.get_requests(method="GET")) == 1  # a 404 is not retried
    entry = ledger_task("t17")
    assert entry["status"] == "failed"
    assert "not found" in entry["error"]["message"]


def test_row67_bfl_task_not_found_past_the_grace_period_is_exit5(
    httpx_mock: HTTPXMock, clock: FakeTime
) -> None:
    httpx_mock.add_response(
        method="POST", url="https://api.bfl.ai/v1/flux-2-pro", json={"id": "b17"}
    )
    httpx_mock.add_response(
        method="GET",
        url="https://api.bfl.ai/v1/get_result?id=b17",
        json={"id": "b17", "status": "Task not found"},
        is_reusable=True,
    )
    result = run_cli(["gen", "a red fox", "--provider", "bfl"])
    assert result.exit_code == 5
    assert "not found" in result.stderr.lower()
    assert ledger_task("b17")["status"] == "failed"
    polls = len(httpx_mock.get_requests(method="GET"))
    assert polls > 1  # polled on through the grace period
    assert 25 <= sum(clock.sleeps) <= 45  # about BFL's 30 s of grace, no more


def test_row67_bfl_transient_task_not_found_keeps_polling(
    httpx_mock: HTTPXMock, clock: FakeTime
) -> None:
    httpx_mock.add_response(
        method="POST", url="https://api.bfl.ai/v1/flux-2-pro", json={"id": "b67"}
    )
    url = "https://api.bfl.ai/v1/get_result?id=b67"
    for _ in range(2):
        httpx_mock.add_response(
            method="GET", url=url, json={"id": "b67", "status": "Task not found"}
        )
    sample = "https://delivery.bfl.ai/b67/sample.png"
    httpx_mock.add_response(
        method="GET", url=url, json={"id": "b67", "status": "Ready", "result": {"sample": sample}}
    )
    result = run_cli(["gen", "a red fox", "--provider", "bfl", "--no-download"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == sample
    assert ledger_task("b67")["status"] == "succeeded"


def test_row67_bfl_poll_422_with_a_task_body_is_a_failed_task_exit5(
    httpx_mock: HTTPXMock, clock: FakeTime
) -> None:
    httpx_mock.add_response(
        method="POST", url="https://api.bfl.ai/v1/flux-2-pro", json={"id": "b422"}
    )
    httpx_mock.add_response(
        method="GET",
        url="https://api.bfl.ai/v1/get_result?id=b422",
        status_code=422,
        json={"id": "b422", "status": "Error", "result": None, "details": "invalid input image"},
    )
    result = run_cli(["gen", "a red fox", "--provider", "bfl"])
    assert result.exit_code == 5, result.output  # a failed task, not bad usage (2)
    assert "invalid input image" in result.stderr
    assert ledger_task("b422")["status"] == "failed"


@pytest.mark.parametrize(
    ("answer", "code", "reason"),
    [
        (
            {"id": "t18", "status": "FAILED", "error": {"code": "NSFW", "message": "moderated"}},
            "NSFW",
            "moderated",
        ),
        (
            {"id": "t18", "status": "error", "message": "GPU out of memory"},
            None,
            "GPU out of memory",
        ),
    ],
    ids=["moderated", "failed"],
)
def test_row18_failed_or_moderated_is_exit5_with_code_and_reason_no_download(
    httpx_mock: HTTPXMock, clock: FakeTime, answer: dict[str, object], code: str | None, reason: str
) -> None:
    add_create(httpx_mock, "t18")
    httpx_mock.add_response(method="GET", url=poll_url("t18"), json=answer)
    result = run_cli(["gen", "a red fox"])
    assert result.exit_code == 5
    assert "t18" in result.stderr and reason in result.stderr
    if code:
        assert code in result.stderr
    assert httpx_mock.get_requests(url=IMAGE_URL) == []
    assert ledger_task("t18")["status"] == "failed"


def test_row19_unknown_status_keeps_polling_then_names_the_value(
    httpx_mock: HTTPXMock, clock: FakeTime
) -> None:
    add_create(httpx_mock, "t19")
    httpx_mock.add_response(
        method="GET",
        url=poll_url("t19"),
        json={"id": "t19", "status": "WIBBLING"},
        is_reusable=True,
    )
    result = run_cli(["gen", "a red fox", "--timeout", "60"])
    assert result.exit_code == 6
    assert "'WIBBLING'" in result.stderr
    assert len(httpx_mock.get_requests(method="GET")) >= 5  # kept polling to the deadline
    assert sum(clock.sleeps) == pytest.approx(60.0)
    assert_resume_hints(result.stderr, "t19")


def _interrupt_polling(
    monkeypatch: pytest.MonkeyPatch, httpx_mock: HTTPXMock, exc: type[BaseException]
) -> None:
    fake = install_fake_time(monkeypatch)

    def interrupted(seconds: float) -> None:
        raise exc()

    monkeypatch.setattr(fake, "sleep", interrupted)
    add_create(httpx_mock, "t20")


def test_row20_ctrl_c_while_polling_is_130_with_id_and_resume_commands(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_polling(monkeypatch, httpx_mock, errors.InterruptSignal)
    result = run_cli(["gen", "a red fox"])
    assert result.exit_code == 130
    assert "t20" in result.stderr and "still running" in result.stderr
    assert_resume_hints(result.stderr, "t20")
    assert posts(httpx_mock) == 1
    assert ledger_ids() == ["t20"]


def test_row20_keyboard_interrupt_is_130_too(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_polling(monkeypatch, httpx_mock, KeyboardInterrupt)
    result = run_cli(["gen", "a red fox"])
    assert result.exit_code == 130
    assert_resume_hints(result.stderr, "t20")


def test_row21_sigterm_while_polling_is_143_with_id_and_resume_commands(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_polling(monkeypatch, httpx_mock, errors.TerminatedSignal)
    result = run_cli(["gen", "a red fox"])
    assert result.exit_code == 143
    assert "t20" in result.stderr and "still running" in result.stderr
    assert_resume_hints(result.stderr, "t20")
    assert ledger_ids() == ["t20"]
