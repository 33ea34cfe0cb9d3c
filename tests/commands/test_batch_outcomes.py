"""``flux2 batch`` outcomes as people and pipelines read them: reused, timed out, unknown, hints."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import httpx
import pytest
from pytest_httpx import HTTPXMock

from flux2_cli.batch.lock import file_sha256
from flux2_cli.batch.plan import content_key

# The fake API and its fixtures (the per-thread clock, the autouse key) are shared.
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


def key(prompt: str) -> str:
    """The lock key of an unnamed manifest entry with this prompt."""
    return content_key({"prompt": prompt})


def test_a_task_of_another_manifest_is_reused_reported_and_fresh_generates_anew(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    api = serve(httpx_mock, FakeApi())

    def manifest_in(folder: str, prompts: list[str]) -> Path:
        (tmp_path / folder).mkdir()
        return write_manifest(tmp_path / folder / "m.jsonl", prompts)

    first = manifest_in("a", ["a red fox", "a blue whale"])
    made = batch(str(first), "-o", str(tmp_path / "a" / "out"), "--json")
    assert made.exit_code == 0, made.stderr
    fox_task = next(
        line["task"]["task_id"] for line in json_lines(made.stdout)[:-1] if line["entry"] == 1
    )
    second = manifest_in("b", ["a red fox", "a blue whale"])

    result = batch(str(second), "-o", str(tmp_path / "b" / "out"), "--json")

    assert result.exit_code == 0, result.stderr
    lines = json_lines(result.stdout)
    assert [line["status"] for line in lines[:-1]] == ["reused", "reused"]
    assert lines[-1]["reused"] == 2 and lines[-1]["done"] == 0 and lines[-1]["credits"] == 0
    assert api.creates == 2  # nothing paid again
    # Brought into this manifest's output, not pointing at the other folder's files.
    assert len(images_in(tmp_path / "b" / "out")) == 2

    third = manifest_in("c", ["a red fox"])
    human = run_cli(["batch", str(third), "--provider", "apiinone", "-o", str(tmp_path / "c")])
    assert human.exit_code == 0, human.stderr
    assert f"reused task {fox_task} from an earlier run" in human.stderr
    header = next(line for line in human.stderr.splitlines() if "wall time" in line)
    assert "reused" in header.split()

    fourth = manifest_in("d", ["a red fox", "a blue whale"])
    fresh = batch(str(fourth), "-o", str(tmp_path / "d"), "--fresh", "--json")
    assert fresh.exit_code == 0, fresh.stderr
    assert [line["status"] for line in json_lines(fresh.stdout)[:-1]] == ["done", "done"]
    assert api.creates == 4  # --fresh paid for both again


def test_timeouts_alone_are_counted_as_timed_out_and_exit_6(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    serve(httpx_mock, FakeApi())
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox", "runs forever and ever"])

    result = batch(str(manifest), "-o", str(tmp_path / "out"), "--timeout", "20")

    assert result.exit_code == 6, result.stderr
    assert (
        "1 of 2 entries timed out (still running at the provider): "
        f"{key('runs forever and ever')} (line 2)"
    ) in result.stderr
    assert "failed" not in result.stderr.split("error:")[1].split("\n")[0]
    header, values = next(
        (line, next_line)
        for line, next_line in zip(
            result.stderr.splitlines(), result.stderr.splitlines()[1:], strict=False
        )
        if "wall time" in line
    )
    assert "timed out" in header and values.split()[:4] == ["1", "0", "0", "1"]
    assert "resumes them" in result.stderr


def test_one_failure_and_one_timeout_is_exit_5(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    serve(httpx_mock, FakeApi())
    manifest = write_manifest(tmp_path / "m.jsonl", ["runs forever and ever", "please reject"])
    result = batch(str(manifest), "-o", str(tmp_path / "out"), "--timeout", "20", "-c", "1")
    assert result.exit_code == 5
    assert "2 of 2 entries did not succeed (1 failed, 1 timed out)" in result.stderr
    # Named by line, whatever order they ended in.
    first, second = key("runs forever and ever"), key("please reject")
    assert f"{first} (line 1), {second} (line 2)" in result.stderr


def test_a_500_on_submit_tells_one_story_on_the_first_run_and_the_rerun(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    api = serve(httpx_mock, FakeApi())
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox", "make it explode"])
    out = tmp_path / "out"

    first = batch(str(manifest), "-o", str(out), "--json")
    again = batch(str(manifest), "-o", str(out), "--json")

    for result in (first, again):
        assert result.exit_code == 5
        entry = {line["entry"]: line for line in json_lines(result.stdout)[:-1]}[2]
        assert entry["status"] == "unknown" and entry["error"]["code"] == "outcome_unknown"
        assert "outcome unknown" in result.stderr
        assert "re-run to retry" not in result.stderr.lower()
        assert "--dry-run` lists them" in result.stderr and "--resubmit-unknown" in result.stderr
    assert api.creates == 1  # the 500 was not sent again
    # Where the hint points, the entry is shown.
    plan = json_lines(batch(str(manifest), "--dry-run", "--json").stdout)
    assert [line["action"] for line in plan[:-1]] == ["skip", "unknown"]


def test_resume_hints_repeat_the_flags_that_matter(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    serve(httpx_mock, FakeApi())
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox", "please reject"])
    out = tmp_path / "out"
    result = run_cli(
        ["batch", str(manifest), "--provider", "apiinone", "-o", str(out), "--timeout", "20"]
    )
    assert result.exit_code == 5
    assert f"Re-run `flux2 batch {manifest} --provider apiinone -o {out}`" in result.stderr


def test_the_resume_hint_keeps_the_request_flags_so_the_resume_pays_nothing_again(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    # `batch m.jsonl --ratio 16:9` timed out with "Re-run `flux2 batch m.jsonl`": run as
    # written, every entry had another fingerprint (ratio 1:1) and was paid for again.
    api = serve(httpx_mock, FakeApi())
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox", "runs forever at first"])
    out = tmp_path / "out"
    args = ["batch", str(manifest), "--provider", "apiinone", "-o", str(out)]
    first = run_cli([*args, "--ratio", "16:9", "--res", "2K", "--timeout", "20"])
    assert first.exit_code == 6, first.stderr
    hint = first.stderr.split("still running at the provider: `", 1)[1].split("`", 1)[0]
    assert "--ratio 16:9" in hint and "--res 2K" in hint
    (waiting,) = [task for task in api.tasks.values() if "forever" in task["prompt"]]
    waiting["prompt"] = "finished at last"

    resumed = run_cli(hint.split()[1:])

    assert resumed.exit_code == 0, resumed.stderr
    assert api.creates == 2  # polled and downloaded, nothing paid for again


def test_json_lists_every_asset_skipped_entries_with_their_outputs_from_the_lock(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    serve(httpx_mock, FakeApi())
    manifest = write_manifest(
        tmp_path / "m.jsonl", ["a red fox", {"prompt": "a whale", "name": "w"}]
    )
    out = tmp_path / "out"
    first = sorted(
        json_lines(batch(str(manifest), "-o", str(out), "--json").stdout)[:-1],
        key=lambda line: line["entry"],
    )

    second = json_lines(batch(str(manifest), "-o", str(out), "--json").stdout)[:-1]

    assert [line["status"] for line in second] == ["skipped", "skipped"]
    for before, after in zip(first, second, strict=True):
        assert after["task"] is None
        assert after["task_id"] == before["task"]["task_id"]
        (item,) = after["outputs"]
        assert item == before["outputs"][0]
        assert (
            Path(item["path"]).is_absolute() and file_sha256(Path(item["path"])) == item["sha256"]
        )


def test_check_prints_each_status_once_and_counts_in_the_error(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    manifest = write_manifest(tmp_path / "m.jsonl", [{"prompt": "a red fox", "name": "fox"}])
    result = run_cli(["batch", str(manifest), "--check"])
    assert result.exit_code == 5
    both = result.stdout + result.stderr
    assert both.count("fox") == 1 and "new\tfox\tline 1" in result.stdout
    assert "1 of 1 entry is out of date (1 new)" in result.stderr
    assert "entries" not in result.stderr


def test_one_entry_is_one_entry_not_1_entries(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    serve(httpx_mock, FakeApi())
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox"])
    plan = batch(str(manifest), "--dry-run")
    assert "Plan: 1 entry, 1 to submit" in plan.stderr
    assert batch(str(manifest), "-o", str(tmp_path / "out")).exit_code == 0
    ok = run_cli(["batch", str(manifest), "--check"])
    assert ok.exit_code == 0 and "The 1 entry is up to date" in ok.stderr
    for result in (plan, ok):
        assert "1 entries" not in result.stderr
    assert json.loads((tmp_path / "m.jsonl.lock.json").read_text())["entries"]


def test_junit_and_github_actions_reports_through_the_command(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from junitparser import JUnitXml

    serve(httpx_mock, FakeApi())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    summary_file = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary_file))
    (tmp_path / "assets").mkdir()
    manifest = write_manifest(
        tmp_path / "assets" / "m.jsonl", ["a red fox", "please reject it", "runs forever"]
    )

    result = batch(
        str(manifest), "-o", "out", "--timeout", "20", "--junit", "reports/batch.xml", "-q"
    )

    assert result.exit_code == 5
    commands = [line for line in result.stderr.splitlines() if line.startswith("::")]
    rejected, forever = key("please reject it"), key("runs forever")
    assert commands == [
        f"::error file=assets/m.jsonl,line=2,title=flux2 batch%3A failed::{rejected}: failed: "
        + commands[0].split(f"{rejected}: failed: ", 1)[1],
        "::warning file=assets/m.jsonl,line=3,title=flux2 batch%3A timed out::"
        f"{forever}: timed out: " + commands[1].split(f"{forever}: timed out: ", 1)[1],
    ]
    assert "prompt refused" in commands[0]
    assert "::" not in result.stdout  # stdout keeps only the saved paths
    suite = next(iter(JUnitXml.fromfile(str(tmp_path / "reports" / "batch.xml"))))
    assert (suite.tests, suite.failures, suite.errors) == (3, 1, 1)
    text = summary_file.read_text()
    assert (
        "| done | reused | skipped | failed | timed out | unknown | credits | wall time |" in text
    )
    assert "| 1 | 0 | 0 | 1 | 1 | 0 | 5 |" in text
    assert f"| 2 | {rejected} | failed |" in text and f"| 3 | {forever} | timed out |" in text

    # --check reports stale entries the same way.
    (tmp_path / "out").joinpath(next(p.name for p in (tmp_path / "out").glob("*.png"))).write_bytes(
        b"edited"
    )
    check = batch(str(manifest), "--check", "--junit", "reports/check.xml")
    assert check.exit_code == 5
    assert "::error file=assets/m.jsonl,line=1,title=flux2 batch%3A stale::" in check.stderr
    suite = next(iter(JUnitXml.fromfile(str(tmp_path / "reports" / "check.xml"))))
    assert (suite.tests, suite.failures, suite.errors) == (3, 3, 0)


def test_a_terminated_run_still_writes_its_junit_report_with_the_unfinished_entries(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from junitparser import Error, JUnitXml

    from flux2_cli.errors import TerminatedSignal

    api = FakeApi()

    def terminate_on_the_third_create(request: httpx.Request) -> httpx.Response:
        # What a CI time limit does: SIGTERM lands while the run is under way.
        if request.method == "POST" and api.creates == 2:
            raise TerminatedSignal()
        return api(request)

    httpx_mock.add_callback(terminate_on_the_third_create, is_reusable=True, is_optional=True)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    summary_file = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary_file))
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox", "a blue whale", "a frog", "owl"])
    report = tmp_path / "junit.xml"

    result = batch(str(manifest), "-o", str(tmp_path / "out"), "-c", "1", "--junit", str(report))
    # A download already started completes after the stop (by design): let it end while the
    # fake API still answers, not after the test, on the real network.
    for thread in threading.enumerate():
        if thread.name.startswith(("task-", "fetch-")):
            thread.join(timeout=10)

    assert result.exit_code == 143
    suite = next(iter(JUnitXml.fromfile(str(report))))
    # Cases are named "KEY (line N)"; found here by their line, whatever the key looks like.
    cases = {int(case.name.rsplit("line ", 1)[1].rstrip(")")): case for case in suite}
    assert sorted(cases) == [1, 2, 3, 4]

    def unfinished(line: int) -> bool:
        results = cases[line].result
        return (
            len(results) == 1
            and isinstance(results[0], Error)
            and ("a re-run resumes it" in (results[0].message or ""))
        )

    assert unfinished(3) and unfinished(4)
    # The first two may have ended before the signal (their downloads overlap the next task).
    assert all(cases[line].is_passed or unfinished(line) for line in (1, 2))
    assert "interrupted" in summary_file.read_text().split("\n")[2]
    assert "::warning file=" in result.stderr and "not finished" in result.stderr


def test_resume_hints_keep_sandbox_and_profile_too(tmp_path: Path) -> None:
    config = Path(os.environ["FLUX2_CONFIG"])
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('[profiles.assets]\nprovider = "apiinone"\n')
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox", "a fox [sandbox:fail]"])
    out = tmp_path / "out"
    result = run_cli(
        ["batch", str(manifest), "--sandbox", "--profile", "assets", "-o", str(out), "-q"]
    )
    assert result.exit_code == 5, result.stderr
    assert f"Re-run `flux2 batch {manifest} --sandbox --profile assets -o {out}`" in result.stderr


def test_download_pending_saves_a_batch_task_where_the_batch_would(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch stopped with a task in flight; `flux2 download --pending` run from another folder
    # saved that task's image there, and the batch's re-run then took the stray file as done.
    api = serve(httpx_mock, FakeApi())
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox", "runs forever at first"])
    out = tmp_path / "out"
    first = batch(str(manifest), "-o", str(out), "--timeout", "20")
    assert first.exit_code == 6, first.stderr
    (waiting,) = [task for task in api.tasks.values() if "forever" in task["prompt"]]
    waiting["prompt"] = "finished at last"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    pending = run_cli(["download", "--pending"])

    assert pending.exit_code == 0, pending.stderr
    assert list(elsewhere.iterdir()) == []
    assert len(images_in(out)) == 2
    again = batch(str(manifest), "-o", str(out), "--json")
    assert again.exit_code == 0, again.stderr
    assert api.creates == 2
    for line in json_lines(again.stdout)[:-1]:
        assert all(Path(item["path"]).parent == out for item in line["outputs"]), line
