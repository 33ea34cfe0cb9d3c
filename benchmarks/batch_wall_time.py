"""Benchmark: wall time of ``flux2 batch`` on ``sandbox serve`` against the ideal ceil(N/C)·L.

Starts ``flux2 sandbox serve --latency L`` on 127.0.0.1 (its own state folder), writes a
manifest of N distinct prompts, runs the installed ``flux2 batch -c C`` against it in an
isolated config/data folder, and prints the process wall time, the batch's own wall time, the
ideal, and their ratio (goal: ≤ 1.1). Nothing leaves the machine.

    .venv/bin/python benchmarks/batch_wall_time.py [--n 64] [--c 16] [--latency 2]
        [--poll-interval S] [--repeat K] [--code DIR]

It also prints the client's CPU time per task: user + system time of the ``flux2 batch``
process (``resource.getrusage(RUSAGE_CHILDREN)`` around it; the server is a separate child,
counted only when it ends). ``--code DIR`` runs ``python -m flux2_cli`` from another checkout
(the code before a change) against the same server, for a before/after in one run.
"""

from __future__ import annotations

import argparse
import compileall
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLUX2_BIN = Path(sys.executable).parent / ("flux2.exe" if os.name == "nt" else "flux2")
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
GOAL = 1.1


def start_server(
    root: Path, latency: float, env: dict[str, str]
) -> tuple[subprocess.Popen[bytes], str]:
    """``sandbox serve --port 0``; returns the process and its URL (first stdout line)."""
    log = root / "server.out"
    with open(log, "wb") as out, open(root / "server.err", "wb") as err:
        process = subprocess.Popen(
            [
                str(FLUX2_BIN),
                "sandbox",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--latency",
                str(latency),
                "--state-dir",
                str(root / "state"),
            ],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        text = log.read_text(encoding="utf-8", errors="replace")
        if "\n" in text:
            return process, text.split("\n", 1)[0].strip()
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise SystemExit("sandbox serve did not start:\n" + (root / "server.err").read_text())
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate by pid, then kill if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)


def child_cpu_s() -> float:
    """User + system CPU seconds of every child process ended and waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(
    n: int, c: int, latency: float, poll_interval: float | None, code: Path | None = None
) -> dict[str, float]:
    """One batch run in a fresh folder; the measured and ideal times, the client's CPU."""
    with tempfile.TemporaryDirectory(prefix="flux2-bench-") as folder:
        root = Path(folder)
        env = dict(
            os.environ,
            FLUX2_CONFIG=str(root / "config.toml"),
            FLUX2_DATA_DIR=str(root / "data"),
            FLUX2_CACHE_DIR=str(root / "cache"),
        )
        for name in ("FLUX2_API_KEY", "FLUX2_PROVIDER", "FLUX2_BASE_URL", "FLUX2_PROFILE"):
            env.pop(name, None)
        if poll_interval is not None:
            (root / "config.toml").write_text(f"poll_interval = {poll_interval}\n")
        manifest = root / "bench.jsonl"
        manifest.write_text(
            "".join(json.dumps({"prompt": f"benchmark image number {i}"}) + "\n" for i in range(n))
        )
        server, url = start_server(root, latency, env)
        command = [str(FLUX2_BIN)]
        client_env = dict(env)
        if code is not None:
            command = [sys.executable, "-m", "flux2_cli"]
            client_env["PYTHONPATH"] = str(code)
        try:
            cpu_before = child_cpu_s()
            started = time.monotonic()
            result = subprocess.run(
                [
                    *command,
                    "batch",
                    str(manifest),
                    "--provider",
                    "apiinone",
                    "--base-url",
                    url,
                    "--api-key",
                    "bench-key",
                    "-c",
                    str(c),
                    "-o",
                    str(root / "out") + "/",
                    "--no-sidecar",
                    "--json",
                ],
                capture_output=True,
                text=True,
                timeout=600,
                env=client_env,
                cwd=root,  # not the checkout: python -m would import flux2_cli from there
                stdin=subprocess.DEVNULL,
            )
            wall = time.monotonic() - started
            cpu = child_cpu_s() - cpu_before
        finally:
            stop(server)
        if result.returncode != 0:
            raise SystemExit(f"flux2 batch exited {result.returncode}:\n{result.stderr}")
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        tasks = len(list((root / "state" / "tasks").glob("*.json")))
    ideal = math.ceil(n / c) * latency
    return {
        "wall": wall,
        "batch_wall": float(summary["wall_seconds"]),
        "ideal": ideal,
        "ratio": wall / ideal,
        "batch_ratio": float(summary["wall_seconds"]) / ideal,
        "tasks": float(tasks),
        "cpu_ms_per_task": cpu * 1000 / n,
    }


def main() -> None:
    """Parse the options, run, print one line per run and the verdict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="entries in the manifest")
    parser.add_argument("--c", type=int, default=16, help="--concurrency")
    parser.add_argument("--latency", type=float, default=2.0, help="sandbox task latency, s")
    parser.add_argument("--poll-interval", type=float, default=None, help="config poll_interval")
    parser.add_argument("--repeat", type=int, default=1, help="runs to make")
    parser.add_argument(
        "--code", type=Path, default=None, help="also run the flux2_cli found in this folder"
    )
    args = parser.parse_args()
    if not FLUX2_BIN.exists():
        raise SystemExit(f"flux2 is not installed at {FLUX2_BIN} (pip install -e .)")
    # As an installer does: with PYTHONDONTWRITEBYTECODE set (some CI images) every start would
    # otherwise recompile the edited modules and inflate the process wall time.
    compileall.compile_dir(str(Path(__file__).resolve().parent.parent / "flux2_cli"), quiet=1)
    ratios = []
    codes: list[tuple[str, Path | None]] = [("this", None)]
    if args.code is not None:
        codes.insert(0, (str(args.code), args.code.resolve()))
    for run in range(1, args.repeat + 1):
        for label, code in codes:  # alternately, so that both see the same machine
            figures = run_once(args.n, args.c, args.latency, args.poll_interval, code)
            if code is None:
                ratios.append(figures["ratio"])
            print(
                f"run {run} [{label}]: N={args.n} C={args.c} L={args.latency:g}s  "
                f"wall {figures['wall']:.2f}s (batch {figures['batch_wall']:.2f}s)  "
                f"ideal {figures['ideal']:.2f}s  ratio {figures['ratio']:.3f} "
                f"(batch {figures['batch_ratio']:.3f})  tasks {figures['tasks']:.0f}  "
                f"client CPU {figures['cpu_ms_per_task']:.1f} ms/task"
            )
    best = min(ratios)
    verdict = "within" if best <= GOAL else "over"
    print(f"best ratio {best:.3f}: {verdict} the {GOAL:g} goal")


if __name__ == "__main__":
    main()
