"""End to end, one test per fault kind: the installed flux2 against a faulty ``sandbox serve``.

Prompt markers (README, "Testing a pipeline with the sandbox") make each outcome deterministic;
``--faults`` on a dedicated server covers slow downloads and 503s on polls. Each test asserts
the documented exit code and what must not be lost (reliability.md): no task made twice, no
partial or temp file left, the task id and the command to resume printed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from PIL import Image

from tests.e2e.conftest import SandboxServer, account

pytestmark = pytest.mark.e2e

Run = Callable[..., CompletedProcess[str]]
Server = Callable[..., SandboxServer]

SUBMITTED = re.compile(r"Submitted task (\S+) ")


def gen(
    run_flux2: Run,
    server: SandboxServer,
    out: Path,
    prompt: str,
    *extra: str,
    provider: str = "apiinone",
) -> CompletedProcess[str]:
    """``flux2 gen PROMPT`` into ``out`` (created) against ``server``."""
    out.mkdir(exist_ok=True)
    return run_flux2("gen", prompt, *account(provider, server), "-o", str(out), *extra)


def submitted_id(result: CompletedProcess[str]) -> str:
    """The task id from the "Submitted task ID" line on stderr."""
    match = SUBMITTED.search(result.stderr)
    assert match, result.stderr
    return match.group(1)


def one_valid_image(result: CompletedProcess[str], out: Path) -> Path:
    """Exit 0, one path on stdout, and it is an image Pillow can read."""
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    path = Path(lines[0])
    path = path if path.is_absolute() else out.parent / path
    assert path.parent == out and path.is_file(), path
    with Image.open(path) as image:
        image.verify()
    return path


def files_in(folder: Path) -> list[str]:
    """Every name in ``folder``, hidden temp files included."""
    return sorted(path.name for path in folder.iterdir())


@pytest.mark.parametrize(
    ("marker", "word"),
    [("fail", "generation_failed"), ("moderate", "content_moderated")],
)
def test_failed_and_moderated_tasks_exit_5_and_download_nothing(
    marker: str, word: str, sandbox_server: Server, run_flux2: Run, tmp_path: Path
) -> None:
    server = sandbox_server()
    out = tmp_path / "out"
    result = gen(run_flux2, server, out, f"a lighthouse [sandbox:{marker}]")
    assert result.returncode == 5, result.stderr
    task_id = submitted_id(result)
    error = result.stderr.split(f"Submitted task {task_id}", 1)[1]
    assert task_id in error and word in error
    assert result.stdout == ""
    assert files_in(out) == []
    assert server.task_ids() == {task_id}


def test_never_finishing_task_times_out_with_exit_6_and_can_be_resumed(
    sandbox_server: Server, run_flux2: Run, tmp_path: Path
) -> None:
    server = sandbox_server()
    out = tmp_path / "out"
    result = gen(run_flux2, server, out, "a lighthouse [sandbox:never]", "--timeout", "3")
    assert result.returncode == 6, result.stderr
    task_id = submitted_id(result)
    assert f"flux2 status {task_id}" in result.stderr
    assert files_in(out) == []

    status = run_flux2("status", task_id, "--json", *account("apiinone", server))
    assert status.returncode == 0, status.stderr
    record = json.loads(status.stdout)
    assert (record["task_id"], record["status"]) == (task_id, "running")
    assert server.task_ids() == {task_id}


def test_429_on_create_is_retried_and_makes_one_task(
    sandbox_server: Server, run_flux2: Run, tmp_path: Path
) -> None:
    server = sandbox_server()
    out = tmp_path / "out"
    result = gen(run_flux2, server, out, "a lighthouse [sandbox:429]", "--verbose")
    one_valid_image(result, out)
    assert result.stderr.count("<- 429") == 1
    assert server.task_ids() == {submitted_id(result)}


def test_500_on_create_is_not_repeated_and_exits_7(
    sandbox_server: Server, run_flux2: Run, tmp_path: Path
) -> None:
    server = sandbox_server()
    out = tmp_path / "out"
    result = gen(run_flux2, server, out, "a lighthouse [sandbox:500]")
    assert result.returncode == 7, result.stderr
    assert "not repeated" in result.stderr
    assert "flux2 history" in result.stderr
    assert "Submitted task" not in result.stderr
    # The sandbox answers the 500 before storing anything: zero tasks, not one. (A real
    # provider might have made one; that is why flux2 does not repeat the submission.)
    assert server.tasks_created() == 0
    assert files_in(out) == []


def test_dropped_poll_connection_is_retried(
    sandbox_server: Server, run_flux2: Run, tmp_path: Path
) -> None:
    server = sandbox_server()
    out = tmp_path / "out"
    result = gen(run_flux2, server, out, "a lighthouse [sandbox:drop]")
    one_valid_image(result, out)
    assert server.task_ids() == {submitted_id(result)}


def test_html_instead_of_an_image_exits_8_and_saves_nothing(
    sandbox_server: Server, run_flux2: Run, tmp_path: Path
) -> None:
    server = sandbox_server()
    out = tmp_path / "out"
    result = gen(run_flux2, server, out, "a lighthouse [sandbox:html]")
    assert result.returncode == 8, result.stderr
    task_id = submitted_id(result)
    # Says what came back (a page and its title), not "expired": the image is not gone.
    assert "answered an HTML page titled 'Sign in' instead of the image" in result.stderr
    assert "error: image URL expired" not in result.stderr
    assert f"flux2 download {task_id}" in result.stderr
    assert result.stdout == ""
    assert files_in(out) == []
    assert server.task_ids() == {task_id}


def test_truncated_download_exits_8_and_leaves_no_partial_file(
    sandbox_server: Server, run_flux2: Run, tmp_path: Path
) -> None:
    # The sandbox cuts every answer short (Range ones too), so the retries cannot recover.
    server = sandbox_server()
    out = tmp_path / "out"
    result = gen(run_flux2, server, out, "a lighthouse [sandbox:truncate]")
    assert result.returncode == 8, result.stderr
    task_id = submitted_id(result)
    assert f"flux2 download {task_id}" in result.stderr
    assert result.stdout == ""
    assert files_in(out) == []
    assert server.task_ids() == {task_id}


def test_expired_image_url_exits_8_expired(
    sandbox_server: Server, run_flux2: Run, tmp_path: Path
) -> None:
    server = sandbox_server()
    out = tmp_path / "out"
    result = gen(run_flux2, server, out, "a lighthouse [sandbox:expired]")
    assert result.returncode == 8, result.stderr
    assert "expired" in result.stderr
    assert files_in(out) == []
    assert server.task_ids() == {submitted_id(result)}


def test_refused_key_exits_3(sandbox_server: Server, run_flux2: Run, tmp_path: Path) -> None:
    server = sandbox_server()
    out = tmp_path / "out"
    out.mkdir()
    result = run_flux2(
        "gen", "a lighthouse", *account("apiinone", server, "sandbox-invalid-key"), "-o", str(out)
    )
    assert result.returncode == 3, result.stderr
    assert "sandbox-invalid-key" not in result.stderr + result.stdout
    assert server.tasks_created() == 0


@pytest.mark.parametrize("provider", ["apiinone", "vtrix"])
def test_key_without_credits_exits_4(
    provider: str, sandbox_server: Server, run_flux2: Run, tmp_path: Path
) -> None:
    # apiinone answers 402; vtrix answers 403 "insufficient balance", still a billing error.
    server = sandbox_server()
    out = tmp_path / "out"
    out.mkdir()
    result = run_flux2(
        "gen", "a lighthouse", *account(provider, server, "sandbox-broke-key"), "-o", str(out)
    )
    assert result.returncode == 4, result.stderr
    assert server.tasks_created() == 0
    assert files_in(out) == []


def test_slow_download_completes(sandbox_server: Server, run_flux2: Run, tmp_path: Path) -> None:
    # Every image is sent in pieces with pauses (about 4 s in all): slow is not a failure.
    server = sandbox_server(faults="slow=1")
    out = tmp_path / "out"
    result = gen(run_flux2, server, out, "a lighthouse")
    one_valid_image(result, out)
    assert server.tasks_created() == 1


def test_503_on_create_exits_7_and_503_on_polls_is_retried(
    sandbox_server: Server, run_flux2: Run, tmp_path: Path
) -> None:
    # Two servers on one state folder: "clean" takes the create, "faulty" answers 503 to the
    # first three requests it can (one create, then two polls).
    clean = sandbox_server(latency=0.5)
    faulty = sandbox_server(faults="503=#3", state_dir=clean.state_dir)
    out = tmp_path / "out"

    refused = gen(run_flux2, faulty, out, "a lighthouse")
    assert refused.returncode == 7, refused.stderr
    assert "not repeated" in refused.stderr
    assert clean.tasks_created() == 0

    submitted = run_flux2("gen", "a lighthouse", "--no-wait", *account("apiinone", clean))
    assert submitted.returncode == 0, submitted.stderr
    task_id = submitted.stdout.strip()

    status = run_flux2(
        "status", task_id, "--wait", "--json", "--verbose", *account("apiinone", faulty)
    )
    assert status.returncode == 0, status.stderr
    assert status.stderr.count("<- 503") == 2
    assert json.loads(status.stdout)["status"] == "succeeded"
    assert clean.task_ids() == {task_id}
