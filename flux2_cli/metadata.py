"""What a saved image records about its task: the JSON sidecar and metadata embedded in the file.

Never a key: request fields named like a credential are replaced, URLs lose their signed query.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from flux2_cli import __version__
from flux2_cli.atomic import write_atomic
from flux2_cli.redact import public_url
from flux2_cli.task import ImageResult, Task, format_time, sent_request, utc_now

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
        # What was sent: no default ratio/res claimed beside --width/--height.
        "request": scrub_secrets(sent_request(task.request)),
        "sandbox": task.sandbox,
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


def embedded(
    data: bytes, image_format: str, task: Task, width: int | None = None, height: int | None = None
) -> bytes | None:
    """The image bytes with the task's metadata inside, no re-encoding (see provenance.py).

    flux2's own record (PNG text ``flux2``, JPEG comment), the ``parameters`` text image
    tools read, and XMP saying ``trainedAlgorithmicMedia``. None when the format has no such
    place (WebP) or the metadata does not fit.
    """
    from flux2_cli import provenance

    metadata = task_metadata(task)
    text = json.dumps(metadata, separators=(",", ":"), ensure_ascii=True)
    parameters = provenance.parameters_text(metadata, width, height)
    xmp = provenance.xmp_packet(metadata)
    if image_format == "png":
        return provenance.png_with_texts(
            data,
            [
                (METADATA_KEY, text),
                (provenance.PARAMETERS_KEY, parameters),
                (provenance.XMP_PNG_KEYWORD, xmp.decode("utf-8")),
            ],
        )
    if image_format == "jpeg":
        return provenance.jpeg_with_provenance(data, parameters, xmp, text)
    return None
