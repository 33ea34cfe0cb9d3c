"""The resume paths: after exit 6, 130, 143, 7 (and 8) a task is finished by ``flux2 download
ID`` or ``flux2 status ID --wait`` without a second POST.

The task is made on ``vtrix`` while the default provider is ``apiinone``: the resume commands
are given the bare id, so they must find the provider (and host) in the ledger."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from pytest_httpx import HTTPXMock

from flux2_cli import errors
from tests.faults.conftest import IMAGE_URL, ledger_task, posts
from tests.helpers import install_fake_time, png_bytes, run_cli

PNG = png_bytes(80, 60)
TASK = "t-resume"
CREATE_URL = "https://cloud.vtrix.ai/model/v1/generation"
POLL_URL = f"https://cloud.vtrix.ai/model/v1/generation/task/{TASK}"


@dataclass
class FakeProvider:
    """A tiny Vtrix: one create, polls answering by ``phase``, the image."""

    phase: str = "running"  # running | storm | done
    polls: int = 0
    done_after: int | None = None  # in phase running: finish once this many polls were served

    def install(self, httpx_mock: HTTPXMock) -> None:
        httpx_mock.add_response(method="POST", url=CREATE_URL, json={"id": TASK})
        httpx_mock.add_callback(self.poll, url=POLL_URL, is_reusable=True, is_optional=True)
        httpx_mock.add_response(
            method="GET", url=IMAGE_URL, content=PNG, is_reusable=True, is_optional=True
        )

    def poll(self, request: httpx.Request) -> httpx.Response:
        self.polls += 1
        if self.done_after is not None and self.polls >= self.done_after:
            self.phase = "done"
        if self.phase == "storm":
            return httpx.Response(503, text="Service Unavailable")
        if self.phase == "done":
            output = [{"content": [{"type": "image", "url": IMAGE_URL}]}]
            body = {"id": TASK, "status": "completed", "output": output}
            return httpx.Response(200, json=body)
        return httpx.Response(200, json={"id": TASK, "status": "in_progress"})


@pytest.fixture
def provider(httpx_mock: HTTPXMock) -> FakeProvider:
    fake = FakeProvider()
    fake.install(httpx_mock)
    return fake


def _first_run(
    kind: str, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch, out: Path
) -> int:
    """Run ``gen`` into the fault ``kind``; return its exit code."""
    fake = install_fake_time(monkeypatch)
    if kind in ("130", "143"):
        exc = errors.InterruptSignal if kind == "130" else errors.TerminatedSignal

        def interrupted(seconds: float) -> None:
            raise exc()

        monkeypatch.setattr(fake, "sleep", interrupted)
    if kind == "7":
        provider.phase = "storm"
    result = run_cli(
        ["gen", "a red fox", "--provider", "vtrix", "--timeout", "30", "-o", f"{out}/"]
    )
    assert f"flux2 download {TASK}" in result.stderr, result.stderr
    assert f"flux2 status {TASK} --wait" in result.stderr
    return result.exit_code


@pytest.mark.parametrize(("kind", "code"), [("6", 6), ("130", 130), ("143", 143), ("7", 7)])
def test_resume_with_download_id_after_each_exit(
    httpx_mock: HTTPXMock,
    provider: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    kind: str,
    code: int,
) -> None:
    out = tmp_path / "out"
    assert _first_run(kind, provider, monkeypatch, out) == code
    assert ledger_task(TASK)["status"] in ("queued", "running")
    install_fake_time(monkeypatch)  # a fresh, uninterrupted clock
    provider.phase = "done"
    result = run_cli(["download", TASK, "-o", f"{out}/"])
    assert result.exit_code == 0, result.output
    saved = Path(result.stdout.strip())
    assert saved.read_bytes() == PNG and saved.parent == out
    assert posts(httpx_mock) == 1  # never a second paid POST
    entry = ledger_task(TASK)
    assert entry["status"] == "succeeded" and entry["images"][0]["path"] == str(saved)


@pytest.mark.parametrize(("kind", "code"), [("6", 6), ("130", 130), ("143", 143), ("7", 7)])
def test_resume_with_status_wait_after_each_exit(
    httpx_mock: HTTPXMock,
    provider: FakeProvider,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    kind: str,
    code: int,
) -> None:
    assert _first_run(kind, provider, monkeypatch, tmp_path / "out") == code
    install_fake_time(monkeypatch)
    provider.phase = "running"
    provider.done_after = provider.polls + 3  # still running for two more look-ups
    result = run_cli(["status", TASK, "--wait", "--json"])
    assert result.exit_code == 0, result.output
    task = json.loads(result.stdout)
    assert task["status"] == "succeeded" and task["images"][0]["url"] == IMAGE_URL
    assert provider.phase == "done"
    assert posts(httpx_mock) == 1
    assert ledger_task(TASK)["status"] == "succeeded"


def test_resume_after_exit8_disk_full(
    httpx_mock: HTTPXMock, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import errno

    from flux2_cli import transfer as transfer_module

    install_fake_time(monkeypatch)
    provider.phase = "done"

    def disk_full(fh: object, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    # The folder fills up while the paid image is written (gen refuses a missing or
    # read-only folder before paying, so a full disk is how this happens for real).
    with monkeypatch.context() as patch:
        patch.setattr(transfer_module, "write_chunk", disk_full)
        first = run_cli(["gen", "a red fox", "--provider", "vtrix", "-o", f"{tmp_path}/full/"])
    assert first.exit_code == 8
    assert f"flux2 download {TASK}" in first.stderr
    second = run_cli(["download", TASK, "-o", f"{tmp_path}/good/"])
    assert second.exit_code == 0, second.output
    assert Path(second.stdout.strip()).read_bytes() == PNG
    assert posts(httpx_mock) == 1
