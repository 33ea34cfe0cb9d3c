"""The sandbox's balance endpoints: BFL's ``GET /v1/credits`` and its own, per key."""

from __future__ import annotations

import pytest

from flux2_cli.providers.bfl import CREDITS_PATH
from flux2_cli.providers.sandbox import BALANCE_PATH
from flux2_cli.sandbox.settings import BROKE_KEY, INVALID_KEY
from tests.sandbox.conftest import BEARER, XKEY, Sandbox


def test_a_new_key_starts_with_the_configured_credits(make_sandbox: object) -> None:
    sbx: Sandbox = make_sandbox(credits=120)  # type: ignore[operator]
    assert sbx.client.get(CREDITS_PATH, headers=XKEY).json() == {"credits": 120}
    assert sbx.client.get(BALANCE_PATH, headers=BEARER).json() == {"credits": 120}


def test_a_create_is_charged_to_the_key_that_made_it(sbx: Sandbox) -> None:
    before = sbx.client.get(CREDITS_PATH, headers=XKEY).json()["credits"]
    created = sbx.client.post("/v1/flux-2-pro", json={"prompt": "a red fox"}, headers=XKEY)
    assert created.status_code == 200, created.text
    after = sbx.client.get(CREDITS_PATH, headers=XKEY).json()["credits"]
    other = sbx.client.get(CREDITS_PATH, headers={"x-key": "another-key"}).json()["credits"]
    charged = created.json()["cost"]  # what the create answer said it cost (BFL's own field)
    assert charged > 0
    assert before - after == pytest.approx(charged)
    assert other == before


def test_the_broke_key_has_nothing_and_the_invalid_key_is_refused(sbx: Sandbox) -> None:
    broke = sbx.client.get(BALANCE_PATH, headers={"Authorization": f"Bearer {BROKE_KEY}"})
    assert broke.json() == {"credits": 0}
    refused = sbx.client.get(CREDITS_PATH, headers={"x-key": INVALID_KEY})
    assert refused.status_code == 401
    missing = sbx.client.get(BALANCE_PATH)
    assert missing.status_code == 401


def test_each_endpoint_reads_the_key_in_its_own_dialect(sbx: Sandbox) -> None:
    # BFL's endpoint takes x-key, not a bearer token; the sandbox's own takes the bearer.
    assert sbx.client.get(CREDITS_PATH, headers=BEARER).status_code == 401
    assert sbx.client.get(BALANCE_PATH, headers=XKEY).status_code == 401
