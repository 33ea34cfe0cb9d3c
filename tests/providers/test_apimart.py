"""APIMart translator: the documented payloads, dict in and dict out."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from flux2_cli.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    CreditsError,
    UsageError,
)
from flux2_cli.providers.apimart import ApiMartProvider
from flux2_cli.request import GenerationRequest
from flux2_cli.task import Task, TaskStatus

BASE = "https://api.apimart.ai"
PROVIDER = ApiMartProvider()

CREATE_LIST = {
    "code": 200,
    "data": [{"status": "submitted", "task_id": "task_01KFG5BBFNK1YQDTJDZY0P0QT2"}],
}
FINISHED = {
    "code": 200,
    "data": {
        "id": "task_01KA",
        "status": "completed",
        "progress": 100,
        "result": {
            "images": [
                {"url": ["https://upload.apimart.ai/f/image/x_0.png"], "expires_at": 1763174708}
            ]
        },
        "created": 1763088289,
        "completed": 1763088308,
        "estimated_time": 60,
        "actual_time": 19,
    },
}


def submitted(request: GenerationRequest | None = None) -> Task:
    return PROVIDER.parse_create(CREATE_LIST, request or GenerationRequest("a red fox"), BASE)


def test_create_body_is_exactly_the_documented_one() -> None:
    request = GenerationRequest(
        "a red fox",
        ratio="16:9",
        res="2K",
        mode="flex",
        refs=("https://example.com/a.png", "https://example.com/b.jpg"),
    )
    call = PROVIDER.build_create(request)
    assert call.method == "POST"
    assert call.url == "/v1/images/generations"
    assert call.paid is True
    assert call.json == {
        "model": "flux-2-flex",
        "prompt": "a red fox",
        "size": "16:9",
        "resolution": "2K",
        "image_urls": ["https://example.com/a.png", "https://example.com/b.jpg"],
    }


def test_create_body_minimal_has_no_optional_keys_and_no_none() -> None:
    call = PROVIDER.build_create(GenerationRequest("a red fox"))
    assert call.json == {
        "model": "flux-2-pro",
        "prompt": "a red fox",
        "size": "1:1",
        "resolution": "1K",
    }


def test_model_override_and_params_pass_through() -> None:
    request = GenerationRequest("a red fox", model="flux-2-max", params={"seed": 7})
    body = PROVIDER.build_create(request).json
    assert body is not None
    assert body["model"] == "flux-2-max"
    assert body["seed"] == 7


def test_resolution_is_sent_upper_case() -> None:
    body = PROVIDER.build_create(GenerationRequest("a red fox", res="2k")).json
    assert body is not None and body["resolution"] == "2K"


@pytest.mark.parametrize(
    ("request_", "option"),
    [
        (GenerationRequest("a red fox", refs=("./me.png",)), "--ref"),
        (GenerationRequest("a red fox", seed=3), "--seed"),
        (GenerationRequest("a red fox", width=1024, height=1024), "--width"),
        (GenerationRequest("a red fox", format="png"), "--format"),
        (GenerationRequest("a red fox", safety=2), "--safety"),
        (GenerationRequest("a red fox", callback_url="https://hook.example/x"), "--callback-url"),
        (GenerationRequest("a red fox", ratio="21:9"), "--ratio"),
    ],
)
def test_validate_refuses_what_apimart_does_not_take(
    request_: GenerationRequest, option: str
) -> None:
    with pytest.raises(UsageError) as caught:
        PROVIDER.validate(request_)
    assert "apimart" in caught.value.message
    assert option in caught.value.message


def test_seed_refusal_hints_at_param() -> None:
    with pytest.raises(UsageError, match="--param seed"):
        PROVIDER.validate(GenerationRequest("a red fox", seed=3))


def test_create_answer_with_data_as_a_list() -> None:
    task = submitted()
    assert task.task_id == "task_01KFG5BBFNK1YQDTJDZY0P0QT2"
    assert task.status is TaskStatus.QUEUED
    assert task.raw_status == "submitted"
    assert task.provider == "apimart"
    assert task.model == "flux-2-pro"
    assert task.base_url == BASE


@pytest.mark.parametrize("key", ["id", "task_id"])
def test_create_answer_with_data_as_an_object(key: str) -> None:
    body = {"code": 200, "data": {key: "task_X", "status": "pending"}}
    task = PROVIDER.parse_create(body, GenerationRequest("a red fox"), BASE)
    assert task.task_id == "task_X"
    assert task.status is TaskStatus.QUEUED


def test_create_answer_with_error_envelope_is_an_api_error() -> None:
    with pytest.raises(ApiError, match="bad size"):
        PROVIDER.parse_create(
            {"code": 400, "message": "bad size", "data": None}, GenerationRequest("a fox"), BASE
        )


def test_finished_task_gives_urls_and_the_stated_expiry() -> None:
    task = PROVIDER.parse_poll(FINISHED, submitted())
    assert task.status is TaskStatus.SUCCEEDED
    assert [image.url for image in task.images] == ["https://upload.apimart.ai/f/image/x_0.png"]
    assert task.expires_at == datetime.fromtimestamp(1763174708, tz=timezone.utc)
    assert task.created_at == datetime.fromtimestamp(1763088289, tz=timezone.utc)
    assert task.cost is None


def test_image_url_as_a_plain_string() -> None:
    body: dict[str, Any] = {
        "code": 200,
        "data": {
            "id": "t",
            "status": "completed",
            "result": {
                "images": [
                    {"url": "https://upload.apimart.ai/a.png"},
                    {"url": ["https://upload.apimart.ai/b.png", "https://upload.apimart.ai/a.png"]},
                ]
            },
        },
    }
    task = PROVIDER.parse_poll(body, submitted())
    assert [i.url for i in task.images] == [
        "https://upload.apimart.ai/a.png",
        "https://upload.apimart.ai/b.png",
    ]


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("submitted", TaskStatus.QUEUED),
        ("pending", TaskStatus.QUEUED),
        ("processing", TaskStatus.RUNNING),
        ("failed", TaskStatus.FAILED),
        ("cancelled", TaskStatus.FAILED),
        ("PROCESSING", TaskStatus.RUNNING),
    ],
)
def test_every_documented_status_word(word: str, status: TaskStatus) -> None:
    task = PROVIDER.parse_poll({"code": 200, "data": {"id": "t", "status": word}}, submitted())
    assert task.status is status
    assert task.unknown_status is None


def test_failed_and_cancelled_carry_an_error() -> None:
    body = {"code": 200, "data": {"id": "t", "status": "cancelled"}}
    task = PROVIDER.parse_poll(body, submitted())
    assert task.error is not None
    assert task.error.code == "cancelled"


def test_poll_call() -> None:
    call = PROVIDER.build_poll(submitted())
    assert (call.method, call.url, call.paid) == (
        "GET",
        "/v1/tasks/task_01KFG5BBFNK1YQDTJDZY0P0QT2",
        False,
    )


def test_price_is_not_estimated() -> None:
    # No amounts are published; each task reports what it cost (test_cost_and_credits_cost).
    assert PROVIDER.estimate_cost(GenerationRequest("a red fox")) is None


def test_bearer_auth() -> None:
    assert PROVIDER.auth_headers("k") == {"Authorization": "Bearer k"}


# --- APIMart as it is today (apimart-ai/apimart-skills: api-contract.md, apimart-media.mjs) ---


def test_create_asks_for_the_response_version_in_which_data_is_an_object() -> None:
    call = PROVIDER.build_create(GenerationRequest("a red fox"))
    assert call.headers == {"X-APIMart-Response-Version": "2026-07-27"}
    assert not call.idempotent


def test_idempotency_key_makes_the_create_safe_to_send_again() -> None:
    call = PROVIDER.with_idempotency_key(PROVIDER.build_create(GenerationRequest("a fox")), "k1")
    assert call.headers is not None and call.headers["Idempotency-Key"] == "k1"
    assert call.idempotent and call.paid
    assert PROVIDER.capabilities.idempotent_create


def test_idempotency_keys_are_stable_per_request_and_attempt() -> None:
    from flux2_cli.providers.base import idempotency_key

    first = idempotency_key("fp", 0)
    assert first == idempotency_key("fp", 0)
    assert first != idempotency_key("fp", 1) != idempotency_key("other", 0)
    # APIMart's own client: 1-191 visible ASCII characters without spaces.
    assert re.fullmatch(r"[!-~]{1,191}", first)


def test_create_answer_in_the_newer_version() -> None:
    body = {
        "code": 200,
        "data": {"id": "task_01V2", "object": "generation.task", "status": "submitted"},
    }
    task = PROVIDER.parse_create(body, GenerationRequest("a red fox"), BASE)
    assert task.task_id == "task_01V2"


def test_cost_and_credits_cost_are_reported() -> None:
    body = {**FINISHED, "data": {**FINISHED["data"], "cost": 0.024, "credits_cost": 2.4}}
    task = PROVIDER.parse_poll(body, submitted())
    assert task.cost is not None and (task.cost.usd, task.cost.credits) == (0.024, 2.4)


def test_urls_last_72_hours_when_no_expires_at() -> None:
    data = {**FINISHED["data"], "result": {"images": [{"url": "https://upload.apimart.ai/x.png"}]}}
    task = PROVIDER.parse_poll({"code": 200, "data": data}, submitted())
    assert task.expires_at is not None
    left = task.expires_at - datetime.now(timezone.utc)
    assert timedelta(hours=71) < left <= timedelta(hours=72)


@pytest.mark.parametrize(
    ("body", "error", "exit_code"),
    [
        ({"success": False, "message": "model is not available"}, BadRequestError, 2),
        ({"success": False, "message": "Insufficient balance"}, CreditsError, 4),
        ({"success": False, "error": {"code": 401, "message": "bad key"}}, AuthError, 3),
    ],
)
def test_success_false_is_the_api_refusing(
    body: dict[str, Any], error: type[Exception], exit_code: int
) -> None:
    with pytest.raises(error) as caught:
        PROVIDER.parse_create(body, GenerationRequest("a red fox"), BASE)
    assert getattr(caught.value, "exit_code", None) == exit_code
    message = body.get("message") or body["error"]["message"]
    assert message in str(caught.value)
