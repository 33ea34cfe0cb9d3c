"""Image signatures."""

from __future__ import annotations

import pytest

from flux2_cli.imagetype import sniff_image_type
from tests.helpers import jpeg_bytes, png_bytes


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (png_bytes()[:12], "png"),
        (jpeg_bytes()[:12], "jpeg"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        (b"<html><body>", None),
        (b'<?xml version="1.0"?>', None),
        (b"RIFF\x00\x00\x00\x00WAVE", None),
        (b"", None),
    ],
)
def test_sniff(head: bytes, kind: str | None) -> None:
    assert sniff_image_type(head) == kind
