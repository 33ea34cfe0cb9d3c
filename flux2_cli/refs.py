"""Local ``--ref`` files: checked, inlined as raw base64 where a provider takes inline images."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path

from flux2_cli.errors import UsageError
from flux2_cli.imagetype import SNIFF_BYTES, sniff_image_type
from flux2_cli.providers.base import Capabilities, ref_kind
from flux2_cli.request import GenerationRequest, is_url

# BFL's documented cap on an input image; also keeps a mistaken --ref from loading a huge file.
MAX_REF_BYTES = 20 * 1024 * 1024


def read_ref_file(ref: str) -> str:
    """A local image as raw base64 (no ``data:`` prefix: BFL takes the bare encoding).

    The file must exist, be at most MAX_REF_BYTES, and be a PNG, JPEG or WebP by its magic
    bytes; anything else is a UsageError naming the path.
    """
    kind = ref_kind(ref)
    if kind != "path" and not Path(ref).expanduser().exists():
        raise UsageError(f"--ref {ref!r}: {kind}.")
    path = Path(ref).expanduser()
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise UsageError(f"--ref {ref!r}: no such file (and not an http(s) URL).") from None
    except OSError as error:
        raise UsageError(f"--ref {ref!r}: cannot be read ({error.strerror}).") from None
    if not path.is_file():
        raise UsageError(f"--ref {ref!r}: not a regular file.")
    if size > MAX_REF_BYTES:
        raise UsageError(
            f"--ref {ref!r}: {size:,} bytes, over the {MAX_REF_BYTES // (1024 * 1024)} MB limit."
        )
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UsageError(f"--ref {ref!r}: cannot be read ({error.strerror}).") from None
    if len(data) > MAX_REF_BYTES:  # it grew between stat and read
        raise UsageError(f"--ref {ref!r}: over the {MAX_REF_BYTES // (1024 * 1024)} MB limit.")
    if sniff_image_type(data[:SNIFF_BYTES]) is None:
        raise UsageError(f"--ref {ref!r}: not a PNG, JPEG or WebP image.")
    return base64.b64encode(data).decode("ascii")


def resolve_refs(request: GenerationRequest, caps: Capabilities) -> GenerationRequest:
    """A copy of ``request`` whose local ``--ref`` paths are replaced by raw base64.

    URLs pass through untouched. For a provider without ``inline_refs`` a local path is a
    UsageError (``provider X only takes public URLs for --ref``). Pure except for the reads.

    Use the returned request **only** for ``provider.build_create``: keep the original for
    everything that is recorded or shown (``parse_create``, ``Task.request``, the ledger, the
    sidecar, ``--json``, ``--dry-run`` output), so those carry the paths the user typed and
    not megabytes of base64. The original is returned unchanged when nothing is local.
    """
    if all(is_url(ref) for ref in request.refs):
        return request
    resolved: list[str] = []
    for ref in request.refs:
        if is_url(ref):
            resolved.append(ref)
        elif not caps.inline_refs:
            raise UsageError(f"--ref {ref!r}: provider {caps.id} only takes public URLs for --ref.")
        else:
            resolved.append(read_ref_file(ref))
    return dataclasses.replace(request, refs=tuple(resolved))
