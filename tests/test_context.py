"""Tests of flux2_cli.context: which key goes to which provider."""

from __future__ import annotations

import pytest
from pytest_httpx import HTTPXMock

from tests.helpers import install_fake_time, run_cli

APIINONE_KEY = "apiinone-key-AAAA1111"
BFL_KEY = "bfl-key-BBBB2222"


@pytest.fixture(autouse=True)
def fake_time(monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_time(monkeypatch)


def bfl_task(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        method="POST", url="https://api.bfl.ai/v1/flux-2-pro", json={"id": "b1"}
    )
    result = run_cli(["gen", "a red fox", "--provider", "bfl", "--no-wait"])
    assert result.exit_code == 0, result.output


def test_status_of_another_providers_task_sends_that_providers_key(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APIINONE_API_KEY", APIINONE_KEY)
    monkeypatch.setenv("BFL_API_KEY", BFL_KEY)
    bfl_task(httpx_mock)
    httpx_mock.add_response(method="GET", json={"id": "b1", "status": "Pending"})
    result = run_cli(["status", "b1"])  # the configured provider is apiinone
    assert result.exit_code == 0, result.output
    poll = httpx_mock.get_requests(method="GET")[0]
    assert poll.url.host == "api.bfl.ai"
    assert poll.headers["x-key"] == BFL_KEY


def test_another_providers_key_is_never_sent_when_the_task_provider_has_none(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BFL_API_KEY", BFL_KEY)
    bfl_task(httpx_mock)
    monkeypatch.delenv("BFL_API_KEY")
    monkeypatch.setenv("APIINONE_API_KEY", APIINONE_KEY)
    result = run_cli(["status", "b1"])
    assert result.exit_code == 3
    assert "BFL_API_KEY" in result.stderr
    assert httpx_mock.get_requests(method="GET") == []


def test_explicit_api_key_is_used_for_any_task(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BFL_API_KEY", BFL_KEY)
    bfl_task(httpx_mock)
    httpx_mock.add_response(method="GET", json={"id": "b1", "status": "Pending"})
    result = run_cli(["status", "b1", "--api-key", "explicit-key-9999"])
    assert result.exit_code == 0, result.output
    assert httpx_mock.get_requests(method="GET")[0].headers["x-key"] == "explicit-key-9999"
