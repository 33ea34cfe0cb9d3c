"""The one HTTP client: auth headers, timeouts, safe retries, HTTP errors -> the error tree.

Retry rules (wire-contracts.md, "Retries: what is safe"):

- A paid ``POST`` that may have reached the server is never repeated: no retry on 5xx or a
  read timeout (a second task would be billed). It is retried only when the connection
  failed before anything was sent, and on 429.
- ``GET`` retries connection errors, timeouts, 429, 500, 502, 503 and 504 with exponential
  backoff and full jitter, honouring ``Retry-After`` in seconds or as an HTTP date.
- 400, 401, 403, 404 and 422 are never retried.
- A paid call marked ``idempotent`` (it carries a key the provider replays instead of billing
  twice: APIMart's ``Idempotency-Key``) is retried as a ``GET`` is: no "outcome unknown".

What counts as "nothing was sent": a refused or timed-out connection (``ConnectError``,
``ConnectTimeout``), no free pooled connection (``PoolTimeout``), and a request httpx refused
to build (``UnsupportedProtocol``, ``LocalProtocolError``: never retried, it would fail again).
Anything after that (``WriteError``, ``ReadTimeout``, ``RemoteProtocolError``, a body that does
not decode) may have reached the server: a paid ``POST`` then ends as "outcome unknown".

Redirects are never followed (the key would go with them): a 3xx is an error naming the target.

One :class:`HttpCore` per process holds the one connection pool (one TLS context), the
User-Agent, the retry policy, the clock and the sleep; API calls (:class:`HttpClient`) and
image downloads (``transfer.py``) both go through it. Every call has a deadline that bounds
it whole, retries and slow reads included: ``--timeout`` where the caller has one, else
:data:`ATTEMPT_BUDGET_S` per attempt. A server that drips or never finishes cannot stretch
it. The paid ``POST`` always goes out on a fresh connection: a kept-alive one may be closed
by the server at the very moment it is reused, and that POST could then not be repeated.
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from flux2_cli import __version__
from flux2_cli.errors import (
    ApiError,
    AuthError,
    DeadlineError,
    RateLimitError,
    ServiceUnavailableError,
    SubmissionUnknownError,
    UnexpectedResponseError,
)
from flux2_cli.providers.base import HttpCall, Provider
from flux2_cli.providers.parsing import excerpt
from flux2_cli.redact import Secrets, mask, redact_headers, redact_url, scrub_all

BACKOFF_START_S = 0.5
BACKOFF_CAP_S = 30.0
MAX_ATTEMPTS = 5
RETRY_AFTER_CAP_S = 120.0
RETRYABLE_GET_STATUSES = frozenset({429, 500, 502, 503, 504})
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
# The longest one attempt may take, body included, when the caller sets no deadline.
ATTEMPT_BUDGET_S = 120.0
# Below uvicorn's 5 s (and most servers' idle timeouts), with a second to spare: a pooled
# connection is dropped before the server can close it under a GET's feet, yet kept across
# the usual 1-2 s between polls (a new TLS handshake per poll would cost CPU).
KEEPALIVE_EXPIRY_S = 4.0
# What an API answer may weigh once decompressed (a status answer is a few kB).
MAX_API_BODY_BYTES = 8 * 1024 * 1024
# What API calls accept: the encodings read_capped inflates within its cap.
ACCEPT_ENCODING = "gzip, deflate"
# Inflating a compressed answer, at most this many bytes per step.
INFLATE_STEP = 256 * 1024
_ZLIB_WBITS = {
    "gzip": 16 + zlib.MAX_WBITS,
    "x-gzip": 16 + zlib.MAX_WBITS,
    "deflate": 32 + zlib.MAX_WBITS,
}
# Deeper JSON is not an API answer; it would also exhaust the recursion of json and of callers.
MAX_JSON_DEPTH = 64
USER_AGENT = f"flux2-cli/{__version__}"
_DELAY_SECONDS_RE = re.compile(r"^\d{1,12}(\.\d+)?$")
_URL_IN_TEXT_RE = re.compile(r"https?://[^\s\"'<>\\]+")
LOG_BODY_CHARS = 500

Sleep = Callable[[float], None]
Clock = Callable[[], float]
Logger = Callable[[str], None]


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff constants, in one place so tests can shrink them."""

    attempts: int = MAX_ATTEMPTS
    backoff_start: float = BACKOFF_START_S
    backoff_cap: float = BACKOFF_CAP_S
    retry_after_cap: float = RETRY_AFTER_CAP_S

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: a uniform draw under the exponential ceiling for ``attempt`` (1-based)."""
        ceiling = min(self.backoff_cap, self.backoff_start * (2 ** (attempt - 1)))
        return rng.uniform(0, ceiling)

    def wait(self, attempt: int, retry_after: str | None, rng: random.Random) -> float:
        """Seconds before the next try: ``Retry-After`` when usable, else the backoff.

        Raises :class:`TooLongToWait` when the server asks for more than the cap.
        """
        stated = parse_retry_after(retry_after)
        if stated is None:
            return self.backoff(attempt, rng)
        if stated > self.retry_after_cap:
            raise TooLongToWait(stated)
        return stated


class TooLongToWait(Exception):
    """The server's ``Retry-After`` asks for a longer wait than flux2 is willing to make."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"{seconds:g} s")
        self.seconds = seconds


