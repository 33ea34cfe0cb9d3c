"""What an image says about how it was made, in the places image tools read (no re-encoding).

``--embed-metadata`` writes, besides flux2's own JSON record:

- ``parameters``: the text Stable Diffusion tools and many viewers show as "generation
  parameters" (the prompt, then one ``Key: value, Key: value`` line), as a PNG text chunk, or
  in a JPEG as the Exif ``UserComment`` where those tools look for it;
- an XMP packet with the IPTC digital source type ``trainedAlgorithmicMedia``, the standard
  way for a file to say it was made by a generative model (IPTC Photo Metadata, "Digital
  Source Type"; read by Adobe tools, exiftool, and platforms that label AI images), with the
  prompt as its description and flux2 as the creator tool.

Every function is pure: bytes in, bytes out; None when the format has no room.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from flux2_cli import __version__

PARAMETERS_KEY = "parameters"
XMP_PNG_KEYWORD = "XML:com.adobe.xmp"
XMP_JPEG_NAMESPACE = b"http://ns.adobe.com/xap/1.0/\x00"
EXIF_HEADER = b"Exif\x00\x00"
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
EXIF_IFD_POINTER = 0x8769
EXIF_USER_COMMENT = 0x9286
TIFF_LONG = 4
TIFF_UNDEFINED = 7
MAX_JPEG_SEGMENT = 0xFFFF - 2  # a JPEG segment's payload, after its two length bytes
PNG_SIGNATURE_AND_IHDR_LENGTH = 8 + 4


def parameters_text(metadata: dict[str, Any], width: int | None, height: int | None) -> str:
    """``PROMPT`` then ``Seed: 7, Size: 1440x1440, Model: flux-2, …`` (A1111's layout)."""
    request = metadata.get("request") or {}
    fields: list[tuple[str, Any]] = [
        ("Seed", metadata.get("seed")),
        ("Size", f"{width}x{height}" if width and height else None),
        ("Model", metadata.get("model")),
        ("Mode", request.get("mode")),
        ("Provider", metadata.get("provider")),
        ("Task", metadata.get("task_id")),
        ("Tool", metadata.get("tool")),
    ]
    # A value with a comma or a newline would break the one-line "Key: value" list.
    line = ", ".join(
        f"{key}: {' '.join(str(value).replace(',', ' ').split())}"
        for key, value in fields
        if value not in (None, "")
    )
    return f"{request.get('prompt') or ''}\n{line}"


def xmp_packet(metadata: dict[str, Any]) -> bytes:
    """An XMP packet: IPTC DigitalSourceType ``trainedAlgorithmicMedia``, the prompt, the tool."""
    prompt = str((metadata.get("request") or {}).get("prompt") or "")
    tool = str(metadata.get("tool") or f"flux2 {__version__}")
    packet = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        f"    Iptc4xmpExt:DigitalSourceType={quoteattr(DIGITAL_SOURCE_TYPE)}\n"
        f"    xmp:CreatorTool={quoteattr(tool)}>\n"
        "   <dc:description><rdf:Alt>"
        f'<rdf:li xml:lang="x-default">{escape(prompt)}</rdf:li>'
        "</rdf:Alt></dc:description>\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="r"?>'
    )
    return packet.encode("utf-8")


def png_with_texts(data: bytes, texts: list[tuple[str, str]]) -> bytes | None:
    """The PNG with one text chunk per ``(keyword, text)`` after IHDR.

    Latin-1 text goes in ``tEXt``; anything else (a Japanese prompt, the XMP packet, which
    readers look for in ``iTXt``) in an uncompressed UTF-8 ``iTXt``.
    """
    if len(data) < 33 or data[12:16] != b"IHDR":
        return None
    (ihdr_length,) = struct.unpack(">I", data[8:12])
    position = PNG_SIGNATURE_AND_IHDR_LENGTH + 4 + ihdr_length + 4
    chunks = b"".join(_text_chunk(keyword, text) for keyword, text in texts)
    return data[:position] + chunks + data[position:]


def _text_chunk(keyword: str, text: str) -> bytes:
    name = keyword.encode("latin-1")
    if keyword != XMP_PNG_KEYWORD:
        try:
            return _png_chunk(b"tEXt", name + b"\x00" + text.encode("latin-1"))
        except UnicodeEncodeError:
            pass
    # keyword, NUL, compression flag 0, method 0, empty language tag and translated keyword
    return _png_chunk(b"iTXt", name + b"\x00\x00\x00\x00\x00" + text.encode("utf-8"))


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def jpeg_with_provenance(data: bytes, parameters: str, xmp: bytes, comment: str) -> bytes | None:
    """The JPEG with an Exif ``UserComment`` (``parameters``), an XMP segment and a comment.

    The APP1 segments go after the JFIF APP0 (where readers look for them), the comment after
    every APPn segment. An image that already has Exif keeps its own and gets no second one.
    """
    if data[:2] != b"\xff\xd8":
        return None
    xmp_payload = XMP_JPEG_NAMESPACE + xmp
    comment_payload = comment.encode("utf-8")
    if len(xmp_payload) > MAX_JPEG_SEGMENT or len(comment_payload) > MAX_JPEG_SEGMENT:
        return None
    segments = _app_segments(data)
    has_exif = any(marker == 0xE1 and body.startswith(EXIF_HEADER) for marker, body, _ in segments)
    after_app0 = segments[0][2] if segments and segments[0][0] == 0xE0 else 2
    after_apps = segments[-1][2] if segments else 2
    inserted = b""
    if not has_exif:
        exif = _exif_user_comment(parameters)
        if exif is not None and len(exif) <= MAX_JPEG_SEGMENT:
            inserted += _jpeg_segment(0xE1, exif)
    inserted += _jpeg_segment(0xE1, xmp_payload)
    com = _jpeg_segment(0xFE, comment_payload)
    return data[:after_app0] + inserted + data[after_app0:after_apps] + com + data[after_apps:]


def _app_segments(data: bytes) -> list[tuple[int, bytes, int]]:
    """``(marker, payload, end offset)`` of the APPn segments right after SOI."""
    found = []
    position = 2
    while (
        position + 4 <= len(data) and data[position] == 0xFF and 0xE0 <= data[position + 1] <= 0xEF
    ):
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        end = position + 2 + length
        found.append((data[position + 1], data[position + 4 : end], end))
        position = end
    return found


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _exif_user_comment(text: str) -> bytes | None:
    """An Exif APP1 payload holding ``text`` as ``UserComment`` (UTF-16, "UNICODE" prefix).

    Built by hand (a big-endian TIFF: IFD0 pointing at an Exif IFD with the one tag), so it is
    the same bytes whatever Pillow is installed.
    """
    comment = b"UNICODE\x00" + text.encode("utf-16-be")
    ifd0 = 8  # after the TIFF header
    exif_ifd = ifd0 + 2 + 12 + 4  # one entry, then the next-IFD offset
    data = exif_ifd + 2 + 12 + 4
    tiff = (
        b"MM\x00\x2a"
        + struct.pack(">I", ifd0)
        + struct.pack(">HHHII", 1, EXIF_IFD_POINTER, TIFF_LONG, 1, exif_ifd)
        + struct.pack(">I", 0)
        + struct.pack(">HHHII", 1, EXIF_USER_COMMENT, TIFF_UNDEFINED, len(comment), data)
        + struct.pack(">I", 0)
        + comment
    )
    return EXIF_HEADER + tiff
