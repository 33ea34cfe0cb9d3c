"""The HTTP client: one test per retry rule, no real sleeps."""

from __future__ import annotations

import gzip
import json
import random
import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock, IteratorStream

from flux2_cli.client import (
    ATTEMPT_BUDGET_S,
    MAX_API_BODY_BYTES,
    MAX_JSON_DEPTH,
    USER_AGENT,
    HttpClient,
    HttpCore,
    RetryPolicy,
    parse_retry_after,
)
from flux2_cli.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    CreditsError,
    DeadlineError,
    Flux2Error,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    SubmissionUnknownError,
    UnexpectedResponseError,
)
from flux2_cli.providers import get_provider
from flux2_cli.providers.base import HttpCall
from flux2_cli.redact import Secrets
from flux2_cli.request import GenerationRequest
from tests.helpers import FakeTime

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


# --------------------------------------------------------------------------- one HTTP core


def _core_client(sentinel_key: str, fake: FakeTime, **kwargs: Any) -> HttpClient:
    core = HttpCore(sleep=fake.sleep, clock=fake.monotonic, rng=random.Random(0))
    return HttpClient(
        get_provider("apiinone"), base_url=BASE, api_key=sentinel_key, core=core, **kwargs
    )


def _drip(fake: FakeTime, body: bytes, seconds: float) -> IteratorStream:
    """A body that comes one byte at a time, each ``seconds`` later on the fake clock."""

    def chunks() -> Iterator[bytes]:
        for byte in body:
            fake.now += seconds
            yield bytes([byte])

    return IteratorStream(chunks())


def _forever(fake: FakeTime, seconds: float) -> IteratorStream:
    def chunks() -> Iterator[bytes]:
        while True:
            fake.now += seconds
            yield b" "

    return IteratorStream(chunks())


def test_row57_a_dripping_status_answer_cannot_outlive_the_deadline(
    httpx_mock: HTTPXMock, sentinel_key: str
) -> None:
    fake = FakeTime()
    client = _core_client(sentinel_key, fake)
    httpx_mock.add_response(stream=_drip(fake, b'{"status": "running"}', 5.0))
    with pytest.raises(DeadlineError) as caught:
        client.send(POLL, deadline=fake.monotonic() + 10)
    assert caught.value.exit_code == 7
    assert fake.now <= 1000.0 + 10 + 5  # stopped at the first chunk past the deadline
    assert len(httpx_mock.get_requests()) == 1  # a deadline is not retried


def test_row57_an_answer_that_never_ends_is_bounded_without_a_deadline(
    httpx_mock: HTTPXMock, sentinel_key: str
) -> None:
    fake = FakeTime()
    client = _core_client(sentinel_key, fake)
    httpx_mock.add_response(stream=_forever(fake, 1.0))
    with pytest.raises(DeadlineError):
        client.send(POLL)
    assert fake.now <= 1000.0 + ATTEMPT_BUDGET_S + 1


def test_row57_a_paid_post_whose_answer_drips_past_the_deadline_is_outcome_unknown(
    httpx_mock: HTTPXMock, sentinel_key: str
) -> None:
    fake = FakeTime()
    client = _core_client(sentinel_key, fake)
    httpx_mock.add_response(stream=_drip(fake, b'{"id": "t1"}', 5.0))
    with pytest.raises(SubmissionUnknownError):
        client.send(CREATE, deadline=fake.monotonic() + 10)
    assert len(httpx_mock.get_requests()) == 1


def test_retry_waits_never_outlive_the_deadline(httpx_mock: HTTPXMock, sentinel_key: str) -> None:
    fake = FakeTime()
    client = _core_client(sentinel_key, fake)
    httpx_mock.add_response(status_code=503, headers={"Retry-After": "30"})
    with pytest.raises(ServerError):
        client.send(POLL, deadline=fake.monotonic() + 10)
    assert fake.sleeps == []  # a 30 s wait cannot fit in 10 s: the 503 is the answer


def test_row56_an_answer_that_decompresses_past_the_cap_is_unexpected(
    httpx_mock: HTTPXMock, client: HttpClient
) -> None:
    bomb = gzip.compress(b" " * (MAX_API_BODY_BYTES + 1024 * 1024), compresslevel=1)
    assert len(bomb) < MAX_API_BODY_BYTES // 100
    httpx_mock.add_response(content=bomb, headers={"Content-Encoding": "gzip"})
    with pytest.raises(UnexpectedResponseError) as caught:
        client.send(POLL)
    assert "unexpected response" in caught.value.message
    assert "larger than 8 MB" in caught.value.message


@pytest.mark.parametrize("depth", [100_000, MAX_JSON_DEPTH + 1])
def test_row56_json_nested_too_deep_is_unexpected_with_its_start(
    httpx_mock: HTTPXMock, client: HttpClient, depth: int
) -> None:
    httpx_mock.add_response(content=b"[" * depth + b"]" * depth)
    with pytest.raises(UnexpectedResponseError) as caught:
        client.send(POLL)
    assert "unexpected response" in caught.value.message
    assert "[[[[" in caught.value.message and len(caught.value.message) < 300


def test_json_as_deep_as_allowed_is_parsed(httpx_mock: HTTPXMock, client: HttpClient) -> None:
    depth = MAX_JSON_DEPTH
    httpx_mock.add_response(content=b"[" * depth + b"]" * depth)
    assert client.send(POLL) is not None


