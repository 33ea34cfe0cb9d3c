"""What an image says about how it was made: ``parameters``, XMP digital source type, Exif."""

from __future__ import annotations

import io

from PIL import Image

from flux2_cli.provenance import (
    DIGITAL_SOURCE_TYPE,
    jpeg_with_provenance,
    parameters_text,
    png_with_texts,
    xmp_packet,
)

METADATA = {
    "tool": "flux2 1.0",
    "task_id": "sbx6e208ca2a",
    "provider": "sandbox",
    "model": "flux-2",
    "seed": 7,
    "request": {"prompt": '雪の中の赤い狐, <bright> & "cold"', "mode": "pro"},
}


def image_bytes(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 8), (200, 40, 40)).save(buffer, fmt)
    return buffer.getvalue()


def test_parameters_text_is_the_prompt_then_one_key_value_line() -> None:
    text = parameters_text(METADATA, 16, 8)
    prompt, line = text.split("\n")
    assert prompt == METADATA["request"]["prompt"]  # type: ignore[index]
    assert line == (
        "Seed: 7, Size: 16x8, Model: flux-2, Mode: pro, Provider: sandbox, "
        "Task: sbx6e208ca2a, Tool: flux2 1.0"
    )


def test_xmp_says_trained_algorithmic_media_and_escapes_the_prompt() -> None:
    xmp = xmp_packet(METADATA).decode("utf-8")
    assert f'Iptc4xmpExt:DigitalSourceType="{DIGITAL_SOURCE_TYPE}"' in xmp
    assert '&lt;bright&gt; &amp; "cold"' in xmp
    import xml.dom.minidom

    xml.dom.minidom.parseString(xmp.split("?>", 1)[1].rsplit("<?xpacket", 1)[0])  # well-formed


def test_png_gets_parameters_and_xmp_that_pillow_reads_pixels_unchanged() -> None:
    png = image_bytes("PNG")
    text = parameters_text(METADATA, 16, 8)
    out = png_with_texts(
        png,
        [("parameters", text), ("XML:com.adobe.xmp", xmp_packet(METADATA).decode())],
    )
    assert out is not None
    with Image.open(io.BytesIO(out)) as image:
        image.load()
        assert image.text["parameters"] == text  # UTF-8 iTXt: the Japanese prompt is kept
        assert DIGITAL_SOURCE_TYPE.encode() in image.info["xmp"]
        assert image.tobytes() == Image.open(io.BytesIO(png)).tobytes()


def test_jpeg_gets_exif_user_comment_xmp_and_comment() -> None:
    jpeg = image_bytes("JPEG")
    text = parameters_text(METADATA, 16, 8)
    out = jpeg_with_provenance(jpeg, text, xmp_packet(METADATA), '{"task_id":"sbx6e208ca2a"}')
    assert out is not None
    with Image.open(io.BytesIO(out)) as image:
        image.load()
        comment = image.getexif().get_ifd(0x8769)[0x9286]
        assert comment == b"UNICODE\x00" + text.encode("utf-16-be")
        assert DIGITAL_SOURCE_TYPE.encode() in image.info["xmp"]
        assert image.info["comment"] == b'{"task_id":"sbx6e208ca2a"}'
        assert image.size == (16, 8)


def test_not_a_png_or_jpeg_is_left_alone() -> None:
    assert png_with_texts(b"GIF89a", [("parameters", "x")]) is None
    assert jpeg_with_provenance(b"GIF89a", "x", b"<x/>", "{}") is None
