"""A lean reference client for the batch benchmark: the least work that does flux2's HTTP job.

Threads share one ``httpx.Client``; each task is one POST to API in One's create path, a status
GET every ``--poll`` seconds until it succeeds, and one streamed image download to a file. No
ledger, no lock, no retries, no validation: whatever flux2 spends beyond this is overhead.

    python benchmarks/lean_client.py --base-url URL --n 256 --c 16 --out DIR

Prints one JSON object on stdout: tasks done, status requests sent, wall seconds.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

CREATE_PATH = "/api/v1/images/generations"
STATUS_PATH = "/api/v1/tasks/{id}"


def _urls(data: object) -> list[str]:
    """The image URLs of a finished API in One task (the sandbox's shape)."""
    if isinstance(data, dict):
        inner = data.get("data", data)
        if isinstance(inner, list) and inner:
            inner = inner[0]
        if isinstance(inner, dict):
            for key in ("images", "image_urls", "urls", "output"):
                value = inner.get(key)
                if isinstance(value, list):
                    return [v["url"] if isinstance(v, dict) else str(v) for v in value]
                if isinstance(value, dict):
                    return _urls({"data": value})
                if isinstance(value, str):
                    return [value]
    return []


def _task_id(data: object) -> str:
    inner = data.get("data", data) if isinstance(data, dict) else {}
    if isinstance(inner, list):
        inner = inner[0]
    assert isinstance(inner, dict)
    return str(inner.get("task_id") or inner.get("id"))


def _status(data: object) -> str:
    inner = data.get("data", data) if isinstance(data, dict) else {}
    if isinstance(inner, list):
        inner = inner[0]
    assert isinstance(inner, dict)
    return str(inner.get("status") or inner.get("state") or "").lower()


def run(base_url: str, key: str, n: int, c: int, out: Path, poll: float) -> dict[str, float]:
    """Make ``n`` images with ``c`` in flight; the counts and the wall time."""
    out.mkdir(parents=True, exist_ok=True)
    polls = 0
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=c + 4, max_keepalive_connections=c + 4)
    with httpx.Client(base_url=base_url, headers=headers, limits=limits, timeout=60) as client:

        def one(index: int) -> None:
            nonlocal polls
            body = {
                "model": "flux-2",
                "prompt": f"lean benchmark image number {index}",
                "aspect_ratio": "1:1",
                "resolution": "1K",
                "type": "pro",
            }
            created = client.post(CREATE_PATH, json=body)
            created.raise_for_status()  # e.g. 402 once the sandbox key's credits are spent
            task_id = _task_id(created.json())
            while True:
                time.sleep(poll)
                polled = client.get(STATUS_PATH.format(id=task_id))
                polled.raise_for_status()
                answer = polled.json()
                with lock:
                    polls += 1
                state = _status(answer)
                if state in ("succeeded", "success", "completed"):
                    break
                if state in ("failed", "error"):
                    raise RuntimeError(f"task {task_id} failed")
            for number, url in enumerate(_urls(answer)):
                with (
                    client.stream("GET", url) as response,
                    open(out / f"{index}-{number}.png", "wb") as handle,
                ):
                    for chunk in response.iter_bytes():
                        handle.write(chunk)

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=c) as pool:
            futures = [pool.submit(one, index) for index in range(n)]
            for future in futures:
                if future.exception() is not None:
                    for other in futures:
                        other.cancel()  # fail fast: the figures of a broken run mean nothing
                    raise future.exception()  # type: ignore[misc]
        wall = time.monotonic() - started
    return {"tasks": float(n), "status_requests": float(polls), "wall": wall}


def main() -> None:
    """Parse the options, run, print the JSON figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--api-key", required=True, help="a sandbox key of its own, per run")
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--c", type=int, default=16)
    parser.add_argument("--poll", type=float, default=0.05, help="status interval, s")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    print(json.dumps(run(args.base_url, args.api_key, args.n, args.c, args.out, args.poll)))


if __name__ == "__main__":
    main()
