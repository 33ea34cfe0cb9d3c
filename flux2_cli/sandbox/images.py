"""Deterministic pictures for the sandbox: a gradient with shapes drawn from (prompt, seed).

The picture is a palette image drawn at full size, so a 2048×1152 image takes a few
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
GRADIENT_STEPS = 96  # bands of the vertical gradient (palette entries)
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

    top = _colour(rng)
    bottom = _colour(rng)
    # A palette picture ("P", one byte a pixel): a banded vertical gradient and flat shapes,
    # drawn at full size. An RGB picture scaled up and encoded as truecolour PNG cost ~25 ms of
    # CPU per 1024x1024 image, most of the sandbox's work per task; this costs a tenth of it.
    rows = bytes(y * (GRADIENT_STEPS - 1) // max(1, height - 1) for y in range(height))
    image = Image.frombytes("P", (1, height), rows).resize(
        (width, height), Image.Resampling.NEAREST
    )
    palette = [_blend(top, bottom, step / (GRADIENT_STEPS - 1)) for step in range(GRADIENT_STEPS)]
    draw = ImageDraw.Draw(image)
    for index in range(SHAPES):
        x0 = rng.uniform(-0.1, 0.9) * width
        y0 = rng.uniform(-0.1, 0.9) * height
        size = rng.uniform(0.1, 0.45) * min(width, height)
        box = (x0, y0, x0 + size * rng.uniform(0.6, 1.6), y0 + size)
        ellipse = rng.random() < 0.5
        palette.append(_colour(rng))
        ink = GRADIENT_STEPS + index
        if ellipse:
            draw.ellipse(box, fill=ink)
        else:
            draw.rectangle(box, fill=ink)
    # The palette keeps free entries: colours drawn later (a badge) are added to it.
    image.putpalette([channel for colour in palette for channel in colour])
    draw_mark(image)

    buffer = io.BytesIO()
    pillow_format = FORMATS[fmt][0]
    if pillow_format == "PNG":
        image.save(buffer, "PNG", compress_level=1)
    elif pillow_format == "JPEG":
        image.convert("RGB").save(buffer, "JPEG", quality=85)
    else:
        image.convert("RGB").save(buffer, "WEBP", quality=80, method=0)
    return buffer.getvalue()


def draw_mark(image: Image) -> None:
    """The "SANDBOX" badge, white on black, in the bottom-right corner (in place).

    Sized from the short side, so it is small on every size; skipped on images too small to
    hold it. On a palette picture its two colours take free palette entries.
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


def _blend(
    top: tuple[int, int, int], bottom: tuple[int, int, int], share: float
) -> tuple[int, int, int]:
    r, g, b = (round(a + (z - a) * share) for a, z in zip(top, bottom, strict=True))
    return (r, g, b)


def _colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))
