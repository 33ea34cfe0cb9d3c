"""File names for saved images: slugs, ``--name`` templates, names safe on every OS, clashes.

Small pure functions; the file system is injected where one is needed (``exists``).
"""

from __future__ import annotations

import os
import re
import string
import unicodedata
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from flux2_cli.atomic import cap_bytes
from flux2_cli.errors import UsageError
from flux2_cli.task import Task, short_id

# Leaves room under the usual 255-byte limit for a "-NN" clash suffix and the ".part-" temp name.
MAX_NAME_BYTES = 200
MAX_CLASH_SUFFIX = 9999
DEFAULT_TEMPLATE = "{slug}-{id8}"
# What a template that renders to nothing (``{seed}`` without a seed) becomes.
FALLBACK_STEM = "image-{id8}"
TEMPLATE_FIELDS = frozenset(
    {"slug", "task_id", "id8", "n", "ext", "date", "time", "seed", "ratio", "res", "mode"}
)
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{i}" for i in range(10)}
    | {f"LPT{i}" for i in range(10)}
    | {f"COM{c}" for c in "¹²³"}
    | {f"LPT{c}" for c in "¹²³"}
)
_UNSAFE_CHARS_RE = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]')


def slugify(prompt: str, max_len: int = 48, fallback: str = "image") -> str:
    """A short ``a-z0-9-`` slug of a prompt (any script transliterated), else ``fallback``."""
    from flux2_cli.translit import to_ascii

    folded = to_ascii(prompt)
    slug = re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")
    if len(slug) > max_len:
        cut = slug[: max_len + 1]
        # Prefer ending on a whole word when one ends in the second half.
        boundary = cut.rfind("-")
        slug = cut[:boundary] if boundary >= max_len // 2 else slug[:max_len]
        slug = slug.strip("-")
    return slug or fallback


def safe_filename(name: str) -> str:
    """One file name safe on Windows, macOS and Linux: never a path, never empty or hidden."""
    name = unicodedata.normalize("NFC", name)
    name = _UNSAFE_CHARS_RE.sub("_", name)
    name = re.sub(r"\.{2,}", ".", name)
    name = name.strip(" .")
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem or len(ext) > 10 or not ext.isalnum():
        stem, ext = name, ""
    stem = stem.rstrip(" .")
    if stem.split(".")[0].upper().rstrip(" ") in WINDOWS_RESERVED:
        stem = "_" + stem
    suffix = f".{ext}" if ext else ""
    stem = cap_bytes(stem, MAX_NAME_BYTES - len(suffix.encode("utf-8"))).rstrip(" .")
    if not stem:
        stem = "image"
    return stem + suffix


def validate_template(template: str) -> None:
    """Refuse a ``--name`` template with unknown fields (exit 2, before anything is paid for)."""
    template_fields(template)


def template_fields(template: str) -> set[str]:
    """The ``{field}`` names of a template; UsageError for an unknown one or bad syntax."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise UsageError(f"invalid --name template {template!r}: {exc}") from None
    fields = {name for _, name, _, _ in parsed if name is not None}
    unknown = sorted(name for name in fields if name not in TEMPLATE_FIELDS)
    if unknown:
        allowed = " ".join("{" + name + "}" for name in sorted(TEMPLATE_FIELDS))
        raise UsageError(
            f"unknown field {{{unknown[0]}}} in --name template {template!r}",
            hints=[f"Fields: {allowed}"],
        )
    return fields


def template_values(task: Task, index: int, ext: str, now: datetime) -> dict[str, Any]:
    """What each template field stands for, for image ``index`` (0-based) of ``task``."""
    request = task.request or {}
    seed = request.get("seed")
    if seed is None:
        seed = task.extra.get("seed")
    return {
        # Nothing to read in the prompt (only symbols): the date and time say which image it is.
        "slug": slugify(str(request.get("prompt") or ""), fallback=now.strftime("%Y%m%d-%H%M%S")),
        "task_id": task.task_id,
        "id8": id8(task.task_id),
        "n": index + 1,
        "ext": ext,
        "date": now.strftime("%Y-%m-%d"),
        "time": now.strftime("%H%M%S"),
        "seed": "" if seed is None else seed,
        "ratio": str(request.get("ratio") or "").replace(":", "x"),
        "res": str(request.get("res") or ""),
        "mode": str(request.get("mode") or ""),
    }


def render_name(template: str, task: Task, index: int, count: int, ext: str, now: datetime) -> str:
    """The file name for image ``index`` (0-based) of ``count``, sanitised by :func:`safe_filename`.

    ``-{n}`` is appended when there are several images and the template lacks ``{n}``;
    ``.{ext}`` when it lacks ``{ext}``. A template whose fields all render empty
    (``{seed}`` for a task without a seed) falls back to ``image-{id8}``, never to a
    file named ``png``.
    """
    fields = template_fields(template)
    if count > 1 and "n" not in fields:
        template += "-{n}"
    if "ext" not in fields:
        template += ".{ext}"
    values = template_values(task, index, ext, now)
    try:
        rendered = template.format_map(values)
        # What the template says besides the extension and the number: nothing at all?
        meaning = template.format_map({**values, "ext": "", "n": ""})
        if not meaning.strip(" .-_"):
            fallback = FALLBACK_STEM + ("-{n}" if count > 1 else "") + ".{ext}"
            rendered = fallback.format_map(values)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise UsageError(f"invalid --name template {template!r}: {exc}") from None
    return safe_filename(rendered)


def id8(task_id: str) -> str:
    """The short form of a task id that ``{id8}`` stands for (see ``task.short_id``)."""
    return short_id(task_id)


def with_extension(name: str, ext: str) -> tuple[str, bool]:
    """``name`` (the user's own ``-o`` file name) with the image's real extension.

    Returns the name and whether a different image suffix was replaced.
    """
    path = Path(name)
    stem, suffix = path.stem, path.suffix
    if suffix.lower() in IMAGE_SUFFIXES:
        wanted = {".jpeg": "jpg"}.get(suffix.lower(), suffix.lower().lstrip("."))
        if wanted == ext:
            return name, False
        return f"{stem}.{ext}", True
    return f"{name}.{ext}", False


def numbered(path: Path, number: int) -> Path:
    """``NAME-number.EXT`` beside ``path``; ``path`` itself for 0."""
    if number == 0:
        return path
    return path.with_name(f"{path.stem}-{number}{path.suffix}")


def unique_name(path: Path, exists: Callable[[Path], bool] = os.path.lexists) -> Path | None:
    """``path``, else the first free ``NAME-1``, ``NAME-2`` ... (None past the last number).

    ``exists`` is the file system's answer, injected: a name is free when neither the image
    nor its ``.json`` sidecar is taken.
    """
    for number in range(MAX_CLASH_SUFFIX + 1):
        candidate = numbered(path, number)
        if not exists(candidate):
            return candidate
    return None
