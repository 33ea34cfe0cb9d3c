"""End to end: Ctrl-C (SIGINT) and a CI timeout (SIGTERM) while ``flux2 gen`` polls."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
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

SUBMITTED = re.compile(r"Submitted task (\S+) ")
LINE_TIMEOUT = 30.0


def wait_for_line(lines: queue.Queue[str | None], seen: list[str], pattern: str) -> str:
    """The first stderr line (from now on) containing ``pattern``; fails after a bound."""
    while True:
        try:
            line = lines.get(timeout=LINE_TIMEOUT)
        except queue.Empty:
            pytest.fail(f"no {pattern!r} on stderr in {LINE_TIMEOUT:g} s:\n{''.join(seen)}")
        if line is None:
            pytest.fail(f"flux2 ended before {pattern!r}:\n{''.join(seen)}")
        seen.append(line)
        if pattern in line:
            return line


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_signal_while_polling_names_the_task_and_how_to_resume(
    signum: signal.Signals,
    code: int,
    sandbox_server: Server,
    run_flux2: Run,
    tmp_path: Path,
) -> None:
    server = sandbox_server()
    process = subprocess.Popen(
        [
            str(FLUX2_BIN),
            "gen",
            "a lighthouse [sandbox:never]",
            *account("apiinone", server),
            "-o",
            str(tmp_path / "out") + "/",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        cwd=tmp_path,
        env=os.environ.copy(),
    )
    try:
        lines: queue.Queue[str | None] = queue.Queue()
        assert process.stderr is not None
        stderr = process.stderr

        def read() -> None:
            for line in stderr:
                lines.put(line)
            lines.put(None)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        seen: list[str] = []
        match = SUBMITTED.search(wait_for_line(lines, seen, "Submitted task"))
        assert match
        task_id = match.group(1)
        # The first status line comes after the first poll: the command is polling now.
        wait_for_line(lines, seen, "running")

        process.send_signal(signum)
        assert process.wait(timeout=RUN_TIMEOUT) == code
        reader.join(timeout=RUN_TIMEOUT)
        while (line := lines.get_nowait()) is not None:
            seen.append(line)
        after = "".join(seen).split(f"Submitted task {task_id}", 1)[1]
        assert task_id in after
        assert "still running" in after
        assert f"flux2 status {task_id} --wait" in after
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=RUN_TIMEOUT)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()

    # The task never finishes, so no download: it is in the ledger, and was made once.
    history = run_flux2("history", "--json")
    assert history.returncode == 0, history.stderr
    assert task_id in {entry["task_id"] for entry in json.loads(history.stdout)}
    assert server.task_ids() == {task_id}
