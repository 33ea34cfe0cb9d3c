"""Redaction of secrets: API keys and signed query strings never reach a screen or a log."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "***"
SECRET_HEADERS = frozenset(
    {"authorization", "x-key", "x-api-key", "api-key", "cookie", "set-cookie", "x-webhook-secret"}
)
# Query parameters that are not secrets and help a reader; every other value is hidden.
PUBLIC_QUERY_KEYS = frozenset({"id", "task_id"})
MIN_SECRET_LENGTH = 4


class Secrets:
    """The keys one command uses: every text from a server is scrubbed of all of them.

    One instance per command (the Context owns it), shared with its clients and its output;
    nothing is remembered across commands or tests.
    """

    def __init__(self, values: Iterable[str | None] = ()) -> None:
        self._values: set[str] = set()
        for value in values:
            self.add(value)

    def add(self, secret: str | None) -> None:
        """Remember ``secret`` (too short a string is not worth hiding: it would hide words)."""
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            self._values.add(secret)

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._values, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        """``text`` with every one of these secrets replaced by ``***``."""
        return scrub(text, self._values) if self._values else text


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every given secret replaced by ``***`` (the longest first)."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if secret and len(secret) >= MIN_SECRET_LENGTH and secret in text:
            text = text.replace(secret, REDACTED)
    return text


MASK = "…"
MASK_SHOWN = 4
MASK_MIN_LENGTH = 8  # shorter secrets are hidden entirely: four characters would be half of one


def mask(secret: str | None) -> str:
    """At most the last four characters of a secret: ``…wxyz`` (``(none)`` for no secret)."""
    if secret is None:
        return "(none)"
    if len(secret) < MASK_MIN_LENGTH:
        return MASK
    return MASK + secret[-MASK_SHOWN:]


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
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers with every credential hidden."""
    return {
        name: (REDACTED if name.lower() in SECRET_HEADERS else value)
        for name, value in headers.items()
    }


_BEARER_RE = re.compile(r"(?i)(bearer\s+)[^\s\"']+")


def scrub_all(text: str, secrets: Iterable[str] = ()) -> str:
    """:func:`scrub` plus any ``Bearer …`` token, for free text of unknown origin."""
    return _BEARER_RE.sub(r"\1" + REDACTED, scrub(text, secrets))


def public_url(url: str) -> str:
    """The URL without user info, query string and fragment (signed URLs carry secrets there)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "?"
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
