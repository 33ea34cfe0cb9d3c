"""CI-native batch reports: JUnit XML, GitHub Actions annotations and the job's step summary.

One :class:`EntryReport` per entry, whatever produced it (a run or ``--check``), feeds:

- :func:`write_junit`: one test case per entry. done, reused, skipped and up to date pass; a
  failed entry (or, under ``--check``, an out-of-date one) is a ``<failure>`` with the
  provider's message; timed out and outcome unknown are ``<error>``: nothing is known to be
  wrong with the request, the run did not learn its result. GitLab, Jenkins, CircleCI,
  Buildkite and GitHub's test-report actions all read this.
- :func:`workflow_commands`: under ``GITHUB_ACTIONS=true``, ``::error file=MANIFEST,line=N::…`` for
  failed, stale and unknown entries (``::warning`` for timed out ones, still running), written
  on stderr: the runner reads workflow commands from both streams, and stdout keeps only results.
- :func:`step_summary`: Markdown (counts, credits, wall time, the failed entries by line)
  appended to ``$GITHUB_STEP_SUMMARY``.

The JUnit XML comes from ``junitparser`` (maintained, typed, no dependencies; it also reads the
files back, which the tests use), not ``junit-xml`` (no release since 2020, untyped).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Statuses that pass, fail (a <failure>) or error (an <error>) in JUnit terms.
PASSED = frozenset({"done", "reused", "skipped", "ok"})
ERRORS = frozenset({"timed_out", "unknown", "interrupted"})
# Under GitHub Actions: which statuses become ::error, which ::warning.
ANNOTATED_ERRORS = frozenset({"failed", "unknown", "stale", "changed", "missing", "new"})
ANNOTATED_WARNINGS = frozenset({"timed_out", "interrupted"})
STATUS_TEXT = {
    "done": "done",
    "reused": "reused",
    "skipped": "skipped",
    "ok": "up to date",
    "failed": "failed",
    "timed_out": "timed out",
    "unknown": "outcome unknown",
    "interrupted": "not finished",
}
SUMMARY_MAX_ROWS = 50
# Characters XML 1.0 cannot hold (server text may carry them): dropped from the report.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class EntryReport:
    """What became of one entry, as reports show it."""

    key: str
    line: int
    status: str  # done reused skipped failed timed_out unknown | ok missing changed stale new
    message: str | None = None
    code: str | None = None
    task_id: str | None = None
    seconds: float | None = None
    outputs: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The entry's key and line, as the rest of batch names it."""
        return f"{self.key} (line {self.line})"


@dataclass
class RunTotals:
    """The counts a summary shows, and how long the run took."""

    counts: dict[str, int] = field(default_factory=dict)
    credits: float | None = None
    wall_seconds: float | None = None


def write_junit(path: Path, manifest: Path, entries: Sequence[EntryReport], title: str) -> None:
    """Write the JUnit XML report (atomically: a reader never sees half a file)."""
    from junitparser import Error, Failure, JUnitXml, TestCase, TestSuite

    suite = TestSuite(f"{title} {manifest.name}")
    for entry in sorted(entries, key=lambda item: (item.line, item.key)):
        seconds = round(entry.seconds or 0.0, 3)
        case = TestCase(name=entry.label, classname=manifest.name, time=seconds)
        message = _xml_text(entry.message or STATUS_TEXT.get(entry.status, entry.status))
        if entry.status in ERRORS:
            case.result = [Error(message, entry.code or entry.status)]
        elif entry.status not in PASSED:
            case.result = [Failure(message, entry.code or entry.status)]
        details = [f"status: {STATUS_TEXT.get(entry.status, entry.status)}"]
        if entry.task_id:
            details.append(f"task: {entry.task_id}")
        details.extend(f"output: {output}" for output in entry.outputs)
        case.system_out = _xml_text("\n".join(details))
        suite.add_testcase(case)
    suite.update_statistics()  # type: ignore[no-untyped-call]
    document = JUnitXml()
    document.add_testsuite(suite)
    document.update_statistics()  # type: ignore[no-untyped-call]
    buffer = io.BytesIO()
    document.write(buffer, pretty=True)
    _write_atomically(path, buffer.getvalue())


def workflow_commands(manifest: str, entries: Sequence[EntryReport]) -> list[str]:
    """``::error``/``::warning`` workflow commands for the entries that need a look, by line."""
    lines = []
    for entry in sorted(entries, key=lambda item: (item.line, item.key)):
        if entry.status in ANNOTATED_ERRORS:
            level = "error"
        elif entry.status in ANNOTATED_WARNINGS:
            level = "warning"
        else:
            continue
        what = STATUS_TEXT.get(entry.status, entry.status)
        text = f"{entry.key}: {what}" + (f": {entry.message}" if entry.message else "")
        properties = (
            f"file={_escape_property(manifest)},line={entry.line},"
            f"title={_escape_property(f'flux2 batch: {what}')}"
        )
        lines.append(f"::{level} {properties}::{_escape_data(text)}")
    return lines


def step_summary(
    manifest: str, entries: Sequence[EntryReport], totals: RunTotals, *, title: str
) -> str:
    """The Markdown appended to ``$GITHUB_STEP_SUMMARY``."""
    counts = {name: count for name, count in totals.counts.items()}
    headers = [name.replace("_", " ") for name in counts]
    values = [str(count) for count in counts.values()]
    if totals.credits is not None:
        headers.append("credits")
        values.append(f"{totals.credits:g}")
    if totals.wall_seconds is not None:
        headers.append("wall time")
        values.append(f"{totals.wall_seconds:.1f} s")
    parts = [
        f"### {title} `{_cell(manifest)}`",
        "",
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---:" for _ in headers) + "|",
        "| " + " | ".join(values) + " |",
        "",
    ]
    bad = sorted(
        (entry for entry in entries if entry.status not in PASSED),
        key=lambda item: (item.line, item.key),
    )
    if bad:
        parts += [
            "| line | entry | status | message |",
            "|---:|---|---|---|",
        ]
        for entry in bad[:SUMMARY_MAX_ROWS]:
            status = STATUS_TEXT.get(entry.status, entry.status)
            parts.append(
                f"| {entry.line} | {_cell(entry.key)} | {status} | {_cell(entry.message or '')} |"
            )
        if len(bad) > SUMMARY_MAX_ROWS:
            parts.append(f"\n…and {len(bad) - SUMMARY_MAX_ROWS} more.")
        parts.append("")
    return "\n".join(parts) + "\n"


def append_step_summary(env: Mapping[str, str], text: str) -> Path | None:
    """Append to the file ``$GITHUB_STEP_SUMMARY`` names; None when it names none."""
    from flux2_cli.env import GITHUB_STEP_SUMMARY

    target = env.get(GITHUB_STEP_SUMMARY, "").strip()
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
    return path


def annotation_path(manifest: Path, env: Mapping[str, str]) -> str:
    """The manifest as GitHub resolves annotation files: relative to the workspace."""
    root = env.get("GITHUB_WORKSPACE") or os.getcwd()
    try:
        return manifest.resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return manifest.as_posix()


def _escape_data(text: str) -> str:
    # GitHub's workflow-command escaping: %, CR and LF in the message.
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("", text)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell: one line, pipes escaped, no HTML tags."""
    return " ".join(text.split()).replace("|", "\\|").replace("<", "&lt;")


def _write_atomically(path: Path, data: bytes) -> None:
    """The report, through the one atomic writer (its folder made when missing)."""
    from flux2_cli.atomic import write_atomic

    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)
