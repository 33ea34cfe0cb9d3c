"""`flux2 history`: whole ids, tab-separated rows when piped, filters, a terminal's width."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from flux2_cli.ledger import Ledger
from flux2_cli.task import Task, TaskStatus
from tests.helpers import run_cli, run_in_terminal

NOW = datetime.now(timezone.utc)
LONG_ID = "task_01KFG5BBFNK1YQDTJDZY0P0QT2"
PROMPT = "a very long prompt about a red fox in the snow at dawn, " * 4


def seed() -> None:
    """Three tasks: bfl failed 3 days ago, sandbox succeeded 2 h ago, apimart running now."""
    rows = [
        (NOW - timedelta(days=3), Task(task_id="bfl-1", provider="bfl", status=TaskStatus.FAILED)),
        (
            NOW - timedelta(hours=2),
            Task(
                task_id="sbx-1",
                provider="sandbox",
                status=TaskStatus.SUCCEEDED,
                expires_at=NOW + timedelta(hours=20),
            ),
        ),
        (
            NOW,
            Task(
                task_id=LONG_ID,
                provider="apimart",
                status=TaskStatus.RUNNING,
                request={"prompt": PROMPT},
            ),
        ),
    ]
    for moment, task in rows:
        with Ledger(clock=lambda moment=moment: moment) as ledger:  # type: ignore[misc]
            ledger.record_submit(task)


def ids(*args: str) -> list[str]:
    result = run_cli(["history", "--json", *args])
    assert result.exit_code == 0, result.output
    return [task["task_id"] for task in json.loads(result.stdout)]


def test_piped_history_is_tab_separated_whole_rows_without_a_header() -> None:
    # Before: box drawing, ids split over lines.
    seed()
    result = run_cli(["history"])
    assert result.exit_code == 0, result.output
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [row[0] for row in rows] == [LONG_ID, "sbx-1", "bfl-1"]
    assert all(len(row) == 7 for row in rows)
    assert rows[0][6] == " ".join(PROMPT.split())  # the whole prompt, one line
    assert "┃" not in result.stdout and "│" not in result.stdout


def test_filters_by_provider_status_and_since() -> None:
    seed()
    assert ids("--provider", "bfl") == ["bfl-1"]
    assert ids("--status", "failed,running") == [LONG_ID, "bfl-1"]
    assert ids("--status", "succeeded", "--status", "failed") == ["sbx-1", "bfl-1"]
    assert ids("--since", "1d") == [LONG_ID, "sbx-1"]
    assert ids("--since", "30m") == [LONG_ID]
    day = (NOW - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    assert ids("--since", day) == [LONG_ID, "sbx-1"]
    assert ids("--provider", "sandbox", "--status", "failed") == []


def test_status_filter_expired_takes_succeeded_tasks_past_their_expiry() -> None:
    with Ledger() as ledger:
        ledger.record_submit(
            Task(
                task_id="old",
                provider="sandbox",
                status=TaskStatus.SUCCEEDED,
                expires_at=NOW - timedelta(hours=1),
            )
        )
    assert ids("--status", "expired") == ["old"]
    assert ids("--status", "succeeded") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--status", "done"], "--status 'done': choose from"),
        (["--provider", "nope"], "--provider 'nope': choose from"),
        (["--since", "yesterday"], "--since 'yesterday': give a duration"),
    ],
)
def test_bad_filters_are_usage_errors(args: list[str], message: str) -> None:
    result = run_cli(["history", *args])
    assert result.exit_code == 2 and message in result.stderr


def test_no_match_says_so() -> None:
    seed()
    result = run_cli(["history", "--provider", "vtrix"])
    assert result.exit_code == 0 and result.stdout == ""
    assert "No tasks match." in result.stderr


@pytest.mark.parametrize("columns", [80, 120])
def test_terminal_keeps_ids_and_times_whole_and_shortens_prompts(
    tmp_path: Path, columns: int
) -> None:
    seed()
    text = run_in_terminal(["history"], columns, tmp_path)
    lines = text.splitlines()
    header = lines[0].split()
    if columns == 120:
        assert header == ["task", "provider", "status", "submitted", "expires", "saved", "prompt"]
    else:  # too narrow: the saved paths and the provider give way, ids stay whole
        assert header == ["task", "status", "submitted", "expires", "prompt"]
    assert any("3 d ago" in line for line in lines)  # relative submission time
    long_row = next(line for line in lines if LONG_ID in line)
    assert long_row.startswith(LONG_ID + "  ")
    assert "…" in long_row and PROMPT.strip() not in long_row
    assert any("in 19 h" in line or "in 20 h" in line for line in lines)  # relative expiry
    assert all(len(line) <= columns for line in lines)
