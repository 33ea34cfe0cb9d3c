"""API in One translator: the documented payloads, dict in and dict out."""

from __future__ import annotations

import pytest

from flux2_cli.errors import (
    UsageError,
)
from flux2_cli.providers.apiinone import ApiInOneProvider
from flux2_cli.request import GenerationRequest
from flux2_cli.task import Cost, Task, TaskStatus

BASE = "https://apiin.one"
PROVIDER = ApiInOneProvider()


def submitted() -> Task:
    body = {
        "code": 200,
        "message": "success",
        "data": {"task_id": "n41xxxx_flux2", "status": "IN_PROGRESS"},
    }
    return PROVIDER.parse_create(body, GenerationRequest("a red fox"), BASE)


def test_create_body() -> None:
    request = GenerationRequest(
        "a red fox",
        ratio="3:2",
        res="2K",
        mode="flex",
        refs=("https://example.com/a.png",),
        callback_url="https://hook.example/x",
    )
    PROVIDER.validate(request)
    call = PROVIDER.build_create(request)
    assert (call.method, call.url, call.paid) == ("POST", "/api/v1/images/generations", True)
    assert call.json == {
        "model": "flux-2",
        "prompt": "a red fox",
        "aspect_ratio": "3:2",
        "resolution": "2K",
        "type": "flex",
        "input_urls": ["https://example.com/a.png"],
        "callback_url": "https://hook.example/x",
    }


def test_minimal_body() -> None:
    assert PROVIDER.build_create(GenerationRequest("a red fox")).json == {
        "model": "flux-2",
        "prompt": "a red fox",
        "aspect_ratio": "1:1",
        "resolution": "1K",
        "type": "pro",
    }


def test_create_answer_envelope_shape() -> None:
    task = submitted()
    assert task.task_id == "n41xxxx_flux2"
    assert task.status is TaskStatus.RUNNING


def test_create_answer_flat_shape() -> None:
    body = {
        "id": "task_abc123",
        "status": "pending",
        "model": "flux-2",
        "created_at": "2026-02-24T12:00:00Z",
    }
    task = PROVIDER.parse_create(body, GenerationRequest("a red fox"), BASE)
    assert task.task_id == "task_abc123"
    assert task.status is TaskStatus.QUEUED
    assert (
        task.created_at is not None and task.created_at.isoformat() == "2026-02-24T12:00:00+00:00"
    )


@pytest.mark.parametrize(
    ("word", "status"),
    [
        ("IN_PROGRESS", TaskStatus.RUNNING),
        ("pending", TaskStatus.QUEUED),
        ("processing", TaskStatus.RUNNING),
        ("FAILED", TaskStatus.FAILED),
        ("failed", TaskStatus.FAILED),
        ("ERROR", TaskStatus.FAILED),
        ("error", TaskStatus.FAILED),
    ],
)
def test_status_words(word: str, status: TaskStatus) -> None:
    task = PROVIDER.parse_poll({"data": {"task_id": "t", "status": word}, "code": 200}, submitted())
    assert task.status is status


@pytest.mark.parametrize("word", ["COMPLETED", "completed", "SUCCESS", "success"])
def test_success_words_with_urls(word: str) -> None:
    body = {
        "code": 200,
        "data": {"task_id": "t", "status": word, "images": ["https://x.example/1.png"]},
    }
    task = PROVIDER.parse_poll(body, submitted())
    assert task.status is TaskStatus.SUCCEEDED
    assert [i.url for i in task.images] == ["https://x.example/1.png"]


def test_unknown_word_keeps_polling_and_is_named() -> None:
    task = PROVIDER.parse_poll({"task_id": "t", "status": "WARMING_UP"}, submitted())
    assert task.status is TaskStatus.RUNNING
    assert task.unknown_status == "WARMING_UP"


def test_poll_call() -> None:
    assert PROVIDER.build_poll(submitted()).url == "/api/v1/tasks/n41xxxx_flux2"


@pytest.mark.parametrize(
    ("request_", "option"),
    [
        (GenerationRequest("a red fox", seed=1), "--seed"),
        (GenerationRequest("a red fox", format="png"), "--format"),
        (GenerationRequest("a red fox", safety=1), "--safety"),
        (GenerationRequest("a red fox", width=1024, height=1024), "--width"),
        (GenerationRequest("a red fox", refs=("me.png",)), "--ref"),
    ],
)
def test_validate_refuses(request_: GenerationRequest, option: str) -> None:
    with pytest.raises(UsageError) as caught:
        PROVIDER.validate(request_)
    assert "apiinone" in caught.value.message and option in caught.value.message


@pytest.mark.parametrize(
    ("mode", "res", "credits"),
    [("pro", "1K", 5), ("pro", "2K", 7), ("flex", "1K", 14), ("flex", "2K", 24)],
)
def test_price_table(mode: str, res: str, credits: int) -> None:
    cost = PROVIDER.estimate_cost(GenerationRequest("a red fox", mode=mode, res=res))
    assert cost == Cost(credits=credits, usd=credits / 100)


# API in One documents no status body: a finished task's URL is found wherever it has been
# seen, so the task is never polled until the timeout (issue 14).
@pytest.mark.parametrize(
    "body",
    [
        {"status": "COMPLETED", "output": {"image_url": "https://cdn.apiin.one/a.png"}},
        {"status": "COMPLETED", "image_url": "https://cdn.apiin.one/a.png"},
        {"status": "COMPLETED", "data": {"output": {"image_url": "https://cdn.apiin.one/a.png"}}},
        {
            "status": "COMPLETED",
            "data": {"output": {"image_urls": ["https://cdn.apiin.one/a.png"]}},
        },
        {"status": "COMPLETED", "data": {"output": {"url": "https://cdn.apiin.one/a.png"}}},
        {
            "code": 200,
            "message": "success",
            "data": {"status": "COMPLETED", "output": {"image_url": "https://cdn.apiin.one/a.png"}},
        },
    ],
)
def test_image_url_in_every_place_seen(body: dict[str, object]) -> None:
    task = PROVIDER.parse_poll(body, submitted())
    assert task.status is TaskStatus.SUCCEEDED
    assert [image.url for image in task.images] == ["https://cdn.apiin.one/a.png"]


def test_prompt_bounds_are_api_in_ones() -> None:
    assert PROVIDER.capabilities.to_json()["prompt_chars"] == [3, 5000]
    with pytest.raises(UsageError, match="too long"):
        PROVIDER.validate(GenerationRequest("x" * 5001))
