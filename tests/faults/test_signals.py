"""Rows 20, 21 and 49 with a real process: real SIGINT / SIGTERM, and a reader that left."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

FLUX2 = Path(sys.executable).parent / "flux2"
POSIX = pytest.mark.skipif(os.name == "nt", reason="POSIX signals and pipes")
START_TIMEOUT_S = 30.0
EXIT_TIMEOUT_S = 20.0


def _env(latency: str) -> dict[str, str]:
    env = dict(os.environ)  # the isolation fixture already points every dir at tmp_path
    env["FLUX2_SANDBOX_LATENCY"] = latency
    env.pop("FLUX2_API_KEY", None)
    return env


def _wait_for_submission(proc: subprocess.Popen[bytes]) -> str:
    """Read stderr until 'Submitted task ID'; the text read so far."""
    assert proc.stderr is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stderr, selectors.EVENT_READ)
    seen = b""
    deadline = time.monotonic() + START_TIMEOUT_S
    while b"Submitted task" not in seen or not seen.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or proc.poll() is not None:
            proc.kill()
            raise AssertionError(f"never submitted: {seen!r}")
        if selector.select(timeout=remaining):
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
    selector.close()
    return seen.decode()


@POSIX
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_row20_row21_real_signal_while_polling_prints_id_and_resume(
    tmp_path: Path, signum: int, code: int
) -> None:
    proc = subprocess.Popen(
        [str(FLUX2), "gen", "a red fox", "--provider", "sandbox", "-o", f"{tmp_path}/out/"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env("30"),
    )
    try:
        head = _wait_for_submission(proc)
        task_id = head.split("Submitted task ", 1)[1].split()[0]
        time.sleep(0.3)  # let it enter the poll loop
        proc.send_signal(signum)
        stdout, rest = proc.communicate(timeout=EXIT_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = head + rest.decode()
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert "still running" in stderr
    assert f"flux2 status {task_id} --wait" in stderr
    assert f"flux2 download {task_id}" in stderr
    assert stdout == b""
    history = subprocess.run(
        [str(FLUX2), "history", "--json"],
        capture_output=True,
        env=_env("0"),
        timeout=EXIT_TIMEOUT_S,
        check=True,
    )
    assert task_id.encode() in history.stdout
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


@POSIX
@pytest.mark.parametrize("reader", ["head -c0", "head -1", "true"])
def test_row49_epipe_exits_quietly_and_the_download_completes(tmp_path: Path, reader: str) -> None:
    out = tmp_path / "out"
    script = (
        f'"{FLUX2}" gen "a red fox" --provider sandbox -o "{out}/" | {reader}; '
        'echo "status=${PIPESTATUS[0]}" >&2'
    )
    proc = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        env=_env("0.5"),
        timeout=60,
    )
    stderr = proc.stderr.decode()
    assert "status=0" in stderr, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
    assert "Exception ignored" not in stderr
    assert len(list(out.glob("*.png"))) == 1  # the download finished
