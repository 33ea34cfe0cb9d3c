"""Balance look-ups as pure translation: which providers have one, and reading the answer."""

from __future__ import annotations

import pytest

from flux2_cli.errors import UnexpectedResponseError
from flux2_cli.providers import get_provider


def test_bfl_asks_get_v1_credits_and_reads_cents() -> None:
    bfl = get_provider("bfl")
    call = bfl.build_balance()
    assert call is not None
    assert (call.method, call.url, call.paid, call.json) == ("GET", "/v1/credits", False, None)
    balance = bfl.parse_balance({"credits": 1234.5})
    assert (balance.provider, balance.credits, balance.usd) == ("bfl", 1234.5, 12.345)


def test_the_sandbox_has_its_own_endpoint() -> None:
    call = get_provider("sandbox").build_balance()
    assert call is not None and call.url == "/sandbox/v1/credits"


@pytest.mark.parametrize("provider_id", ["apiinone", "apimart", "vtrix"])
def test_providers_without_a_documented_endpoint_have_none(provider_id: str) -> None:
    assert get_provider(provider_id).build_balance() is None


@pytest.mark.parametrize(
    "body",
    [{"credits": "42"}, {"code": 0, "message": "ok", "data": {"balance": 42}}, {"credits": 42.0}],
)
def test_the_answer_is_read_tolerantly(body: object) -> None:
    assert get_provider("bfl").parse_balance(body).credits == 42


@pytest.mark.parametrize("body", [{}, {"credits": "lots"}, [], None, {"credits": True}])
def test_an_answer_without_a_balance_is_an_unexpected_response(body: object) -> None:
    with pytest.raises(UnexpectedResponseError, match="no balance"):
        get_provider("bfl").parse_balance(body)
