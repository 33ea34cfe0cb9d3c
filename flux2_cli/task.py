"""Task, TaskStatus and ImageResult: the provider-neutral state of one generation task."""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

# What an expiry past the end of the calendar becomes: the last moment a datetime holds.
FAR_FUTURE = datetime.max.replace(tzinfo=timezone.utc)
# The embedded sandbox's base URL (providers/sandbox.py); a task made there is a simulation.
SANDBOX_BASE_URL = "http://sandbox.flux2.invalid"
SANDBOX_PROVIDER = "sandbox"
SIMULATED = "simulated; nothing charged"  # as output.SIMULATED_NOTE


def on_sandbox(provider: str | None, base_url: str | None) -> bool:
    """True for a task of ``--provider sandbox`` or one run with ``--sandbox`` (any dialect)."""
    if provider == SANDBOX_PROVIDER:
        return True
    return bool(base_url) and str(base_url).rstrip("/") == SANDBOX_BASE_URL


def provider_label(provider: str, base_url: str | None) -> str:
    """``apiinone``, ``sandbox``, or ``sandbox: apiinone`` for a ``--sandbox`` run."""
    if provider != SANDBOX_PROVIDER and on_sandbox(provider, base_url):
        return f"{SANDBOX_PROVIDER}: {provider}"
    return provider


class TaskStatus(str, enum.Enum):
    """The normalised status vocabulary of the contract."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        """True for the states that no longer change."""
        return self in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.EXPIRED)


@dataclass(frozen=True)
class TaskError:
    """The provider's own error code and message for a failed task."""

    code: str | None
    message: str

    def to_json(self) -> dict[str, Any]:
        """The ``error`` object of the JSON contract."""
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Cost:
    """What a task cost, in the provider's credits and/or US dollars."""

    credits: float | None = None
    usd: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``cost`` object of the JSON contract (whole numbers stay integers)."""
        return {"credits": _tidy_number(self.credits), "usd": _tidy_number(self.usd)}


@dataclass(frozen=True)
class ImageResult:
    """One result image: where it is served from and, once saved, where and what it is."""

    url: str
    path: str | None = None
    bytes: int | None = None
    sha256: str | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The image object of the JSON contract; every key present."""
        return {
            "url": self.url,
            "path": self.path,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "width": self.width,
            "height": self.height,
            "format": self.format,
        }


@dataclass(frozen=True)
class Task:
    """The normalised state of a task, whichever provider runs it."""

    task_id: str
    provider: str
    status: TaskStatus = TaskStatus.QUEUED
    raw_status: str | None = None
    unknown_status: str | None = None
    model: str | None = None
    created_at: datetime | None = None
    expires_at: datetime | None = None
    images: tuple[ImageResult, ...] = ()
    cost: Cost | None = None
    error: TaskError | None = None
    request: dict[str, Any] | None = None
    poll_url: str | None = None
    base_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sandbox(self) -> bool:
        """True when the task ran on the offline sandbox: nothing was charged."""
        return on_sandbox(self.provider, self.base_url)

    def evolve(self, **changes: Any) -> Task:
        """A copy with some fields replaced."""
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        """The task object of the JSON contract: every key present, absent facts ``null``."""
        return {
            "task_id": self.task_id,
            "provider": self.provider,
            "model": self.model,
            "status": self.status.value,
            "created_at": format_time(self.created_at),
            "expires_at": format_time(self.expires_at),
            "images": [image.to_json() for image in self.images],
            "cost": self.cost.to_json() if self.cost else None,
            "error": self.error.to_json() if self.error else None,
            "request": sent_request(self.request),
            "sandbox": self.sandbox,
        }


def sent_request(request: dict[str, Any] | None) -> dict[str, Any] | None:
    """The request as sent: with ``--width/--height`` the default ratio and res were not sent,
    so a record of the task (``--json``, the sidecar) does not claim them.

    The ledger keeps the full request (the batch fingerprint is computed from it); this is only
    what is shown and written beside an image.
    """
    if not request or request.get("width") is None or request.get("height") is None:
        return request
    return {key: value for key, value in request.items() if key not in ("ratio", "res")}


