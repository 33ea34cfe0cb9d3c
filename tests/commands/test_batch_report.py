"""``flux2 batch --report/--contact-sheet`` through the command, on the embedded sandbox."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image
from pytest_httpx import HTTPXMock

from tests.helpers import run_cli

MANIFEST = [
    {"name": "fox", "prompt": "a red fox in snow"},
    {"name": "ship", "prompt": "a ship that will [sandbox:fail]"},
    {"name": "heron", "prompt": "a grey heron"},
]


def write_manifest(tmp_path: Path) -> Path:
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(entry) + "\n" for entry in MANIFEST))
    return path


def test_report_and_sheet_match_the_run(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    report, sheet = tmp_path / "report.html", tmp_path / "sheet.png"
    result = run_cli(
        [
            "batch",
            str(manifest),
            "--provider",
            "sandbox",
            "-o",
            str(tmp_path / "out"),
            "--report",
            str(report),
            "--contact-sheet",
            str(sheet),
        ]
    )
    assert result.exit_code == 5  # one entry failed: the report is written all the same
    page = report.read_text()
    assert re.findall(r'data-key="([^"]+)"', page) == ["fox", "ship", "heron"]
    assert re.findall(r'article class="entry status-(\w+)"', page) == ["done", "failed", "done"]
    assert page.count("data:image/jpeg;base64,") == 2
    assert "generation failed" in page  # the provider's message for the failure
    for path in result.stdout.split():
        assert f'href="{Path(path).resolve().relative_to(tmp_path).as_posix()}"' in page
    assert "Made on the sandbox" in page
    with Image.open(sheet) as image:
        assert image.format == "PNG"
    assert f"Report: {report}" in result.stderr


def test_a_second_run_reports_skipped_entries_with_their_images(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    out = ["-o", str(tmp_path / "out")]
    assert run_cli(["batch", str(manifest), "--provider", "sandbox", *out]).exit_code == 5
    report = tmp_path / "again.html"
    run_cli(["batch", str(manifest), "--provider", "sandbox", *out, "--report", str(report)])
    page = report.read_text()
    statuses = re.findall(r'article class="entry status-(\w+)"', page)
    assert statuses[0] == "skipped" and statuses[2] == "skipped"
    assert page.count("data:image/jpeg;base64,") == 2


def test_a_bad_report_path_is_exit_2_before_anything_is_sent(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    result = run_cli(
        ["batch", str(manifest), "--provider", "sandbox", "--report", str(tmp_path / "r.txt")]
    )
    assert result.exit_code == 2
    assert "--report" in result.stderr
    assert not (tmp_path / "m.jsonl.lock.json").exists()


def test_a_key_quoted_by_the_server_never_reaches_the_report(
    tmp_path: Path, httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch, sentinel_key: str
) -> None:
    """Reliability row 60: the server's failure message is shown, the key in it is not."""
    monkeypatch.setenv("FLUX2_API_KEY", sentinel_key)
    monkeypatch.setattr("flux2_cli.context.time", _NoSleep())
    base = "https://apiin.one"
    httpx_mock.add_response(
        method="POST",
        url=f"{base}/api/v1/images/generations",
        json={"code": 200, "data": {"task_id": "t-leak", "status": "IN_PROGRESS"}},
    )
    httpx_mock.add_response(
        url=f"{base}/api/v1/tasks/t-leak",
        json={
            "code": 200,
            "data": {
                "task_id": "t-leak",
                "status": "FAILED",
                "error": {"code": "bad_key", "message": f"key {sentinel_key} is over quota"},
            },
        },
    )
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"name": "fox", "prompt": "a red fox"}) + "\n")
    report, sheet = tmp_path / "r.html", tmp_path / "s.png"
    result = run_cli(
        [
            "batch",
            str(manifest),
            "-o",
            str(tmp_path / "out"),
            "--report",
            str(report),
            "--contact-sheet",
            str(sheet),
        ]
    )
    assert result.exit_code == 5
    page = report.read_text()
    assert "is over quota" in page
    assert sentinel_key not in page  # the autouse sweep checks every file written, too


class _NoSleep:
    now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now
