"""The drawing: exact sizes, each format, same input same bytes, no timestamps."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from flux2_cli.request import SIZE_TABLE
from flux2_cli.sandbox.images import content_type, extension, render


@pytest.mark.parametrize(("key", "size"), sorted(SIZE_TABLE.items()))
def test_every_size_of_the_table_is_exact(key: tuple[str, str], size: tuple[int, int]) -> None:
    data = render(*size, "a lighthouse", None, "jpeg")
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == size


@pytest.mark.parametrize(("fmt", "pillow"), [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")])
def test_formats(fmt: str, pillow: str) -> None:
    data = render(64, 96, "a lighthouse", 1, fmt)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == pillow
        assert image.size == (64, 96)
    assert content_type(fmt).startswith("image/")
    assert extension(fmt) in ("png", "jpg", "webp")


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
def test_same_input_same_bytes_other_input_other_bytes(fmt: str) -> None:
    one = render(320, 200, "a lighthouse", 5, fmt)
    assert one == render(320, 200, "a lighthouse", 5, fmt)
    assert one != render(320, 200, "a lighthouse", 6, fmt)
    assert one != render(320, 200, "a lighthousE", 5, fmt)


def test_png_has_no_time_chunk() -> None:
    assert b"tIME" not in render(100, 100, "abc", None, "png")


def test_tiny_and_unknown() -> None:
    with Image.open(io.BytesIO(render(1, 1, "abc", None))) as image:
        assert image.size == (1, 1)
    with pytest.raises(ValueError):
        render(10, 10, "abc", None, "gif")


@pytest.mark.parametrize("size", [(1440, 1440), (2048, 1152), (64, 96)])
def test_every_image_carries_a_visible_sandbox_mark(size: tuple[int, int]) -> None:
    from flux2_cli.sandbox.images import MARK_GROUND, MARK_INK

    data = render(*size, "a lighthouse", 3, "png")
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == size
        rgb = image.convert("RGB")
        width, height = size
        # The badge sits in the bottom-right corner: black ground, white (antialiased) letters.
        corner = rgb.crop((width // 2, height - height // 4, width, height))
        colours = {colour for _, colour in corner.getcolors(maxcolors=1 << 20) or []}
    assert MARK_GROUND in colours
    assert any(min(colour) >= min(MARK_INK) - 30 for colour in colours)


def test_the_mark_is_left_out_where_it_cannot_fit() -> None:
    from flux2_cli.sandbox.images import MARK_GROUND

    with Image.open(io.BytesIO(render(32, 32, "a lighthouse", 3, "png"))) as image:
        colours = {colour for _, colour in image.convert("RGB").getcolors(maxcolors=4096) or []}
    assert image.size == (32, 32) and MARK_GROUND not in colours


def test_issue15_png_is_a_palette_picture_drawn_at_full_size() -> None:
    # One byte a pixel and no scaling: a tenth of the CPU of the truecolour picture it replaces
    # (benchmarks/batch_scale.py's server CPU per task), and edges as sharp as the pixels.
    with Image.open(io.BytesIO(render(1024, 1024, "a lighthouse", 2, "png"))) as image:
        assert image.mode == "P" and image.size == (1024, 1024)
        colours = image.convert("RGB").getcolors(maxcolors=256)
    assert colours is not None and len(colours) > 20  # a gradient and shapes, not a flat fill
