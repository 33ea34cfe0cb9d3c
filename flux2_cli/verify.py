"""Checking a downloaded file is the whole image it claims to be: magic bytes, then a decode."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from flux2_cli.errors import DownloadError
from flux2_cli.imagetype import sniff_image_type

PIL_FORMATS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp"}
PAGE_SNIFF_BYTES = 4096  # read of a page answered instead of an image, to say what it is
PAGE_TITLE_CHARS = 80
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
# Cloud storage's answer to an expired or revoked signed URL (S3, OSS, GCS, Azure).
_STORAGE_ERROR = re.compile(r"AccessDenied|Request has expired|ExpiredToken|expired", re.IGNORECASE)


@dataclass(frozen=True)
class Verified:
    """A checked image: its format (``png``, ``jpeg``, ``webp``) and size in pixels."""

    format: str
    width: int
    height: int


class Incomplete(Exception):
    """The bytes are cut short or damaged: fetching them again may help (from zero)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MarkupPage(Exception):
    """An HTML/XML page instead of an image: the URL needs refreshing.

    ``page`` is set when it is not a storage "expired/denied" answer but some other page (a
    proxy's login, a captive portal, an error page): then the image is not gone, something is
    in the way, and the message says what came back instead of "expired".
    """

    def __init__(self, reason: str, *, page: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.page = page


def describe_page(head: bytes, content_type: str = "", status: int = 200) -> MarkupPage:
    """What a markup answer is, from its first bytes: a storage error, or a page and its title."""
    text = head.decode("utf-8", errors="replace")
    xml = content_type.endswith("xml") or text.lstrip().startswith("<?xml")
    storage_error = _STORAGE_ERROR.search(text) if xml else None
    if storage_error:
        return MarkupPage(f"an XML storage error page ({storage_error.group(0)})")
    what = "an XML page" if xml else "an HTML page"
    title = _TITLE.search(text)
    shown = " ".join(title.group(1).split())[:PAGE_TITLE_CHARS] if title else ""
    if shown:
        what += f" titled {shown!r}"
    if status != 200:
        what += f" (HTTP {status})"
    return MarkupPage(what, page=True)


def looks_like_markup(chunk: bytes) -> bool:
    """True when the first bytes are the start of an HTML or XML document."""
    head = chunk[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<")


def verify_image(fh: BinaryIO, path: Path, *, length_known: bool) -> Verified:
    """Magic bytes, then Pillow: the format, the size, and that the image is whole.

    ``length_known``: the server declared the length and all of it came; otherwise only a
    full decode shows that nothing is missing.
    """
    fh.flush()
    fh.seek(0)
    head = fh.read(16)
    if looks_like_markup(head):
        fh.seek(0)
        raise describe_page(fh.read(PAGE_SNIFF_BYTES))
    kind = sniff_image_type(head)
    if kind is None:
        if len(head) < 12:
            raise Incomplete(f"the body was cut short ({len(head)} bytes)")
        raise DownloadError("the downloaded file is not a PNG, JPEG or WebP image")
    from PIL import Image

    try:
        with Image.open(path) as image:
            pil_format = image.format or ""
            width, height = image.size
            image.verify()
        if not length_known:
            with Image.open(path) as image:
                image.load()
    except Image.DecompressionBombError:
        raise DownloadError("the image is too large to decode safely") from None
    except Exception as exc:  # any decoder failure means a damaged image
        raise Incomplete(f"the image does not decode ({type(exc).__name__}: cut short?)") from None
    actual = PIL_FORMATS.get(pil_format)
    if actual != kind:
        raise DownloadError(f"the downloaded file is not a PNG, JPEG or WebP image ({pil_format})")
    return Verified(format=actual, width=width, height=height)