class DeadlinePassed(Exception):
    """The call's deadline came before a complete answer (a slow drip, a body that never ends)."""


class BodyTooLarge(Exception):
    """An answer past its size cap once decompressed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or HTTP date); None if unusable."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    # RFC 9110 delay-seconds is digits only: "1e40", "-5", "inf" and "soon" are garbage.
    if not _DELAY_SECONDS_RE.match(text):
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        try:
            seconds = (moment - (now or datetime.now(timezone.utc))).total_seconds()
        except OverflowError:
            return None
        return max(0.0, seconds)
    return float(text)


@dataclass(frozen=True)
class PreparedCall:
    """A request as :meth:`HttpClient.send` would put it on the wire, credentials redacted."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes


class LazyTransport(httpx.BaseTransport):
    """A transport built on the first request that needs it (the embedded sandbox)."""

    def __init__(self, factory: Callable[[], httpx.BaseTransport]) -> None:
        self._factory = factory
        self._inner: httpx.BaseTransport | None = None
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Build the real transport if need be, and let it answer."""
        with self._lock:
            if self._inner is None:
                self._inner = self._factory()
        return self._inner.handle_request(request)


class HttpCore:
    """The process's one HTTP machinery: pool, TLS context, User-Agent, retry policy, time.

    ``transport`` replaces the network (tests); ``mounts`` route some origins elsewhere (the
    embedded sandbox). Paid POSTs use a second client over the same TLS context that keeps
    no connection alive (see the module docstring); an injected transport is shared by both.
    """

    def __init__(
        self,
        *,
        transport: httpx.BaseTransport | None = None,
        mounts: Mapping[str, httpx.BaseTransport] | None = None,
        sleep: Sleep = time.sleep,
        clock: Clock = time.monotonic,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        max_connections: int = 10,
        timeout: httpx.Timeout | None = None,
    ) -> None:
        self.sleep = sleep
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.rng = rng or random.Random()
        self.timeout = timeout or httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
        self._transport = transport
        self._mounts = dict(mounts or {})
        self._max_connections = max_connections
        self._pooled: httpx.Client | None = None
        self._fresh: httpx.Client | None = None
        self._ssl: Any = None
        # Batch workers reach for the clients at once: each is built exactly once.
        self._building = threading.Lock()

    def _ssl_context(self) -> Any:
        # Building a TLS context costs ~20 ms of CPU: once per process, shared by both clients.
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return self._ssl

    def _client(self, keepalive: bool) -> httpx.Client:
        limits = httpx.Limits(
            max_connections=self._max_connections,
            max_keepalive_connections=self._max_connections if keepalive else 0,
            keepalive_expiry=KEEPALIVE_EXPIRY_S,
        )
        return httpx.Client(
            transport=self._transport,
            mounts=dict(self._mounts) or None,
            # A custom transport (tests, the sandbox) must not be bypassed by proxy variables.
            trust_env=self._transport is None,
            verify=self._ssl_context(),
            timeout=self.timeout,
            headers={"User-Agent": USER_AGENT},
            follow_redirects=False,
            limits=limits,
        )

    @property
    def http(self) -> httpx.Client:
        """The pooled client (polls, downloads)."""
        if self._pooled is None:
            with self._building:
                if self._pooled is None:
                    self._pooled = self._client(keepalive=True)
        return self._pooled

    @property
    def fresh(self) -> httpx.Client:
        """The client that opens a new connection per request (the paid POST)."""
        if self._fresh is None:
            with self._building:
                if self._fresh is None:
                    self._fresh = self._client(keepalive=False)
        return self._fresh

    def close(self) -> None:
        """Release every connection."""
        for client in (self._pooled, self._fresh):
            if client is not None:
                client.close()
        self._pooled = self._fresh = None

    def deadline(self, seconds: float | None) -> float:
        """The moment ``seconds`` from now on this core's clock (one attempt's budget if None)."""
        return self.clock() + (ATTEMPT_BUDGET_S if seconds is None else seconds)

    def remaining(self, deadline: float) -> float:
        """Seconds left before ``deadline``."""
        return deadline - self.clock()

    def timeout_until(self, deadline: float) -> httpx.Timeout:
        """Each phase's timeout, none past ``deadline`` (so no single read outlives it)."""
        left = max(0.001, self.remaining(deadline))
        return httpx.Timeout(
            connect=min(self.timeout.connect or CONNECT_TIMEOUT_S, left),
            read=min(self.timeout.read or READ_TIMEOUT_S, left),
            write=min(self.timeout.write or READ_TIMEOUT_S, left),
            pool=min(self.timeout.pool or READ_TIMEOUT_S, left),
        )

    def pause(self, seconds: float, deadline: float) -> None:
        """Sleep before a retry; DeadlinePassed at once when the wait would outlive the deadline."""
        if seconds >= self.remaining(deadline):
            raise DeadlinePassed()
        self.sleep(seconds)

    def chunks(
        self, response: httpx.Response, deadline: float, *, raw: bool = False
    ) -> Iterator[bytes]:
        """The body chunk by chunk (decoded unless ``raw``); DeadlinePassed past the deadline."""
        for chunk in response.iter_raw() if raw else response.iter_bytes():
            if self.clock() > deadline:
                raise DeadlinePassed()
            yield chunk
        if self.clock() > deadline:
            raise DeadlinePassed()

    def read_capped(self, response: httpx.Response, deadline: float, limit: int) -> bytes:
        """The whole decoded body; BodyTooLarge past ``limit`` bytes, DeadlinePassed.

        gzip and deflate are inflated here, a bounded piece at a time: a 4 MB answer that
        expands to gigabytes stops at the cap without ever being held in memory.
        """
        encoding = response.headers.get("content-encoding", "").strip().lower()
        parts: list[bytes] = []
        size = 0

        def keep(data: bytes) -> None:
            nonlocal size
            size += len(data)
            if size > limit:
                raise BodyTooLarge(limit)
            parts.append(data)

        if encoding not in _ZLIB_WBITS:
            for chunk in self.chunks(response, deadline):
                keep(chunk)
            return b"".join(parts)
        inflater = zlib.decompressobj(_ZLIB_WBITS[encoding])
        try:
            for chunk in self.chunks(response, deadline, raw=True):
                pending = chunk
                while pending:
                    keep(inflater.decompress(pending, INFLATE_STEP))
                    pending = inflater.unconsumed_tail
            keep(inflater.flush())
        except zlib.error as exc:
            raise httpx.DecodingError(f"the {encoding} body does not decode ({exc})") from None
        return b"".join(parts)


