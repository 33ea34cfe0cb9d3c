"""``--from PATH|ID``: an earlier request read back from a sidecar, an image or the ledger.

Where the request is found, tried in this order:

1. ``PATH`` is a ``.json`` file: a sidecar flux2 wrote beside an image;
2. ``PATH`` is an image: the metadata ``--embed-metadata`` wrote into it (PNG text chunk
   ``flux2``, JPEG comment), else the sidecar beside it (same name, ``.json``);
3. otherwise a task in the ledger: a whole id, a unique prefix, or ``last``.

The request comes back as the sidecar records it (``GenerationRequest.to_json``), with the seed
the provider reported when none was asked for, so the same picture can be made again; the
provider is the one that made it, on the sandbox again when it was made there. Every flag given
on the command line (or key of a manifest entry) overrides single fields: this module only
reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flux2_cli.errors import UsageError

if TYPE_CHECKING:
    from flux2_cli.build import Layer

METADATA_KEY = "flux2"  # the PNG text keyword and the sidecar's marker (download.py writes them)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MAX_SIDECAR_BYTES = 5 * 1024 * 1024

LedgerLookup = Callable[[str], Any]  # ref -> LedgerEntry | None (UsageError when ambiguous)
LAYER_KIND = "from"  # a request layer that was not asked for in this run (see as_layer)


@dataclass(frozen=True)
class Origin:
    """An earlier request: where it was read, the provider that made it, and its fields."""

    label: str
    provider: str | None
    model: str | None
    request: Mapping[str, Any] = field(default_factory=dict)
    sandbox: bool = False  # made on the offline sandbox (``--sandbox`` with a provider)


def load_origin(
    ref: str,
    *,
    lookup: LedgerLookup | None = None,
    base: Path | None = None,
    flag: str = "--from",
) -> Origin:
    """The request ``ref`` names (see the module docstring); UsageError (exit 2) otherwise.

    ``base`` is the folder a relative path is taken from (a manifest's folder); ``lookup``
    resolves a task id in the ledger; ``flag`` is how messages name the source (``--from``, or
    a manifest's ``from``).
    """
    text = ref.strip()
    if not text:
        raise UsageError(f"{flag} is empty: give a sidecar, an image or a task id.")
    path = Path(text).expanduser()
    if base is not None and not path.is_absolute():
        path = base / path
    if path.is_file():
        if path.suffix.lower() == ".json":
            return _from_document(_read_json(path, flag), f"{text}", f"{flag} {text}")
        embedded = read_embedded(path)
        if embedded is not None:
            return _from_document(embedded, f"{text} (embedded metadata)", f"{flag} {text}")
        sidecar = path.with_suffix(".json")
        if sidecar.is_file():
            return _from_document(_read_json(sidecar, flag), f"{sidecar.name}", f"{flag} {text}")
        raise UsageError(
            f"{flag} {text}: the image carries no flux2 metadata and has no sidecar "
            f"({sidecar.name}) beside it.",
            hints=["Images keep their request with --embed-metadata, or in the sidecar .json."],
        )
    if path.exists():
        raise UsageError(f"{flag} {text}: not a file.")
    entry = lookup(text) if lookup is not None else None
    if entry is None:
        raise UsageError(
            f"{flag} {text}: no such file, and no task with that id in the local ledger.",
            hints=["Give a sidecar (.json), an image flux2 saved, or a task id (flux2 history)."],
        )
    task = entry.task
    if not task.request:
        raise UsageError(f"{flag} {text}: the ledger has no request recorded for that task.")
    request = dict(task.request)
    seed = task.extra.get("seed") if isinstance(task.extra, dict) else None
    if request.get("seed") is None and isinstance(seed, int) and not isinstance(seed, bool):
        request["seed"] = seed
    from flux2_cli.context import is_sandbox_url

    return Origin(
        label=f"task {task.task_id}",
        provider=task.provider,
        model=task.model,
        request=request,
        sandbox=is_sandbox_url(task.base_url),
    )


def as_layer(origin: Origin, where: str) -> Layer:
    """The earlier request as a layer of the request builder, each value named ``WHERE: key``.

    It is not "asked for" in this run: a field the chosen provider does not take at all (a seed
    the sandbox was given, replayed on API in One) is left out with a notice, as a config
    default is; a field it takes but with a bad value is an error naming the source.
    """
    from flux2_cli.build import Layer

    values = dict(origin.request)
    names = [*values, "width/height", "ratio/res"]
    return Layer(LAYER_KIND, values, where, labels={key: f"{where}: {key}" for key in names})


def read_embedded(path: Path) -> dict[str, Any] | None:
    """flux2's metadata inside an image (PNG text chunk, JPEG comment), or None."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            info = dict(image.info)
            text_chunks = getattr(image, "text", None)
            if isinstance(text_chunks, dict):
                info.update(text_chunks)
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    for raw in (info.get(METADATA_KEY), info.get("comment")):
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        if not isinstance(raw, str):
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("request"), dict):
            return data
    return None


def _read_json(path: Path, flag: str) -> Any:
    try:
        if path.stat().st_size > MAX_SIDECAR_BYTES:
            raise UsageError(f"{flag} {path}: too large for a sidecar.")
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"{flag} {path}: not a readable JSON sidecar ({reason}).") from None


def _from_document(document: Any, label: str, given: str) -> Origin:
    """An Origin from a sidecar or embedded document: ``{"provider", "model", "seed",
    "request": {...}}``."""
    request = document.get("request") if isinstance(document, dict) else None
    if not isinstance(request, dict) or not isinstance(request.get("prompt"), str):
        raise UsageError(f"{given}: not a flux2 sidecar (no request with a prompt in it).")
    request = dict(request)
    seed = document.get("seed")
    if request.get("seed") is None and isinstance(seed, int) and not isinstance(seed, bool):
        request["seed"] = seed  # the seed the provider used, so the same picture comes back
    provider = document.get("provider")
    model = document.get("model")
    return Origin(
        label=label,
        provider=provider if isinstance(provider, str) and provider else None,
        model=model if isinstance(model, str) and model else None,
        request=request,
        sandbox=document.get("sandbox") is True,
    )
