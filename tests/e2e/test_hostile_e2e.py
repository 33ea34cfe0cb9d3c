"""End to end: the installed flux2 against misbehaving servers, full disks and killed runs.

Each class of issue 12 (reliability rows 56-60, 63, 65) against a raw server on 127.0.0.1
(``hostile_server.py``, started and stopped by pid here) or ``sandbox serve``: no traceback,
no hang past ``--timeout`` (the subprocess timeout is the hang guard), no key anywhere, the
task id and the commands to resume printed.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from tests.conftest import SENTINEL_KEY
from tests.e2e.conftest import FLUX2_BIN, SandboxServer, account

pytestmark = pytest.mark.e2e

Run = Callable[..., CompletedProcess[str]]
Server = Callable[..., SandboxServer]
TASK_ID = "hostile-task-0001"
# --timeout given to flux2, and the most a run may take before the test calls it a hang.
TIMEOUT_S = 6
HANG_GUARD_S = 45


def gen_against(
    run_flux2: Run, url: str, out: Path, *extra: str, key: str = "k-e2e-1234"
) -> CompletedProcess[str]:
    """``flux2 gen`` in API in One's dialect against ``url``, bounded by the hang guard."""
    out.mkdir(exist_ok=True)
    return run_flux2(
        "gen",
        "a lighthouse",
        "--provider",
        "apiinone",
        "--base-url",
        url,
        "--api-key",
        key,
        "-o",
        f"{out}/",
        "--timeout",
        str(TIMEOUT_S),
        *extra,
        timeout=HANG_GUARD_S,
    )


def assert_resumable(result: CompletedProcess[str]) -> None:
    """The task id and the commands that pick it up again are on stderr; no traceback."""
    assert f"flux2 download {TASK_ID}" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "This is a bug" not in result.stderr


def no_temp_files(folder: Path) -> bool:
    return not [path for path in folder.iterdir() if ".part-" in path.name]


# --------------------------------------------------------------------------- row 57: stalls


@pytest.mark.parametrize("mode", ["drip-status", "endless-status"])
def test_row57_a_status_answer_that_drips_or_never_ends_stops_at_timeout(
    mode: str, hostile: Callable[[str], str], run_flux2: Run, tmp_path: Path
) -> None:
    result = gen_against(run_flux2, hostile(mode), tmp_path / "out")
    assert result.returncode == 6, result.stderr
    assert f"flux2 status {TASK_ID} --wait" in result.stderr
    assert_resumable(result)


def test_row57_a_batch_entry_whose_status_drips_times_out_at_its_timeout(
    hostile: Callable[[str], str], run_flux2: Run, tmp_path: Path
) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"prompt": "a lighthouse"}\n')
    flags = ["--provider", "apiinone", "--base-url", hostile("drip-status"), "--api-key", "k-1234"]
    result = run_flux2(
        "batch",
        str(manifest),
        *flags,
        "-o",
        f"{tmp_path}/out/",
        "--timeout",
        str(TIMEOUT_S),
        "--json",
        timeout=HANG_GUARD_S,
    )
    assert result.returncode == 6, result.stderr
    outcome = json.loads(result.stdout.splitlines()[0])
    assert outcome["error"]["code"] == "timeout", outcome
    assert "Traceback" not in result.stderr and "This is a bug" not in result.stderr


