"""Benchmark: ``flux2 batch`` against a lean reference client, paired, on one sandbox server.

For each (N, C) it starts the sandbox application (``_counting_sandbox.py``: the server of
``flux2 sandbox serve`` with request counters) at latency L, then runs, alternately and in the
same server, the installed ``flux2 batch -c C`` on N fresh prompts and ``lean_client.py`` with C
threads on N prompts. Per run it reports the wall time against the ideal ceil(N/C)·L, the paired
ratio flux2 / lean, the client's CPU per task (user + system of the client process, from
``wait4``), status requests per task (counted at the server), peak resident memory, and the
server's CPU per task. Nothing leaves the machine.

    .venv/bin/python benchmarks/batch_scale.py [--sizes 256x16,1024x16,1024x64] [--latency 2]
        [--repeat 1] [--json FILE]
"""

from __future__ import annotations

import argparse
import compileall
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FLUX2_BIN = Path(sys.executable).parent / "flux2"
START_TIMEOUT_S = 20.0
RUN_TIMEOUT_S = 900.0


def start_server(root: Path, latency: float) -> tuple[subprocess.Popen[bytes], str]:
    """The counting sandbox on a free port; the process and its URL."""
    out = root / "server.out"
    with open(out, "wb") as stdout, open(root / "server.err", "wb") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "_counting_sandbox.py"),
                "--latency",
                str(latency),
                "--state-dir",
                str(root / "state"),
            ],
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        text = out.read_text(encoding="utf-8", errors="replace")
        if "\n" in text:
            return process, text.split("\n", 1)[0].strip()
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit("the sandbox did not start:\n" + (root / "server.err").read_text())
        time.sleep(0.05)


def server_counts(url: str) -> dict[str, float]:
    """Requests by kind and server CPU seconds since the last call (which resets them)."""
    with urllib.request.urlopen(url + "/__bench/counts", timeout=10) as answer:
        data: dict[str, float] = json.loads(answer.read())
    return data


def run_child(
    argv: list[str], env: dict[str, str], stdout: Path, *, must_succeed: bool = True
) -> dict[str, float]:
    """Run one client process to its end; wall time, CPU seconds, peak RSS (MiB), exit code.

    A failing flux2 run is a figure too (``must_succeed=False``: the exit code is reported,
    e.g. an entry lost to a stale connection); a failing reference client stops the benchmark.
    """
    with open(stdout, "wb") as out, open(str(stdout) + ".err", "wb") as err:
        started = time.monotonic()
        process = subprocess.Popen(argv, stdout=out, stderr=err, env=env, stdin=subprocess.DEVNULL)
        # A hung client must not hang the benchmark: kill it after RUN_TIMEOUT_S.
        watchdog = threading.Timer(RUN_TIMEOUT_S, process.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            watchdog.cancel()
        wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0 and must_succeed:
        tail = Path(str(stdout) + ".err").read_text(errors="replace")[-2000:]
        raise SystemExit(f"{argv[0]} exited {process.returncode}:\n{tail}")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_mib": usage.ru_maxrss / 1024,
        "exit": float(process.returncode),
    }


def isolated_env(root: Path) -> dict[str, str]:
    """An environment with its own config, data and cache folders and no flux2 settings."""
    env = dict(
        os.environ,
        FLUX2_CONFIG=str(root / "config.toml"),
        FLUX2_DATA_DIR=str(root / "data"),
        FLUX2_CACHE_DIR=str(root / "cache"),
    )
    for name in ("FLUX2_API_KEY", "FLUX2_PROVIDER", "FLUX2_BASE_URL", "FLUX2_PROFILE", "CI"):
        env.pop(name, None)
    return env


