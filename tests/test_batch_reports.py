"""batch/reports.py: JUnit XML, GitHub workflow commands and the step summary."""

from __future__ import annotations

from pathlib import Path

from junitparser import Error, Failure, JUnitXml

from flux2_cli.batch.reports import (
    EntryReport,
    RunTotals,
    annotation_path,
    append_step_summary,
    step_summary,
    workflow_commands,
    write_junit,
)

ENTRIES = [
    EntryReport("#3", 3, "failed", message="prompt refused: 50% off, a|b <b>", code="bad_request"),
    EntryReport("hero", 1, "done", task_id="t1", seconds=2.5, outputs=("out/hero.png",)),
    EntryReport("#2", 2, "reused", task_id="t0"),
    EntryReport("#4", 4, "skipped"),
    EntryReport("#5", 5, "timed_out", message="timed out after 20 s", code="timeout"),
    EntryReport("#6", 6, "unknown", message="outcome unknown\nmaybe", code="outcome_unknown"),
]


def test_junit_has_one_case_per_entry_passing_failing_and_erroring_as_documented(
    tmp_path: Path,
) -> None:
    report = tmp_path / "reports" / "batch.xml"
    write_junit(report, Path("assets/m.jsonl"), ENTRIES, "flux2 batch")

    xml = JUnitXml.fromfile(str(report))
    (suite,) = list(xml)
    cases = {case.name: case for case in suite}
    assert list(cases) == [
        "hero (line 1)",
        "#2 (line 2)",
        "#3 (line 3)",
        "#4 (line 4)",
        "#5 (line 5)",
        "#6 (line 6)",
    ]
    assert suite.tests == 6 and suite.failures == 1 and suite.errors == 2
    assert all(cases[name].is_passed for name in ("hero (line 1)", "#2 (line 2)", "#4 (line 4)"))
    (failure,) = cases["#3 (line 3)"].result
    assert isinstance(failure, Failure) and failure.message == "prompt refused: 50% off, a|b <b>"
    assert failure.type == "bad_request"
    for name, code in (("#5 (line 5)", "timeout"), ("#6 (line 6)", "outcome_unknown")):
        (error,) = cases[name].result
        assert isinstance(error, Error) and error.type == code
    assert cases["hero (line 1)"].classname == "m.jsonl"
    assert cases["hero (line 1)"].time == 2.5
    assert "output: out/hero.png" in (cases["hero (line 1)"].system_out or "")
    assert not [path for path in report.parent.iterdir() if path.name.startswith(".")]


def test_junit_drops_characters_xml_cannot_hold(tmp_path: Path) -> None:
    report = tmp_path / "r.xml"
    write_junit(report, Path("m.txt"), [EntryReport("#1", 1, "failed", "bad\x1b[31m\x00")], "t")
    (case,) = list(next(iter(JUnitXml.fromfile(str(report)))))
    assert case.result[0].message == "bad[31m"


def test_workflow_commands_for_failed_stale_unknown_and_timed_out_by_line() -> None:
    stale = EntryReport("fox", 7, "stale", message="out/fox.png has changed")
    lines = workflow_commands("assets/m,1.jsonl", [*ENTRIES, stale, EntryReport("ok", 8, "ok")])
    assert lines == [
        "::error file=assets/m%2C1.jsonl,line=3,title=flux2 batch%3A failed::"
        "#3: failed: prompt refused: 50%25 off, a|b <b>",
        "::warning file=assets/m%2C1.jsonl,line=5,title=flux2 batch%3A timed out::"
        "#5: timed out: timed out after 20 s",
        "::error file=assets/m%2C1.jsonl,line=6,title=flux2 batch%3A outcome unknown::"
        "#6: outcome unknown: outcome unknown%0Amaybe",
        "::error file=assets/m%2C1.jsonl,line=7,title=flux2 batch%3A stale::"
        "fox: stale: out/fox.png has changed",
    ]


def test_step_summary_has_counts_credits_wall_time_and_the_failed_entries_by_line(
    tmp_path: Path,
) -> None:
    totals = RunTotals(counts={"done": 1, "failed": 1}, credits=5.0, wall_seconds=12.34)
    text = step_summary("m.jsonl", ENTRIES, totals, title="flux2 batch")
    assert "### flux2 batch `m.jsonl`" in text
    assert "| done | failed | credits | wall time |" in text
    assert "| 1 | 1 | 5 | 12.3 s |" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "line" not in line]
    assert [row.split("|")[1].strip() for row in rows[2:]] == ["3", "5", "6"]
    assert "a\\|b &lt;b>" in text and "outcome unknown maybe" in text
    target = tmp_path / "summary.md"
    target.write_text("earlier step\n")
    assert append_step_summary({"GITHUB_STEP_SUMMARY": str(target)}, text) == target
    assert target.read_text() == "earlier step\n" + text
    assert append_step_summary({}, text) is None


def test_annotation_path_is_relative_to_the_workspace(tmp_path: Path) -> None:
    manifest = tmp_path / "assets" / "m.jsonl"
    assert annotation_path(manifest, {"GITHUB_WORKSPACE": str(tmp_path)}) == "assets/m.jsonl"
    elsewhere = annotation_path(manifest, {"GITHUB_WORKSPACE": str(tmp_path / "other")})
    assert elsewhere == manifest.as_posix()
