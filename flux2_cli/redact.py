"""Redaction of secrets: API keys and signed query strings never reach a screen or a log."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "***"
SECRET_HEADERS = frozenset(
    {"authorization", "x-key", "x-api-key", "api-key", "cookie", "set-cookie", "x-webhook-secret"}
)
# Query parameters that are not secrets and help a reader; every other value is hidden.
PUBLIC_QUERY_KEYS = frozenset({"id", "task_id"})
MIN_SECRET_LENGTH = 4

_registered: set[str] = set()


def register_secret(secret: str | None) -> None:
    """Remember a secret so that :func:`scrub` removes it from any text shown later."""
    if secret and len(secret) >= MIN_SECRET_LENGTH:
        _registered.add(secret)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every registered (and given) secret replaced by ``***``."""
    for secret in sorted({*_registered, *secrets}, key=len, reverse=True):
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            text = text.replace(secret, REDACTED)
    return text


def mask(secret: str | None) -> str:
    """At most the last four characters of a secret: ``…wxyz``."""
    if not secret:
        return "(none)"
    if len(secret) < 8:
        return "…"
    return "…" + secret[-4:]


def redact_url(url: str) -> str:
    """The URL with user info dropped and query values hidden (signed URLs are secrets)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return REDACTED
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [
                (key, value if key.lower() in PUBLIC_QUERY_KEYS else REDACTED)
                for key, value in pairs
            ],
            safe="*",
        )
    return scrub(urlunsplit((parts.scheme, netloc, parts.path, query, "")))


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers with every credential hidden."""
    return {
        name: (REDACTED if name.lower() in SECRET_HEADERS else scrub(value))
        for name, value in headers.items()
    }


_BEARER_RE = re.compile(r"(?i)(bearer\s+)[^\s\"']+")


def scrub_all(text: str) -> str:
    """:func:`scrub` plus any ``Bearer …`` token, for free text of unknown origin."""
    return _BEARER_RE.sub(r"\1" + REDACTED, scrub(text))
