"""Fetching one image over HTTP into a temp file: redirects by hand, ``Range`` resume, the cap.

The HTTP core (``client.HttpCore``) owns the connection pool, the retry policy and the time;
this module decides, for one GET, what the answer means: an image to keep, a fault worth a
retry (:class:`Retry`), or a URL that needs refreshing (:class:`Expired`). Requests carry no
credentials, and every read is bounded by the deadline.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

from flux2_cli.client import CONNECT_TIMEOUT_S, DeadlinePassed, HttpCore
from flux2_cli.errors import DownloadError
from flux2_cli.redact import redact_url
from flux2_cli.verify import PAGE_SNIFF_BYTES, MarkupPage, describe_page, looks_like_markup

if TYPE_CHECKING:
    import httpx

    from flux2_cli.atomic import AtomicFile

MAX_REDIRECTS = 5
ALLOWED_SCHEMES = ("http", "https")
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
EXPIRED_STATUSES = frozenset({403, 404, 410})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MARKUP_TYPES = frozenset({"text/html", "application/xhtml+xml", "application/xml", "text/xml"})


class Retry(Exception):
    """A transient failure: the attempt may be repeated (``retry_after``: the server's header)."""

    def __init__(self, reason: str, retry_after: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class Expired(Exception):
    """The URL was refused or answered a page instead of the image: it needs a fresh URL.

    ``page``: what came back was a web page that does not say "expired" (see
    ``verify.describe_page``); the message then says what it was.
    """

    def __init__(self, reason: str, *, page: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.page = page

    @classmethod
    def of(cls, markup: MarkupPage) -> Expired:
        """From the verifier's description of a page."""
        return cls(markup.reason, page=markup.page)


class WriteFailed(Exception):
    """Writing the temp file failed (a full disk, a file-size limit): the real OSError."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def write_chunk(fh: BinaryIO, data: bytes) -> None:
    """Write a chunk to the temp file (one seam, so tests can fake a full disk)."""
    fh.write(data)


@dataclass
class Part:
    """The temp file of one image and what has been received into it so far."""

    file: AtomicFile
    written: int = 0
    total: int | None = None
    resumable: bool = False
    hasher: Any = field(default_factory=hashlib.sha256)

    @property
    def fh(self) -> BinaryIO:
        """The open temp file."""
        return self.file.fh

    def reset(self) -> None:
        """Forget what was received: the next attempt starts from zero."""
        try:
            self.fh.seek(0)
            self.fh.truncate()
        except OSError as exc:
            raise WriteFailed(exc) from exc
        self.written = 0
        self.total = None
        self.resumable = False
        self.hasher = hashlib.sha256()

    def replace_bytes(self, data: bytes) -> None:
        """Put ``data`` in place of what was received (metadata embedded)."""
        try:
            self.fh.seek(0)
            self.fh.truncate()
            write_chunk(self.fh, data)
        except OSError as exc:
            raise WriteFailed(exc) from exc
        self.written = len(data)
        self.hasher = hashlib.sha256(data)


def url_host(url: str) -> str:
    """The host of ``url`` for messages (``?`` when it has none)."""
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


def refused_scheme(url: str) -> str | None:
    """The scheme of a URL flux2 will not fetch (``file``, ``data``, none at all), else None."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return "invalid"
    if scheme in ALLOWED_SCHEMES and urlsplit(url).netloc:
        return None
    return scheme or "relative"


class Transfer:
    """One image GET at a time through the shared core, streamed into a :class:`Part`."""

    def __init__(
        self,
        core: HttpCore,
        *,
        max_bytes: int,
        read_timeout: float,
        hints: Callable[[], list[str]],
        on_bytes: Callable[[int, int | None], None] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.core = core
        self.max_bytes = max_bytes
        self.read_timeout = read_timeout
        self.hints = hints
        self.on_bytes = on_bytes
        self.log = log

    def fetch(self, url: str, part: Part, deadline: float) -> None:
        """One GET (following redirects by hand) streamed into ``part``; raises on any fault."""
        import httpx

        offset = part.written if part.resumable and part.total is not None else 0
        if offset == 0 and part.written:
            part.reset()
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        current = url
        http = self.core.http
        for _hop in range(MAX_REDIRECTS + 1):
            scheme = refused_scheme(current)
            if scheme is not None:
                raise self.bad_scheme(scheme)
            try:
                request = http.build_request(
                    "GET", current, headers=headers, timeout=self._timeout(deadline)
                )
            except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
                raise DownloadError(f"invalid image URL ({exc})") from None
            if self.log is not None:
                self.log(f"-> GET {redact_url(current)}")
            try:
                response = http.send(request, stream=True)
            except httpx.TimeoutException:
                raise Retry("timed out") from None
            except httpx.UnsupportedProtocol as exc:
                raise DownloadError(f"invalid image URL ({exc})") from None
            except httpx.InvalidURL:
                # httpx prepares the next hop even when not following; its Location is unusable.
                raise DownloadError(
                    f"refusing a redirect from {url_host(current)} to an invalid URL "
                    "(only http and https)",
                    hints=self.hints(),
                ) from None
            except httpx.TransportError as exc:
                raise Retry(_describe(exc)) from None
            except httpx.DecodingError:
                # A body read in full on sending (in-memory transports) fails here, not in
                # _receive; the same fault, the same answer.
                part.resumable = False
                raise Retry("the body did not decode (a bad Content-Encoding)") from None
            try:
                if self.log is not None:
                    length = response.headers.get("content-length", "?")
                    kind = response.headers.get("content-type", "?")
                    self.log(
                        f"<- {response.status_code} {response.reason_phrase} "
                        f"({kind}, {length} bytes)"
                    )
                if response.status_code in REDIRECT_STATUSES:
                    location = response.headers.get("location")
                    if not location:
                        raise DownloadError(
                            f"{url_host(current)} answered HTTP {response.status_code} "
                            "without a Location"
                        )
                    current = self._redirect_target(response.url, location)
                    continue
                self._receive(response, part, offset, deadline)
                return
            finally:
                response.close()
        raise DownloadError(
            f"too many redirects (more than {MAX_REDIRECTS}) from {url_host(url)}",
            hints=self.hints(),
        )

    def _timeout(self, deadline: float) -> httpx.Timeout:
        import httpx

        left = max(0.001, self.core.remaining(deadline))
        return httpx.Timeout(
            connect=min(CONNECT_TIMEOUT_S, left),
            read=min(self.read_timeout, left),
            write=min(self.read_timeout, left),
            pool=min(self.read_timeout, left),
        )

    def _redirect_target(self, base: httpx.URL, location: str) -> str:
        import httpx

        scheme = urlsplit(location).scheme.lower()
        if scheme and scheme not in ALLOWED_SCHEMES:
            raise self.bad_scheme(scheme)
        try:
            return str(base.join(location))
        except httpx.InvalidURL as exc:
            raise DownloadError(
                f"{url_host(str(base))} redirected to an invalid URL ({exc})"
            ) from None

    def bad_scheme(self, scheme: str) -> DownloadError:
        """Exit 8: a URL flux2 never fetches (nothing is read from disk or inlined data)."""
        return DownloadError(
            f"refused URL scheme: an image URL with a {scheme} scheme (only http and https)",
            hints=self.hints(),
        )

    def _first_bytes(self, response: httpx.Response, deadline: float) -> bytes:
        """Up to PAGE_SNIFF_BYTES of a page's body, to say what it is; what came if it breaks."""
        import httpx

        head = b""
        try:
            for chunk in self.core.chunks(response, deadline):
                head += chunk
                if len(head) >= PAGE_SNIFF_BYTES:
                    break
        except (httpx.HTTPError, DeadlinePassed):
            pass
        return head[:PAGE_SNIFF_BYTES]

    def _receive(self, response: httpx.Response, part: Part, offset: int, deadline: float) -> None:
        import httpx

        status = response.status_code
        host = url_host(str(response.url))
        if status in EXPIRED_STATUSES:
            raise Expired(f"HTTP {status}")
        if status in RETRY_STATUSES:
            raise Retry(f"HTTP {status}", response.headers.get("retry-after"))
        if status not in (200, 206):
            raise DownloadError(f"{host} answered HTTP {status} for the image", hints=self.hints())
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type in MARKUP_TYPES:
            head = self._first_bytes(response, deadline)
            raise Expired.of(describe_page(head, content_type, status))
        encoded = response.headers.get("content-encoding", "identity").lower() not in (
            "",
            "identity",
        )
        length = _int_header(response.headers.get("content-length"))
        if status == 206:
            start, total = _content_range(response.headers.get("content-range"))
            if not offset or start != offset or encoded:
                # A range we did not ask for, or the wrong one: start again from zero.
                part.reset()
                raise Retry("the server sent an unexpected byte range")
            part.resumable = True
            if total is None and length is not None:
                total = offset + length
        else:
            if offset:
                # The server ignored Range: the body is the whole image, never spliced on.
                part.reset()
            total = None if encoded else length
            part.resumable = (
                response.headers.get("accept-ranges", "").strip().lower() == "bytes" and not encoded
            )
        part.total = total
        if total is not None and total > self.max_bytes:
            raise self.too_large(host)
        # iter_bytes, not iter_raw: it also serves responses whose body is already in memory
        # (mock and embedded transports); with identity encoding the bytes are the raw ones.
        chunks: Iterator[bytes] = self.core.chunks(response, deadline)
        try:
            for chunk in chunks:
                if not chunk:
                    continue
                if part.written == 0 and looks_like_markup(chunk):
                    raise Expired.of(describe_page(chunk[:PAGE_SNIFF_BYTES], content_type, status))
                if part.written + len(chunk) > self.max_bytes:
                    raise self.too_large(host)
                try:
                    write_chunk(part.fh, chunk)
                except OSError as exc:
                    raise WriteFailed(exc) from exc
                part.hasher.update(chunk)
                part.written += len(chunk)
                if self.on_bytes is not None:
                    self.on_bytes(part.written, total)
        except DeadlinePassed:
            raise
        except httpx.TimeoutException:
            raise Retry("timed out while reading the image") from None
        except httpx.TransportError as exc:
            if total is None:
                part.resumable = False
            raise Retry(_describe(exc)) from None
        except httpx.DecodingError:
            # Sent gzip/deflate despite "Accept-Encoding: identity", and it does not decode:
            # what was written is not the image, so the next attempt starts from zero.
            part.resumable = False
            raise Retry("the body did not decode (a bad Content-Encoding)") from None
        if total is not None and part.written < total:
            raise Retry(f"body shorter than its length ({part.written} of {total} bytes)")
        if total is not None and part.written > total:
            part.resumable = False
            raise Retry(f"body longer than its length ({part.written} of {total} bytes)")

    def too_large(self, host: str) -> DownloadError:
        """Exit 8: past the byte cap (the disk is not filled)."""
        return DownloadError(
            f"the image from {host} is larger than the {_human_bytes(self.max_bytes)} limit; "
            "aborted",
            hints=self.hints(),
        )


def _describe(exc: Exception) -> str:
    name = type(exc).__name__
    text = str(exc).strip()
    # httpx messages can quote the URL; keep only a short reason without a query string.
    if not text or "?" in text or len(text) > 120:
        return f"connection problem ({name})"
    return f"{text} ({name})"


def _int_header(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    match = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not match:
        return None, None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total


def _human_bytes(count: int) -> str:
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):g} MB"
    return f"{count} bytes"