def test_row57_an_image_that_drips_stops_at_the_download_budget(
    hostile: Callable[[str], str], run_flux2: Run, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = gen_against(run_flux2, hostile("drip-image"), out)
    assert result.returncode == 8, result.stderr
    assert "within 6 s" in result.stderr
    assert_resumable(result)
    assert list(out.iterdir()) == []


# --------------------------------------------------------------------------- row 56: size, depth


@pytest.mark.parametrize(("mode", "shown"), [("gzip-bomb", "larger than"), ("deep-json", "[[[[")])
def test_row56_an_answer_too_large_or_too_deep_is_an_unexpected_response(
    mode: str, shown: str, hostile: Callable[[str], str], run_flux2: Run, tmp_path: Path
) -> None:
    result = gen_against(run_flux2, hostile(mode), tmp_path / "out")
    assert result.returncode == 1, result.stderr
    assert "unexpected response" in result.stderr and shown in result.stderr
    assert_resumable(result)


# --------------------------------------------------------------------------- row 60: the key


def test_row60_the_key_echoed_by_the_server_is_nowhere(
    hostile: Callable[[str], str], run_flux2: Run, tmp_path: Path
) -> None:
    # The sentinel key: the suite's sweep also reads every file written under tmp_path
    # (the ledger among them) after the test.
    url = hostile("key-echo")
    result = gen_against(run_flux2, url, tmp_path / "out", "--json", key=SENTINEL_KEY)
    assert result.returncode == 5, result.stderr
    assert "rejected header" in result.stdout
    assert SENTINEL_KEY not in result.stdout and SENTINEL_KEY not in result.stderr
    history = run_flux2("history", "--json", timeout=HANG_GUARD_S)
    assert TASK_ID in history.stdout and SENTINEL_KEY not in history.stdout
    verbose = run_flux2(
        "status",
        TASK_ID,
        "--verbose",
        "--api-key",
        SENTINEL_KEY,
        "--base-url",
        url,
        "--provider",
        "apiinone",
        timeout=HANG_GUARD_S,
    )
    assert SENTINEL_KEY not in verbose.stdout + verbose.stderr


# --------------------------------------------------------------------------- row 63: schemes


@pytest.mark.parametrize("mode", ["file-url", "data-url", "relative-url"])
def test_row63_a_finished_task_with_a_refused_url_scheme_is_exit_8_at_once(
    mode: str, hostile: Callable[[str], str], run_flux2: Run, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # A long --timeout: the refusal must not wait for it (the hang guard is far shorter).
    result = run_flux2(
        "gen",
        "a lighthouse",
        "--provider",
        "apiinone",
        "--base-url",
        hostile(mode),
        "--api-key",
        "k-e2e-1234",
        "-o",
        f"{out}/",
        "--timeout",
        "600",
        timeout=HANG_GUARD_S,
    )
    assert result.returncode == 8, result.stderr
    assert "refused URL scheme" in result.stderr
    assert_resumable(result)
    assert list(out.iterdir()) == []


# --------------------------------------------------------------------------- rows 58, 59, 65


def test_row58_a_file_size_limit_during_the_download_is_exit_8_and_recoverable(
    hostile: Callable[[str], str], run_flux2: Run, tmp_path: Path
) -> None:
    url = hostile("big-image")
    out = tmp_path / "out"
    out.mkdir()
    limit = 512 * 1024  # far above what the ledger needs, a third of the image

    def small_files() -> None:
        # Python ignores SIGXFSZ: a write past the limit fails with EFBIG, as on a full disk.
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    flags = ["--provider", "apiinone", "--base-url", url, "--api-key", "k-e2e-1234"]
    result = subprocess.run(
        [str(FLUX2_BIN), "gen", "a lighthouse", *flags, "-o", f"{out}/"],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        cwd=tmp_path,
        env=os.environ.copy(),
        preexec_fn=small_files,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 8, result.stderr
    assert "cannot write" in result.stderr
    assert_resumable(result)
    assert list(out.iterdir()) == []
    again = run_flux2("download", TASK_ID, *flags, "-o", f"{out}/", timeout=HANG_GUARD_S)
    assert again.returncode == 0, again.stderr
    assert [path.suffix for path in sorted(out.iterdir())] == [".json", ".png"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_row59_stdout_that_cannot_be_written_is_a_clear_error_and_files_are_kept(
    sandbox_server: Server, tmp_path: Path
) -> None:
    server = sandbox_server(latency=0.1)
    out = tmp_path / "out"
    out.mkdir()
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [str(FLUX2_BIN), "gen", "a lighthouse", *account("apiinone", server), "-o", f"{out}/"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=HANG_GUARD_S,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
        )
    assert result.returncode == 8, result.stderr
    assert "cannot write to stdout" in result.stderr
    assert "This is a bug" not in result.stderr
    assert [path.suffix for path in sorted(out.iterdir())] == [".json", ".png"]


def test_row65_stale_temp_files_of_killed_runs_are_removed_and_nothing_else(
    sandbox_server: Server, run_flux2: Run, tmp_path: Path
) -> None:
    server = sandbox_server(latency=0.1)
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".old-fox-1a2b3c4d.part-0123abcd"
    fresh = out / ".running-fox.part-89abcdef"
    keep = [out / ".hidden-notes", out / "notes.part-12345678", out / ".x.part-nothex00"]
    for path in (stale, fresh, *keep):
        path.write_bytes(b"partial")
    two_hours_ago = time.time() - 7200
    for path in (stale, *keep):
        os.utime(path, (two_hours_ago, two_hours_ago))
    result = run_flux2("gen", "a lighthouse", *account("apiinone", server), "-o", f"{out}/")
    assert result.returncode == 0, result.stderr
    assert not stale.exists()
    assert fresh.exists() and all(path.exists() for path in keep)
