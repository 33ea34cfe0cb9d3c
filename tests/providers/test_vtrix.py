"""Vtrix translator: the documented payloads, dict in and dict out."""

from __future__ import annotations

import json

import pytest

from flux2_cli.errors import (
    AuthError,
    CreditsError,
    UsageError,
)
from flux2_cli.providers import vtrix
from flux2_cli.providers.vtrix import VtrixProvider
from flux2_cli.request import GenerationRequest
from flux2_cli.task import Cost, Task, TaskStatus

BASE = "https://cloud.vtrix.ai"
PROVIDER = VtrixProvider()

FINISHED = {
    "id": "task-1",
    "status": "completed",
    "output": [{"content": [{"type": "image", "url": "https://cdn.vtrix.ai/out.png"}]}],
    "usage": {"cost": "0.05", "discount": 0},
}
FAILED = {
    "id": "task-2",
    "status": "failed",
    "error": {"code": "002014001", "message": "generation failed"},
}


def submitted() -> Task:
    body = {"id": "task-1", "status": "in_progress"}
    return PROVIDER.parse_create(body, GenerationRequest("a red fox"), BASE)


def params_of(body: dict[str, object] | None) -> dict[str, object]:
    """The parameters inside Vtrix's wrapped body."""
    assert body is not None and set(body) == {"model", "input"}
    (block,) = body["input"]  # type: ignore[misc]
    assert set(block) == {"params"}
    params: dict[str, object] = block["params"]
    return params


def test_create_body_with_every_option() -> None:
    # The wrapped shape of Vtrix's official CLI (VtrixAI/vtrix-cli internal/generation/
    # client.go: Request{Model, Input: []InputBlock{{Params}}}); safety an integer.
    refs = tuple(f"https://example.com/{n}.png" for n in range(1, 9))
    request = GenerationRequest(
        "a red fox", refs=refs, seed=42, width=1024, height=768, format="png", safety=1
    )
    PROVIDER.validate(request)
    call = PROVIDER.build_create(request)
    assert (call.method, call.url, call.paid) == ("POST", "/model/v1/generation", True)
    assert call.json is not None and call.json["model"] == "flux_2_pro"
    assert params_of(call.json) == {
        "prompt": "a red fox",
        "width": 1024,
        "height": 768,
        "input_image": "https://example.com/1.png",
        "input_image_2": "https://example.com/2.png",
        "input_image_3": "https://example.com/3.png",
        "input_image_4": "https://example.com/4.png",
        "input_image_5": "https://example.com/5.png",
        "input_image_6": "https://example.com/6.png",
        "input_image_7": "https://example.com/7.png",
        "input_image_8": "https://example.com/8.png",
        "seed": 42,
        "safety_tolerance": 1,
        "output_format": "png",
    }


def test_safety_is_sent_as_an_integer() -> None:
    body = PROVIDER.build_create(GenerationRequest("a red fox", safety=5)).json
    value = params_of(body)["safety_tolerance"]
    assert value == 5 and type(value) is int


def test_minimal_body_sizes_from_the_table_snapped_to_32() -> None:
    call = PROVIDER.build_create(GenerationRequest("a red fox", ratio="16:9", res="1K"))
    assert call.json == {
        "model": "flux_2_pro",
        "input": [{"params": {"prompt": "a red fox", "width": 1920, "height": 1088}}],
    }


def test_params_go_inside_and_win() -> None:
    request = GenerationRequest("a red fox", params={"extra": {"a": 1}, "width": 512})
    params = params_of(PROVIDER.build_create(request).json)
    assert params["extra"] == {"a": 1}
    assert params["width"] == 512


def test_flat_layout_is_one_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vtrix, "WRAP_PARAMS", False)
    body = PROVIDER.build_create(GenerationRequest("a red fox")).json
    assert body == {"model": "flux_2_pro", "prompt": "a red fox", "width": 1440, "height": 1440}


def test_model_override() -> None:
    request = GenerationRequest("a red fox", model="flux_2_max")
    PROVIDER.validate(request)
    body = PROVIDER.build_create(request).json
    assert body is not None and body["model"] == "flux_2_max"


def test_flex_is_refused_naming_vtrix() -> None:
    with pytest.raises(UsageError) as caught:
        PROVIDER.validate(GenerationRequest("a red fox", mode="flex"))
    assert "vtrix" in caught.value.message and "--mode" in caught.value.message


def test_flex_with_an_explicit_model_is_accepted() -> None:
    request = GenerationRequest("a red fox", mode="flex", model="flux_2_max")
    PROVIDER.validate(request)
    body = PROVIDER.build_create(request).json
    assert body is not None and body["model"] == "flux_2_max"


