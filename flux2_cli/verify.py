"""Checking a downloaded file is the whole image it claims to be: magic bytes, then a decode."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from flux2_cli.errors import DownloadError
from flux2_cli.imagetype import sniff_image_type

PIL_FORMATS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp"}


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
    """An HTML/XML page (a storage error) instead of an image: the URL needs refreshing."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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
        raise MarkupPage("an HTML/XML page instead of an image")
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
