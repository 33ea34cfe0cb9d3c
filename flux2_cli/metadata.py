"""What a saved image records about its task: the JSON sidecar and metadata embedded in the file.

Never a key: request fields named like a credential are replaced, URLs lose their signed query.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path
from typing import Any

from flux2_cli import __version__
from flux2_cli.atomic import write_atomic
from flux2_cli.redact import public_url
from flux2_cli.task import ImageResult, Task, format_time, utc_now

METADATA_KEY = "flux2"
HIDDEN = "[redacted]"
SECRET_KEY_RE = re.compile(r"key|token|secret|password|authorization|signature", re.IGNORECASE)


def scrub_secrets(value: Any) -> Any:
    """A copy of a JSON value with every field named like a credential replaced."""
    if isinstance(value, dict):
        return {
            key: (HIDDEN if SECRET_KEY_RE.search(str(key)) else scrub_secrets(item))
            for key, item in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [scrub_secrets(item) for item in value]
    return value


def task_metadata(task: Task) -> dict[str, Any]:
    """The tool, task id, provider, model, seed, creation time and request of ``task``."""
    request = task.request or {}
    seed = request.get("seed")
    if seed is None:
        seed = task.extra.get("seed")
    return {
        "tool": f"flux2 {__version__}",
        "task_id": task.task_id,
        "provider": task.provider,
        "model": task.model,
        "seed": seed,
        "created_at": format_time(task.created_at),
        "request": scrub_secrets(task.request),
    }


def write_sidecar(image_path: Path, task: Task, image: ImageResult) -> Path:
    """Write the metadata sidecar beside an image (same name, ``.json``), atomically.

    It holds the request, provider, model, task id, seed, times, the source URL without its
    signed query string, the checksum, size and format, and the cost; never a key.
    """
    path = Path(image_path).with_suffix(".json")
    data = {
        **task_metadata(task),
        "downloaded_at": format_time(utc_now()),
        "source_url": public_url(image.url),
        "file": Path(image_path).name,
        "sha256": image.sha256,
        "bytes": image.bytes,
        "width": image.width,
        "height": image.height,
        "format": image.format,
        "cost": task.cost.to_json() if task.cost else None,
    }
    write_atomic(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return path


def embedded(data: bytes, image_format: str, task: Task) -> bytes | None:
    """The image bytes with the task's metadata inside (PNG tEXt, JPEG COM), no re-encoding.

    None when the format has no such place (WebP) or the metadata does not fit.
    """
    text = json.dumps(task_metadata(task), separators=(",", ":"), ensure_ascii=True)
    if image_format == "png":
        return png_with_text(data, METADATA_KEY, text)
    if image_format == "jpeg":
        return jpeg_with_comment(data, text)
    return None


def png_with_text(data: bytes, keyword: str, text: str) -> bytes | None:
    """The PNG with a tEXt chunk inserted after IHDR (no re-encoding)."""
    if len(data) < 33 or data[12:16] != b"IHDR":
        return None
    (ihdr_length,) = struct.unpack(">I", data[8:12])
    position = 8 + 12 + ihdr_length
    body = keyword.encode("latin-1") + b"\x00" + text.encode("latin-1")
    crc = zlib.crc32(b"tEXt" + body) & 0xFFFFFFFF
    chunk = struct.pack(">I", len(body)) + b"tEXt" + body + struct.pack(">I", crc)
    return data[:position] + chunk + data[position:]


def jpeg_with_comment(data: bytes, text: str) -> bytes | None:
    """The JPEG with a COM segment inserted after the APPn segments (no re-encoding)."""
    payload = text.encode("utf-8")
    if len(payload) > 0xFFFF - 2 or data[:2] != b"\xff\xd8":
        return None
    position = 2
    # JFIF/Exif readers expect their APPn segment right after SOI, so the comment goes after.
    while (
        position + 4 <= len(data) and data[position] == 0xFF and 0xE0 <= data[position + 1] <= 0xEF
    ):
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        position += 2 + length
    segment = b"\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload
    return data[:position] + segment + data[position:]
