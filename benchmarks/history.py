#!/usr/bin/env python3
"""`flux2 history --limit 10000` in each output mode, against a Rich table of the same rows.

Run from the repository root with the project venv: ``.venv/bin/python benchmarks/history.py``.
Bytecode is compiled first, as an installer does. A ledger of ``--tasks`` tasks is written to
a temporary FLUX2_DATA_DIR; then each case runs the real ``flux2 history`` in a fresh process
(median of ``--runs``, cases interleaved so load drift hits all alike): piped (tab-separated
rows), ``--json``, and on a pseudo-terminal (aligned columns, 120 wide). The reference, in the
same run, is what history did before: the same rows through a ``rich.table.Table`` printed to a
120-column console, plus ``python -c pass``. The goal is under 1 s in every mode.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import pty
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GOAL_S = 1.0

RICH_REFERENCE = """
import io, sys
from rich.console import Console
from rich.table import Table
from flux2_cli.jobs import as_seen_now
from flux2_cli.ledger import Ledger
from flux2_cli.task import format_time
with Ledger() as ledger:
    entries = ledger.history(limit=int(sys.argv[1]))
table = Table(show_edge=False, header_style="bold")
for column in ["task", "provider", "status", "submitted", "expires", "saved", "prompt"]:
    table.add_column(column, overflow="fold")
for entry in entries:
    task = as_seen_now(entry.task)
    paths = ", ".join(image.path for image in task.images if image.path) or "-"
    table.add_row(task.task_id, task.provider, task.status.value, format_time(entry.submitted_at),
                  format_time(task.expires_at) or "-", paths,
                  (task.request or {}).get("prompt", "")[:40])
Console(file=io.StringIO(), width=120, force_terminal=True).print(table)
"""


def make_ledger(data_dir: Path, count: int) -> None:
    """``count`` tasks of mixed providers and states, as a busy user's ledger holds."""
    sys.path.insert(0, str(ROOT))
    from flux2_cli.ledger import Ledger
    from flux2_cli.task import ImageResult, Task, TaskStatus

    start = datetime.now(timezone.utc) - timedelta(days=30)
    statuses = [TaskStatus.SUCCEEDED, TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.RUNNING]
    with Ledger(data_dir / "ledger.sqlite3") as ledger:
        for index in range(count):
            status = statuses[index % len(statuses)]
            images = ()
            if status is TaskStatus.SUCCEEDED:
                url = f"https://cdn.example/{index}.png?X-Amz-Signature=abc"
                images = (ImageResult(url=url, path=f"/home/user/art/out/fox-{index:05d}.png"),)
            task = Task(
                task_id=f"sbx{index:020x}_flux2",
                provider=("sandbox", "apiinone", "bfl", "apimart")[index % 4],
                status=status,
                expires_at=start + timedelta(days=1, minutes=index),
                images=images,
                request={"prompt": f"a red fox number {index} in the snow at dawn, cinematic"},
            )
            ledger._clock = lambda moment=start + timedelta(minutes=index): moment  # type: ignore[misc]
            ledger.record_submit(task)


def run_piped(argv: list[str], env: dict[str, str]) -> float:
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True)
    return 0.0


def run_on_terminal(argv: list[str], env: dict[str, str]) -> float:
    leader, follower = pty.openpty()
    process = subprocess.Popen(argv, env=env, stdout=follower)
    os.close(follower)
    while True:
        try:
            if not os.read(leader, 1 << 16):
                break
        except OSError:
            break
    process.wait()
    os.close(leader)
    if process.returncode != 0:
        raise SystemExit(f"{argv} exited {process.returncode}")
    return 0.0


def timed(runner: Any, argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child): on a shared machine the CPU time is the
    steadier figure; the wall time includes waiting for a core."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    runner(argv, env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> int:
    """Build the ledger, time every case, print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    py = sys.executable
    flux2 = [py, "-c", "from flux2_cli._entry import main; main()"]
    limit = str(args.tasks)
    # Bytecode first, as an installer does: PYTHONDONTWRITEBYTECODE would recompile every run.
    compileall.compile_dir(str(ROOT / "flux2_cli"), quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp, "data")
        make_ledger(data, args.tasks)
        env = {**os.environ, "FLUX2_DATA_DIR": str(data), "COLUMNS": "120"}
        cases = {
            "python -c pass": (run_piped, [py, "-c", "pass"]),
            "before: Rich table of the rows (reference)": (
                run_piped,
                [py, "-c", RICH_REFERENCE, limit],
            ),
            "flux2 history (piped: tab-separated)": (
                run_piped,
                [*flux2, "history", "--limit", limit],
            ),
            "flux2 history --json": (run_piped, [*flux2, "history", "--limit", limit, "--json"]),
            "flux2 history (terminal, 120 columns)": (
                run_on_terminal,
                [*flux2, "history", "--limit", limit],
            ),
        }
        walls: dict[str, list[float]] = {name: [] for name in cases}
        cpus: dict[str, list[float]] = {name: [] for name in cases}
        for index in range(args.runs + 1):
            for name, (runner, argv) in cases.items():
                wall, cpu = timed(runner, argv, env)
                if index:  # the first round warms caches
                    walls[name].append(wall)
                    cpus[name].append(cpu)
    wall_s = {name: statistics.median(values) for name, values in walls.items()}
    cpu_s = {name: statistics.median(values) for name, values in cpus.items()}
    reference = cpu_s["before: Rich table of the rows (reference)"]
    print(f"{args.tasks} tasks, median of {args.runs} runs; python {sys.version.split()[0]}\n")
    print("| case | wall s | CPU s | CPU vs the Rich reference | goal (CPU) |")
    print("| --- | ---: | ---: | ---: | --- |")
    for name in cases:
        cpu = cpu_s[name]
        goal = f"< {GOAL_S:g} s {'met' if cpu < GOAL_S else 'missed'}"
        goal = goal if name.startswith("flux2") else ""
        print(f"| `{name}` | {wall_s[name]:.2f} | {cpu:.2f} | {cpu / reference:.2f}× | {goal} |")
    if args.json:
        report = {"tasks": args.tasks, "wall_seconds": wall_s, "cpu_seconds": cpu_s}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
