"""``flux2 batch --report`` opened in headless Chromium: every thumbnail loads, the page matches.

The batch runs as a user runs it (the installed command, the embedded sandbox, ``--json`` for
the facts to compare); Chromium loads the page from disk with a fresh profile and no network
services, and ``--dump-dom`` gives the document after its load handler ran. Skipped, with the
reason, only when no Chromium can be found (``.ci/run`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import FLUX2_BIN, RUN_TIMEOUT

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
BROWSER_TIMEOUT = 120.0
MANIFEST = [
    {"name": "fox", "prompt": "a red fox in snow"},
    {"name": "ship", "prompt": "a ship that will [sandbox:fail]"},
    {"name": "heron", "prompt": "a grey heron", "ratio": "16:9"},
    {"name": "tower", "prompt": "a <b>tower</b> & a moat"},
]


def chromium() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip(
        "no Chromium on PATH (chromium, chromium-browser, google-chrome): "
        "apt-get install chromium, as .ci/run does"
    )


def dump_dom(tmp_path: Path, url: str) -> str:
    """The document after load, from a headless Chromium with a fresh profile."""
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    process = subprocess.Popen(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its helper processes too are stopped by group if it hangs
    )
    try:
        out, _ = process.communicate(timeout=BROWSER_TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return out.decode("utf-8")


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, list[dict[str, object]]]:
    """One batch run with a report: the page's path and the run's JSON lines."""
    if not FLUX2_BIN.exists():
        pytest.skip(f"the flux2 command is not installed at {FLUX2_BIN}")
    manifest = tmp_path / "shots.jsonl"
    manifest.write_text("".join(json.dumps(entry) + "\n" for entry in MANIFEST))
    (tmp_path / "site").mkdir()
    report = tmp_path / "site" / "report.html"
    result = subprocess.run(
        [
            str(FLUX2_BIN),
            "batch",
            str(manifest),
            "--provider",
            "sandbox",
            "-o",
            str(tmp_path / "out"),
            "--json",
            "--report",
            str(report),
            "--contact-sheet",
            str(tmp_path / "site" / "sheet.png"),
        ],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 5, result.stderr  # "ship" fails on purpose
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return report, [line for line in lines if not line.get("summary")]


def test_every_thumbnail_loads_and_the_page_matches_the_run(
    tmp_path: Path, run: tuple[Path, list[dict[str, object]]]
) -> None:
    report, outcomes = run
    dom = dump_dom(tmp_path, report.as_uri())
    done = [line for line in outcomes if line["status"] == "done"]
    assert f'data-thumbnails="{len(done)}/{len(done)}"' in dom  # every <img> decoded
    assert 'data-state="broken"' not in dom
    by_number = sorted(outcomes, key=lambda line: int(str(line["entry"])))
    cards = re.findall(
        r'<article class="entry status-(\w+)" data-status="\w+" data-key="([^"]+)"', dom
    )
    assert cards == [(line["status"], line["key"]) for line in by_number]  # manifest order
    for line in done:
        task = line["task"]
        assert isinstance(task, dict)
        assert task["task_id"] in dom
        path = Path(str(task["images"][0]["path"])).resolve()
        href = os.path.relpath(path, report.parent)
        assert f'href="{Path(href).as_posix()}"' in dom
        assert path.is_file()
    failed = next(line for line in outcomes if line["status"] == "failed")
    error = failed["error"]
    assert isinstance(error, dict)
    assert str(error["message"]) in dom
    assert "a &lt;b&gt;tower&lt;/b&gt; &amp; a moat" in dom  # the prompt as text, not markup
    assert "<b>tower</b>" not in dom


def test_the_status_filter_hides_the_other_entries(
    tmp_path: Path, run: tuple[Path, list[dict[str, object]]]
) -> None:
    report, _ = run
    dom = dump_dom(tmp_path, report.as_uri() + "#show=failed")
    hidden = re.findall(r'<article class="entry status-(\w+) hidden"', dom)
    shown = re.findall(r'<article class="entry status-(\w+)" data-status', dom)
    assert shown == ["failed"]
    assert sorted(hidden) == ["done", "done", "done"]
