#!/usr/bin/env python3
"""Status requests per task: how often `flux2 gen` polls a sandbox task of a known duration.

Run from the repository root: ``.venv/bin/python benchmarks/polls.py``. Each case runs the real
command, ``flux2 gen PROMPT --sandbox --verbose``, in a scratch config/data/cache folder, with
``FLUX2_SANDBOX_LATENCY`` set to the task's duration; the verbose log (keys redacted) has one
``-> GET …/tasks/ID`` line per status request, which is counted. Also shown: how long after
the task finished the command noticed (wall time minus latency), the cost of polling slowly.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def one_task(latency: float, scratch: Path) -> tuple[int, float]:
    """Run one sandbox gen; return (status requests, wall seconds)."""
    env = {
        **os.environ,
        "FLUX2_CONFIG": str(scratch / "config.toml"),
        "FLUX2_DATA_DIR": str(scratch / "data"),
        "FLUX2_CACHE_DIR": str(scratch / "cache"),
        "FLUX2_SANDBOX_DIR": str(scratch / "sandbox"),
        "FLUX2_SANDBOX_LATENCY": str(latency),
    }
    start = time.perf_counter()
    result = subprocess.run(
        [
            *(str(BIN / "flux2"), "gen", "a lighthouse at dusk", "--sandbox"),
            *("--verbose", "--quiet", "-o", f"{scratch / 'out'}/"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=latency + 120,
        check=False,
    )
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"flux2 gen failed ({result.returncode}):\n{result.stderr}")
    polls = sum(
        1 for line in result.stderr.splitlines() if line.startswith("-> GET ") and "/tasks/" in line
    )
    return polls, wall


def main() -> int:
    """Measure and print a Markdown table; optionally save JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--latency", type=float, action="append", help="task durations in s (default 2, 10, 30)"
    )
    parser.add_argument("--tasks", type=int, default=2, help="tasks per duration")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    latencies = args.latency or [2.0, 10.0, 30.0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for latency in latencies:
            runs = [one_task(latency, Path(tmp)) for _ in range(args.tasks)]
            polls = statistics.median(count for count, _ in runs)
            lag = statistics.median(wall - latency for _, wall in runs)
            rows.append({"latency_s": latency, "polls_per_task": polls, "lag_s": lag})
    print(f"{args.tasks} task(s) per duration, sandbox (embedded), medians\n")
    print("| task duration | status requests per task | finished → noticed (incl. start-up) |")
    print("| ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['latency_s']:.0f} s | {row['polls_per_task']:g} | {row['lag_s']:.2f} s |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
