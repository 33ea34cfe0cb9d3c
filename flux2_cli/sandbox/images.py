"""Deterministic pictures for the sandbox: a gradient with shapes drawn from (prompt, seed).

The picture is drawn small and scaled up, so a 2048×1152 image takes a few tens of
milliseconds; nothing time-dependent goes into the file, so one request always gives the same
bytes. A small "SANDBOX" badge in the bottom-right corner says, on the picture itself, that
it is a simulation (a file copied away from its sidecar still tells).
"""

from __future__ import annotations

import functools
import hashlib
import io
import random
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL.Image import Image

FORMATS: dict[str, tuple[str, str]] = {
    # our name: (Pillow format, content type)
    "png": ("PNG", "image/png"),
    "jpeg": ("JPEG", "image/jpeg"),
    "webp": ("WEBP", "image/webp"),
}
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
DRAFT_LONG_SIDE = 320  # pixels of the long side of the draft that is scaled up
SHAPES = 7
MARK_TEXT = "SANDBOX"
MARK_MIN_SIDE = 48  # below this there is no room for a legible mark
MARK_SIDE_FRACTION = 40  # font size = the short side / this (36 px on a 1440×1440 image)
MARK_MIN_FONT = 9
MARK_INK = (255, 255, 255)
MARK_GROUND = (0, 0, 0)


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
    draw_mark(image)

    buffer = io.BytesIO()
    pillow_format = FORMATS[fmt][0]
    if pillow_format == "PNG":
        image.save(buffer, "PNG", compress_level=1)
    elif pillow_format == "JPEG":
        image.save(buffer, "JPEG", quality=85)
    else:
        image.save(buffer, "WEBP", quality=80, method=0)
    return buffer.getvalue()


def draw_mark(image: Image) -> None:
    """The "SANDBOX" badge, white on black, in the bottom-right corner (in place).

    Drawn at full size after scaling, so it stays crisp; sized from the short side, so it is
    small on every size; skipped on images too small to hold it.
    """
    from PIL import ImageDraw

    width, height = image.size
    if min(width, height) < MARK_MIN_SIDE:
        return
    font = _font(max(MARK_MIN_FONT, min(width, height) // MARK_SIDE_FRACTION))
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((0, 0), MARK_TEXT, font=font)
    pad = max(2, (bottom - top) // 3)
    box_w, box_h = right - left + 2 * pad, bottom - top + 2 * pad
    x0, y0 = width - box_w - pad, height - box_h - pad
    draw.rectangle((x0, y0, x0 + box_w - 1, y0 + box_h - 1), fill=MARK_GROUND)
    draw.text((x0 + pad - left, y0 + pad - top), MARK_TEXT, font=font, fill=MARK_INK)


@functools.lru_cache(maxsize=8)
def _font(size: int) -> Any:
    """Pillow's bundled font at ``size`` (the same glyphs on every machine with this Pillow)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # an old Pillow, or one without FreeType
        return ImageFont.load_default()


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))
