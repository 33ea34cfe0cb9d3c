"""The sandbox looks like the sandbox: submit line, history, JSON, summaries, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import run_cli


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_sandbox_run_says_so_when_submitted_and_in_json() -> None:
    result = run_cli(["gen", "a red fox", "--sandbox", "-o", "out/", "--json"])
    assert result.exit_code == 0, result.stderr
    assert "(sandbox: apiinone, flux-2). Simulated; nothing charged." in result.stderr
    task = json.loads(result.stdout)
    assert task["sandbox"] is True and task["provider"] == "apiinone"


def test_provider_sandbox_is_named_sandbox() -> None:
    result = run_cli(["gen", "a red fox", "--provider", "sandbox", "--no-wait"])
    assert result.exit_code == 0, result.stderr
    assert "(sandbox, flux-2). Simulated; nothing charged." in result.stderr
    task_id = result.stdout.strip()
    assert f"check on it: flux2 status {task_id} --wait" in result.stderr


def test_history_table_and_json_mark_sandbox_tasks() -> None:
    assert run_cli(["gen", "a red fox", "--sandbox", "-o", "out/"]).exit_code == 0
    assert run_cli(["gen", "a blue fox", "--provider", "sandbox", "--no-wait"]).exit_code == 0
    table = run_cli(["history"])
    assert "sandbox: apiinone" in table.stdout
    rows = json.loads(run_cli(["history", "--json"]).stdout)
    assert [(row["provider"], row["sandbox"]) for row in rows] == [
        ("sandbox", True),
        ("apiinone", True),
    ]


def test_provider_sandbox_refuses_what_api_in_one_refuses() -> None:
    result = run_cli(["gen", "a red fox", "--provider", "sandbox", "--seed", "3"])
    assert result.exit_code == 2
    assert "--seed" in result.stderr and "provider sandbox" in result.stderr


def test_batch_summary_and_plan_say_nothing_is_charged(tmp_path: Path) -> None:
    (tmp_path / "p.txt").write_text("a red fox\na blue fox\n")
    plan = run_cli(["batch", "p.txt", "--sandbox", "--dry-run"])
    assert "estimated cost 10 credits ≈ $0.10 (simulated; nothing charged)" in plan.stderr
    run = run_cli(["batch", "p.txt", "--sandbox", "-o", "out/"])
    assert run.exit_code == 0, run.stderr
    assert "Credits on the sandbox: simulated; nothing charged." in run.stderr


def test_gen_dry_run_cost_on_the_sandbox() -> None:
    result = run_cli(["gen", "a red fox", "--provider", "sandbox", "--dry-run"])
    assert (
        "Estimated cost: 5 credits ≈ $0.05 (simulated; nothing charged) per image." in result.stderr
    )


def test_status_says_a_task_ran_on_the_sandbox() -> None:
    assert run_cli(["gen", "a red fox", "--sandbox", "-o", "out/"]).exit_code == 0
    result = run_cli(["status", "last"])
    assert result.exit_code == 0, result.stderr
    assert "(sandbox; simulated; nothing charged)" in result.stdout.splitlines()[0]


def test_batch_json_summary_and_github_step_summary_say_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "p.txt").write_text("a red fox\n")
    summary_file = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary_file))
    result = run_cli(["batch", "p.txt", "--sandbox", "-o", "out/", "--json"])
    assert result.exit_code == 0, result.stderr
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert last["summary"] is True and last["sandbox"] is True
    assert "### flux2 batch (sandbox: simulated; nothing charged)" in summary_file.read_text()
