"""Task, its JSON shape and the time helpers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from flux2_cli.task import (
    FAR_FUTURE,
    Cost,
    ImageResult,
    Task,
    TaskError,
    TaskStatus,
    format_time,
    parse_time,
    short_id,
    utc_now,
)

TASK_KEYS = {
    "task_id",
    "provider",
    "model",
    "status",
    "created_at",
    "expires_at",
    "images",
    "cost",
    "error",
    "request",
    "sandbox",
}


def test_a_bare_task_has_every_key_with_nulls() -> None:
    data = Task(task_id="t1", provider="apiinone").to_json()
    assert set(data) == TASK_KEYS
    assert data["status"] == "queued"
    assert data["images"] == [] and data["cost"] is None and data["error"] is None


def test_a_full_task_renders_the_contract_shape() -> None:
    created = datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=timezone.utc)
    task = Task(
        task_id="t1",
        provider="bfl",
        model="flux-2-pro",
        status=TaskStatus.FAILED,
        created_at=created,
        expires_at=created + timedelta(hours=24),
        images=(ImageResult(url="https://x/a.png", width=10, height=20, format="png"),),
        cost=Cost(credits=3.0, usd=0.03),
        error=TaskError(code="moderated", message="Content Moderated"),
        request={"prompt": "a fox"},
    )
    data = task.to_json()
    assert data["created_at"] == "2026-11-21T10:00:00Z"
    assert data["expires_at"] == "2026-11-22T10:00:00Z"
    assert data["cost"] == {"credits": 3, "usd": 0.03}  # whole numbers stay integers
    assert data["error"] == {"code": "moderated", "message": "Content Moderated"}
    assert set(data["images"][0]) == {"url", "path", "bytes", "sha256", "width", "height", "format"}


@pytest.mark.parametrize("status", [TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.EXPIRED])
def test_final_states(status: TaskStatus) -> None:
    assert status.is_final


@pytest.mark.parametrize("status", [TaskStatus.QUEUED, TaskStatus.RUNNING])
def test_non_final_states(status: TaskStatus) -> None:
    assert not status.is_final


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-02-24T12:00:00Z", "2026-02-24T12:00:00Z"),
        ("2026-02-24T14:00:00+02:00", "2026-02-24T12:00:00Z"),
        ("2026-02-24T12:00:00", "2026-02-24T12:00:00Z"),  # naive means UTC
        (1763174708, "2025-11-15T02:45:08Z"),
        (1763174708000, "2025-11-15T02:45:08Z"),  # milliseconds
        ("1763174708", "2025-11-15T02:45:08Z"),
    ],
)
def test_parse_time_accepts_iso_and_unix(value: object, expected: str) -> None:
    assert format_time(parse_time(value)) == expected


@pytest.mark.parametrize("value", [None, "", "soon", True, [], {}, float("inf")])
def test_parse_time_refuses_garbage(value: object) -> None:
    assert parse_time(value) is None


@pytest.mark.parametrize(
    ("task_id", "short"),
    [
        ("sbxf54251da8c2742a6a8c5_flux2", "f54251da"),  # not "sbxf5425": sbx is in every id
        ("task_01KFG5BBFNK1YQDTJDZY0P0QT2", "k1yqdtjd"),  # the ULID's random part, not its time
        ("task-4f95c0ffee1234", "4f95c0ff"),  # not "task4f95"
        ("d5ba37dc-1234-4567-89ab-cdef01234567", "d5ba37dc"),
        ("n41xxxx_flux2", "n41xxxx"),
        ("t16", "t16"),
    ],
)
def test_short_id_is_the_distinctive_part(task_id: str, short: str) -> None:
    assert short_id(task_id) == short


def test_short_ids_of_tasks_made_together_differ() -> None:
    # apimart's ULIDs made in the same second share their first 10 characters
    first, second = "task_01KFG5BBFNK1YQDTJDZY0P0QT2", "task_01KFG5BBFNAAAAAAAAAAAAAAAA"
    assert short_id(first) != short_id(second)


# --- row 62: absurd expiry values are far future or absent, never a crash ------------------


@pytest.mark.parametrize(
    "value", ["9999-12-31T23:59:59-05:00", "9999-12-31T23:59:59.999999+00:00", 1e20]
)
def test_row62_expiry_past_the_calendar_is_far_future(value: object) -> None:
    moment = parse_time(value)
    assert moment == FAR_FUTURE
    assert format_time(moment) == "9999-12-31T23:59:59Z"
    assert moment is not None and moment > utc_now()


@pytest.mark.parametrize("value", [-1, -1763174708, "-5", -0.5, float("nan")])
def test_row62_negative_unix_time_is_absent(value: object) -> None:
    assert parse_time(value) is None


def test_row62_a_task_with_a_year_9999_expiry_renders_and_stays_succeeded() -> None:
    from flux2_cli.jobs import as_seen_now
    from flux2_cli.providers.apimart import ApiMartProvider
    from flux2_cli.request import GenerationRequest

    provider = ApiMartProvider()
    task = provider.parse_create(
        {"code": 200, "data": [{"task_id": "task_1"}]}, GenerationRequest("a fox"), "https://x"
    )
    body = {
        "code": 200,
        "data": {
            "id": "task_1",
            "status": "completed",
            "result": {
                "images": [
                    {"url": "https://cdn.x/a.png", "expires_at": "9999-12-31T23:59:59-05:00"}
                ]
            },
        },
    }
    done = provider.parse_poll(body, task)
    assert done.to_json()["expires_at"] == "9999-12-31T23:59:59Z"
    assert as_seen_now(done).status is TaskStatus.SUCCEEDED
    negative = provider.parse_poll(
        {
            **body,
            "data": {
                **body["data"],
                "result": {"images": [{"url": "https://cdn.x/a.png", "expires_at": -5}]},
            },
        },
        task,
    )
    # Absent: the provider's own URL lifetime applies instead.
    assert negative.expires_at is not None and negative.expires_at > utc_now()
