"""A sandbox task: its record on disk, the state it is in at a given time, and its price."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from flux2_cli.providers.apiinone import PRICE_CREDITS
from flux2_cli.sandbox import images

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
MODERATED = "moderated"
ENDED = (SUCCEEDED, FAILED, MODERATED)
ONE_K_MAX_PIXELS = 2_100_000  # explicit sizes up to about 1440×1440 are priced as 1K
FAILED_MESSAGE = "generation failed"
MODERATED_MESSAGE = "content moderated: the request or the result was flagged"


@dataclass
class Spec:
    """A create request once a dialect has read and checked it (dialect-neutral)."""

    prompt: str
    width: int
    height: int
    fmt: str = "png"
    seed: int | None = None
    mode: str = "pro"  # pro, flex or max
    res: str = "1K"
    model: str = ""
    webhook_url: str | None = None
    webhook_secret: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def price_credits(mode: str, res: str) -> int:
    """Credits a task costs by API in One's table (max priced as flex); the BFL dialect
    prices by BFL's own formula instead (dialects.Bfl.price)."""
    table_mode = "pro" if mode == "pro" else "flex"
    return PRICE_CREDITS[(table_mode, res)]


def res_for(width: int, height: int) -> str:
    """The price tier of an explicit size."""
    return "1K" if width * height <= ONE_K_MAX_PIXELS else "2K"


def new_task_id(dialect: str) -> str:
    """A fresh id in the dialect's usual look (all safe as file names)."""
    hex_id = uuid.uuid4().hex
    if dialect == "apiinone":
        return f"sbx{hex_id[:20]}_flux2"
    if dialect == "apimart":
        return "task_01" + hex_id[:24].upper()
    if dialect == "vtrix":
        return f"task-{hex_id}"
    return str(uuid.UUID(hex_id))


def new_record(
    *,
    task_id: str,
    dialect: str,
    spec: Spec,
    created: float,
    latency: float,
    outcome: str,
    never: bool,
    ttl: float,
    image_faults: list[str],
    drop_first_poll: bool,
    cost: float,
    base_url: str,
) -> dict[str, Any]:
    """The JSON record of a new task (a dialect's own facts from ``spec.extra`` included)."""
    return {
        **spec.extra,
        "id": task_id,
        "dialect": dialect,
        "model": spec.model,
        "mode": spec.mode,
        "res": spec.res,
        "prompt": spec.prompt,
        "seed": spec.seed,
        "width": spec.width,
        "height": spec.height,
        "format": spec.fmt,
        "created": created,
        "latency": latency,
        "outcome": outcome,
        "never": never,
        "ttl": ttl,
        "image_faults": sorted(image_faults),
        "drop_first_poll": drop_first_poll,
        "dropped": False,
        "cost": cost,
        "base_url": base_url,
        "webhook": (
            {"url": spec.webhook_url, "secret": spec.webhook_secret} if spec.webhook_url else None
        ),
        "webhook_state": "pending" if spec.webhook_url else None,
    }


def phase(record: dict[str, Any], now: float) -> str:
    """queued for the first part of the latency, running until it has passed, then the outcome."""
    from flux2_cli.sandbox.settings import QUEUED_FRACTION

    elapsed = now - float(record["created"])
    latency = float(record["latency"])
    if elapsed < latency * QUEUED_FRACTION:
        return QUEUED
    if record.get("never") or elapsed < latency:
        return RUNNING
    return str(record["outcome"])


def progress(record: dict[str, Any], now: float) -> int:
    """Percent done (0–100); a never-ending task stops at 99."""
    latency = float(record["latency"])
    elapsed = max(0.0, now - float(record["created"]))
    done = 100 if latency <= 0 else int(100 * elapsed / latency)
    return min(done, 99 if record.get("never") else 100)


def ended_at(record: dict[str, Any]) -> float:
    """When the task ends (or ended)."""
    return float(record["created"]) + float(record["latency"])


def expires_at(record: dict[str, Any]) -> float:
    """When the image URL stops working (already past for ``[sandbox:expired]``)."""
    if "expired" in record.get("image_faults", ()):
        return float(record["created"]) - 1.0
    return ended_at(record) + float(record["ttl"])


def image_name(record: dict[str, Any]) -> str:
    """The file name of the task's (single) image."""
    return f"{record['id']}_0.{images.extension(str(record['format']))}"


def task_id_of_image(name: str) -> str | None:
    """The task id an image file name belongs to."""
    stem, dot, _ = name.rpartition(".")
    task_id, sep, index = stem.rpartition("_")
    if not dot or not sep or not index.isdigit():
        return None
    return task_id


def image_url(record: dict[str, Any], base_url: str) -> str:
    """The image's address at ``base_url`` (the request's own, so it routes back)."""
    return f"{base_url.rstrip('/')}/files/{image_name(record)}"
