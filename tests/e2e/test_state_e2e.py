"""End to end: the batch state that travels with the manifest (reliability rows 51 to 54).

Each "runner" is a separate machine as CI sees it: its own HOME, config and data folders (so an
empty ledger) and its own copy of the workspace. The sandbox server stores one file per task it
creates, so counting them counts the paid POSTs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import FLUX2_BIN, RUN_TIMEOUT, SandboxServer, account

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

Run = Callable[..., subprocess.CompletedProcess[str]]
Server = Callable[..., SandboxServer]

WAIT_S = 60.0


def runner_env(root: Path) -> dict[str, str]:
    """A fresh machine: nothing of the test's own HOME, config or ledger."""
    env = os.environ.copy()
    for name in ("HOME", "FLUX2_CONFIG", "FLUX2_DATA_DIR", "FLUX2_CACHE_DIR"):
        env.pop(name, None)
    env.update(
        HOME=str(root / "home"),
        FLUX2_CONFIG=str(root / "home" / "config.toml"),
        FLUX2_DATA_DIR=str(root / "home" / "data"),
        FLUX2_CACHE_DIR=str(root / "home" / "cache"),
    )
    return env


def write_manifest(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "assets.jsonl"
    manifest.write_text(
        "".join(
            json.dumps({"prompt": f"a lighthouse at dusk, view {n}"}) + "\n" for n in range(count)
        )
    )
    return manifest


def images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.glob("*.png") if not path.name.startswith("."))


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FLUX2_BIN), *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def start(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as handle:
        return subprocess.Popen(
            [str(FLUX2_BIN), *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
        )


def stop_after_images(
    process: subprocess.Popen[bytes], out: Path, count: int, signum: signal.Signals, log: Path
) -> None:
    try:
        deadline = time.monotonic() + WAIT_S
        while len(images(out)) < count and process.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        process.send_signal(signum)
        process.wait(timeout=RUN_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=RUN_TIMEOUT)


def fresh_runner(workspace: Path, root: Path) -> Path:
    """A copy of the workspace (manifest, lock files, images) on a new machine."""
    copy = root / "workspace"
    shutil.copytree(workspace, copy)
    return copy


def test_row51_two_batches_of_one_manifest_at_once_pay_once_per_entry(
    sandbox_server: Server, tmp_path: Path
) -> None:
    server = sandbox_server(latency=0.5)
    workspace = tmp_path / "ws"
    manifest = write_manifest(workspace, 8)
    env = runner_env(tmp_path / "machine")
    args = ["batch", manifest.name, *account("apiinone", server), "-o", "out/", "-c", "8"]
    first = start(args, workspace, env, tmp_path / "first.log")
    second = start(args, workspace, env, tmp_path / "second.log")
    try:
        codes = (first.wait(timeout=RUN_TIMEOUT), second.wait(timeout=RUN_TIMEOUT))
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
                process.wait(timeout=RUN_TIMEOUT)
    logs = (tmp_path / "first.log").read_text() + (tmp_path / "second.log").read_text()
    assert codes == (0, 0), logs
    assert server.tasks_created() == 8, logs
    assert len(images(workspace / "out")) == 8


def test_row52_sigterm_then_a_fresh_runner_resumes_without_paying_twice(
    sandbox_server: Server, tmp_path: Path
) -> None:
    server = sandbox_server(latency=1.0)
    first_ws = tmp_path / "runner1" / "workspace"
    manifest = write_manifest(first_ws, 12)
    args = ["batch", manifest.name, *account("apiinone", server), "-o", "out/", "-c", "4"]
    log = tmp_path / "runner1.log"
    process = start(args, first_ws, runner_env(tmp_path / "runner1"), log)
    stop_after_images(process, first_ws / "out", 2, signal.SIGTERM, log)

    assert process.returncode == 143, log.read_text()
    lock = json.loads((first_ws / "assets.jsonl.lock.json").read_text())
    # Folded on the way out (a download that ends after the fold may add a journal line).
    states = [record["state"] for record in lock["entries"].values()]
    assert "submitted" in states and "finished" in states, lock
    paid_before = server.tasks_created()
    assert paid_before < 12

    fresh = fresh_runner(first_ws, tmp_path / "runner2")
    rerun = run(args, fresh, runner_env(tmp_path / "runner2"))

    assert rerun.returncode == 0, rerun.stderr
    assert server.tasks_created() == 12  # every entry exactly one task
    assert len(images(fresh / "out")) == 12
    lock = json.loads((fresh / "assets.jsonl.lock.json").read_text())
    assert {record["state"] for record in lock["entries"].values()} == {"finished"}
    assert len({record["task_id"] for record in lock["entries"].values()}) == 12
    check = run(
        ["batch", manifest.name, "--check", *account("apiinone", server)], fresh, os.environ.copy()
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_row53_sigkill_then_a_fresh_runner_pays_no_answered_create_twice(
    sandbox_server: Server, tmp_path: Path
) -> None:
    server = sandbox_server(latency=1.0)
    first_ws = tmp_path / "runner1" / "workspace"
    manifest = write_manifest(first_ws, 12)
    # -c 12: every POST is answered long before the first task can finish (1 s).
    args = ["batch", manifest.name, *account("apiinone", server), "-o", "out/", "-c", "12"]
    log = tmp_path / "runner1.log"
    process = start(args, first_ws, runner_env(tmp_path / "runner1"), log)
    stop_after_images(process, first_ws / "out", 3, signal.SIGKILL, log)

    assert process.returncode == -signal.SIGKILL
    assert (first_ws / "assets.jsonl.lock.journal").exists()  # not folded: killed
    answered = server.task_ids()

    fresh = fresh_runner(first_ws, tmp_path / "runner2")
    rerun = run(args, fresh, runner_env(tmp_path / "runner2"))

    assert rerun.returncode == 0, rerun.stderr
    assert server.task_ids() == answered and len(answered) == 12
    assert len(images(fresh / "out")) == 12


def test_row54_a_sandbox_lock_makes_a_real_run_regenerate_and_check_names_it(
    sandbox_server: Server, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    manifest = write_manifest(workspace, 3)
    env = runner_env(tmp_path / "machine")
    env["FLUX2_SANDBOX_LATENCY"] = "0"
    tried = run(
        ["batch", manifest.name, "--provider", "apiinone", "--sandbox", "-o", "out/"],
        workspace,
        env,
    )
    assert tried.returncode == 0, tried.stderr
    server = sandbox_server(latency=0.2)
    real = account("apiinone", server)

    check = run(["batch", manifest.name, "--check", *real], workspace, env)

    assert check.returncode == 5
    stale = [line for line in check.stdout.splitlines() if "made on the sandbox" in line]
    assert len(stale) == 3, check.stdout
    assert run(["batch", manifest.name, "--check", "--provider", "apiinone", "--sandbox"],
               workspace, env).returncode == 0  # fmt: skip

    regenerated = run(["batch", manifest.name, *real, "-o", "out/"], workspace, env)

    assert regenerated.returncode == 0, regenerated.stderr
    assert server.tasks_created() == 3  # nothing skipped as "up to date"
    assert run(["batch", manifest.name, "--check", *real], workspace, env).returncode == 0