@pytest.mark.parametrize(
    ("request_", "option"),
    [
        (GenerationRequest("a red fox", refs=("photo.png",)), "--ref"),
        (GenerationRequest("a red fox", width=1000, height=1024), "--width"),
        (GenerationRequest("a red fox", width=1024, height=32), "--height"),
        (GenerationRequest("a red fox", format="webp"), "--format"),
        (GenerationRequest("a red fox", safety=6), "--safety"),
        (GenerationRequest("a red fox", safety=0), "--safety"),
        (GenerationRequest("a red fox", webhook_secret="s"), "webhook secret"),
        # The flux-2-pro page lists no webhook fields: refused rather than sent to be ignored.
        (GenerationRequest("a red fox", callback_url="https://hook.example/x"), "--callback-url"),
        (GenerationRequest("a red fox", upsample=False), "--no-upsample"),
    ],
)
def test_validate_refuses(request_: GenerationRequest, option: str) -> None:
    with pytest.raises(UsageError) as caught:
        PROVIDER.validate(request_)
    assert "vtrix" in caught.value.message
    assert option in caught.value.message


@pytest.mark.parametrize("safety", [1, 3, 5])
def test_safety_range_accepted(safety: int) -> None:
    PROVIDER.validate(GenerationRequest("a red fox", safety=safety))


def test_create_answer() -> None:
    task = submitted()
    assert task.task_id == "task-1"
    assert task.status is TaskStatus.RUNNING
    assert task.model == "flux_2_pro"


def test_poll_call() -> None:
    call = PROVIDER.build_poll(submitted())
    assert (call.method, call.url) == ("GET", "/model/v1/generation/task/task-1")


def test_finished_task_urls_and_cost() -> None:
    task = PROVIDER.parse_poll(FINISHED, submitted())
    assert task.status is TaskStatus.SUCCEEDED
    assert [i.url for i in task.images] == ["https://cdn.vtrix.ai/out.png"]
    assert task.cost == Cost(usd=0.05)
    assert task.cost.to_json() == {"credits": None, "usd": 0.05}
    assert task.expires_at is not None


@pytest.mark.parametrize("usage", [None, {}, {"cost": None}, {"cost": "n/a"}, "0.05"])
def test_missing_or_odd_cost_is_none(usage: object) -> None:
    body = {**FINISHED, "usage": usage}
    assert PROVIDER.parse_poll(body, submitted()).cost is None


def test_failed_task_carries_the_provider_error() -> None:
    task = PROVIDER.parse_poll(FAILED, submitted())
    assert task.status is TaskStatus.FAILED
    assert task.error is not None
    assert (task.error.code, task.error.message) == ("002014001", "generation failed")


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("in_progress", TaskStatus.RUNNING),
        ("completed", TaskStatus.RUNNING),  # completed without URLs yet: keep polling
        ("failed", TaskStatus.FAILED),
        ("IN_PROGRESS", TaskStatus.RUNNING),
    ],
)
def test_every_documented_status_word(word: str, status: TaskStatus) -> None:
    task = PROVIDER.parse_poll({"id": "task-1", "status": word}, submitted())
    assert task.status is status
    assert task.unknown_status is None


def test_balance_403_is_out_of_credits() -> None:
    body = {"error": {"code": "403", "message": "insufficient balance"}}
    error = PROVIDER.error_for(403, body, "")
    assert isinstance(error, CreditsError)
    assert error.exit_code == 4


def test_balance_403_in_plain_text_is_out_of_credits() -> None:
    error = PROVIDER.error_for(403, None, "Insufficient balance")
    assert isinstance(error, CreditsError)


def test_plain_403_is_a_refused_key() -> None:
    error = PROVIDER.error_for(403, {"error": {"message": "forbidden"}}, "")
    assert isinstance(error, AuthError)
    assert error.exit_code == 3


def test_insufficient_permissions_403_is_a_refused_key_not_credits() -> None:
    error = PROVIDER.error_for(403, {"message": "insufficient permissions for this model"}, "")
    assert isinstance(error, AuthError)
    assert error.exit_code == 3


def test_no_published_price() -> None:
    assert PROVIDER.estimate_cost(GenerationRequest("a red fox")) is None


@pytest.mark.parametrize("cost", ["NaN", "inf", "-0.05", float("nan")])
def test_a_usage_cost_that_is_not_a_finite_amount_is_ignored(cost: object) -> None:
    task = Task(task_id="task-1", provider="vtrix", status=TaskStatus.RUNNING)
    answer = {
        "id": "task-1",
        "status": "completed",
        "output": [{"content": [{"url": "https://c/x.png"}]}],
        "usage": {"cost": cost},
    }
    done = PROVIDER.parse_poll(answer, task)
    assert done.cost is None
    json.dumps(done.to_json(), allow_nan=False)