def json_depth_ok(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``value`` nests no deeper than ``limit`` (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return True


class HttpClient:
    """Sends a provider's HttpCalls with auth, timeouts and the safe-retry rules."""

    def __init__(
        self,
        provider: Provider,
        *,
        base_url: str,
        api_key: str | None,
        core: HttpCore | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
        log: Logger | None = None,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        timeout: httpx.Timeout | None = None,
        max_connections: int = 10,
        key_source: str | None = None,
        secrets: Secrets | None = None,
    ) -> None:
        self.provider = provider
        self._key_source = key_source
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._log = log
        self._own_core = core is None
        self.core = core or HttpCore(
            transport=transport,
            sleep=sleep,
            policy=policy,
            rng=rng,
            timeout=timeout,
            max_connections=max_connections,
        )
        self.secrets = secrets if secrets is not None else Secrets()
        self.secrets.add(api_key)

    def close(self) -> None:
        """Release the connection pool (only when this client built its own core)."""
        if self._own_core:
            self.core.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def url_for(self, call: HttpCall) -> str:
        """The absolute URL of a call (paths join the base URL)."""
        if call.url.startswith(("http://", "https://")):
            return call.url
        return urljoin(self.base_url + "/", call.url.lstrip("/"))

    def prepare(self, call: HttpCall) -> PreparedCall:
        """The first request ``send(call)`` would send, built by the same httpx client (URL,
        headers, body bytes), with the key and signed query values redacted; nothing is sent.
        ``--dry-run`` prints this."""
        http = self.core.fresh if call.paid else self.core.http
        request = http.build_request(
            call.method,
            self.url_for(call),
            json=call.json,
            params=call.params,
            headers=self._headers(call),
        )
        return PreparedCall(
            method=request.method,
            url=redact_url(str(request.url)),
            headers=redact_headers(
                {
                    name.decode("latin-1"): value.decode("latin-1")
                    for name, value in request.headers.raw
                }
            ),
            body=request.content,
        )

    def _headers(self, call: HttpCall) -> dict[str, str]:
        """The per-call headers: what the answer may be, and the key where the call needs it."""
        headers = {"Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING}
        if call.authenticated and self._api_key:
            headers.update(self.provider.auth_headers(self._api_key))
        if call.headers:  # the call's own: an idempotency key, a response version
            headers.update(call.headers)
        return headers

    def send(self, call: HttpCall, *, deadline: float | None = None) -> Any:
        """Send ``call`` under the retry rules; the parsed JSON answer, or an error of the tree.

        ``deadline`` (on the core's clock) bounds the whole call, retries and reads included;
        without one, each attempt is bounded by :data:`ATTEMPT_BUDGET_S`.
        """
        core = self.core
        url = self.url_for(call)
        headers = self._headers(call)
        host = urlsplit(url).netloc or url
        # The paid POST never reuses a kept-alive connection (see the module docstring).
        http = core.fresh if call.paid else core.http
        # A paid call with an idempotency key the provider replays may be sent again when its
        # answer is lost, as a GET is (reliability row 66): a duplicate is not billed.
        blind = call.paid and not call.idempotent
        attempt = 0
        while True:
            attempt += 1
            until = deadline if deadline is not None else core.deadline(None)
            if core.remaining(until) <= 0:
                raise self._deadline_error(call, host)
            self._log_request(call, url, headers, attempt)
            try:
                status, response_headers, text, response = self._exchange(
                    http, call, url, headers, until
                )
            except DeadlinePassed:
                if blind:
                    raise self._unknown_outcome(call, host, "no complete answer in time") from None
                raise self._deadline_error(call, host) from None
            except BodyTooLarge as exc:
                raise UnexpectedResponseError(
                    f"unexpected response from {host}: the answer is larger than "
                    f"{exc.limit // (1024 * 1024)} MB once decompressed; it was not read"
                ) from None
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # Nothing reached the server: safe to retry, even for the paid POST.
                self._log_line(f"<- connection failed: {type(exc).__name__}")
                if attempt >= core.policy.attempts:
                    raise ServiceUnavailableError(
                        f"could not connect to {host} after {attempt} attempts ({_reason(exc)})",
                        hints=["Check the network, HTTPS_PROXY / NO_PROXY, or --base-url."],
                    ) from None
                self._pause(core.policy.backoff(attempt, core.rng), deadline, call, host)
                continue
            except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
                # httpx refused to send it: nothing left, and trying again cannot help.
                raise ServiceUnavailableError(
                    f"could not send the request to {host} ({_reason(exc)}); nothing was sent",
                    hints=["Check --base-url (an http:// or https:// URL)."],
                ) from None
            except httpx.TimeoutException as exc:
                if blind:
                    raise self._unknown_outcome(call, host, "no answer in time") from None
                if core.remaining(until) <= 0:
                    raise self._deadline_error(call, host) from None
                self._log_line(f"<- timed out: {type(exc).__name__}")
                if attempt >= core.policy.attempts:
                    raise ServiceUnavailableError(
                        f"{host} did not answer in time after {attempt} attempts"
                    ) from None
                self._pause(core.policy.backoff(attempt, core.rng), deadline, call, host)
                continue
            except (httpx.TransportError, httpx.DecodingError) as exc:
                # DecodingError: an answer came (so a paid POST did reach the server) whose
                # body does not decode (a proxy's bad Content-Encoding): not a crash.
                if blind:
                    raise self._unknown_outcome(call, host, _reason(exc)) from None
                self._log_line(f"<- transport error: {type(exc).__name__}")
                if attempt >= core.policy.attempts:
                    raise ServiceUnavailableError(
                        f"{host} kept failing after {attempt} attempts ({_reason(exc)})"
                    ) from None
                self._pause(core.policy.backoff(attempt, core.rng), deadline, call, host)
                continue

            self._log_response(response, text)
            if 300 <= status < 400:
                raise self._redirect_error(response, host)
            if status < 400 or status in call.answer_statuses:
                return self._parse_body(text, host)

            error = self._error_for(status, text)
            retryable = status == 429 or (not blind and status in RETRYABLE_GET_STATUSES)
            if not retryable:
                if blind and status >= 500:
                    error.hints.append(
                        "The submission was not repeated, to avoid paying twice; check "
                        "`flux2 history` and the provider's dashboard before re-running."
                    )
                raise error
            retry_after = response_headers.get("Retry-After")
            if isinstance(error, RateLimitError):
                # Without the header, the wait BFL's 429 body states (``retry_after``) counts.
                retry_after = retry_after if retry_after is not None else error.retry_after
                error.retry_after = retry_after
            if attempt >= core.policy.attempts:
                raise error
            try:
                wait = core.policy.wait(attempt, retry_after, core.rng)
            except TooLongToWait as exc:
                too_long = self._too_long(exc.seconds, status)
                too_long.retry_after = retry_after
                raise too_long from None
            if deadline is not None and wait >= core.remaining(deadline):
                raise error  # the server's own answer says more than "deadline passed"
            self._pause(wait, deadline, call, host)

    def _exchange(
        self,
        http: httpx.Client,
        call: HttpCall,
        url: str,
        headers: dict[str, str],
        until: float,
    ) -> tuple[int, httpx.Headers, str, httpx.Response]:
        """One request, its body read whole under the deadline and the size cap."""
        core = self.core
        request = http.build_request(
            call.method,
            url,
            json=call.json,
            params=call.params,
            headers=headers,
            timeout=core.timeout_until(until),
        )
        response = http.send(request, stream=True)
        try:
            raw = core.read_capped(response, until, MAX_API_BODY_BYTES)
        finally:
            response.close()
        text = raw.decode(response.encoding or "utf-8", errors="replace")
        # Scrubbed where the server's text enters: nothing downstream can leak a key echoed.
        return response.status_code, response.headers, self._clean(text), response

    def _pause(self, seconds: float, deadline: float | None, call: HttpCall, host: str) -> None:
        if deadline is None:
            self.core.sleep(seconds)
            return
        try:
            self.core.pause(seconds, deadline)
        except DeadlinePassed:
            raise self._deadline_error(call, host) from None

    def _deadline_error(self, call: HttpCall, host: str) -> DeadlineError:
        return DeadlineError(
            f"{host} gave no complete answer before the deadline "
            f"({call.method} {redact_url(self.url_for(call))})"
        )

    def _too_long(self, stated: float, status: int) -> RateLimitError:
        return RateLimitError(
            f"{self.provider.capabilities.id}: rate limited; the server asks to retry in "
            f"{_human_seconds(stated)}, which is longer than flux2 waits "
            f"({self.core.policy.retry_after_cap:g} s).",
            status_code=status,
            hints=[f"Try again after {_retry_moment(stated)}."],
        )

    def _clean(self, text: str) -> str:
        """Server text with every key in use (and any bearer token) removed: servers echo
        headers, and error messages reach stdout too (``batch --json``)."""
        return scrub_all(self.secrets.scrub(text))

    def _redirect_error(self, response: httpx.Response, host: str) -> ApiError:
        location = response.headers.get("location", "").strip()
        try:
            target = redact_url(str(response.url.join(location))) if location else ""
        except httpx.InvalidURL:
            target = "an invalid URL"
        where = f" to {self._clean(target)}" if target else ""
        return ApiError(
            f"{host} answered HTTP {response.status_code} (a redirect{where}); flux2 does not "
            "follow redirects on API calls, so the key is never sent to another address",
            status_code=response.status_code,
            hints=["Check --base-url / FLUX2_BASE_URL (https:// rather than http://?)."],
        )

    def _error_for(self, status: int, text: str) -> ApiError:
        try:
            body: Any = _loads(text) if text.strip() else None
        except ValueError:
            body = None
        error = self.provider.error_for(status, body, text)
        page = _markup_page(text, status)
        if body is None and page:
            # "server error 502: HTTP 502" says nothing of who answered: a page means a proxy,
            # a gateway or a portal stood between flux2 and the API.
            error.hints.append(f"The answer was {page}: {PAGE_HINT}")
        if isinstance(error, AuthError) and self._api_key:
            # Which key was refused, and from where, is what the user needs to fix it.
            source = f" (from {self._key_source})" if self._key_source else ""
            error.hints.append(f"The key sent was {mask(self._api_key)}{source}.")
        return error

    def _parse_body(self, text: str, host: str) -> Any:
        try:
            return _loads(text)
        except ValueError:
            page = _markup_page(text, 200)
            if page:
                raise UnexpectedResponseError(
                    f"unexpected response from {host}: {page}, not the API's JSON.",
                    hints=[PAGE_HINT[0].upper() + PAGE_HINT[1:]],
                ) from None
            raise UnexpectedResponseError(
                f"unexpected response from {host}: {excerpt(text) or '(empty body)'}"
            ) from None

    def _unknown_outcome(self, call: HttpCall, host: str, reason: str) -> SubmissionUnknownError:
        prompt = str((call.json or {}).get("prompt", ""))[:60]
        return SubmissionUnknownError(
            f"submission outcome unknown: {host} took the request but gave no answer ({reason}).",
            hints=[
                f"Request: {call.method} {redact_url(self.url_for(call))} prompt={prompt!r}",
                "It was not sent again, to avoid paying twice. A task may exist: check "
                "`flux2 history` or the provider's dashboard before re-running.",
            ],
        )

    def _log_line(self, text: str) -> None:
        if self._log is not None:
            self._log(scrub_all(text))

    def _log_request(self, call: HttpCall, url: str, headers: dict[str, str], attempt: int) -> None:
        if self._log is None:
            return
        suffix = f" (attempt {attempt})" if attempt > 1 else ""
        full = str(httpx.URL(url, params=call.params)) if call.params else url
        self._log_line(f"-> {call.method} {redact_url(full)}{suffix}")
        shown = {**self.core.http.headers, **headers}
        for name, value in redact_headers(shown).items():
            self._log_line(f"   {name}: {value}")
        if call.json is not None:
            body = json.dumps(call.json, ensure_ascii=False)[:LOG_BODY_CHARS]
            self._log_line("   " + redact_urls_in(body))

    def _log_response(self, response: httpx.Response, text: str) -> None:
        if self._log is None:
            return
        self._log_line(f"<- {response.status_code} {response.reason_phrase}")
        # Result URLs in a body are signed: their query strings are secrets too.
        self._log_line("   " + redact_urls_in(excerpt(text, LOG_BODY_CHARS)))


def _loads(text: str) -> Any:
    """JSON from a server, parsed defensively: too deep a nesting is a ValueError too."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if not json_depth_ok(value):
        raise ValueError("nested too deeply")
    return value


def redact_urls_in(text: str) -> str:
    """``text`` with the query string of every URL in it redacted (signed URLs in bodies)."""
    return _URL_IN_TEXT_RE.sub(lambda match: redact_url(match.group(0)), text)


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {excerpt(text, 120)}" if text else type(exc).__name__


def _human_seconds(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def _retry_moment(seconds: float) -> str:
    try:
        moment = datetime.now(timezone.utc).timestamp() + seconds
        return datetime.fromtimestamp(moment, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        return "a long while"


PAGE_HINT = (
    "something other than the API answered (a proxy, a captive portal, a gateway's error "
    "page); check the network, HTTPS_PROXY and --base-url."
)


def _markup_page(text: str, status: int) -> str:
    """What an HTML or XML answer is (with its title), or "" when it is not markup."""
    from flux2_cli.verify import describe_page, looks_like_markup

    head = text[:4096].encode("utf-8", errors="replace")
    if not looks_like_markup(head):
        return ""
    return describe_page(head, status=status).reason
