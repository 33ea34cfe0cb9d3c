"""Which image format a file is, from its first bytes (PNG, JPEG, WebP: what providers serve)."""

from __future__ import annotations

SNIFF_BYTES = 12


def sniff_image_type(head: bytes) -> str | None:
    """``png``, ``jpeg`` or ``webp`` from the first bytes of a file, else None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(head) >= SNIFF_BYTES and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None
