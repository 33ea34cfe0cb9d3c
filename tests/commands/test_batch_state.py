"""``flux2 batch`` run state through the command: the lock travels, and is written before paying."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from tests.commands.test_batch_command import (  # noqa: F401
    FakeApi,
    api_key,
    batch,
    clock,
    images_in,
    json_lines,
    serve,
    write_manifest,
)
from tests.helpers import run_cli

pytestmark = pytest.mark.usefixtures("clock")


def lock_of(manifest: Path) -> dict[str, Any]:
    return json.loads(manifest.with_name(manifest.name + ".lock.json").read_text())  # type: ignore[no-any-return]


def new_machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, name: str) -> None:
    """An empty ledger, as on a fresh CI runner."""
    monkeypatch.setenv("FLUX2_DATA_DIR", str(tmp_path / name / "data"))


def test_a_fresh_machine_resumes_from_the_lock_a_task_submitted_elsewhere(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = serve(httpx_mock, FakeApi())
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox", "runs forever at first"])
    args = [str(manifest), "-o", str(tmp_path / "out"), "--timeout", "20", "--json"]
    first = batch(*args)
    assert first.exit_code == 6, first.stderr
    states = {record["state"] for record in lock_of(manifest)["entries"].values()}
    assert states == {"finished", "submitted"}
    (waiting,) = [task for task in api.tasks.values() if "forever" in task["prompt"]]
    waiting["prompt"] = "finished at last"  # the task ends at the provider meanwhile
    new_machine(monkeypatch, tmp_path, "runner2")

    again = batch(*args)

    assert again.exit_code == 0, again.stderr
    assert api.creates == 2  # polled, not paid for again
    assert len(httpx_mock.get_requests(method="POST")) == 2
    lines = {line["line"]: line for line in json_lines(again.stdout)[:-1]}
    assert lines[1]["status"] == "skipped" and lines[2]["status"] == "done"
    assert lines[2]["source"] == "lock"
    assert {record["state"] for record in lock_of(manifest)["entries"].values()} == {"finished"}
    assert len(images_in(tmp_path / "out")) == 2


def test_the_entry_is_written_down_before_its_paid_post(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    api = FakeApi()
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox"])
    journal = tmp_path / "m.jsonl.lock.journal"
    seen_at_post: list[str] = []

    def spy(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            seen_at_post.append(journal.read_text() if journal.exists() else "")
        return api(request)

    httpx_mock.add_callback(spy, is_reusable=True, is_optional=True)
    result = batch(str(manifest), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.stderr
    (text,) = seen_at_post
    (line,) = [json.loads(item) for item in text.splitlines()]
    assert line["record"]["state"] == "submitting" and line["key"].startswith("a-red-fox-")
    assert not journal.exists()  # folded into the lock at the end
    (record,) = lock_of(manifest)["entries"].values()
    assert record["state"] == "finished" and record["task_id"] == "task0001_flux2"
    assert record["endpoint"] == "apiinone https://apiin.one"


def test_a_post_left_unanswered_elsewhere_is_unknown_here_and_not_sent(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    api = serve(httpx_mock, FakeApi())
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox"])
    (planned,) = json_lines(batch(str(manifest), "--dry-run", "--json").stdout)[:-1]
    record = {
        "state": "submitting",
        "fingerprint": planned["fingerprint"],
        "endpoint": "apiinone https://apiin.one",
        "provider": "apiinone",
        "model": "flux-2",
    }
    # A runner killed while its POST was in flight left this (and an empty ledger here).
    (tmp_path / "m.jsonl.lock.journal").write_text(
        json.dumps({"key": planned["key"], "record": record}) + "\n"
    )

    result = batch(str(manifest), "-o", str(tmp_path / "out"))

    assert result.exit_code == 5
    assert "outcome unknown" in result.stderr
    assert httpx_mock.get_requests() == []
    assert lock_of(manifest)["entries"][planned["key"]]["state"] == "unknown"
    again = batch(str(manifest), "-o", str(tmp_path / "out"), "--resubmit-unknown")
    assert again.exit_code == 0, again.stderr
    assert api.creates == 1


def test_a_version_1_lock_is_read_upgraded_and_its_entries_skipped(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    serve(httpx_mock, FakeApi())
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox", "a blue whale"])
    assert batch(str(manifest), "-o", str(tmp_path / "out")).exit_code == 0
    records = list(lock_of(manifest)["entries"].values())
    old = {
        "version": 1,
        "entries": {
            f"#{n}": {
                "line": n,
                "fingerprint": record["fingerprint"],
                "provider": "apiinone",
                "model": record["model"],
                "task_id": record["task_id"],
                "seed": None,
                "outputs": record["outputs"],
            }
            for n, record in enumerate(records, start=1)
        },
    }
    manifest.with_name("m.jsonl.lock.json").write_text(json.dumps(old, indent=2))
    count = len(httpx_mock.get_requests())

    again = batch(str(manifest), "-o", str(tmp_path / "out"))

    assert again.exit_code == 0, again.stderr
    assert len(httpx_mock.get_requests()) == count  # nothing sent
    upgraded = lock_of(manifest)
    assert upgraded["version"] == 2
    assert sorted(upgraded["entries"]) == sorted(
        key for key in upgraded["entries"] if not key.startswith("#")
    )
    assert {record["state"] for record in upgraded["entries"].values()} == {"finished"}


def test_a_sandbox_lock_is_regenerated_by_a_real_run(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a lock written by `--sandbox` made the real run skip every entry."""
    monkeypatch.setenv("FLUX2_SANDBOX_LATENCY", "0")
    api = serve(httpx_mock, FakeApi())
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox", "a blue whale"])
    out = str(tmp_path / "out")
    tried = batch(str(manifest), "-o", out, "--sandbox")
    assert tried.exit_code == 0, tried.stderr
    assert api.creates == 0

    check = batch(str(manifest), "--check")
    assert check.exit_code == 5
    assert check.stdout.count("stale\t") == 2
    assert check.stdout.count("\tmade on the sandbox") == 2
    summary = tmp_path / "summary.md"
    on_github = run_cli(
        ["batch", str(manifest), "--check", "--provider", "apiinone"],
        env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert on_github.exit_code == 5
    annotations = [line for line in on_github.stderr.splitlines() if line.startswith("::")]
    assert len(annotations) == 2
    for line in annotations:  # the state once: "stale: stale: made on the sandbox" said it twice
        assert line.endswith(": stale: made on the sandbox") and "stale: stale" not in line
    assert "stale: stale" not in summary.read_text()

    real = batch(str(manifest), "-o", out)

    assert real.exit_code == 0, real.stderr
    assert api.creates == 2
    assert batch(str(manifest), "--check").exit_code == 0


def test_a_ledger_that_cannot_be_written_sends_nothing_and_is_not_unknown_later(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from flux2_cli import ledger as ledger_module

    api = serve(httpx_mock, FakeApi())
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox", "a blue whale"])
    with ledger_module.Ledger():
        pass
    real_connect = sqlite3.connect

    def read_only(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)
        conn.execute("PRAGMA query_only = 1")
        return conn

    with monkeypatch.context() as patch:
        patch.setattr(ledger_module.sqlite3, "connect", read_only)
        result = batch(str(manifest), "-o", str(tmp_path / "out"))
    assert result.exit_code == 5
    assert "Nothing was sent" in result.stderr
    assert httpx_mock.get_requests() == []
    states = {record["state"] for record in lock_of(manifest)["entries"].values()}
    assert states == {"failed"}  # nothing is pending at the provider

    again = batch(str(manifest), "-o", str(tmp_path / "out"))

    assert again.exit_code == 0, again.stderr
    assert api.creates == 2


def test_a_refused_post_is_not_left_looking_in_flight_while_the_run_pauses(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    """After a 429 the entry waits for the shared pause: a kill then must not make it
    "outcome unknown" on the next run (nothing was created)."""
    from flux2_cli.client import MAX_ATTEMPTS

    # Every attempt of the client's own retries refused: the whole run pauses, then resends.
    api = FakeApi(refuse_first_creates=MAX_ATTEMPTS)
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox"])
    journal = tmp_path / "m.jsonl.lock.journal"
    states_at_post: list[list[str]] = []

    def spy(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            lines = journal.read_text().splitlines() if journal.exists() else []
            states_at_post.append([json.loads(line)["record"]["state"] for line in lines])
        return api(request)

    httpx_mock.add_callback(spy, is_reusable=True, is_optional=True)
    result = batch(str(manifest), "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.stderr
    assert api.rejected_429 == MAX_ATTEMPTS and api.creates == 1
    last = states_at_post[-1]
    assert last[-1] == "submitting" and "failed" in last  # refused, paused, then sent again


def test_a_finished_entry_whose_files_and_task_are_gone_is_made_anew_in_the_same_run(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    api = serve(httpx_mock, FakeApi())
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox"])
    (planned,) = json_lines(batch(str(manifest), "--dry-run", "--json").stdout)[:-1]
    record = {
        "state": "finished",
        "fingerprint": planned["fingerprint"],
        "endpoint": "apiinone https://apiin.one",
        "provider": "apiinone",
        "model": "flux-2",
        "task_id": "task_expired_long_ago",
        "outputs": [{"path": "out/fox.png", "sha256": "0" * 64}],
    }
    (tmp_path / "m.jsonl.lock.journal").write_text(
        json.dumps({"key": planned["key"], "record": record}) + "\n"
    )

    result = batch(str(manifest), "-o", str(tmp_path / "out"), "--json")

    assert result.exit_code == 0, result.stderr
    assert api.creates == 1  # looked up first (404), then generated anew
    polls = [str(r.url) for r in httpx_mock.get_requests(method="GET")]
    assert any("task_expired_long_ago" in url for url in polls)
    (entry,) = lock_of(manifest)["entries"].values()
    assert entry["state"] == "finished" and entry["task_id"] == "task0001_flux2"


def test_a_journal_that_cannot_be_written_sends_nothing(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    from flux2_cli.batch import lock as lock_module

    serve(httpx_mock, FakeApi())
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox"])

    def disk_full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(lock_module.os, "write", disk_full)
    result = batch(str(manifest), "-o", str(tmp_path / "out"))
    assert result.exit_code == 5
    assert "cannot write" in result.stderr and "m.jsonl.lock.journal" in result.stderr
    assert httpx_mock.get_requests(method="POST") == []


def test_a_manifest_from_stdin_leaves_no_lock_in_the_folder_unless_lock_names_one(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `batch - < prompts.txt` used to leave `-.lock.json` and `.-.lock.run` in the current
    # folder: a file named after no manifest that nobody commits. Without --lock, stdin keeps no
    # lock (the ledger resumes), --check is refused, and --lock PATH keeps one where asked.
    api = serve(httpx_mock, FakeApi())
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    prompts = "a red fox\na blue whale\n"
    base = ["batch", "-", "--format", "txt", "--provider", "apiinone"]

    first = run_cli([*base, "--json"], input=prompts)

    assert first.exit_code == 0, first.stderr
    assert "no lock file is kept" in first.stderr
    assert sorted(p.name for p in work.iterdir() if p.suffix != ".png") == sorted(
        p.with_suffix(".json").name for p in images_in(work)
    )  # images and their sidecars, nothing else
    again = run_cli([*base, "--json"], input=prompts)
    assert again.exit_code == 0, again.stderr
    assert api.creates == 2  # the ledger resumed: nothing paid twice
    refused = run_cli([*base, "--check"], input=prompts)
    assert refused.exit_code == 2 and "--lock PATH" in refused.stderr
    state = work / "state" / "prompts.lock.json"
    state.parent.mkdir()
    kept = run_cli([*base, "--lock", str(state)], input=prompts)
    assert kept.exit_code == 0, kept.stderr
    assert set(json.loads(state.read_text())["entries"]) and api.creates == 2
    checked = run_cli([*base, "--check", "--lock", str(state)], input=prompts)
    assert checked.exit_code == 0, checked.stderr
    assert not (work / "-.lock.json").exists()