def run_flux2(url: str, root: Path, n: int, c: int, tag: str) -> dict[str, float]:
    """``flux2 batch`` of N fresh prompts with C in flight."""
    work = root / f"flux2-{tag}"
    work.mkdir()
    manifest = work / "bench.jsonl"
    manifest.write_text(
        "".join(json.dumps({"prompt": f"bench {tag} image number {i}"}) + "\n" for i in range(n))
    )
    argv = [
        str(FLUX2_BIN),
        "batch",
        str(manifest),
        "--provider",
        "apiinone",
        "--base-url",
        url,
        "--api-key",
        f"bench-flux2-{tag}",
        "-c",
        str(c),
        "-o",
        str(work / "out") + "/",
        "--no-sidecar",
        "--json",
    ]
    return run_child(argv, isolated_env(work), work / "stdout", must_succeed=False)


def run_lean(url: str, root: Path, n: int, c: int, tag: str) -> dict[str, float]:
    """The lean reference client on N prompts with C threads."""
    work = root / f"lean-{tag}"
    work.mkdir()
    argv = [
        sys.executable,
        str(HERE / "lean_client.py"),
        "--base-url",
        url,
        "--n",
        str(n),
        "--c",
        str(c),
        "--api-key",
        f"bench-lean-{tag}",
        "--out",
        str(work / "out"),
    ]
    return run_child(argv, isolated_env(work), work / "stdout")


def measure(n: int, c: int, latency: float, repeat: int) -> list[dict[str, Any]]:
    """Alternate flux2 and the lean client ``repeat`` times on one server; one row per run."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="flux2-scale-") as folder:
        root = Path(folder)
        server, url = start_server(root, latency)
        try:
            server_counts(url)
            for run in range(repeat):
                order = [("flux2", run_flux2), ("lean", run_lean)]
                if run % 2:
                    order.reverse()
                pair: dict[str, dict[str, float]] = {}
                for name, runner in order:
                    figures = runner(url, root, n, c, f"{n}x{c}-{run}")
                    figures.update(server_counts(url))
                    pair[name] = figures
                ideal = math.ceil(n / c) * latency
                for name, figures in pair.items():
                    rows.append(
                        {
                            "client": name,
                            "n": n,
                            "c": c,
                            "run": run,
                            "wall": figures["wall"],
                            "ideal": ideal,
                            "over_ideal": figures["wall"] / ideal,
                            "over_lean": figures["wall"] / pair["lean"]["wall"],
                            "cpu_ms_per_task": 1000 * figures["cpu"] / n,
                            "status_per_task": figures.get("status", 0.0) / n,
                            "creates": figures.get("create", 0.0),
                            "peak_mib": figures["peak_mib"],
                            "server_cpu_ms_per_task": 1000 * figures["server_cpu"] / n,
                            "exit": int(figures["exit"]),
                        }
                    )
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)  # partial results
        finally:
            server.terminate()
            server.wait(timeout=10)
    return rows


def main() -> None:
    """Parse the options, run every size, print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256x16,1024x16,1024x64", help="NxC,NxC,...")
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also save the rows here")
    args = parser.parse_args()
    if not FLUX2_BIN.exists():
        raise SystemExit(f"flux2 is not installed at {FLUX2_BIN} (pip install -e .)")
    compileall.compile_dir(str(HERE.parent / "flux2_cli"), quiet=1)
    rows: list[dict[str, Any]] = []
    for size in args.sizes.split(","):
        n, c = (int(part) for part in size.lower().split("x"))
        rows.extend(measure(n, c, args.latency, args.repeat))
    print(
        "| client | N | C | wall s | / ideal | / lean | client CPU ms/task | status req/task "
        "| peak MiB | server CPU ms/task | exit |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['client']} | {row['n']} | {row['c']} | {row['wall']:.1f} "
            f"| {row['over_ideal']:.2f} | {row['over_lean']:.2f} | {row['cpu_ms_per_task']:.1f} "
            f"| {row['status_per_task']:.2f} | {row['peak_mib']:.0f} "
            f"| {row['server_cpu_ms_per_task']:.1f} | {row['exit']} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
