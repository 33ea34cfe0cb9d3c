"""The one HTTP client: auth headers, timeouts, safe retries, HTTP errors -> the error tree.

Retry rules (wire-contracts.md, "Retries: what is safe"):

- A paid ``POST`` that may have reached the server is never repeated: no retry on 5xx or a
  read timeout (a second task would be billed). It is retried only when the connection
  failed before anything was sent, and on 429.
- ``GET`` retries connection errors, timeouts, 429, 500, 502, 503 and 504 with exponential
  backoff and full jitter, honouring ``Retry-After`` in seconds or as an HTTP date.
- 400, 401, 403, 404 and 422 are never retried.

What counts as "nothing was sent": a refused or timed-out connection (``ConnectError``,
``ConnectTimeout``), no free pooled connection (``PoolTimeout``), and a request httpx refused
to build (``UnsupportedProtocol``, ``LocalProtocolError``: never retried, it would fail again).
Anything after that (``WriteError``, ``ReadTimeout``, ``RemoteProtocolError``, a body that does
not decode) may have reached the server: a paid ``POST`` then ends as "outcome unknown".

Redirects are never followed (the key would go with them): a 3xx is an error naming the target.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
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
    RateLimitError,
    ServiceUnavailableError,
    SubmissionUnknownError,
    UnexpectedResponseError,
)
from flux2_cli.providers.base import HttpCall, Provider
from flux2_cli.providers.parsing import excerpt
from flux2_cli.redact import mask, redact_headers, redact_url, scrub, scrub_all

BACKOFF_START_S = 0.5
BACKOFF_CAP_S = 30.0
MAX_ATTEMPTS = 5
RETRY_AFTER_CAP_S = 120.0
RETRYABLE_GET_STATUSES = frozenset({429, 500, 502, 503, 504})
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
USER_AGENT = f"flux2-cli/{__version__}"
_DELAY_SECONDS_RE = re.compile(r"^\d{1,12}(\.\d+)?$")
_URL_IN_TEXT_RE = re.compile(r"https?://[^\s\"'<>\\]+")
LOG_BODY_CHARS = 500

Sleep = Callable[[float], None]
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
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        seconds = (moment - (now or datetime.now(timezone.utc))).total_seconds()
        return max(0.0, seconds)
    return float(text)


@dataclass(frozen=True)
class PreparedCall:
    """A request as :meth:`HttpClient.send` would put it on the wire, credentials redacted."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes


class HttpClient:
    """Sends a provider's HttpCalls with auth, timeouts and the safe-retry rules."""

    def __init__(
        self,
        provider: Provider,
        *,
        base_url: str,
        api_key: str | None,
        transport: httpx.BaseTransport | None = None,
        sleep: Sleep = time.sleep,
        log: Logger | None = None,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        timeout: httpx.Timeout | None = None,
        max_connections: int = 10,
        key_source: str | None = None,
    ) -> None:
        self.provider = provider
        self._key_source = key_source
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._sleep = sleep
        self._log = log
        self._policy = policy or RetryPolicy()
        self._rng = rng or random.Random()
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._http = httpx.Client(
            transport=transport,
            timeout=timeout or httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
            follow_redirects=False,
            limits=limits,
        )

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

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
        headers: dict[str, str] = {}
        if call.authenticated and self._api_key:
            headers.update(self.provider.auth_headers(self._api_key))
        request = self._http.build_request(
            call.method, self.url_for(call), json=call.json, params=call.params, headers=headers
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

    def send(self, call: HttpCall) -> Any:
        """Send ``call`` under the retry rules; the parsed JSON answer, or an error of the tree."""
        url = self.url_for(call)
        headers: dict[str, str] = {}
        if call.authenticated and self._api_key:
            headers.update(self.provider.auth_headers(self._api_key))
        host = urlsplit(url).netloc or url
        attempt = 0
        while True:
            attempt += 1
            self._log_request(call, url, headers, attempt)
            try:
                response = self._http.request(
                    call.method, url, json=call.json, params=call.params, headers=headers
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # Nothing reached the server: safe to retry, even for the paid POST.
                self._log_line(f"<- connection failed: {type(exc).__name__}")
                if attempt >= self._policy.attempts:
                    raise ServiceUnavailableError(
                        f"could not connect to {host} after {attempt} attempts ({_reason(exc)})",
                        hints=["Check the network, HTTPS_PROXY / NO_PROXY, or --base-url."],
                    ) from None
                self._sleep(self._policy.backoff(attempt, self._rng))
                continue
            except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
                # httpx refused to send it: nothing left, and trying again cannot help.
                raise ServiceUnavailableError(
                    f"could not send the request to {host} ({_reason(exc)}); nothing was sent",
                    hints=["Check --base-url (an http:// or https:// URL)."],
                ) from None
            except httpx.TimeoutException as exc:
                if call.paid:
                    raise self._unknown_outcome(call, host, "no answer in time") from None
                self._log_line(f"<- timed out: {type(exc).__name__}")
                if attempt >= self._policy.attempts:
                    raise ServiceUnavailableError(
                        f"{host} did not answer in time after {attempt} attempts"
                    ) from None
                self._sleep(self._policy.backoff(attempt, self._rng))
                continue
            except (httpx.TransportError, httpx.DecodingError) as exc:
                # DecodingError: an answer came (so a paid POST did reach the server) whose
                # body does not decode (a proxy's bad Content-Encoding): not a crash.
                if call.paid:
                    raise self._unknown_outcome(call, host, _reason(exc)) from None
                self._log_line(f"<- transport error: {type(exc).__name__}")
                if attempt >= self._policy.attempts:
                    raise ServiceUnavailableError(
                        f"{host} kept failing after {attempt} attempts ({_reason(exc)})"
                    ) from None
                self._sleep(self._policy.backoff(attempt, self._rng))
                continue

            self._log_response(response)
            if 300 <= response.status_code < 400:
                raise self._redirect_error(response, host)
            if response.status_code < 400:
                return self._parse_body(response)

            error = self._error_for(response)
            retryable = response.status_code == 429 or (
                not call.paid and response.status_code in RETRYABLE_GET_STATUSES
            )
            if not retryable:
                if call.paid and response.status_code >= 500:
                    error.hints.append(
                        "The submission was not repeated, to avoid paying twice; check "
                        "`flux2 history` and the provider's dashboard before re-running."
                    )
                raise error
            wait = self._wait_before_retry(response, attempt)
            if wait is None or attempt >= self._policy.attempts:
                raise error
            self._sleep(wait)

    def _wait_before_retry(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds before the next try; raises when Retry-After asks for too long a wait."""
        stated = parse_retry_after(response.headers.get("Retry-After"))
        if stated is None:
            return self._policy.backoff(attempt, self._rng)
        if stated > self._policy.retry_after_cap:
            raise RateLimitError(
                f"{self.provider.capabilities.id}: rate limited; the server asks to retry in "
                f"{_human_seconds(stated)}, which is longer than flux2 waits "
                f"({self._policy.retry_after_cap:g} s).",
                status_code=response.status_code,
                hints=[f"Try again after {_retry_moment(stated)}."],
            )
        return stated

    def _clean(self, text: str) -> str:
        """Server text with the key (and any bearer token) removed: servers echo headers, and
        error messages reach stdout too (``batch --json``), where nothing scrubs them later."""
        return scrub_all(scrub(text, [self._api_key] if self._api_key else []))

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

    def _error_for(self, response: httpx.Response) -> ApiError:
        text = self._clean(response.text)
        try:
            body: Any = json.loads(text) if text.strip() else None
        except ValueError:
            body = None
        error = self.provider.error_for(response.status_code, body, text)
        if isinstance(error, AuthError) and self._api_key:
            # Which key was refused, and from where, is what the user needs to fix it.
            source = f" (from {self._key_source})" if self._key_source else ""
            error.hints.append(f"The key sent was {mask(self._api_key)}{source}.")
        return error

    def _parse_body(self, response: httpx.Response) -> Any:
        text = response.text
        try:
            return json.loads(text)
        except ValueError:
            raise UnexpectedResponseError(
                f"unexpected response from {urlsplit(str(response.url)).netloc}: "
                f"{self._clean(excerpt(text)) or '(empty body)'}"
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
        shown = {**self._http.headers, **headers}
        for name, value in redact_headers(shown).items():
            self._log_line(f"   {name}: {value}")
        if call.json is not None:
            body = json.dumps(call.json, ensure_ascii=False)[:LOG_BODY_CHARS]
            self._log_line("   " + redact_urls_in(body))

    def _log_response(self, response: httpx.Response) -> None:
        if self._log is None:
            return
        self._log_line(f"<- {response.status_code} {response.reason_phrase}")
        # Result URLs in a body are signed: their query strings are secrets too.
        self._log_line("   " + redact_urls_in(excerpt(response.text, LOG_BODY_CHARS)))


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