def test_row60_a_key_in_a_successful_answer_is_scrubbed_where_it_enters(
    httpx_mock: HTTPXMock, sentinel_key: str
) -> None:
    other = "bfl-other-provider-key-5678"
    client = HttpClient(
        get_provider("apiinone"),
        base_url=BASE,
        api_key=sentinel_key,
        secrets=Secrets([other]),
    )
    httpx_mock.add_response(
        json={
            "status": "failed",
            "error": {"message": f"bad key {sentinel_key} and {other}"},
            "images": [{"url": f"https://cdn.example/x.png?key={sentinel_key}"}],
        }
    )
    body = client.send(POLL)
    text = json.dumps(body)
    assert sentinel_key not in text and other not in text
    assert "bad key ***" in text


def test_one_core_serves_every_client_with_one_pool(sentinel_key: str) -> None:
    core = HttpCore()
    first = HttpClient(get_provider("apiinone"), base_url=BASE, api_key=sentinel_key, core=core)
    second = HttpClient(get_provider("bfl"), base_url=BASE, api_key=sentinel_key, core=core)
    assert first.core.http is second.core.http
    first.close()  # a client never closes the shared core
    assert not core.http.is_closed
    core.close()


def test_issue15_workers_starting_together_build_one_tls_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A batch's workers all reach the core at once; each used to build its own client and TLS
    # context (~20 ms of CPU apiece, 10 % of a 256-task batch's busy samples).
    built: list[object] = []
    real = httpx.create_ssl_context
    started = threading.Barrier(8)

    def counting(*args: Any, **kwargs: Any) -> Any:
        built.append(object())
        threading.Event().wait(0.05)  # keep the build open while the other workers arrive
        return real(*args, **kwargs)

    monkeypatch.setattr(httpx, "create_ssl_context", counting)
    core = HttpCore()
    seen: list[httpx.Client] = []

    def worker(index: int) -> None:
        started.wait()
        seen.append(core.fresh if index % 2 else core.http)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1
    assert len({id(client) for client in seen}) == 2
    core.close()


def test_prepare_shows_the_request_send_would_make(sentinel_key: str) -> None:
    client = HttpClient(get_provider("apiinone"), base_url=BASE, api_key=sentinel_key)
    request = client.prepare(CREATE)
    assert request.method == "POST" and request.url == BASE + CREATE.url
    assert request.headers["Authorization"] == "***"
    # The core's headers: one User-Agent, and the encodings the capped reader inflates.
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.headers["Accept-Encoding"] == "gzip, deflate"


# --------------------------------------------------------------------------- keep-alive race


class RacingServer:
    """Keeps connections alive, then closes one at the very moment a request reuses it.

    That is the race of issue 15 item 7: uvicorn closes an idle connection (after 5 s) just
    as the client sends on it. A request on a new connection is answered normally.
    """

    def __init__(self) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.requests: list[tuple[str, bool]] = []  # (method, on a reused connection)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        with conn:
            served = 0
            while not self.stop.is_set():
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                method = data.split(b" ", 1)[0].decode()
                self.requests.append((method, served > 0))
                if served > 0:
                    return  # closed under the request's feet: no answer at all
                body = b'{"task_id": "t1", "status": "running"}'
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                conn.sendall(head + body)
                served += 1

    def close(self) -> None:
        self.stop.set()
        self.listener.close()
        self.thread.join(timeout=5)


def test_issue15_the_paid_post_never_goes_out_on_a_kept_alive_connection(
    sentinel_key: str,
) -> None:
    server = RacingServer()
    try:
        client = HttpClient(
            get_provider("apiinone"),
            base_url=server.url,
            api_key=sentinel_key,
        )
        client.send(POLL)  # leaves a kept-alive connection in the pool
        assert client.send(CREATE) == {"task_id": "t1", "status": "running"}
        posts = [reused for method, reused in server.requests if method == "POST"]
        assert posts == [False]  # one POST, on a fresh connection
        client.close()
    finally:
        server.close()


def test_a_poll_on_a_connection_closed_under_it_is_retried(sentinel_key: str) -> None:
    server = RacingServer()
    try:
        sleeps: list[float] = []
        client = HttpClient(
            get_provider("apiinone"),
            base_url=server.url,
            api_key=sentinel_key,
            sleep=sleeps.append,
        )
        client.send(POLL)
        assert client.send(POLL)["status"] == "running"  # GET: safe to send again
        client.close()
    finally:
        server.close()


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


def test_an_html_page_instead_of_the_api_says_what_answered(
    httpx_mock: HTTPXMock, client: HttpClient
) -> None:
    # A captive portal's 200 page was shown as raw markup ("<html><head><title>…"), and a
    # gateway's 502 page as "server error 502: HTTP 502": neither said who had answered.
    portal = "<html><head><title>Captive portal - please log in</title></head><body>hi</body>"
    httpx_mock.add_response(text=portal, headers={"Content-Type": "text/html"})
    with pytest.raises(UnexpectedResponseError) as page:
        client.send(POLL)
    assert "an HTML page titled 'Captive portal - please log in'" in page.value.message
    assert "<html>" not in page.value.message
    assert any("proxy" in hint for hint in page.value.hints)

    gateway = "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    httpx_mock.add_response(status_code=502, text=gateway, headers={"Content-Type": "text/html"})
    with pytest.raises(ServerError) as bad:
        client.send(CREATE)
    assert any("titled '502 Bad Gateway' (HTTP 502)" in hint for hint in bad.value.hints)
