"""Webhooks: sent once when a task ends, with the dialect's body, retried, secret echoed."""

from __future__ import annotations

import json
from typing import Any

from pytest_httpx import HTTPXMock

from flux2_cli.sandbox import webhooks
from flux2_cli.sandbox.state import StateStore
from tests.sandbox.conftest import BEARER, XKEY, Sandbox
from tests.sandbox.test_app import apiinone_create, apiinone_poll

HOOK = "https://hooks.example.test/flux"


def test_apiinone_callback_is_sent_once_when_the_task_ends(sbx: Sandbox) -> None:
    sbx.record_webhooks()
    task_id = apiinone_create(sbx, callback_url=HOOK)
    apiinone_poll(sbx, task_id)
    assert sbx.sent == []
    sbx.finish()
    apiinone_poll(sbx, task_id)
    apiinone_poll(sbx, task_id)
    assert len(sbx.sent) == 1
    url, body, headers = sbx.sent[0]
    assert url == HOOK
    assert body["data"]["task_id"] == task_id
    assert body["data"]["status"] == "COMPLETED"
    assert body["data"]["images"][0]["url"].endswith(".png")
    assert "X-Webhook-Secret" not in headers


def test_bfl_webhook_echoes_the_secret(sbx: Sandbox) -> None:
    sbx.record_webhooks()
    created = sbx.client.post(
        "/v1/flux-2-pro",
        json={"prompt": "a lighthouse", "webhook_url": HOOK, "webhook_secret": "s3cret"},
        headers=XKEY,
    ).json()
    # With a webhook_url, BFL's submit answer has no polling_url (wire-contracts, updates).
    assert "polling_url" not in created
    sbx.finish()
    sbx.client.get(f"/v1/get_result?id={created['id']}", headers=XKEY)
    _, body, headers = sbx.sent[0]
    assert headers["X-Webhook-Secret"] == "s3cret"
    assert body["status"] == "Ready"
    assert body["id"] == created["id"]


def test_vtrix_refuses_webhook_fields(sbx: Sandbox) -> None:
    # The flux-2-pro page (doc.vtrix.ai) lists no webhook fields: refused, as flux2 does.
    answer = sbx.client.post(
        "/model/v1/generation",
        json={"prompt": "a lighthouse", "webhook_url": HOOK, "webhook_secret": "v"},
        headers=BEARER,
    )
    assert answer.status_code == 400
    assert "webhook_url" in answer.json()["message"]


def test_failed_deliveries_are_retried_with_backoff(sbx: Sandbox) -> None:
    sbx.record_webhooks(500, 0)
    task_id = apiinone_create(sbx, callback_url=HOOK)
    sbx.finish()
    apiinone_poll(sbx, task_id)
    assert len(sbx.sent) == 3
    assert sbx.sleeps.calls == [0.5, 1.0]
    record = sbx.transport.app.state.sandbox.store.load_task(task_id)
    assert record["webhook_state"] == "delivered"
    assert record["webhook_attempts"] == 3


def test_delivery_gives_up_after_three_retries(sbx: Sandbox) -> None:
    sbx.record_webhooks(500, 500, 500, 500, 500)
    task_id = apiinone_create(sbx, callback_url=HOOK)
    sbx.finish()
    apiinone_poll(sbx, task_id)
    apiinone_poll(sbx, task_id)
    assert len(sbx.sent) == 4
    record = sbx.transport.app.state.sandbox.store.load_task(task_id)
    assert record["webhook_state"] == "failed"


def test_deliver_due_sends_what_nobody_polled(sbx: Sandbox) -> None:
    """What the scanner thread of ``sandbox serve`` does every half second."""
    task_id = apiinone_create(sbx, callback_url=HOOK)
    apiinone_create(sbx)  # no webhook: never sent
    store: StateStore = sbx.transport.app.state.sandbox.store
    calls: list[str] = []

    def sender(url: str, body: bytes, headers: dict[str, str]) -> int:
        calls.append(json.loads(body)["data"]["task_id"])
        return 204

    assert webhooks.deliver_due(store, sbx.settings, sender) == 0
    assert store.pending_webhooks() == [task_id]
    sbx.finish()
    assert webhooks.deliver_due(store, sbx.settings, sender) == 1
    assert webhooks.deliver_due(store, sbx.settings, sender) == 0
    assert calls == [task_id]
    assert store.pending_webhooks() == []


def test_the_real_sender_posts_json_with_httpx(sbx: Sandbox, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=HOOK, method="POST", status_code=200)
    created = sbx.client.post(
        "/v1/flux-2-flex",
        json={"prompt": "a lighthouse", "webhook_url": HOOK, "webhook_secret": "abc"},
        headers=XKEY,
    ).json()
    sbx.finish()
    sbx.client.get(f"/v1/get_result?id={created['id']}", headers=XKEY)
    request = httpx_mock.get_request()
    assert request is not None
    assert request.headers["X-Webhook-Secret"] == "abc"
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content)["status"] == "Ready"


def test_the_real_sender_reports_transport_errors_as_zero(httpx_mock: HTTPXMock) -> None:
    import httpx

    httpx_mock.add_exception(httpx.ConnectError("refused"))
    assert webhooks.http_sender(1.0)(HOOK, b"{}", {}) == 0


def test_webhook_targets_must_be_http_urls(sbx: Sandbox) -> None:
    answer: Any = sbx.client.post(
        "/v1/flux-2-pro",
        json={"prompt": "a lighthouse", "webhook_url": "file:///etc/passwd"},
        headers=XKEY,
    )
    assert answer.status_code == 422