def regenerate_command(task: Task) -> str:
    """The ``flux2 gen`` command that asks for the same request again (from the ledger's copy).

    A new task: the same prompt, size, mode and options, on the same provider (and the
    sandbox when it ran there). Without a recorded request, a placeholder prompt is shown.
    """
    import shlex

    request = task.request or {}
    words = ["flux2", "gen", shlex.quote(str(request.get("prompt") or "PROMPT"))]
    if request.get("width") and request.get("height"):
        words += ["--width", str(request["width"]), "--height", str(request["height"])]
    else:
        for flag, key in (("--ratio", "ratio"), ("--res", "res")):
            if request.get(key):
                words += [flag, shlex.quote(str(request[key]))]
    for flag, key in (("--mode", "mode"), ("--seed", "seed"), ("--format", "format")):
        if request.get(key) is not None:
            words += [flag, shlex.quote(str(request[key]))]
    for ref in request.get("refs") or ():
        words += ["--ref", shlex.quote(str(ref))]
    if task.provider == SANDBOX_PROVIDER:
        words += ["--provider", SANDBOX_PROVIDER]
    else:
        words += ["--provider", task.provider]
        if on_sandbox(task.provider, task.base_url):
            words.append("--sandbox")
    return " ".join(words)


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


def format_time(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, to the second."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_time(value: object) -> datetime | None:
    """ISO 8601 strings or unix seconds (or milliseconds) to an aware datetime; else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        seconds = float(value)
        if not math.isfinite(seconds) or seconds < 0:
            return None  # negative, NaN or infinite: no meaningful time, treated as absent
        if seconds > 1e11:  # milliseconds since the epoch
            seconds /= 1000.0
        try:
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return FAR_FUTURE  # past year 9999: as far as a datetime goes
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return parse_time(float(text))
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        try:
            # Normalised to UTC here, so that later arithmetic cannot overflow:
            # 9999-12-31T23:59:59-05:00 is past datetime.max in UTC.
            return moment.astimezone(timezone.utc)
        except (OverflowError, ValueError):
            return FAR_FUTURE if moment.year >= datetime.max.year else None
    return None


def _tidy_number(value: float | None) -> float | int | None:
    if value is None:
        return None
    if float(value).is_integer():
        return int(value)
    return value


def merge_images(
    old: tuple[ImageResult, ...], new: tuple[ImageResult, ...]
) -> tuple[ImageResult, ...]:
    """New images, each completed from its stored twin (same URL, else same position)."""
    if not new:
        return old
    by_url = {image.url: image for image in old}
    merged: list[ImageResult] = []
    for index, image in enumerate(new):
        twin = by_url.get(image.url)
        if twin is None and len(old) == len(new):
            twin = old[index]  # a re-signed URL for the same image
        if twin is not None:
            image = ImageResult(
                url=image.url,
                path=_or(image.path, twin.path),
                bytes=_or(image.bytes, twin.bytes),
                sha256=_or(image.sha256, twin.sha256),
                width=_or(image.width, twin.width),
                height=_or(image.height, twin.height),
                format=_or(image.format, twin.format),
            )
        merged.append(image)
    return tuple(merged)


def _or(value: Any, fallback: Any) -> Any:
    return value if value is not None else fallback


# Words that providers put in every id (``task_01…``, ``task-…``, ``sbx…_flux2``): never
# distinctive, so short ids skip them.
_ID_NOISE_WORDS = frozenset({"task", "tasks", "flux", "flux2", "req", "request", "id", "gen"})
_ID_NOISE_PREFIXES = ("sbx", "task")
# A ULID (apimart's ``task_01KFG5…``) starts with 10 characters of millisecond time, shared by
# every task made in the same minute; its 16 random characters follow.
_ULID = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$", re.IGNORECASE)
_ULID_TIME_CHARS = 10
_HEX_CORE = re.compile(r"[0-9a-fA-F]{8,}")
SHORT_ID_LENGTH = 8


def id_core(task_id: str) -> str:
    """The distinctive part of a task id, lower case: constant words and ULID time dropped."""
    tokens = [t for t in re.split(r"[^A-Za-z0-9]+", task_id) if t]
    kept = [t for t in tokens if t.lower() not in _ID_NOISE_WORDS]
    text = "".join(kept)
    for prefix in _ID_NOISE_PREFIXES:
        rest = text[len(prefix) :]
        if text.lower().startswith(prefix) and _HEX_CORE.fullmatch(rest):
            text = rest
            break
    if _ULID.match(text):
        text = text[_ULID_TIME_CHARS:]
    return text.lower() or re.sub(r"[^A-Za-z0-9]", "", task_id).lower() or "task"


def short_id(task_id: str) -> str:
    """The 8-character form of a task id shown in messages and ``{id8}`` (a valid TASK_ID)."""
    return id_core(task_id)[:SHORT_ID_LENGTH]
