"""cli.md as a user, a script and a CI job meet it: gaps found in review, on the sandbox."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock

from flux2_cli.task import short_id
from tests.helpers import FakeTime, install_fake_time, run_cli


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    return install_fake_time(monkeypatch)


def submit(prompt: str, *extra: str) -> str:
    """``gen --no-wait`` on the sandbox; the task id."""
    result = run_cli(["gen", prompt, "--provider", "sandbox", "--no-wait", "-q", *extra])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def ledger_ids() -> list[str]:
    result = run_cli(["history", "--json", "--limit", "100"])
    assert result.exit_code == 0, result.output
    return [task["task_id"] for task in json.loads(result.stdout)]


def test_download_several_ids_one_failed_prints_each_error_once_and_every_task(
    tmp_path: Path,
) -> None:
    good = submit("a red fox")
    bad = submit("a red fox [sandbox:fail]")
    result = run_cli(["download", good, bad, "-o", f"{tmp_path}/", "--json"])
    assert result.exit_code == 5, result.output
    tasks = json.loads(result.stdout)
    assert [task["task_id"] for task in tasks] == [good, bad]
    assert Path(tasks[0]["images"][0]["path"]).is_file()
    assert tasks[1]["status"] == "failed" and tasks[1]["error"]["code"]
    # one line naming the failed task, not the same error twice
    assert result.stderr.count("generation failed") == 1, result.stderr
    assert "1 of 2 tasks" in result.stderr


def test_download_single_failed_id_json_still_prints_the_task() -> None:
    bad = submit("a red fox [sandbox:fail]")
    result = run_cli(["download", bad, "--json"])
    assert result.exit_code == 5
    task = json.loads(result.stdout)
    assert task["task_id"] == bad and task["error"]["code"]


def test_download_pending_json_is_an_array_even_when_its_only_task_fails(
    tmp_path: Path,
) -> None:
    broken = run_cli(["gen", "a red fox [sandbox:html]", "--provider", "sandbox", "--no-download"])
    assert broken.exit_code == 0, broken.output
    # --no-download tasks are fetched by --pending only when asked
    result = run_cli(
        ["download", "--pending", "--include-no-download", "-o", f"{tmp_path}/", "--json"]
    )
    assert result.exit_code == 8, result.output
    # An array, never a lone object; the task that did not land is listed, with no saved path.
    (task,) = json.loads(result.stdout)
    assert task["task_id"] == json.loads(run_cli(["history", "--json"]).stdout)[0]["task_id"]
    assert all(image["path"] is None for image in task["images"])


def test_download_pending_fetches_tasks_last_seen_running(tmp_path: Path) -> None:
    task_id = submit("a red fox")  # the ledger says "running": nobody has looked since
    result = run_cli(["download", "--pending", "-o", f"{tmp_path}/"])
    assert result.exit_code == 0, result.output
    paths = result.stdout.split()
    assert len(paths) == 1 and Path(paths[0]).is_file()
    assert short_id(task_id) in paths[0]
    again = run_cli(["download", "--pending", "-o", f"{tmp_path}/"])
    assert again.exit_code == 0 and again.stdout == ""


def test_missing_local_ref_is_exit2_even_without_a_key(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    result = run_cli(["gen", "a red fox", "--provider", "bfl", "--ref", str(missing)])
    assert result.exit_code == 2, result.output
    assert "no such file" in result.stderr
    assert ledger_ids() == []


def test_json_with_output_dash_is_refused_before_paying() -> None:
    result = run_cli(["gen", "a red fox", "--provider", "sandbox", "--json", "-o", "-"])
    assert result.exit_code == 2, result.output
    assert "--json" in result.stderr and "-o -" in result.stderr
    assert result.stdout == ""
    assert ledger_ids() == []


@pytest.mark.parametrize(
    ("raised", "code"), [("KeyboardInterrupt", 130), ("TerminatedSignal", 143)]
)
def test_json_interrupted_while_waiting_still_prints_the_task(
    clock: FakeTime, raised: str, code: int
) -> None:
    from flux2_cli import errors

    exc_type = KeyboardInterrupt if raised == "KeyboardInterrupt" else errors.TerminatedSignal

    def interrupted_sleep(seconds: float) -> None:
        raise exc_type()

    clock.sleep = interrupted_sleep  # type: ignore[method-assign]
    result = run_cli(["gen", "a red fox", "--provider", "sandbox", "--json"])
    assert result.exit_code == code, result.output
    task = json.loads(result.stdout)
    assert task["status"] == "running" and task["task_id"] in result.stderr


def test_status_of_an_unknown_id_leaves_no_ledger_entry() -> None:
    result = run_cli(["status", "no-such-task", "--provider", "sandbox"])
    assert result.exit_code == 5
    assert "not found" in result.stderr
    assert ledger_ids() == []


@pytest.mark.parametrize("args", [["config", "path"], ["--help"], ["providers", "--json"]])
def test_a_closed_stdout_pipe_exits_0_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    from flux2_cli import cli

    reader, writer = os.pipe()
    os.close(reader)  # the reader has gone: `flux2 … | head -0`
    with os.fdopen(writer, "w") as closed:
        monkeypatch.setattr(sys, "stdout", closed)
        assert cli.run(args) == 0
        monkeypatch.undo()
        with contextlib.suppress(BrokenPipeError):
            closed.close()
    assert capsys.readouterr().err == ""


def test_config_warnings_are_worded_like_every_other_warning(isolated_environment: Path) -> None:
    config_file = isolated_environment / "config" / "config.toml"
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text('ratio = "16:9"\n')
    config_file.chmod(0o644)
    listed = run_cli(["config", "list"])
    dry = run_cli(["gen", "a red fox", "--provider", "sandbox", "--dry-run"])
    assert listed.exit_code == 0 and dry.exit_code == 0
    assert listed.stderr.startswith("warning: config file")
    assert dry.stderr.startswith("warning: config file")


def test_status_and_history_say_expired_once_the_urls_are_past_their_expiry(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flux2_cli.ledger import Ledger
    from flux2_cli.task import Task, TaskStatus, parse_time

    monkeypatch.setenv("FLUX2_API_KEY", "k-test")
    past = "2020-01-02T00:00:00Z"
    with Ledger() as ledger:
        ledger.record_submit(
            Task(
                task_id="old1",
                provider="apiinone",
                status=TaskStatus.RUNNING,
                base_url="https://apiin.one",
            )
        )
    httpx_mock.add_response(
        method="GET",
        url="https://apiin.one/api/v1/tasks/old1",
        json={
            "code": 200,
            "data": {
                "task_id": "old1",
                "status": "COMPLETED",
                "images": [{"url": "https://cdn.apiin.one/old1.png"}],
                "created_at": "2020-01-01T00:00:00Z",
                "expires_at": past,
            },
        },
    )
    result = run_cli(["status", "old1", "--json"])
    assert result.exit_code == 0, result.output  # the look-up worked: not a failure
    task = json.loads(result.stdout)
    assert task["status"] == "expired" and parse_time(task["expires_at"]) == parse_time(past)
    human = run_cli(["history"])
    assert "expired" in human.stdout and "succeeded" not in human.stdout
    assert [t["status"] for t in json.loads(run_cli(["history", "--json"]).stdout)] == ["expired"]
