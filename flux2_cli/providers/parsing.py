"""Tolerant parsing shared by every dialect: envelopes, ids, statuses, image URLs, errors.

Two of the APIs document two shapes each and one documents no status body at all, so
nothing here depends on a single shape (wire-contracts.md, "Tolerant parsing").
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flux2_cli.errors import (
    ApiError,
    AuthError,
    BadRequestError,
    CreditsError,
    NotFoundError,
    RateLimitError,
    ServerError,
    UnexpectedResponseError,
)
from flux2_cli.task import TaskStatus, parse_time

if TYPE_CHECKING:
    from flux2_cli.providers.base import Capabilities

EXCERPT_CHARS = 200
# The error code of a task the provider does not know (HTTP 404, BFL's "Task not found").
NOT_FOUND_CODE = "not_found"
OK_ENVELOPE_CODES = {0, 200, "0", "200", "success", "ok", "OK"}
TASK_ID_KEYS = ("task_id", "id", "request_id")
STATUS_KEYS = ("status", "state")
ERROR_MESSAGE_KEYS = ("message", "detail", "msg", "error_message")
# Words that make a 403 mean "out of money" rather than "bad key". Not "insufficient" alone:
# "insufficient permissions" is a refused key (exit 3), not an empty wallet (exit 4).
BALANCE_WORDS = ("balance", "credit", "funds", "payment", "quota exceeded")

DEFAULT_STATUS_WORDS: Mapping[str, TaskStatus] = {
    # queued
    "queued": TaskStatus.QUEUED,
    "queue": TaskStatus.QUEUED,
    "pending": TaskStatus.QUEUED,
    "submitted": TaskStatus.QUEUED,
    "created": TaskStatus.QUEUED,
    "waiting": TaskStatus.QUEUED,
    "starting": TaskStatus.QUEUED,
    # running
    "in_progress": TaskStatus.RUNNING,
    "in progress": TaskStatus.RUNNING,
    "in-progress": TaskStatus.RUNNING,
    "processing": TaskStatus.RUNNING,
    "running": TaskStatus.RUNNING,
    "generating": TaskStatus.RUNNING,
    # succeeded
    "completed": TaskStatus.SUCCEEDED,
    "complete": TaskStatus.SUCCEEDED,
    "success": TaskStatus.SUCCEEDED,
    "succeeded": TaskStatus.SUCCEEDED,
    "successful": TaskStatus.SUCCEEDED,
    "ready": TaskStatus.SUCCEEDED,
    "done": TaskStatus.SUCCEEDED,
    "finished": TaskStatus.SUCCEEDED,
    # failed
    "failed": TaskStatus.FAILED,
    "failure": TaskStatus.FAILED,
    "error": TaskStatus.FAILED,
    "cancelled": TaskStatus.FAILED,
    "canceled": TaskStatus.FAILED,
    "request moderated": TaskStatus.FAILED,
    "content moderated": TaskStatus.FAILED,
    "moderated": TaskStatus.FAILED,
    "rejected": TaskStatus.FAILED,
    "task not found": TaskStatus.FAILED,
    # expired
    "expired": TaskStatus.EXPIRED,
}

# A URL of any scheme, or a relative path: what an image place may hold besides words.
_URL_LIKE_RE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:|\.{0,2}/)\S")
DEFAULT_IMAGE_PATHS: tuple[str, ...] = (
    "images[].url",
    "images[]",
    "result.images[].url",
    "result.images[]",
    "result.sample",
    "result.url",
    "output[].content[].url",
    "output[].url",
    "output[]",
    "output.image_urls[]",
    "output.images[].url",
    "output.url",
    # API in One documents no status body: every place an answer has been seen to use.
    "output.image_url",
    "output.image_urls[]",
    "image_url",
    "data.output.image_url",
    "data.output.image_urls[]",
    "data.output.images[].url",
    "data.output.images[]",
    "data.output.url",
    "data.output[]",
    "image_urls[]",
    "urls[]",
    "url",
)


def excerpt(body: object, limit: int = EXCERPT_CHARS) -> str:
    """At most ``limit`` characters of a body, on one line, for error messages."""
    text = body if isinstance(body, str) else repr(body)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def unwrap_envelope(body: Any) -> Any:
    """``{"code", "message", "data": X}`` -> X (a one-item list unwrapped); refuse error codes.

    ``{"success": false, "message": …}`` in a 200 answer is the API refusing the call
    (APIMart's contract: apimart-ai/apimart-skills, scripts/apimart-media.mjs extractApiError).
    """
    if not isinstance(body, dict):
        return body
    if body.get("success") is False:
        raise _refusal(body)
    if "data" in body and ("code" in body or "message" in body or "msg" in body):
        code = body.get("code")
        if code is not None and not _is_ok_code(code):
            raise _envelope_error(body, code)
        data = body.get("data")
        if isinstance(data, list) and len(data) == 1:
            return data[0]
        if data is None:
            return body
        return data
    code = body.get("code")
    if (
        code is not None
        and not _is_ok_code(code)
        and "error" not in body
        and not any(key in body for key in TASK_ID_KEYS)
    ):
        raise _envelope_error(body, code)
    return body


def _envelope_error(body: dict[str, Any], code: Any) -> ApiError:
    """An error code inside a 200 answer: an HTTP-like code takes the status-code ladder."""
    status = _http_like_status(code)
    if status is not None:
        return api_error(None, status, body, "")
    message = _first_text(body, ERROR_MESSAGE_KEYS) or "the service reported an error"
    return ApiError(f"{message} (code {code})", code=str(code))


def _refusal(body: dict[str, Any]) -> ApiError:
    """A ``{"success": false}`` answer: the status-code ladder when it carries an HTTP-like
    code, else out of credits when it speaks of a balance, else a refused request (exit 2)."""
    error = body.get("error")
    source = error if isinstance(error, dict) else body
    code = source.get("code", body.get("code"))
    status = _http_like_status(code)
    if status is not None:
        return api_error(None, status, body, "")
    found_code, message = find_error(body)
    shown = message or "the request was refused (success: false)"
    lowered = f"{shown} {found_code or ''}".lower()
    if any(word in lowered for word in BALANCE_WORDS):
        return CreditsError(f"out of credits or payment required: {shown}", code=found_code)
    return BadRequestError(f"the request was refused: {shown}", code=found_code)


def _http_like_status(code: Any) -> int | None:
    if isinstance(code, bool):
        return None
    if isinstance(code, int) or (isinstance(code, str) and code.strip().isdigit()):
        number = int(code)
        if 400 <= number <= 599:
            return number
    return None


def _is_ok_code(code: Any) -> bool:
    # A dict or list "code" is unhashable: it is not a success code (and must not crash).
    try:
        return code in OK_ENVELOPE_CODES
    except TypeError:
        return False


def find_task_id(data: Any) -> str | None:
    """The first of ``task_id``, ``id``, ``request_id`` that holds a value."""
    if not isinstance(data, dict):
        return None
    for key in TASK_ID_KEYS:
        value = data.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


def find_status(data: Any) -> str | None:
    """The raw status word, from ``status`` or ``state``.

    A number counts too (as its text): it is an unknown status, which keeps the task polling
    and is named when the deadline passes, rather than being ignored.
    """
    if not isinstance(data, dict):
        return None
    for key in STATUS_KEYS:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    return None


def amount(value: Any) -> float | None:
    """A reported cost as a finite, non-negative number; None for anything else.

    ``json.loads`` turns ``NaN`` and ``1e400`` into floats that no JSON document may hold.
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def map_status(raw: str | None, words: Mapping[str, TaskStatus]) -> TaskStatus | None:
    """The normalised status for a raw word (case-insensitive), or None when unknown."""
    if raw is None:
        return None
    key = raw.strip().lower()
    return words.get(key) or DEFAULT_STATUS_WORDS.get(key)


def _walk(node: Any, parts: list[str]) -> list[Any]:
    if not parts:
        return [node]
    head, rest = parts[0], parts[1:]
    is_list = head.endswith("[]")
    key = head[:-2] if is_list else head
    if key:
        if not isinstance(node, dict) or key not in node:
            return []
        node = node[key]
    if is_list:
        items = node if isinstance(node, list) else [node]
        found: list[Any] = []
        for item in items:
            found.extend(_walk(item, rest))
        return found
    return _walk(node, rest)


def _urls_in(values: Iterable[Any]) -> list[str]:
    urls: list[str] = []
    for value in values:
        if isinstance(value, str):
            candidate = value.strip()
            # Any text in an image place counts, even a file:, data: or relative URL: the
            # task is then finished, and the download refuses that scheme at once (exit 8)
            # instead of polling until --timeout for an http URL that never comes.
            if _URL_LIKE_RE.match(candidate):
                urls.append(candidate)
        elif isinstance(value, list):
            urls.extend(_urls_in(value))
    return urls


def find_image_urls(data: Any, preferred: Iterable[str] = ()) -> list[str]:
    """Image URLs from the documented place first, then the usual ones; order kept, no dups."""
    if not isinstance(data, dict):
        return []
    urls: list[str] = []
    for path in (*preferred, *DEFAULT_IMAGE_PATHS):
        found = _urls_in(_walk(data, path.split(".")))
        if found:
            for url in found:
                if url not in urls:
                    urls.append(url)
            break
    return urls


def find_error(data: Any) -> tuple[str | None, str | None]:
    """The provider's error (code, message) from any of the documented places."""
    if not isinstance(data, dict):
        return None, (data.strip() or None) if isinstance(data, str) else None
    code: str | None = None
    message: str | None = None
    error = data.get("error")
    error_type: str | None = None
    if isinstance(error, dict):
        message = _first_text(error, ERROR_MESSAGE_KEYS)
        code = _scalar(error.get("code"))
        error_type = _scalar(error.get("type"))
    elif isinstance(error, str) and error.strip():
        # {"error": "rate_limit_exceeded", "message": "Too many concurrent requests"} (BFL):
        # the word is the code and the sentence the message.
        text = _first_text(data, ("message",))
        if text is not None:
            message, code = text, error.strip()
        else:
            message = error.strip()
    if message is None:
        message = _first_text(data, ERROR_MESSAGE_KEYS)
    if message is None:
        detail = data.get("detail")
        if isinstance(detail, list):
            message = _fastapi_detail(detail)
    # The documented order: error.code, then code, then error.type.
    if code is None:
        code = _scalar(data.get("code")) or _scalar(data.get("error_code"))
    if code is None:
        code = error_type
    return code, message


def _scalar(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = str(value).strip()
    return text or None


def _fastapi_detail(detail: list[Any]) -> str | None:
    parts = []
    for item in detail:
        if isinstance(item, dict):
            loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
            msg = str(item.get("msg", "")).strip()
            parts.append(f"{loc}: {msg}" if loc else msg)
        elif isinstance(item, str):
            parts.append(item)
    text = "; ".join(part for part in parts if part)
    return text or None


def _first_text(data: Mapping[str, Any], keys: Iterable[str]) -> str | None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def find_time(data: Any, keys: Iterable[str]) -> datetime | None:
    """The first time among ``keys`` (ISO 8601 or unix seconds)."""
    if not isinstance(data, dict):
        return None
    for key in keys:
        moment = parse_time(data.get(key))
        if moment is not None:
            return moment
    return None


def find_expiry(data: Any) -> datetime | None:
    """An expiry stated by the answer: ``expires_at`` at the top or on the first image."""
    direct = find_time(data, ("expires_at", "expire_at", "expiration"))
    if direct is not None:
        return direct
    for path in ("result.images[].expires_at", "images[].expires_at"):
        for value in _walk(data, path.split(".")):
            moment = parse_time(value)
            if moment is not None:
                return moment
    return None


def parse_json_text(text: str) -> Any:
    """JSON from a response body, or an UnexpectedResponseError quoting its start."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        raise UnexpectedResponseError(f"unexpected response (not JSON): {excerpt(text)}") from None


def api_error(caps: Capabilities | None, status_code: int, body: Any, text: str) -> ApiError:
    """The status-code ladder: an HTTP error answer becomes the matching ApiError."""
    code, message = find_error(body) if body is not None else (None, None)
    if message is None:
        message = excerpt(text) if text.strip() and not _looks_like_markup(text) else None
    shown = message or f"HTTP {status_code}"
    where = f"{caps.id}: " if caps is not None else ""
    # The code counts too: {"error": {"code": "insufficient_balance", "message": "Forbidden"}}.
    lowered = f"{message or ''} {code or ''}".lower()
    if status_code == 402 or (
        status_code == 403 and any(word in lowered for word in BALANCE_WORDS)
    ):
        return CreditsError(
            f"{where}out of credits or payment required: {shown}",
            status_code=status_code,
            code=code,
            hints=["Top up the account, or pick another --provider or --profile."],
        )
    if status_code in (401, 403):
        return AuthError(
            f"{where}the API key was refused: {shown}", status_code=status_code, code=code
        )
    if status_code in (400, 409, 413, 422):
        return BadRequestError(
            f"{where}the request was refused: {shown}", status_code=status_code, code=code
        )
    if status_code in (404, 410):
        return NotFoundError(
            f"{where}task not found or expired: {shown}", status_code=status_code, code=code
        )
    if status_code == 429:
        error = RateLimitError(f"{where}rate limited: {shown}", status_code=status_code, code=code)
        # BFL documents {"error": "rate_limit_exceeded", "message": …, "retry_after": 5}: the
        # wait to honour when no Retry-After header says otherwise.
        stated = amount(body.get("retry_after")) if isinstance(body, dict) else None
        if stated is not None:
            error.retry_after = f"{stated:g}"
        return error
    if status_code >= 500:
        return ServerError(
            f"{where}server error {status_code}: {excerpt(shown)}",
            status_code=status_code,
            code=code,
        )
    return ApiError(f"{where}HTTP {status_code}: {shown}", status_code=status_code, code=code)


def _looks_like_markup(text: str) -> bool:
    head = text.lstrip()[:100].lower()
    return head.startswith(("<!doctype", "<html", "<?xml", "<")) and ">" in head
