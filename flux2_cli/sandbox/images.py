"""Deterministic pictures for the sandbox: a gradient with shapes drawn from (prompt, seed).

The picture is drawn small and scaled up, so a 2048×1152 image takes a few tens of
milliseconds; nothing time-dependent goes into the file, so one request always gives the same
bytes.
"""

from __future__ import annotations

import hashlib
import io
import random

FORMATS: dict[str, tuple[str, str]] = {
    # our name: (Pillow format, content type)
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
}
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
DRAFT_LONG_SIDE = 320  # pixels of the long side of the draft that is scaled up
SHAPES = 7


def content_type(fmt: str) -> str:
    """The MIME type of one of :data:`FORMATS`."""
    return FORMATS[fmt][1]


def extension(fmt: str) -> str:
    """The file extension (without dot) of one of :data:`FORMATS`."""
    return EXTENSIONS[fmt]


def render(width: int, height: int, prompt: str, seed: int | None, fmt: str = "png") -> bytes:
    """The image bytes for a request: exactly ``width``×``height``, same input same bytes."""
    from PIL import Image, ImageDraw

    if fmt not in FORMATS:
        raise ValueError(f"unknown image format {fmt!r}")
    digest = hashlib.sha256(f"{prompt}\x00{seed}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))

    scale = DRAFT_LONG_SIDE / max(width, height)
    draft_w, draft_h = max(2, round(width * scale)), max(2, round(height * scale))
    top = _colour(rng)
    bottom = _colour(rng)
    # A vertical gradient built from Pillow's 256-step ramp, coloured by two masks.
    ramp = Image.linear_gradient("L").resize((draft_w, draft_h))
    picture = Image.composite(
        Image.new("RGB", (draft_w, draft_h), bottom),
        Image.new("RGB", (draft_w, draft_h), top),
        ramp,
    )
    draw = ImageDraw.Draw(picture)
    for _ in range(SHAPES):
        x0 = rng.uniform(-0.1, 0.9) * draft_w
        y0 = rng.uniform(-0.1, 0.9) * draft_h
        size = rng.uniform(0.1, 0.45) * min(draft_w, draft_h)
        box = (x0, y0, x0 + size * rng.uniform(0.6, 1.6), y0 + size)
        if rng.random() < 0.5:
            draw.ellipse(box, fill=_colour(rng))
        else:
            draw.rectangle(box, fill=_colour(rng))
    image = picture.resize((width, height), Image.Resampling.BILINEAR)

    buffer = io.BytesIO()
    pillow_format = FORMATS[fmt][0]
    if pillow_format == "PNG":
        image.save(buffer, "PNG", compress_level=1)
    elif pillow_format == "JPEG":
        image.save(buffer, "JPEG", quality=85)
    else:
        image.save(buffer, "WEBP", quality=80, method=0)
    return buffer.getvalue()


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))
