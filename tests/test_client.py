"""The HTTP client: one test per retry rule, no real sleeps."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest
from pytest_httpx import HTTPXMock

from flux2_cli.client import HttpClient, RetryPolicy, parse_retry_after
from flux2_cli.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    CreditsError,
    Flux2Error,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    SubmissionUnknownError,
    UnexpectedResponseError,
)
from flux2_cli.providers import get_provider
from flux2_cli.providers.base import HttpCall
from flux2_cli.request import GenerationRequest

BASE = "https://apiin.one"
CREATE = HttpCall("POST", "/api/v1/images/generations", json={"prompt": "a fox"}, paid=True)
POLL = HttpCall("GET", "/api/v1/tasks/t1")


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def client(sleeps: Sleeps, sentinel_key: str) -> HttpClient:
    return HttpClient(
        get_provider("apiinone"),
        base_url=BASE,
        api_key=sentinel_key,
        sleep=sleeps,
        rng=random.Random(0),
    )


def test_sends_bearer_key_and_parses_json(
    httpx_mock: HTTPXMock, client: HttpClient, sentinel_key: str
) -> None:
    httpx_mock.add_response(json={"id": "t1"})
    assert client.send(CREATE) == {"id": "t1"}
    request = httpx_mock.get_requests()[0]
    assert request.headers["Authorization"] == f"Bearer {sentinel_key}"


def test_row1_connection_refused_retried_then_exit7_naming_host(
    httpx_mock: HTTPXMock, client: HttpClient, sleeps: Sleeps
) -> None:
    for _ in range(5):
        httpx_mock.add_exception(httpx.ConnectError("refused"))
    with pytest.raises(ServiceUnavailableError) as info:
        client.send(CREATE)
    assert "apiin.one" in info.value.message
    assert info.value.exit_code == 7
    assert len(httpx_mock.get_requests()) == 5
    assert len(sleeps) == 4


def test_row2_connect_timeout_then_success(httpx_mock: HTTPXMock, client: HttpClient) -> None:
    httpx_mock.add_exception(httpx.ConnectTimeout("slow"))
    httpx_mock.add_response(json={"id": "t1"})
    assert client.send(CREATE) == {"id": "t1"}
    assert len(httpx_mock.get_requests()) == 2


def test_row3_read_timeout_on_paid_post_is_not_retried(
    httpx_mock: HTTPXMock, client: HttpClient
) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("no answer"))
    with pytest.raises(SubmissionUnknownError) as info:
        client.send(CREATE)
    assert "submission outcome unknown" in info.value.message
    assert info.value.exit_code == 7
    assert len(httpx_mock.get_requests()) == 1
    assert any("a fox" in hint for hint in info.value.hints)


def test_row4_429_retry_after_seconds_then_success(
    httpx_mock: HTTPXMock, client: HttpClient, sleeps: Sleeps
) -> None:
    httpx_mock.add_response(status_code=429, headers={"Retry-After": "2"})
    httpx_mock.add_response(json={"id": "t1"})
    assert client.send(CREATE) == {"id": "t1"}
    assert sleeps == [2.0]
    assert len(httpx_mock.get_requests()) == 2


def test_row5_429_retry_after_http_date(
    httpx_mock: HTTPXMock, client: HttpClient, sleeps: Sleeps
) -> None:
    when = datetime.now(timezone.utc) + timedelta(seconds=30)
    httpx_mock.add_response(
        status_code=429, headers={"Retry-After": format_datetime(when, usegmt=True)}
    )
    httpx_mock.add_response(json={"id": "t1"})
    client.send(CREATE)
    assert len(sleeps) == 1 and 25 <= sleeps[0] <= 31


def test_row6_429_retry_after_a_day_fails_at_once(
    httpx_mock: HTTPXMock, client: HttpClient, sleeps: Sleeps
) -> None:
    httpx_mock.add_response(status_code=429, headers={"Retry-After": "86400"})
    with pytest.raises(RateLimitError) as info:
        client.send(CREATE)
    assert info.value.exit_code == 7
    assert sleeps == []
    assert any("Try again after" in hint for hint in info.value.hints)


@pytest.mark.parametrize("value", ["soon", "-5", "1e40", "nan", ""])
def test_row7_garbage_retry_after_falls_back_to_backoff(
    httpx_mock: HTTPXMock, client: HttpClient, sleeps: Sleeps, value: str
) -> None:
    httpx_mock.add_response(status_code=429, headers={"Retry-After": value})
    httpx_mock.add_response(json={"id": "t1"})
    client.send(CREATE)
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= RetryPolicy().backoff_start


@pytest.mark.parametrize("status", [500, 502, 503])
def test_row8_5xx_on_paid_post_is_not_retried(
    httpx_mock: HTTPXMock, client: HttpClient, status: int
) -> None:
    httpx_mock.add_response(status_code=status, json={"error": {"message": "boom"}})
    with pytest.raises(ServerError) as info:
        client.send(CREATE)
    assert info.value.exit_code == 7
    assert len(httpx_mock.get_requests()) == 1


@pytest.mark.parametrize("status", [400, 422])
def test_row9_400_422_show_server_message_exit2(
    httpx_mock: HTTPXMock, client: HttpClient, status: int
) -> None:
    httpx_mock.add_response(
        status_code=status,
        json={"detail": [{"loc": ["body", "width"], "msg": "must be a multiple of 16"}]},
    )
    with pytest.raises(BadRequestError) as info:
        client.send(CREATE)
    assert info.value.exit_code == 2
    assert "multiple of 16" in info.value.message
    assert len(httpx_mock.get_requests()) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_row10_401_403_exit3_not_retried(
    httpx_mock: HTTPXMock, client: HttpClient, status: int, sentinel_key: str
) -> None:
    httpx_mock.add_response(
        status_code=status, json={"error": {"code": status, "message": "Invalid API key"}}
    )
    with pytest.raises(AuthError) as info:
        client.send(POLL)
    assert info.value.exit_code == 3
    assert sentinel_key not in info.value.message
    assert len(httpx_mock.get_requests()) == 1


def test_row11_402_is_exit4(httpx_mock: HTTPXMock, client: HttpClient) -> None:
    httpx_mock.add_response(status_code=402, json={"message": "payment required"})
    with pytest.raises(CreditsError) as info:
        client.send(CREATE)
    assert info.value.exit_code == 4


def test_row12_malformed_json_is_unexpected_response(
    httpx_mock: HTTPXMock, client: HttpClient
) -> None:
    httpx_mock.add_response(text="{not json" + "x" * 500)
    with pytest.raises(UnexpectedResponseError) as info:
        client.send(CREATE)
    assert info.value.exit_code == 1
    assert "unexpected response" in info.value.message
    assert len(info.value.message) < 300


def test_row13_html_502_from_proxy_is_5xx_without_html_dump(
    httpx_mock: HTTPXMock, client: HttpClient
) -> None:
    page = (
        "<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1>"
        + "<p>nginx</p>" * 200
        + "</body></html>"
    )
    httpx_mock.add_response(status_code=502, text=page, headers={"Content-Type": "text/html"})
    with pytest.raises(ServerError) as info:
        client.send(CREATE)
    assert "<html" not in info.value.message.lower()
    assert len(info.value.message) <= 260


def test_row14_poll_503_storm_bounded_attempts(
    httpx_mock: HTTPXMock, client: HttpClient, sleeps: Sleeps
) -> None:
    for _ in range(5):
        httpx_mock.add_response(status_code=503)
    with pytest.raises(ServerError) as info:
        client.send(POLL)
    assert info.value.exit_code == 7
    assert len(httpx_mock.get_requests()) == 5
    assert len(sleeps) == 4
    assert all(0 <= s <= RetryPolicy().backoff_cap for s in sleeps)


def test_row15_intermittent_read_error_and_502_on_poll_are_retried(
    httpx_mock: HTTPXMock, client: HttpClient
) -> None:
    httpx_mock.add_exception(httpx.ReadError("reset"))
    httpx_mock.add_response(status_code=502)
    httpx_mock.add_response(json={"status": "IN_PROGRESS"})
    assert client.send(POLL) == {"status": "IN_PROGRESS"}


def test_404_is_not_retried(httpx_mock: HTTPXMock, client: HttpClient) -> None:
    httpx_mock.add_response(status_code=404, json={"message": "Task not found"})
    with pytest.raises(Exception) as info:
        client.send(POLL)
    assert getattr(info.value, "exit_code", None) == 5
    assert len(httpx_mock.get_requests()) == 1


def test_row43_verbose_log_redacts_key_and_signed_query(
    httpx_mock: HTTPXMock, sleeps: Sleeps, sentinel_key: str
) -> None:
    lines: list[str] = []
    client = HttpClient(
        get_provider("apiinone"),
        base_url=BASE,
        api_key=sentinel_key,
        sleep=sleeps,
        log=lines.append,
    )
    httpx_mock.add_response(json={"ok": True})
    client.send(
        HttpCall(
            "GET", "https://cdn.example/x.png", params={"X-Amz-Signature": "s3cr3tsig", "id": "7"}
        )
    )
    text = "\n".join(lines)
    assert "Authorization: ***" in text
    assert sentinel_key not in text
    assert "s3cr3tsig" not in text
    assert "id=7" in text


def test_backoff_full_jitter_is_bounded_and_grows() -> None:
    policy = RetryPolicy()
    rng = random.Random(1)
    ceilings = [min(policy.backoff_cap, policy.backoff_start * 2 ** (n - 1)) for n in range(1, 9)]
    for attempt, ceiling in enumerate(ceilings, start=1):
        assert 0 <= policy.backoff(attempt, rng) <= ceiling
    assert ceilings[-1] == policy.backoff_cap


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2", 2.0), ("0", 0.0), ("soon", None), ("-5", None), ("", None), (None, None), ("inf", None)],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


# --- review: key echoes, redirects, errors that are not "maybe sent" -------------------------


@pytest.mark.parametrize("status", [400, 401, 500])
def test_server_message_echoing_the_key_is_scrubbed_at_the_source(
    httpx_mock: HTTPXMock, client: HttpClient, sentinel_key: str, status: int
) -> None:
    # Error messages reach stdout too (batch --json), where nothing scrubs them later.
    message = f"invalid credentials: Authorization: Bearer {sentinel_key}"
    httpx_mock.add_response(status_code=status, json={"error": {"message": message}})
    with pytest.raises(Exception) as info:
        client.send(CREATE)
    assert sentinel_key not in str(info.value)
    assert all(sentinel_key not in hint for hint in getattr(info.value, "hints", []))
    assert "invalid credentials" in str(info.value)


def test_unreadable_success_body_echoing_the_key_is_scrubbed(
    httpx_mock: HTTPXMock, client: HttpClient, sentinel_key: str
) -> None:
    httpx_mock.add_response(text=f"oops {sentinel_key}")
    with pytest.raises(UnexpectedResponseError) as info:
        client.send(POLL)
    assert sentinel_key not in info.value.message


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("call", [CREATE, POLL], ids=["post", "get"])
def test_redirect_on_an_api_call_is_a_clear_error_and_not_followed(
    httpx_mock: HTTPXMock, client: HttpClient, status: int, call: HttpCall
) -> None:
    # A 307 may carry a JSON body: it is still not the answer.
    httpx_mock.add_response(
        status_code=status,
        headers={"Location": "https://elsewhere.example/v1?token=s3cr3t"},
        json={"id": "t1", "status": "completed"},
    )
    with pytest.raises(ApiError) as info:
        client.send(call)
    assert len(httpx_mock.get_requests()) == 1
    assert info.value.exit_code == 7
    assert f"HTTP {status}" in info.value.message
    assert "elsewhere.example" in info.value.message
    assert "s3cr3t" not in info.value.message
    assert any("--base-url" in hint for hint in info.value.hints)


def test_pool_timeout_on_paid_post_is_retried_nothing_was_sent(
    httpx_mock: HTTPXMock, client: HttpClient
) -> None:
    httpx_mock.add_exception(httpx.PoolTimeout("no free connection"))
    httpx_mock.add_response(json={"id": "t1"})
    assert client.send(CREATE) == {"id": "t1"}


@pytest.mark.parametrize(
    "exc",
    [httpx.UnsupportedProtocol("no scheme"), httpx.LocalProtocolError("bad header value")],
    ids=["unsupported-protocol", "local-protocol"],
)
def test_request_that_could_not_be_built_is_not_an_unknown_submission(
    httpx_mock: HTTPXMock, client: HttpClient, exc: Exception
) -> None:
    httpx_mock.add_exception(exc)
    with pytest.raises(Flux2Error) as info:
        client.send(CREATE)
    assert not isinstance(info.value, SubmissionUnknownError)
    assert "outcome unknown" not in info.value.message
    assert len(httpx_mock.get_requests()) == 1


@pytest.mark.parametrize("exc", [httpx.WriteError("pipe"), httpx.WriteTimeout("slow")])
def test_write_failure_on_paid_post_is_outcome_unknown_not_retried(
    httpx_mock: HTTPXMock, client: HttpClient, exc: Exception
) -> None:
    # Part of the body may have reached the server.
    httpx_mock.add_exception(exc)
    with pytest.raises(SubmissionUnknownError):
        client.send(CREATE)
    assert len(httpx_mock.get_requests()) == 1


def test_undecodable_body_on_paid_post_is_outcome_unknown(
    httpx_mock: HTTPXMock, client: HttpClient
) -> None:
    # The server took the request and answered: a task may exist. Not a crash (exit 1).
    httpx_mock.add_response(headers={"Content-Encoding": "gzip"}, content=b"not gzip at all")
    with pytest.raises(SubmissionUnknownError):
        client.send(CREATE)
    assert len(httpx_mock.get_requests()) == 1


def test_undecodable_body_on_poll_is_retried_then_exit7(
    httpx_mock: HTTPXMock, client: HttpClient
) -> None:
    for _ in range(4):
        httpx_mock.add_response(headers={"Content-Encoding": "gzip"}, content=b"not gzip")
    httpx_mock.add_response(json={"status": "IN_PROGRESS"})
    assert client.send(POLL) == {"status": "IN_PROGRESS"}
    for _ in range(5):
        httpx_mock.add_response(headers={"Content-Encoding": "gzip"}, content=b"not gzip")
    with pytest.raises(ServiceUnavailableError):
        client.send(POLL)


# --- issue 14: hooks for the providers as they are today ----------------------------------


def _apimart_client(sleeps: Sleeps, key: str) -> HttpClient:
    return HttpClient(
        get_provider("apimart"),
        base_url="https://api.apimart.ai",
        api_key=key,
        sleep=sleeps,
        rng=random.Random(0),
    )


def _apimart_create() -> HttpCall:
    provider = get_provider("apimart")
    call = provider.build_create(GenerationRequest("a red fox"))
    return provider.with_idempotency_key(call, "flux2-key-1")


@pytest.mark.parametrize(
    "lost",
    [httpx.ReadTimeout("no answer"), httpx.RemoteProtocolError("closed"), 502],
    ids=["read-timeout", "dropped", "502"],
)
def test_row66_idempotent_post_whose_answer_was_lost_is_sent_again_with_the_same_key(
    httpx_mock: HTTPXMock, sleeps: Sleeps, sentinel_key: str, lost: object
) -> None:
    client = _apimart_client(sleeps, sentinel_key)
    if isinstance(lost, int):
        httpx_mock.add_response(status_code=lost)
    else:
        assert isinstance(lost, Exception)
        httpx_mock.add_exception(lost)
    httpx_mock.add_response(
        json={"code": 200, "data": {"id": "task_01A"}}, headers={"idempotency-replayed": "true"}
    )
    assert client.send(_apimart_create()) == {"code": 200, "data": {"id": "task_01A"}}
    requests = httpx_mock.get_requests()
    assert len(requests) == 2
    assert {r.headers["Idempotency-Key"] for r in requests} == {"flux2-key-1"}
    assert requests[0].content == requests[1].content


def test_a_paid_post_without_a_key_is_still_never_repeated(
    httpx_mock: HTTPXMock, sleeps: Sleeps, sentinel_key: str
) -> None:
    client = _apimart_client(sleeps, sentinel_key)
    httpx_mock.add_exception(httpx.ReadTimeout("no answer"))
    call = get_provider("apimart").build_create(GenerationRequest("a fox"))
    with pytest.raises(SubmissionUnknownError):
        client.send(call)
    assert len(httpx_mock.get_requests()) == 1


def test_call_headers_are_sent(httpx_mock: HTTPXMock, sleeps: Sleeps, sentinel_key: str) -> None:
    client = _apimart_client(sleeps, sentinel_key)
    httpx_mock.add_response(json={"code": 200, "data": {"id": "task_01A"}})
    client.send(_apimart_create())
    request = httpx_mock.get_requests()[0]
    assert request.headers["X-APIMart-Response-Version"] == "2026-07-27"
    assert request.headers["Authorization"] == f"Bearer {sentinel_key}"


def test_429_body_retry_after_is_honoured_when_no_header(
    httpx_mock: HTTPXMock, sleeps: Sleeps, sentinel_key: str
) -> None:
    client = HttpClient(
        get_provider("bfl"), base_url="https://api.bfl.ai", api_key=sentinel_key, sleep=sleeps
    )
    body = {
        "error": "rate_limit_exceeded",
        "message": "Too many concurrent requests",
        "retry_after": 5,
    }
    httpx_mock.add_response(status_code=429, json=body)
    httpx_mock.add_response(json={"id": "b1"})
    call = HttpCall("POST", "/v1/flux-2-pro", json={"prompt": "a fox"}, paid=True)
    assert client.send(call) == {"id": "b1"}
    assert sleeps == [5.0]


def test_429_header_wins_over_the_body(
    httpx_mock: HTTPXMock, sleeps: Sleeps, sentinel_key: str
) -> None:
    client = HttpClient(
        get_provider("bfl"), base_url="https://api.bfl.ai", api_key=sentinel_key, sleep=sleeps
    )
    body = {
        "error": "rate_limit_exceeded",
        "message": "Too many concurrent requests",
        "retry_after": 5,
    }
    httpx_mock.add_response(status_code=429, json=body, headers={"Retry-After": "2"})
    httpx_mock.add_response(json={"id": "b1"})
    client.send(HttpCall("POST", "/v1/flux-2-pro", json={"prompt": "a fox"}, paid=True))
    assert sleeps == [2.0]


def test_429_message_from_the_body_is_shown(httpx_mock: HTTPXMock, sentinel_key: str) -> None:
    client = HttpClient(
        get_provider("bfl"),
        base_url="https://api.bfl.ai",
        api_key=sentinel_key,
        sleep=lambda _s: None,
        policy=RetryPolicy(attempts=1),
    )
    body = {
        "error": "rate_limit_exceeded",
        "message": "Too many concurrent requests",
        "retry_after": 5,
    }
    httpx_mock.add_response(status_code=429, json=body)
    with pytest.raises(RateLimitError) as info:
        client.send(HttpCall("POST", "/v1/flux-2-pro", json={"prompt": "a fox"}, paid=True))
    assert "Too many concurrent requests" in info.value.message


def test_answer_statuses_return_the_body(
    httpx_mock: HTTPXMock, sleeps: Sleeps, sentinel_key: str
) -> None:
    client = HttpClient(
        get_provider("bfl"), base_url="https://api.bfl.ai", api_key=sentinel_key, sleep=sleeps
    )
    httpx_mock.add_response(status_code=422, json={"id": "b1", "status": "Error"})
    call = HttpCall("GET", "/v1/get_result", params={"id": "b1"}, answer_statuses=frozenset({422}))
    assert client.send(call) == {"id": "b1", "status": "Error"}
