"""``flux2 credits``: BFL's balance, the sandbox's per key, exit 2 where there is no endpoint."""

from __future__ import annotations

import json

import pytest
from pytest_httpx import HTTPXMock

from tests.helpers import run_cli


def test_bfl_balance_with_the_key_in_x_key(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch, sentinel_key: str
) -> None:
    monkeypatch.setenv("BFL_API_KEY", sentinel_key)
    httpx_mock.add_response(
        method="GET",
        url="https://api.bfl.ai/v1/credits",
        match_headers={"x-key": sentinel_key},
        json={"credits": 1502.5},
    )
    result = run_cli(["credits", "--provider", "bfl"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "bfl: 1,502.5 credits (≈ $15.03)\n"

    httpx_mock.add_response(
        method="GET", url="https://api.bfl.ai/v1/credits", json={"credits": 1502.5}
    )
    result = run_cli(["credits", "--provider", "bfl", "--json"])
    assert json.loads(result.stdout) == {
        "provider": "bfl",
        "credits": 1502.5,
        "usd": 15.025,
        "sandbox": False,
    }


def test_a_refused_key_is_exit_3(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch, sentinel_key: str
) -> None:
    monkeypatch.setenv("BFL_API_KEY", sentinel_key)
    httpx_mock.add_response(
        method="GET", url="https://api.bfl.ai/v1/credits", status_code=403, json={"detail": "no"}
    )
    assert run_cli(["credits", "--provider", "bfl"]).exit_code == 3


@pytest.mark.parametrize("provider", ["apiinone", "apimart", "vtrix"])
def test_no_endpoint_is_exit_2_before_any_request(provider: str) -> None:
    # No key is set and no HTTP response is mocked: the refusal comes first.
    result = run_cli(["credits", "--provider", provider])
    assert result.exit_code == 2
    assert f"{provider} offers no balance endpoint" in result.stderr
    assert result.stdout == ""


def test_the_sandbox_balance_goes_down_as_tasks_are_made(tmp_path: object) -> None:
    first = json.loads(run_cli(["credits", "--provider", "sandbox", "--json"]).stdout)
    assert first == {"provider": "sandbox", "credits": 10000.0, "usd": 100.0, "sandbox": True}
    made = run_cli(["gen", "a red fox", "--provider", "sandbox", "--no-wait", "-q"])
    assert made.exit_code == 0, made.stderr
    result = run_cli(["credits", "--provider", "sandbox"])
    assert result.stdout.startswith("sandbox: 9,995 credits (≈ $99.95)")
    assert "simulated" in result.stdout


def test_sandbox_flag_reaches_bfl_dialect_endpoint() -> None:
    result = run_cli(["credits", "--provider", "bfl", "--sandbox", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["sandbox"] is True
