"""Webhook delivery: POST the task's final answer to the URL the user gave, with retries.

A task's state is derived from the clock, so nothing "happens" when it ends; delivery is
triggered by a poll of that task (any mode) and by the scanner thread of ``sandbox serve``.
Each delivery is claimed under the state lock, so it happens once even with several processes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from flux2_cli.sandbox import tasks
from flux2_cli.sandbox.dialects import DIALECTS
from flux2_cli.sandbox.settings import SandboxSettings
from flux2_cli.sandbox.state import StateStore

ATTEMPTS = 4  # the first try and three retries
BACKOFF = (0.5, 1.0, 2.0)  # seconds before each retry
SECRET_HEADER = "X-Webhook-Secret"
SCAN_INTERVAL = 0.5

Sender = Callable[[str, bytes, dict[str, str]], int]


def http_sender(timeout: float) -> Sender:
    """A sender that POSTs with httpx and returns the status code (0 on a transport error)."""

    def send(url: str, body: bytes, headers: dict[str, str]) -> int:
        import httpx

        try:
            response = httpx.post(url, content=body, headers=headers, timeout=timeout)
        except httpx.HTTPError:
            return 0
        return response.status_code

    return send


def claim(store: StateStore, task_id: str, now: float) -> dict[str, Any] | None:
    """Mark the task's webhook as being sent, if it has ended and nobody claimed it yet."""
    claimed: list[bool] = []

    def change(record: dict[str, Any]) -> bool:
        if record.get("webhook_state") != "pending":
            return False
        if tasks.phase(record, now) not in tasks.ENDED:
            return False
        record["webhook_state"] = "sending"
        claimed.append(True)
        return True

    record = store.update_task(task_id, change)
    return record if claimed else None


def payload(record: dict[str, Any], now: float) -> tuple[bytes, dict[str, str]]:
    """The body (the dialect's final poll answer) and headers of a task's webhook."""
    dialect = DIALECTS[str(record["dialect"])]
    answer = dialect.status(record, tasks.phase(record, now), str(record["base_url"]), now)
    headers = {"Content-Type": "application/json", "User-Agent": "flux2-sandbox-webhook"}
    secret = (record.get("webhook") or {}).get("secret")
    if secret and dialect.name in ("bfl", "vtrix"):
        headers[SECRET_HEADER] = str(secret)
    return json.dumps(answer).encode("utf-8"), headers


def deliver(
    store: StateStore, settings: SandboxSettings, task_id: str, sender: Sender | None = None
) -> bool | None:
    """Send one task's webhook if it is due: True delivered, False gave up, None not due."""
    now = settings.clock()
    record = claim(store, task_id, now)
    if record is None:
        return None
    url = str(record["webhook"]["url"])
    body, headers = payload(record, now)
    send = sender or http_sender(settings.webhook_timeout)
    delivered = False
    attempts = 0
    for attempt in range(ATTEMPTS):
        if attempt:
            settings.webhook_sleep(BACKOFF[min(attempt - 1, len(BACKOFF) - 1)])
        attempts += 1
        if 200 <= send(url, body, headers) < 300:
            delivered = True
            break

    def finish(done: dict[str, Any]) -> bool:
        done["webhook_state"] = "delivered" if delivered else "failed"
        done["webhook_attempts"] = attempts
        return True

    store.update_task(task_id, finish)
    store.clear_webhook_pending(task_id)
    return delivered


def deliver_due(store: StateStore, settings: SandboxSettings, sender: Sender | None = None) -> int:
    """Deliver every due webhook in the state folder; the number attempted."""
    count = 0
    for task_id in store.pending_webhooks():
        record = store.load_task(task_id)
        if record is None or record.get("webhook_state") != "pending":
            store.clear_webhook_pending(task_id)
            continue
        if deliver(store, settings, task_id, sender) is not None:
            count += 1
    return count


class Scanner(threading.Thread):
    """The background thread of ``sandbox serve`` that delivers webhooks as tasks end."""

    def __init__(self, store: StateStore, settings: SandboxSettings) -> None:
        super().__init__(name="flux2-sandbox-webhooks", daemon=True)
        self.store = store
        self.settings = settings
        self.stopped = threading.Event()

    def run(self) -> None:
        """Scan until :meth:`stop`."""
        while not self.stopped.wait(SCAN_INTERVAL):
            try:
                deliver_due(self.store, self.settings)
            except Exception:  # a bad file must not kill the scanner
                continue

    def stop(self) -> None:
        """Ask the thread to end after the current scan."""
        self.stopped.set()
