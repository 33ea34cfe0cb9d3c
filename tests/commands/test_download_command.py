"""`flux2 download`: -o FILE with several ids, folders only when a file lands, --pending."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock

from flux2_cli.ledger import Ledger
from flux2_cli.task import ImageResult, Task, TaskStatus, short_id
from tests.helpers import FakeTime, install_fake_time, run_cli

BASE = "https://apiin.one"
GONE = "sbxdead00beef11c0ffee22_flux2"
GONE_URL = "https://cdn.apiin.one/gone.png"


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    return install_fake_time(monkeypatch)


def submit(prompt: str, *extra: str) -> str:
    """``gen --no-wait`` on the sandbox; the task id."""
    result = run_cli(["gen", prompt, "--provider", "sandbox", "--no-wait", "-q", *extra])
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def seed_gone() -> None:
    """A succeeded task whose image URL now answers 404."""
    with Ledger() as ledger:
        ledger.record_submit(
            Task(
                task_id=GONE,
                provider="apiinone",
                status=TaskStatus.SUCCEEDED,
                base_url=BASE,
                images=(ImageResult(url=GONE_URL),),
            )
        )


def test_several_ids_with_a_file_name_is_refused_before_anything(tmp_path: Path) -> None:
    # Before: one.png and one-1.png were written.
    first, second = submit("a red fox"), submit("a blue fox")
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli(["download", first, second, "-o", str(out / "one.png")])
    assert result.exit_code == 2, result.output
    assert "names one file" in result.stderr
    assert f"-o {(out / 'one').as_posix()}/ (ending in /)" in result.stderr
    assert list(out.iterdir()) == []


def test_pending_with_a_file_name_is_refused(tmp_path: Path) -> None:
    result = run_cli(["download", "--pending", "-o", str(tmp_path / "one.png")])
    assert result.exit_code == 2 and "names one file" in result.stderr


def test_a_gone_task_creates_no_folder_and_is_left_out_next_time(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Before: `download EXPIRED -o x/` left an empty x/, and --pending retried it every run.
    monkeypatch.setenv("FLUX2_API_KEY", "k-test")
    seed_gone()
    httpx_mock.add_response(method="GET", url=GONE_URL, status_code=404, is_reusable=True)
    httpx_mock.add_response(
        method="GET",
        url=f"{BASE}/api/v1/tasks/{GONE}",
        json={"code": 200, "data": {"task_id": GONE, "status": "COMPLETED", "images": []}},
        is_optional=True,
    )
    folder = tmp_path / "x" / "y"
    result = run_cli(["download", short_id(GONE), "-o", f"{folder}/"])
    assert result.exit_code == 8, result.output
    assert not (tmp_path / "x").exists()
    assert "leaves it out from now on" in result.stderr
    again = run_cli(["download", "--pending", "-o", f"{tmp_path}/"])
    assert again.exit_code == 0, again.output
    assert "Nothing to download" in again.stderr
    history = json.loads(run_cli(["history", "--json"]).stdout)
    assert history[0]["status"] == "expired"


def test_pending_lists_tasks_still_running(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FLUX2_API_KEY", "k-test")
    with Ledger() as ledger:
        ledger.record_submit(
            Task(task_id="run1", provider="apiinone", status=TaskStatus.RUNNING, base_url=BASE)
        )
    httpx_mock.add_response(
        method="GET",
        url=f"{BASE}/api/v1/tasks/run1",
        json={"code": 200, "data": {"task_id": "run1", "status": "IN_PROGRESS"}},
    )
    result = run_cli(["download", "--pending", "-o", f"{tmp_path}/"])
    assert result.exit_code == 0, result.output
    assert "1 task still running, not downloaded yet: run1" in result.stderr


def test_pending_takes_no_download_tasks_only_when_asked(tmp_path: Path) -> None:
    made = run_cli(["gen", "a red fox", "--provider", "sandbox", "--no-download", "-q"])
    assert made.exit_code == 0, made.output
    skipped = run_cli(["download", "--pending", "-o", f"{tmp_path}/"])
    assert skipped.exit_code == 0 and skipped.stdout == ""
    asked = run_cli(["download", "--pending", "--include-no-download", "-o", f"{tmp_path}/"])
    assert asked.exit_code == 0, asked.output
    assert len(asked.stdout.split()) == 1 and Path(asked.stdout.strip()).is_file()


def test_include_no_download_goes_with_pending() -> None:
    result = run_cli(["download", "last", "--include-no-download"])
    assert result.exit_code == 2


def test_download_by_short_id_and_last(tmp_path: Path) -> None:
    first = submit("a red fox")
    second = submit("a blue fox")
    by_short = run_cli(["download", short_id(first), "-o", f"{tmp_path}/"])
    assert by_short.exit_code == 0, by_short.output
    assert short_id(first) in by_short.stdout
    by_last = run_cli(["download", "last", "-o", f"{tmp_path}/", "--json"])
    assert by_last.exit_code == 0, by_last.output
    assert json.loads(by_last.stdout)["task_id"] == second


def test_history_shows_absolute_saved_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    task_id = submit("a red fox")
    result = run_cli(["download", task_id, "-o", "out/"])
    assert result.exit_code == 0, result.output
    assert not Path(result.stdout.strip()).is_absolute()  # stdout: the path as asked
    history = json.loads(run_cli(["history", "--json"]).stdout)
    saved = history[0]["images"][0]["path"]
    assert Path(saved).is_absolute() and Path(saved).is_file()


def test_json_lists_every_id_asked_for_even_one_whose_download_failed(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # `download GONE --json` printed nothing (exit 8), and `download GONE OK --json` an array
    # without GONE: a script could not tell which of its ids had not landed.
    monkeypatch.setenv("FLUX2_API_KEY", "k-test")
    seed_gone()
    fine = submit("a red fox")
    httpx_mock.add_response(method="GET", url=GONE_URL, status_code=404, is_reusable=True)
    httpx_mock.add_response(
        method="GET",
        url=f"{BASE}/api/v1/tasks/{GONE}",
        json={"code": 200, "data": {"task_id": GONE, "status": "COMPLETED", "images": []}},
        is_optional=True,
        is_reusable=True,
    )

    one = run_cli(["download", GONE, "-o", f"{tmp_path}/", "--json"])
    both = run_cli(["download", GONE, fine, "-o", f"{tmp_path}/", "--json"])

    assert one.exit_code == 8 and json.loads(one.stdout)["task_id"] == GONE
    assert both.exit_code == 8
    assert [task["task_id"] for task in json.loads(both.stdout)] == [GONE, fine]
