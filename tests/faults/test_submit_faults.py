"""Rows 1–13 of reliability.md through ``flux2 gen``: the paid POST is never sent twice."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest
from pytest_httpx import HTTPXMock

from tests.faults.conftest import CREATE_URL, add_create, ledger_ids, posts
from tests.helpers import FakeTime, run_cli

GEN = ["gen", "a red fox in the snow", "--no-wait"]


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ConnectError("[Errno -2] Name or service not known"),
    ],
    ids=["refused", "dns"],
)
def test_row01_connection_refused_or_dns_is_retried_then_exit7_naming_host(
    httpx_mock: HTTPXMock, clock: FakeTime, error: Exception
) -> None:
    for _ in range(5):
        httpx_mock.add_exception(error, method="POST", url=CREATE_URL)
    result = run_cli(GEN)
    assert result.exit_code == 7
    assert "apiin.one" in result.stderr
    assert "Traceback" not in result.stderr
    assert posts(httpx_mock) == 5  # a few tries; none reached the server
    assert len(clock.sleeps) == 4
    assert ledger_ids() == []


def test_row01_connection_refused_then_success_creates_one_task(
    httpx_mock: HTTPXMock, clock: FakeTime
) -> None:
    httpx_mock.add_exception(httpx.ConnectError("refused"), method="POST", url=CREATE_URL)
    add_create(httpx_mock, "t-row1")
    result = run_cli(GEN)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "t-row1"
    assert ledger_ids() == ["t-row1"]


def test_row02_connect_timeout_is_retried_then_exit7(
    httpx_mock: HTTPXMock, clock: FakeTime
) -> None:
    for _ in range(5):
        httpx_mock.add_exception(httpx.ConnectTimeout("timed out"), method="POST", url=CREATE_URL)
    result = run_cli(GEN)
    assert result.exit_code == 7
    assert "apiin.one" in result.stderr
    assert posts(httpx_mock) == 5
    assert ledger_ids() == []


def test_row02_connect_timeout_then_success_creates_one_task(
    httpx_mock: HTTPXMock, clock: FakeTime
) -> None:
    httpx_mock.add_exception(httpx.ConnectTimeout("timed out"), method="POST", url=CREATE_URL)
    add_create(httpx_mock, "t-row2")
    assert run_cli(GEN).exit_code == 0
    assert ledger_ids() == ["t-row2"]


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout("no answer"), httpx.RemoteProtocolError("server hung up")]
)
def test_row03_read_timeout_after_the_body_is_never_retried(
    httpx_mock: HTTPXMock, clock: FakeTime, error: Exception
) -> None:
    httpx_mock.add_exception(error, method="POST", url=CREATE_URL)
    result = run_cli(GEN)
    assert result.exit_code == 7
    assert "submission outcome unknown" in result.stderr
    assert "a red fox in the snow" in result.stderr  # the request summary
    assert "POST https://apiin.one/api/v1/images/generations" in result.stderr
    assert posts(httpx_mock) == 1
    assert clock.sleeps == []


def test_row04_429_retry_after_2_waits_2s_then_one_task(
    httpx_mock: HTTPXMock, clock: FakeTime
) -> None:
    httpx_mock.add_response(
        method="POST", url=CREATE_URL, status_code=429, headers={"Retry-After": "2"}
    )
    add_create(httpx_mock, "t-row4")
    result = run_cli(GEN)
    assert result.exit_code == 0, result.output
    assert clock.sleeps == [2.0]
    assert posts(httpx_mock) == 2  # the first was refused before any task existed
    assert ledger_ids() == ["t-row4"]


def test_row05_429_retry_after_http_date_waits_until_then(
    httpx_mock: HTTPXMock, clock: FakeTime
) -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=40)
    httpx_mock.add_response(
        method="POST",
        url=CREATE_URL,
        status_code=429,
        headers={"Retry-After": format_datetime(when, usegmt=True)},
    )
    add_create(httpx_mock, "t-row5")
    assert run_cli(GEN).exit_code == 0
    assert len(clock.sleeps) == 1 and 35 <= clock.sleeps[0] <= 41
    assert ledger_ids() == ["t-row5"]


def test_row06_429_retry_after_a_day_is_exit7_at_once_saying_when(
    httpx_mock: HTTPXMock, clock: FakeTime
) -> None:
    httpx_mock.add_response(
        method="POST", url=CREATE_URL, status_code=429, headers={"Retry-After": "86400"}
    )
    result = run_cli(GEN)
    assert result.exit_code == 7
    assert "Try again after" in result.stderr and "24.0 h" in result.stderr
    assert clock.sleeps == []
    assert posts(httpx_mock) == 1


@pytest.mark.parametrize("value", ["soon", "-5", "1e40", "nan", "Wed, 99 Foo 2026"])
def test_row07_garbage_retry_after_falls_back_to_backoff(
    httpx_mock: HTTPXMock, clock: FakeTime, value: str
) -> None:
    httpx_mock.add_response(
        method="POST", url=CREATE_URL, status_code=429, headers={"Retry-After": value}
    )
    add_create(httpx_mock, "t-row7")
    result = run_cli(GEN)
    assert result.exit_code == 0, result.output
    assert len(clock.sleeps) == 1 and 0 <= clock.sleeps[0] <= 0.5
    assert ledger_ids() == ["t-row7"]


@pytest.mark.parametrize("status", [500, 502, 503])
def test_row08_5xx_on_the_post_is_not_retried_exit7(
    httpx_mock: HTTPXMock, clock: FakeTime, status: int
) -> None:
    httpx_mock.add_response(
        method="POST", url=CREATE_URL, status_code=status, json={"error": {"message": "boom"}}
    )
    result = run_cli(GEN)
    assert result.exit_code == 7
    assert "not repeated" in result.stderr and "flux2 history" in result.stderr
    assert posts(httpx_mock) == 1
    assert clock.sleeps == []


@pytest.mark.parametrize("status", [400, 422])
def test_row09_400_422_show_the_servers_message_exit2(
    httpx_mock: HTTPXMock, clock: FakeTime, status: int
) -> None:
    httpx_mock.add_response(
        method="POST",
        url=CREATE_URL,
        status_code=status,
        json={"detail": [{"loc": ["body", "prompt"], "msg": "prompt contains banned words"}]},
    )
    result = run_cli(GEN)
    assert result.exit_code == 2
    assert "prompt contains banned words" in result.stderr
    assert posts(httpx_mock) == 1
    assert ledger_ids() == []


@pytest.mark.parametrize("status", [401, 403])
def test_row10_401_403_exit3_key_masked_with_its_source(
    httpx_mock: HTTPXMock, clock: FakeTime, status: int, api_key: str
) -> None:
    httpx_mock.add_response(
        method="POST",
        url=CREATE_URL,
        status_code=status,
        json={"error": {"code": status, "message": "Invalid API key", "type": "auth"}},
    )
    result = run_cli([*GEN, "--verbose"])
    assert result.exit_code == 3
    assert "Invalid API key" in result.stderr
    assert f"…{api_key[-4:]}" in result.stderr  # masked: the last four at most
    assert "FLUX2_API_KEY" in result.stderr  # where it came from
    assert api_key not in result.stderr
    assert posts(httpx_mock) == 1


def test_row10_key_from_the_config_file_names_the_file(
    httpx_mock: HTTPXMock, clock: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLUX2_API_KEY")
    stored = "cfg-key-0123456789-wxyz"
    assert run_cli(["config", "set", "api_key", "-"], input=stored + "\n").exit_code == 0
    httpx_mock.add_response(
        method="POST", url=CREATE_URL, status_code=401, json={"message": "Invalid API key"}
    )
    result = run_cli(GEN)
    assert result.exit_code == 3
    assert "…wxyz" in result.stderr and "config file" in result.stderr
    assert stored not in result.stderr


def test_row11_402_is_exit4_with_a_billing_message(httpx_mock: HTTPXMock, clock: FakeTime) -> None:
    httpx_mock.add_response(
        method="POST", url=CREATE_URL, status_code=402, json={"message": "insufficient credits"}
    )
    result = run_cli(GEN)
    assert result.exit_code == 4
    assert "credit" in result.stderr.lower()
    assert posts(httpx_mock) == 1


def test_row11_vtrix_403_insufficient_balance_is_exit4(
    httpx_mock: HTTPXMock, clock: FakeTime
) -> None:
    httpx_mock.add_response(
        method="POST",
        url="https://cloud.vtrix.ai/model/v1/generation",
        status_code=403,
        json={"error": {"code": "403", "message": "insufficient balance"}},
    )
    result = run_cli([*GEN, "--provider", "vtrix"])
    assert result.exit_code == 4
    assert "balance" in result.stderr.lower()
    assert len(httpx_mock.get_requests(method="POST")) == 1


@pytest.mark.parametrize(
    "answer",
    ["{not json" + "x" * 900, '{"hello": "world", "padding": "' + "y" * 900 + '"}'],
    ids=["malformed", "no-task-id"],
)
def test_row12_200_without_a_task_is_exit1_unexpected_response(
    httpx_mock: HTTPXMock, clock: FakeTime, answer: str
) -> None:
    httpx_mock.add_response(method="POST", url=CREATE_URL, text=answer)
    result = run_cli(GEN)
    assert result.exit_code == 1
    assert "unexpected response" in result.stderr
    assert "Traceback" not in result.stderr
    assert "x" * 201 not in result.stderr and "y" * 201 not in result.stderr
    assert posts(httpx_mock) == 1


def test_row13_502_html_page_is_5xx_without_an_html_dump(
    httpx_mock: HTTPXMock, clock: FakeTime
) -> None:
    page = "<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1>" + "<p>nginx</p>" * 300
    httpx_mock.add_response(
        method="POST",
        url=CREATE_URL,
        status_code=502,
        text=page + "</body></html>",
        headers={"Content-Type": "text/html"},
    )
    result = run_cli(GEN)
    assert result.exit_code == 7
    assert "<html" not in result.stderr.lower() and "<p>" not in result.stderr
    assert len(result.stderr.splitlines()[0]) <= 300
    assert posts(httpx_mock) == 1
