"""End to end: ``flux2 batch`` against ``sandbox serve``, killed with SIGKILL part-way and re-run.

The sandbox stores one file per task it creates, so counting them proves that nothing was paid
for twice: a batch of 12, killed after a few images, then re-run, ends with 12 images and 12
tasks; a third run of the unchanged manifest creates none.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import FLUX2_BIN, RUN_TIMEOUT, SandboxServer, account

pytestmark = pytest.mark.e2e

Run = Callable[..., subprocess.CompletedProcess[str]]
Server = Callable[..., SandboxServer]

ENTRIES = 12
KILL_AFTER_IMAGES = 3
WAIT_FOR_IMAGES_S = 60.0


def images(folder: Path) -> list[Path]:
    """Saved images (hidden temp files of an interrupted download excluded)."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.glob("*.png") if not path.name.startswith("."))


def test_batch_killed_with_sigkill_then_rerun_makes_each_image_once(
    sandbox_server: Server, run_flux2: Run, tmp_path: Path
) -> None:
    server = sandbox_server(latency=1.0)
    manifest = tmp_path / "assets.jsonl"
    manifest.write_text(
        "".join(json.dumps({"prompt": f"a lighthouse at dusk, view {n}"}) + "\n" for n in range(12))
    )
    out = tmp_path / "out"
    # Every POST goes out at once (-c 12), well before the first task can finish (1 s), so the
    # kill lands while tasks run or download, never between a POST and its recorded answer
    # (that case is "outcome unknown" by design, tested in tests/commands).
    args = [
        "batch",
        str(manifest),
        *account("apiinone", server),
        "-o",
        str(out) + "/",
        "-c",
        str(ENTRIES),
    ]
    with open(tmp_path / "first.log", "wb") as log:
        process = subprocess.Popen(
            [str(FLUX2_BIN), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
            env=os.environ.copy(),
        )
    try:
        deadline = time.monotonic() + WAIT_FOR_IMAGES_S
        while len(images(out)) < KILL_AFTER_IMAGES and process.poll() is None:
            assert time.monotonic() < deadline, (tmp_path / "first.log").read_text()
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=RUN_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=RUN_TIMEOUT)
    assert process.returncode == -signal.SIGKILL, "the batch ended before it could be killed"
    made = len(images(out))
    assert KILL_AFTER_IMAGES <= made < ENTRIES, made
    assert server.tasks_created() == ENTRIES

    rerun = run_flux2(*args)

    assert rerun.returncode == 0, rerun.stderr
    assert len(images(out)) == ENTRIES
    assert server.tasks_created() == ENTRIES
    assert len(rerun.stdout.split()) == ENTRIES
    lock = json.loads((tmp_path / "assets.jsonl.lock.json").read_text())
    assert len(lock["entries"]) == ENTRIES
    assert len({record["task_id"] for record in lock["entries"].values()}) == ENTRIES

    third = run_flux2(*args, "--json")

    assert third.returncode == 0, third.stderr
    lines = [json.loads(line) for line in third.stdout.splitlines()]
    assert [line["status"] for line in lines[:-1]] == ["skipped"] * ENTRIES
    assert lines[-1]["credits"] == 0
    assert server.tasks_created() == ENTRIES
    # --check compares with the endpoint the flags name (records made elsewhere are stale).
    check = run_flux2("batch", str(manifest), "--check", *account("apiinone", server))
    assert check.returncode == 0, check.stdout + check.stderr


def test_check_fails_on_an_edited_image_and_a_rerun_restores_it_without_paying(
    sandbox_server: Server, run_flux2: Run, tmp_path: Path
) -> None:
    server = sandbox_server(latency=0.2)
    manifest = tmp_path / "m.csv"
    manifest.write_text("prompt,name\na red fox at dawn,fox\na blue whale,whale\n")
    args = ["batch", str(manifest), *account("apiinone", server), "-o", str(tmp_path / "out")]
    first = run_flux2(*args)
    assert first.returncode == 0, first.stderr
    fox = tmp_path / "out" / "fox.png"
    original = fox.read_bytes()
    fox.write_bytes(b"not the generated image")

    check = run_flux2("batch", str(manifest), "--check", *account("apiinone", server))

    assert check.returncode == 5
    assert "stale\tfox" in check.stdout and "whale" not in check.stdout
    repaired = run_flux2(*args)
    assert repaired.returncode == 0, repaired.stderr
    assert (
        run_flux2("batch", str(manifest), "--check", *account("apiinone", server)).returncode == 0
    )
    # The finished task's image was fetched again (its URL still lives): nothing paid twice.
    assert fox.read_bytes() == original
    assert server.tasks_created() == 2
