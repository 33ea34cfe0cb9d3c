"""Black Forest Labs translator: the documented payloads, dict in and dict out."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from flux2_cli.errors import (
    BadRequestError,
    RateLimitError,
    UsageError,
)
from flux2_cli.providers.bfl import CAPABILITIES, BflProvider, estimate_credits, trusted_poll_url
from flux2_cli.request import GenerationRequest
from flux2_cli.task import Cost, Task, TaskStatus, utc_now

BASE = "https://api.bfl.ai"
PROVIDER = BflProvider()
TASK_ID = "d5ba37dc-1111"
SUBMIT = {
    "id": TASK_ID,
    "polling_url": f"https://api.eu2.bfl.ai/v1/get_result?id={TASK_ID}",
    "cost": 3.0,
    "input_mp": 0.0,
    "output_mp": 1.05,
}
READY = {
    "id": TASK_ID,
    "status": "Ready",
    "result": {"sample": "https://delivery.bfl.ai/sample.jpeg", "prompt": "a fox", "seed": 42},
    "progress": None,
}


def submitted(body: dict[str, Any] | None = None, base_url: str = BASE) -> Task:
    return PROVIDER.parse_create(body or SUBMIT, GenerationRequest("a red fox"), base_url)


def test_x_key_header() -> None:
    assert PROVIDER.auth_headers("KEY") == {"x-key": "KEY"}
    assert CAPABILITIES.auth_header == "x-key"


def test_create_body_with_every_option() -> None:
    request = GenerationRequest(
        "a red fox",
        refs=("https://example.com/a.png", "QUJD"),
        seed=42,
        width=1024,
        height=768,
        format="webp",
        safety=5,
        callback_url="https://hook.example/done",
        webhook_secret="s3cret",
    )
    PROVIDER.validate(GenerationRequest("a red fox", refs=("https://example.com/a.png",)))
    call = PROVIDER.build_create(request)
    assert (call.method, call.url, call.paid) == ("POST", "/v1/flux-2-pro", True)
    assert call.json == {
        "prompt": "a red fox",
        "width": 1024,
        "height": 768,
        "input_image": "https://example.com/a.png",
        "input_image_2": "QUJD",
        "seed": 42,
        "safety_tolerance": 5,
        "output_format": "webp",
        "webhook_url": "https://hook.example/done",
        "webhook_secret": "s3cret",
    }


@pytest.mark.parametrize(
    ("request_", "path"),
    [
        (GenerationRequest("a red fox", mode="pro"), "/v1/flux-2-pro"),
        (GenerationRequest("a red fox", mode="flex"), "/v1/flux-2-flex"),
        (GenerationRequest("a red fox", model="flux-2-max"), "/v1/flux-2-max"),
    ],
)
def test_model_is_the_path(request_: GenerationRequest, path: str) -> None:
    call = PROVIDER.build_create(request_)
    assert call.url == path
    assert call.json is not None and "model" not in call.json


def test_minimal_body_sizes_from_the_table_snapped_to_16() -> None:
    call = PROVIDER.build_create(GenerationRequest("a red fox", ratio="9:16"))
    assert call.json == {"prompt": "a red fox", "width": 1088, "height": 1920}


def test_flex_params_pass_through() -> None:
    params = {"steps": 30, "guidance": 4.5, "prompt_upsampling": True}
    request = GenerationRequest("a red fox", mode="flex", params=params)
    PROVIDER.validate(request)
    body = PROVIDER.build_create(request).json
    assert body is not None
    assert {k: body[k] for k in params} == params


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 51}, "steps"),
        ({"steps": 2.5}, "steps"),
        ({"steps": "10"}, "steps"),
        ({"guidance": 1.4}, "guidance"),
        ({"guidance": 10.5}, "guidance"),
        ({"guidance": True}, "guidance"),
        ({"prompt_upsampling": "yes"}, "prompt_upsampling"),
    ],
)
def test_flex_param_ranges(params: dict[str, Any], name: str) -> None:
    with pytest.raises(UsageError) as caught:
        PROVIDER.validate(GenerationRequest("a red fox", mode="flex", params=params))
    assert "bfl" in caught.value.message and name in caught.value.message


@pytest.mark.parametrize(("steps", "guidance"), [(1, 1.5), (50, 10), (28, 5)])
def test_flex_param_bounds_accepted(steps: int, guidance: float) -> None:
    params = {"steps": steps, "guidance": guidance}
    PROVIDER.validate(GenerationRequest("a red fox", mode="flex", params=params))


@pytest.mark.parametrize(
    ("request_", "option"),
    [
        (GenerationRequest("a red fox", width=1000, height=1024), "--width"),
        (GenerationRequest("a red fox", width=48, height=1024), "--width"),
        (GenerationRequest("a red fox", width=2064, height=2048), "--width/--height"),
        (GenerationRequest("a red fox", safety=6), "--safety"),
        (GenerationRequest("a red fox", format="gif"), "--format"),
        (GenerationRequest("a red fox", model="../v2/x"), "--model"),
        (GenerationRequest("a red fox", webhook_secret="s"), "webhook secret"),
    ],
)
def test_validate_refuses(request_: GenerationRequest, option: str) -> None:
    with pytest.raises(UsageError) as caught:
        PROVIDER.validate(request_)
    assert "bfl" in caught.value.message and option in caught.value.message


def test_four_megapixels_is_the_cap() -> None:
    PROVIDER.validate(GenerationRequest("a red fox", width=2048, height=2048))


def test_local_refs_are_allowed_by_validation() -> None:
    PROVIDER.validate(GenerationRequest("a red fox", refs=("./me.png",)))


def test_submit_answer_id_poll_url_and_cost() -> None:
    task = submitted()
    assert task.task_id == TASK_ID
    assert task.status is TaskStatus.QUEUED
    assert task.poll_url == SUBMIT["polling_url"]
    assert task.cost == Cost(credits=3.0, usd=0.03)
    assert task.model == "flux-2-pro"


def test_poll_uses_the_returned_url_on_another_host() -> None:
    call = submitted()
    poll = PROVIDER.build_poll(call)
    assert (poll.method, poll.url, poll.params) == ("GET", SUBMIT["polling_url"], None)
    assert poll.authenticated is True


def test_poll_without_polling_url_uses_get_result() -> None:
    task = submitted({"id": TASK_ID, "cost": 3.0})
    assert task.poll_url is None
    poll = PROVIDER.build_poll(task)
    assert (poll.url, poll.params) == ("/v1/get_result", {"id": TASK_ID})


def test_untrusted_polling_url_is_not_followed_with_the_key() -> None:
    task = submitted({"id": TASK_ID, "polling_url": "https://evil.example/steal"})
    assert task.poll_url is None
    assert PROVIDER.build_poll(task).url == "/v1/get_result"


@pytest.mark.parametrize(
    ("url", "base", "trusted"),
    [
        ("https://api.eu2.bfl.ai/v1/get_result?id=1", BASE, True),
        ("https://bfl.ai/x", BASE, True),
        ("http://api.eu.bfl.ai/x", BASE, False),
        ("https://notbfl.ai/x", BASE, False),
        ("https://bfl.ai.evil.example/x", BASE, False),
        ("http://127.0.0.1:8000/v1/get_result?id=1", "http://127.0.0.1:8000", True),
        ("not a url", BASE, False),
        # The key must not travel in clear text, nor to another service on the same host.
        ("http://api.bfl.ai/v1/get_result?id=1", "https://api.bfl.ai", False),
        ("http://127.0.0.1:9999/v1/get_result?id=1", "http://127.0.0.1:8000", False),
        ("https://proxy.example/v1/get_result?id=1", "https://proxy.example/", True),
        ("https://proxy.example:443/v1/get_result?id=1", "https://proxy.example", True),
    ],
)
def test_trusted_poll_url(url: str, base: str, trusted: bool) -> None:
    assert trusted_poll_url(url, base) is trusted


def test_ready_result() -> None:
    task = PROVIDER.parse_poll(READY, submitted())
    assert task.status is TaskStatus.SUCCEEDED
    assert [i.url for i in task.images] == ["https://delivery.bfl.ai/sample.jpeg"]
    assert task.cost == Cost(credits=3.0, usd=0.03)  # kept from the submit answer
    assert task.expires_at is not None and task.created_at is not None
    lifetime = task.expires_at - task.created_at
    assert lifetime.total_seconds() <= 10 * 60 + 5


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("Pending", TaskStatus.QUEUED),
        ("Error", TaskStatus.FAILED),
        ("Request Moderated", TaskStatus.FAILED),
        ("Content Moderated", TaskStatus.FAILED),
        ("Task not found", TaskStatus.FAILED),
    ],
)
def test_every_documented_status_word(word: str, status: TaskStatus) -> None:
    task = PROVIDER.parse_poll({"id": TASK_ID, "status": word, "result": None}, submitted())
    assert task.status is status
    assert task.unknown_status is None


def test_task_not_found_is_the_not_found_code() -> None:
    # jobs reads this code: "task not found or expired" (after the grace period, row 67).
    task = PROVIDER.parse_poll({"id": TASK_ID, "status": "Task not found"}, submitted())
    assert task.error is not None and task.error.code == "not_found"


@pytest.mark.parametrize("word", ["Request Moderated", "Content Moderated"])
def test_moderated_has_a_moderation_code_and_reasons(word: str) -> None:
    body = {"id": TASK_ID, "status": word, "details": {"Moderation Reasons": ["Derivative"]}}
    task = PROVIDER.parse_poll(body, submitted())
    assert task.error is not None
    assert task.error.code == "moderated"
    assert word in task.error.message and "Derivative" in task.error.message


def test_error_status_keeps_code() -> None:
    task = PROVIDER.parse_poll({"id": TASK_ID, "status": "Error"}, submitted())
    assert task.error is not None and task.error.code == "Error"


def test_fastapi_422_is_a_bad_request_with_the_detail() -> None:
    body = {
        "detail": [
            {"loc": ["body", "width"], "msg": "must be a multiple of 16", "type": "value_error"},
            {"loc": ["body", "seed"], "msg": "not an integer", "type": "type_error"},
        ]
    }
    error = PROVIDER.error_for(422, body, "")
    assert isinstance(error, BadRequestError)
    assert error.exit_code == 2
    assert "width: must be a multiple of 16" in error.message
    assert "seed: not an integer" in error.message


@pytest.mark.parametrize(
    ("model", "width", "height", "inputs", "credits"),
    [
        # BFL's formula: first MP + (output MP - 1) x rate + input MP x rate, MP = 10^6 pixels
        # (black-forest-labs/skills, model-selection-guide.md; flex 6 c/MP per the updates).
        ("flux-2-pro", 1000, 1000, 0.0, 3.0),
        ("flux-2-pro", 1024, 1024, 0.0, 3.073),
        ("flux-2-pro", 2000, 2000, 0.0, 7.5),
        ("flux-2-pro", 1000, 1000, 1.0, 4.5),  # the table's "1MP I2I $0.045"
        ("flux-2-flex", 1000, 1000, 0.0, 6.0),
        ("flux-2-flex", 2048, 1152, 0.0, 14.156),  # was 15 with whole 2^20 steps at 5 c
        ("flux-2-max", 2000, 2000, 0.0, 16.0),
        ("flux-2-max", 1000, 1000, 1.0, 10.0),  # "1MP I2I $0.10"
        ("flux-2-klein-4b", 1000, 1000, 0.0, 1.4),
        ("flux-2-klein-4b", 1000, 1000, 1.0, 1.5),  # "$0.015"
        ("flux-2-klein-9b", 1000, 1000, 1.0, 1.7),  # "$0.017"
        ("flux-2-klein-9b-preview", 2000, 2000, 0.0, 2.1),
        ("flux-2-pro-preview", 1000, 1000, 0.0, 3.0),
        ("flux-2-pro", 64, 64, 0.0, 3.0),  # the first megapixel is charged whole
        ("something-else", 1024, 1024, 0.0, None),
    ],
)
def test_estimate_credits(
    model: str, width: int, height: int, inputs: float, credits: float | None
) -> None:
    assert estimate_credits(model, width, height, inputs) == credits


def test_estimate_cost_counts_each_reference_as_one_megapixel() -> None:
    cost = PROVIDER.estimate_cost(GenerationRequest("a red fox", width=1000, height=1000))
    assert cost == Cost(credits=3.0, usd=0.03)
    with_ref = GenerationRequest("a fox", width=1000, height=1000, refs=("https://e.x/a.png",))
    assert PROVIDER.estimate_cost(with_ref) == Cost(credits=4.5, usd=0.045)


def test_regions() -> None:
    assert dict(CAPABILITIES.regions) == {
        "eu": "https://api.eu.bfl.ai",
        "us": "https://api.us.bfl.ai",
    }


def test_size_rule_in_words() -> None:
    # Printed as count / 1e6 this was "4.1943 MP": the exact pixel count is shown instead.
    rule = CAPABILITIES.size_rule
    assert rule is not None
    assert rule.describe() == "a multiple of 16, at least 64, at most 4,194,304 pixels in all"
    assert rule.violation(2064, 2048) == "2064×2048 is over 4,194,304 pixels"


@pytest.mark.parametrize("cost", [float("nan"), float("inf"), -3.0, "NaN", "Infinity", "-1"])
def test_a_cost_that_is_not_a_finite_amount_is_ignored(cost: Any) -> None:
    # json.loads accepts NaN and 1e400 (inf): a --json document holding them is not JSON.
    task = submitted({"id": TASK_ID, "cost": cost})
    assert task.cost is None
    json.dumps(task.to_json(), allow_nan=False)


# --- BFL as it is today (issue 14; wire-contracts.md "Updates since the first release") ------

ALL_MODELS = [
    "flux-2-pro",
    "flux-2-flex",
    "flux-2-max",
    "flux-2-klein-4b",
    "flux-2-klein-9b",
    "flux-2-pro-preview",
    "flux-2-klein-9b-preview",
]


def test_every_model_is_listed_with_limits_and_prices() -> None:
    details = {d["id"]: d for d in CAPABILITIES.to_json()["model_details"]}
    assert list(details) == ALL_MODELS
    assert details["flux-2-klein-4b"]["max_refs"] == 4
    assert details["flux-2-klein-9b"]["formats"] == ["jpeg", "png"]
    assert details["flux-2-pro"]["max_refs"] == 8
    assert (
        details["flux-2-klein-4b"]["price_first_mp_cents"],
        details["flux-2-klein-4b"]["price_per_mp_cents"],
    ) == (1.4, 0.1)
    assert (
        details["flux-2-klein-9b"]["price_first_mp_cents"],
        details["flux-2-klein-9b"]["price_per_mp_cents"],
    ) == (1.5, 0.2)
    assert details["flux-2-flex"]["price_per_mp_cents"] == 6.0
    assert "reproducibility" in details["flux-2-pro"]["note"]
    assert CAPABILITIES.to_json()["prompt_chars"] == [3, None]


@pytest.mark.parametrize("model", ALL_MODELS)
def test_every_model_is_its_own_path(model: str) -> None:
    request = GenerationRequest("a red fox", model=model)
    PROVIDER.validate(request)
    assert PROVIDER.build_create(request).url == f"/v1/{model}"


@pytest.mark.parametrize("model", ["flux-2-klein-4b", "flux-2-klein-9b", "flux-2-klein-9b-preview"])
def test_klein_refuses_a_fifth_reference_and_webp_before_sending(model: str) -> None:
    four = tuple(f"https://e.example/{n}.png" for n in range(4))
    PROVIDER.validate(GenerationRequest("a red fox", model=model, refs=four))
    with pytest.raises(UsageError) as caught:
        PROVIDER.validate(
            GenerationRequest("a red fox", model=model, refs=(*four, "https://e.example/5.png"))
        )
    assert "--ref" in caught.value.message and "at most 4" in caught.value.message
    assert model in caught.value.message
    with pytest.raises(UsageError, match="--format"):
        PROVIDER.validate(GenerationRequest("a red fox", model=model, format="webp"))


@pytest.mark.parametrize(
    ("request_", "field", "value"),
    [
        (GenerationRequest("a red fox", upsample=False), "disable_pup", True),
        (GenerationRequest("a red fox", model="flux-2-max", upsample=False), "disable_pup", True),
        (
            GenerationRequest("a red fox", model="flux-2-pro-preview", upsample=False),
            "disable_pup",
            True,
        ),
        (GenerationRequest("a red fox", mode="flex", upsample=False), "prompt_upsampling", False),
    ],
)
def test_no_upsample_maps_to_each_models_switch(
    request_: GenerationRequest, field: str, value: bool
) -> None:
    PROVIDER.validate(request_)
    body = PROVIDER.build_create(request_).json
    assert body is not None and body[field] is value
    other = {"disable_pup", "prompt_upsampling"} - {field}
    assert not other & set(body)


def test_the_default_sends_no_upsampling_field() -> None:
    body = PROVIDER.build_create(GenerationRequest("a red fox")).json
    assert body is not None and "disable_pup" not in body and "prompt_upsampling" not in body


def test_no_upsample_is_refused_where_the_model_has_no_switch() -> None:
    with pytest.raises(UsageError) as caught:
        PROVIDER.validate(GenerationRequest("a red fox", model="flux-2-klein-4b", upsample=False))
    assert "--no-upsample" in caught.value.message and "bfl" in caught.value.message


def test_size_is_sent_only_when_asked_for() -> None:
    body = PROVIDER.build_create(GenerationRequest("a red fox", default_size=True)).json
    assert body == {"prompt": "a red fox"}
    asked = PROVIDER.build_create(GenerationRequest("a red fox", ratio="16:9")).json
    assert asked is not None and (asked["width"], asked["height"]) == (1920, 1088)
    assert CAPABILITIES.size_optional


def test_prompts_past_five_thousand_characters_are_taken() -> None:
    # "up to 32K tokens" (BFL's guide); the 3-5,000 bound is API in One's.
    PROVIDER.validate(GenerationRequest("x" * 30000))


def test_polling_url_without_an_id_gets_it() -> None:
    task = submitted({**SUBMIT, "polling_url": "https://api.eu2.bfl.ai/v1/get_result"})
    call = PROVIDER.build_poll(task)
    assert call.url == f"https://api.eu2.bfl.ai/v1/get_result?id={TASK_ID}"
    kept = PROVIDER.build_poll(submitted())
    assert kept.url == SUBMIT["polling_url"]


def test_without_polling_url_the_task_is_polled_where_it_was_made() -> None:
    # Regional hosts answer 404 for each other's tasks: the client's base is the task's own.
    task = submitted({"id": TASK_ID}, base_url="https://api.eu.bfl.ai")
    call = PROVIDER.build_poll(task)
    assert (call.url, call.params) == ("/v1/get_result", {"id": TASK_ID})
    assert task.base_url == "https://api.eu.bfl.ai"


def test_a_poll_422_with_a_task_body_is_an_answer_and_a_failed_task() -> None:
    call = PROVIDER.build_poll(submitted())
    assert 422 in call.answer_statuses
    body = {"id": TASK_ID, "status": "Error", "result": None, "details": "bad input image"}
    task = PROVIDER.parse_poll(body, submitted())
    assert task.status is TaskStatus.FAILED
    assert task.error is not None and "bad input image" in task.error.message


def test_a_poll_422_with_fastapi_detail_is_a_bad_request() -> None:
    body = {"detail": [{"loc": ["query", "id"], "msg": "Field required", "type": "missing"}]}
    with pytest.raises(BadRequestError, match="Field required"):
        PROVIDER.parse_poll(body, submitted())


def test_expiry_comes_from_the_signed_se_parameter() -> None:
    sample = (
        "https://delivery-eu1.bfl.ai/results/ab/sample.jpeg"
        "?se=2026-11-30T09%3A12%3A00Z&sp=r&sv=2024-11-04&sig=abc"
    )
    task = PROVIDER.parse_poll({**READY, "result": {"sample": sample}}, submitted())
    assert task.expires_at == datetime(2026, 11, 30, 9, 12, tzinfo=timezone.utc)


def test_without_se_the_expiry_is_ten_minutes() -> None:
    task = PROVIDER.parse_poll(READY, submitted())
    assert task.expires_at is not None
    assert timedelta(minutes=9) < task.expires_at - utc_now() <= timedelta(minutes=10)


def test_a_404_on_the_create_is_an_unknown_model() -> None:
    request = GenerationRequest("a red fox", model="flux-2-prox")
    error = PROVIDER.create_not_found(request, PROVIDER.build_create(request))
    assert isinstance(error, BadRequestError) and error.exit_code == 2
    assert "unknown model 'flux-2-prox'" in error.message
    assert any("did you mean 'flux-2-pro'" in hint for hint in error.hints)


def test_the_documented_429_body_gives_its_message_and_wait() -> None:
    body = {
        "error": "rate_limit_exceeded",
        "message": "Too many concurrent requests",
        "retry_after": 5,
    }
    error = PROVIDER.error_for(429, body, json.dumps(body))
    assert "Too many concurrent requests" in error.message
    assert error.code == "rate_limit_exceeded"
    assert isinstance(error, RateLimitError) and error.retry_after == "5"
