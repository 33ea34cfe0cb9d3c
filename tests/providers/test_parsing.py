"""Tolerant parsing: envelopes, ids, statuses, image URLs, errors and times."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from flux2_cli.errors import (
    ApiError,
    AuthError,
    CreditsError,
    NotFoundError,
    ServerError,
    UnexpectedResponseError,
)
from flux2_cli.providers import parsing
from flux2_cli.providers.apiinone import CAPABILITIES
from flux2_cli.task import TaskStatus

URL_A = "https://cdn.example/a.png"
URL_B = "https://cdn.example/b.png"


# --- envelopes ---------------------------------------------------------------------------


def test_envelope_object_is_unwrapped() -> None:
    assert parsing.unwrap_envelope({"code": 200, "message": "ok", "data": {"id": "x"}}) == {
        "id": "x"
    }


def test_envelope_one_item_list_is_unwrapped() -> None:
    assert parsing.unwrap_envelope({"code": 0, "data": [{"task_id": "x"}]}) == {"task_id": "x"}


def test_envelope_longer_list_is_kept() -> None:
    assert parsing.unwrap_envelope({"code": 200, "data": [1, 2]}) == [1, 2]


@pytest.mark.parametrize("code", [400, 500, "1001", -1])
def test_envelope_with_an_error_code_is_an_error(code: object) -> None:
    with pytest.raises(ApiError) as caught:
        parsing.unwrap_envelope({"code": code, "message": "quota", "data": None})
    assert "quota" in caught.value.message
    assert caught.value.code == str(code)


def test_bare_error_code_without_data_is_an_error() -> None:
    with pytest.raises(ApiError, match="broken"):
        parsing.unwrap_envelope({"code": 500, "msg": "broken"})


@pytest.mark.parametrize("code", [{"n": 1}, [500]])
def test_unhashable_code_is_an_error_not_a_crash(code: object) -> None:
    # Found while testing: a dict/list "code" raised TypeError (unhashable) in the set lookup.
    with pytest.raises(ApiError):
        parsing.unwrap_envelope({"code": code, "message": "odd", "data": None})


def test_plain_task_body_passes_through() -> None:
    body = {"id": "t", "status": "Ready", "result": {"sample": URL_A}}
    assert parsing.unwrap_envelope(body) is body


# --- ids and statuses --------------------------------------------------------------------


def test_task_id_key_order() -> None:
    assert parsing.find_task_id({"id": "b", "task_id": "a", "request_id": "c"}) == "a"
    assert parsing.find_task_id({"request_id": "c", "id": "b"}) == "b"
    assert parsing.find_task_id({"request_id": "c"}) == "c"
    assert parsing.find_task_id({"id": 42}) == "42"


@pytest.mark.parametrize("body", [{}, {"id": ""}, {"id": None}, {"id": True}, [], "x"])
def test_no_task_id(body: Any) -> None:
    assert parsing.find_task_id(body) is None


@pytest.mark.parametrize(
    ("body", "raw"),
    [({"status": "Ready"}, "Ready"), ({"state": "running"}, "running"), ({"status": ""}, None)],
)
def test_status_or_state(body: dict[str, Any], raw: str | None) -> None:
    assert parsing.find_status(body) == raw


@pytest.mark.parametrize("word", ["COMPLETED", "completed", "Completed", " completed "])
def test_status_is_case_insensitive(word: str) -> None:
    assert parsing.map_status(word, {}) is TaskStatus.SUCCEEDED


def test_unknown_status_is_none() -> None:
    assert parsing.map_status("warming", {}) is None
    assert parsing.map_status(None, {}) is None


def test_provider_words_come_first() -> None:
    assert parsing.map_status("Pending", {"pending": TaskStatus.RUNNING}) is TaskStatus.RUNNING


# --- image URLs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"images": [{"url": URL_A}]},
        {"images": [URL_A]},
        {"result": {"images": [{"url": URL_A}]}},
        {"result": {"images": [URL_A]}},
        {"result": {"sample": URL_A}},
        {"output": URL_A},
        {"output": [URL_A]},
        {"output": [{"content": [{"type": "image", "url": URL_A}]}]},
        {"output": {"image_urls": [URL_A]}},
        {"image_urls": [URL_A]},
        {"urls": [URL_A]},
        {"url": URL_A},
        {"images": [{"url": [URL_A]}]},
    ],
)
def test_each_usual_place(body: dict[str, Any]) -> None:
    assert parsing.find_image_urls(body) == [URL_A]


def test_string_or_list_and_dedupe_keeping_order() -> None:
    body = {"images": [{"url": [URL_B, URL_A]}, {"url": URL_B}, {"url": URL_A}]}
    assert parsing.find_image_urls(body) == [URL_B, URL_A]


def test_preferred_place_first() -> None:
    body = {"url": URL_A, "result": {"sample": URL_B}}
    assert parsing.find_image_urls(body, ("result.sample",)) == [URL_B]
    assert parsing.find_image_urls(body) == [URL_B]  # result.sample comes before url


def test_non_urls_are_ignored() -> None:
    assert parsing.find_image_urls({"images": ["not a url", {"url": 3}], "url": None}) == []
    assert parsing.find_image_urls(["x"]) == []


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (
            {"error": {"code": 401, "message": "Invalid API key", "type": "auth"}},
            "401",
            "Invalid API key",
        ),
        ({"error": "boom"}, None, "boom"),
        ({"message": "bad prompt", "code": 400}, "400", "bad prompt"),
        ({"detail": "Not authenticated"}, None, "Not authenticated"),
        ({"msg": "slow down"}, None, "slow down"),
        ({"error": {"type": "invalid_request", "message": "x"}}, "invalid_request", "x"),
        ({"code": 1001, "error": {"type": "t", "message": "m"}}, "1001", "m"),
        ("plain text", None, "plain text"),
        ({}, None, None),
    ],
)
def test_error_message_and_code_places(body: Any, code: str | None, message: str | None) -> None:
    assert parsing.find_error(body) == (code, message)


def test_error_fastapi_detail_list() -> None:
    body = {
        "detail": [
            {"loc": ["body", "width"], "msg": "too small", "type": "value_error"},
            {"loc": [], "msg": "bad", "type": "x"},
            "also",
        ]
    }
    assert parsing.find_error(body) == (None, "width: too small; bad; also")


@pytest.mark.parametrize(
    ("status", "body", "text", "cls"),
    [
        (403, {"message": "Insufficient balance"}, "", CreditsError),
        (
            403,
            {"error": {"code": "insufficient_balance", "message": "Forbidden"}},
            "",
            CreditsError,
        ),
        (403, None, "not enough credits", CreditsError),
        (403, {"message": "insufficient permissions"}, "", AuthError),
        (403, {"message": "forbidden"}, "", AuthError),
        (404, {}, "", NotFoundError),
        (410, {}, "", NotFoundError),
        (502, None, "<html><body>Bad gateway</body></html>", ServerError),
    ],
)
def test_api_error_ladder(status: int, body: Any, text: str, cls: type[ApiError]) -> None:
    error = parsing.api_error(CAPABILITIES, status, body, text)
    assert type(error) is cls
    assert error.status_code == status


def test_markup_is_not_quoted() -> None:
    error = parsing.api_error(CAPABILITIES, 502, None, "<html>Bad gateway</html>")
    assert "<html>" not in error.message and "502" in error.message


def test_unlisted_status_is_a_plain_api_error() -> None:
    error = parsing.api_error(CAPABILITIES, 418, {"message": "teapot"}, "")
    assert type(error) is ApiError and "teapot" in error.message


# --- times and JSON ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["2026-02-24T12:00:00Z", "2026-02-24T12:00:00+00:00", 1771934400, "1771934400", 1771934400000],
)
def test_times_iso_and_unix(value: object) -> None:
    expected = datetime(2026, 2, 24, 12, 0, tzinfo=timezone.utc)
    assert parsing.find_time({"created_at": value}, ("created_at",)) == expected


def test_time_keys_in_order_and_garbage_skipped() -> None:
    body = {"created_at": "yesterday", "created": 1771934400}
    assert parsing.find_time(body, ("created_at", "created")) == datetime(
        2026, 2, 24, 12, 0, tzinfo=timezone.utc
    )


def test_expiry_from_first_image() -> None:
    body = {"result": {"images": [{"url": URL_A, "expires_at": 1771934400}]}}
    assert parsing.find_expiry(body) == datetime(2026, 2, 24, 12, 0, tzinfo=timezone.utc)


def test_json_text() -> None:
    assert parsing.parse_json_text('{"a": 1}') == {"a": 1}
    with pytest.raises(UnexpectedResponseError, match="not JSON"):
        parsing.parse_json_text("<html>oops</html>")


def test_excerpt_is_short_and_one_line() -> None:
    text = parsing.excerpt("a\n" * 500)
    assert "\n" not in text and len(text) <= parsing.EXCERPT_CHARS


@pytest.mark.parametrize(
    ("code", "exit_code"),
    [(404, 5), ("404", 5), (401, 3), (402, 4), (422, 2), (500, 7), (1001, 7)],
)
def test_http_like_code_inside_a_200_envelope_takes_the_status_ladder(
    code: object, exit_code: int
) -> None:
    body = {"code": code, "message": "Task not found", "data": None}
    with pytest.raises(ApiError) as info:
        parsing.unwrap_envelope(body)
    assert info.value.exit_code == exit_code
    assert "Task not found" in info.value.message


@pytest.mark.parametrize(("value", "raw"), [(1, "1"), (200, "200"), (2.5, "2.5")])
def test_a_numeric_status_is_an_unknown_status_named_not_ignored(value: Any, raw: str) -> None:
    # "An unknown value keeps polling until --timeout and then says which value it was."
    assert parsing.find_status({"status": value}) == raw
    assert parsing.map_status(parsing.find_status({"status": value}), {}) is None


def test_a_boolean_status_is_no_status() -> None:
    assert parsing.find_status({"status": True}) is None
