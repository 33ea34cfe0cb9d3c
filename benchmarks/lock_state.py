#!/usr/bin/env python3
"""CPU per entry of keeping a batch's run state, at 100, 1,000 and 10,000 entries.

Run from the repository root: ``.venv/bin/python benchmarks/lock_state.py``. Each entry goes
through the three state changes a run records (``submitting`` before the paid POST,
``submitted`` with the task id, ``finished`` with its output and sha256) via
``flux2_cli.batch.lock.LockFile`` exactly as the batch workers call it (one fsynced journal line
each), then the journal is folded into ``FILE.lock.json`` once, as at the end of a run.

The reference, in the same run, is the version 1 design this replaced: the whole lock file
rewritten (``indent=2``, temp file, fsync, rename) after every finished entry. It grows with the
manifest (quadratic in all), so it is measured at 100 and 1,000 entries only (10,000 would take
minutes). CPU is ``time.process_time`` (this process, all threads); wall time is shown too (the
fsyncs wait on the disk, not the CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flux2_cli.batch.lock import FINISHED, SUBMITTED, SUBMITTING, LockFile

SIZES = (100, 1_000, 10_000)
REFERENCE_SIZES = (100, 1_000)
ENDPOINT = "bfl https://api.bfl.ai"


def record(n: int, state: str) -> dict[str, Any]:
    """A realistic record of entry ``n`` in ``state``."""
    base: dict[str, Any] = {
        "state": state,
        "fingerprint": f"{n:064x}",
        "endpoint": ENDPOINT,
        "provider": "bfl",
        "model": "flux-2-pro",
    }
    if state != SUBMITTING:
        base.update(
            task_id=f"{n:08x}-4a7e-4c1b-9d2f-6b0e8c3a1f5d",
            submitted_at="2026-11-30T07:00:00Z",
            seed=None,
            poll_url=f"https://api.bfl.ai/v1/get_result?id={n:08x}",
        )
    if state == FINISHED:
        base["outputs"] = [{"path": f"out/asset-{n}.png", "sha256": f"{n:064x}"}]
    return base


def current(entries: int, folder: Path) -> tuple[float, float]:
    """CPU and wall seconds for the journal design (three puts per entry, one fold)."""
    lock = LockFile.load(folder / "m.jsonl.lock.json")
    cpu, wall = time.process_time(), time.perf_counter()
    for n in range(entries):
        key = f"asset-{n}"
        lock.put(key, record(n, SUBMITTING))
        lock.put(key, record(n, SUBMITTED))
        lock.put(key, record(n, FINISHED))
    lock.fold()
    return time.process_time() - cpu, time.perf_counter() - wall


def reference(entries: int, folder: Path) -> tuple[float, float]:
    """CPU and wall seconds for version 1: the whole file rewritten after each entry."""
    path = folder / "v1.lock.json"
    records: dict[str, dict[str, Any]] = {}
    cpu, wall = time.process_time(), time.perf_counter()
    for n in range(entries):
        records[f"#{n + 1}"] = {**record(n, FINISHED), "line": n + 1}
        ordered = sorted(records.items(), key=lambda item: (item[1]["line"], item[0]))
        text = json.dumps({"version": 1, "entries": dict(ordered)}, indent=2) + "\n"
        fd, temp = tempfile.mkstemp(dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> int:
    """Measure and print a Markdown table; optionally save JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", metavar="FILE", help="also save the raw figures")
    parser.add_argument("--dir", metavar="DIR", help="where to write (default: a temp folder)")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        for entries in SIZES:
            folder = Path(scratch) / f"now-{entries}"
            folder.mkdir()
            cpu, wall = current(entries, folder)
            row: dict[str, Any] = {
                "entries": entries,
                "cpu_ms_per_entry": 1000 * cpu / entries,
                "wall_ms_per_entry": 1000 * wall / entries,
            }
            if entries in REFERENCE_SIZES:
                old = Path(scratch) / f"v1-{entries}"
                old.mkdir()
                ref_cpu, ref_wall = reference(entries, old)
                row["v1_cpu_ms_per_entry"] = 1000 * ref_cpu / entries
                row["v1_wall_ms_per_entry"] = 1000 * ref_wall / entries
            rows.append(row)
    first = rows[0]["cpu_ms_per_entry"]
    print(
        "| entries | CPU ms/entry | wall ms/entry | vs 100 | v1 CPU ms/entry | v1 wall ms/entry |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        v1_cpu = f"{row['v1_cpu_ms_per_entry']:.3f}" if "v1_cpu_ms_per_entry" in row else "—"
        v1_wall = f"{row['v1_wall_ms_per_entry']:.3f}" if "v1_wall_ms_per_entry" in row else "—"
        print(
            f"| {row['entries']:,} | {row['cpu_ms_per_entry']:.3f} | "
            f"{row['wall_ms_per_entry']:.3f} | {row['cpu_ms_per_entry'] / first:.2f}x | "
            f"{v1_cpu} | {v1_wall} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
