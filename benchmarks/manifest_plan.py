#!/usr/bin/env python3
"""Validating and planning a 20,000-line manifest: ``flux2 batch --dry-run`` and ``--check``.

Run from the repository root with the project venv:
``.venv/bin/python benchmarks/manifest_plan.py [--lines 20000] [--runs 2]``. Bytecode is compiled
first, as an installer does. A JSON Lines manifest of ``--lines`` entries (named and unnamed,
mixed ratios and resolutions) is written to a temporary folder; each case runs the real
``flux2 batch`` in a fresh process with an empty ledger, cases interleaved round by round (median
of ``--runs``): ``--dry-run`` piped, ``--dry-run --json``, and ``--check``. The reference, in the
same run, is the floor of any Python client: ``python -c`` reading and ``json.loads``-ing every
line. Nothing is sent (``--dry-run`` and ``--check`` never reach the network). Goal: < 3 s.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLUX2 = Path(sys.executable).parent / "flux2"
GOAL_S = 3.0
FLOOR = "import json, sys\nfor line in open(sys.argv[1], encoding='utf-8'):\n    json.loads(line)\n"


def write_manifest(path: Path, lines: int) -> None:
    """``lines`` entries: half named, half unnamed; three ratios, two resolutions."""
    ratios = ["1:1", "16:9", "3:4"]
    with path.open("w", encoding="utf-8") as handle:
        for i in range(lines):
            if i % 2:
                entry = {"prompt": f"a lighthouse at dusk {i}", "ratio": ratios[i % 3]}
                entry["name"] = f"img{i:05d}"
            else:
                entry = {"prompt": f"a fox in the snow {i}", "res": "2K"}
            handle.write(json.dumps(entry) + "\n")


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall s, CPU s of the child) of one run; the exit code is not checked (--check is 5)."""
    started = time.monotonic()
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, _, usage = os.wait4(process.pid, 0)
    return time.monotonic() - started, usage.ru_utime + usage.ru_stime


def main() -> None:
    """Write the manifest, run every case ``--runs`` times interleaved, print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    compileall.compile_dir(str(ROOT / "flux2_cli"), quiet=1)
    with tempfile.TemporaryDirectory(prefix="flux2-plan-") as folder:
        root = Path(folder)
        manifest = root / "bench.jsonl"
        write_manifest(manifest, args.lines)
        env = dict(
            os.environ,
            FLUX2_CONFIG=str(root / "config.toml"),
            FLUX2_DATA_DIR=str(root / "data"),
            FLUX2_CACHE_DIR=str(root / "cache"),
        )
        for name in ("FLUX2_API_KEY", "FLUX2_PROVIDER", "FLUX2_BASE_URL", "FLUX2_PROFILE"):
            env.pop(name, None)
        batch = [str(FLUX2), "batch", str(manifest), "--provider", "apiinone", "--api-key", "k"]
        cases = {
            "reference: python reads and json.loads every line": [
                sys.executable,
                "-c",
                FLOOR,
                str(manifest),
            ],
            "`flux2 batch --dry-run` (piped)": [*batch, "--dry-run", "-o", "out/"],
            "`flux2 batch --dry-run --json`": [*batch, "--dry-run", "--json", "-o", "out/"],
            "`flux2 batch --check`": [*batch, "--check"],
        }
        figures: dict[str, list[tuple[float, float]]] = {case: [] for case in cases}
        for _ in range(args.runs):
            for case, argv in cases.items():
                figures[case].append(timed(argv, env, root))
    reference = statistics.median(cpu for _, cpu in figures[next(iter(cases))])
    print(f"{args.lines:,} lines; median of {args.runs} runs\n")
    print("| case | wall s | CPU s | CPU vs reference | goal (< 3 s CPU) |")
    print("| --- | ---: | ---: | ---: | --- |")
    for index, (case, runs) in enumerate(figures.items()):
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        goal = "" if index == 0 else ("met" if cpu < GOAL_S else "NOT met")
        print(f"| {case} | {wall:.2f} | {cpu:.2f} | {cpu / reference:.1f}× | {goal} |")


if __name__ == "__main__":
    main()
