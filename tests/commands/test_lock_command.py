"""``flux2 lock merge``: shards run in separate workspaces, merged, then ``--check`` passes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock

# The fake API and its fixtures (the per-thread clock, the autouse key) are shared.
from tests.commands.test_batch_command import (  # noqa: F401
    FakeApi,
    api_key,
    clock,
    serve,
    write_manifest,
)
from tests.helpers import run_cli

pytestmark = pytest.mark.usefixtures("clock")

PROMPTS = [f"asset number {n}" for n in range(7)]


def run_shard(root: Path, k: int, n: int, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A runner: its own copy of the workspace, `-o out` inside it."""
    workspace = root / f"runner-{k}"
    workspace.mkdir()
    write_manifest(workspace / "m.jsonl", PROMPTS)
    monkeypatch.chdir(workspace)
    result = run_cli(
        ["batch", "m.jsonl", "--shard", f"{k}/{n}", "-o", "out", "--provider", "apiinone"]
    )
    assert result.exit_code == 0, result.stderr
    return workspace


def test_merged_shard_locks_with_their_outputs_pass_check_and_send_nothing(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = serve(httpx_mock, FakeApi())
    runners = [run_shard(tmp_path, k, 3, monkeypatch) for k in (1, 2, 3)]
    assert api.creates == len(PROMPTS)
    merged = tmp_path / "merged"
    merged.mkdir()
    write_manifest(merged / "m.jsonl", PROMPTS)
    for runner in runners:  # each runner's outputs put in place, as artifacts would be
        shutil.copytree(runner / "out", merged / "out", dirs_exist_ok=True)
    monkeypatch.chdir(merged)
    before = len(httpx_mock.get_requests())

    result = run_cli(["lock", "merge", "m.jsonl", *(str(r / "m.jsonl.lock.json") for r in runners)])

    assert result.exit_code == 0, result.stderr
    assert "Merged 3 lock files into m.jsonl.lock.json: 7 entries from them" in result.stderr
    lock = json.loads((merged / "m.jsonl.lock.json").read_text())
    assert len(lock["entries"]) == len(PROMPTS)
    check = run_cli(["batch", "m.jsonl", "--check", "--provider", "apiinone"])
    assert check.exit_code == 0, check.stdout + check.stderr
    assert len(httpx_mock.get_requests()) == before


def test_merge_drops_records_not_in_the_manifest_and_reports_conflicts(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve(httpx_mock, FakeApi())
    first = run_shard(tmp_path, 1, 1, monkeypatch)
    lock = json.loads((first / "m.jsonl.lock.json").read_text())
    key, record = next(iter(lock["entries"].items()))
    other = tmp_path / "other.lock.json"
    other.write_text(
        json.dumps(
            {
                "version": lock["version"],
                "entries": {
                    key: {**record, "task_id": "another-task"},
                    "not-in-manifest": {**record, "fingerprint": "9" * 64},
                },
            }
        )
    )
    monkeypatch.chdir(first)

    result = run_cli(["lock", "merge", "m.jsonl", "m.jsonl.lock.json", str(other)])

    assert result.exit_code == 5
    assert "Dropped 1 record of entries not in m.jsonl: not-in-manifest" in result.stderr
    assert f"{key} (line 1): task {record['task_id']}" in result.stderr
    assert "task another-task" in result.stderr and "left out of the merge" in result.stderr
    merged = json.loads((first / "m.jsonl.lock.json").read_text())["entries"]
    assert key not in merged and len(merged) == len(PROMPTS) - 1
    check = run_cli(["batch", "m.jsonl", "--check", "--provider", "apiinone"])
    assert check.exit_code == 5 and key in check.stdout


def test_merge_of_a_missing_file_is_exit_2(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox"])
    result = run_cli(["lock", "merge", str(manifest), str(tmp_path / "nope.lock.json")])
    assert result.exit_code == 2 and "nope.lock.json is not a file" in result.stderr


def test_merge_reads_a_runner_that_left_only_its_journal(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flux2_cli.batch.lock import journal_path

    serve(httpx_mock, FakeApi())
    runner = run_shard(tmp_path, 1, 1, monkeypatch)
    lock_file = runner / "m.jsonl.lock.json"
    records = json.loads(lock_file.read_text())["entries"]
    # What a SIGKILL leaves: the journal lines, never folded into a lock file.
    journal_path(lock_file).write_text(
        "".join(
            json.dumps({"key": key, "record": record}) + "\n" for key, record in records.items()
        )
    )
    lock_file.unlink()
    merged = tmp_path / "merged"
    merged.mkdir()
    write_manifest(merged / "m.jsonl", PROMPTS)
    shutil.copytree(runner / "out", merged / "out")
    monkeypatch.chdir(merged)

    result = run_cli(["lock", "merge", "m.jsonl", str(lock_file)])

    assert result.exit_code == 0, result.stderr
    assert json.loads((merged / "m.jsonl.lock.json").read_text())["entries"] == records
    check = run_cli(["batch", "m.jsonl", "--check", "--provider", "apiinone"])
    assert check.exit_code == 0, check.stdout + check.stderr
