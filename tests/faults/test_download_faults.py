"""Rows 22–35 of reliability.md through ``flux2 gen`` / ``flux2 download``: the paid result is
never lost and no partial or temporary file is ever left in the output folder."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pytest_httpx import HTTPXMock, IteratorStream

from flux2_cli import download as download_module
from flux2_cli import errors
from flux2_cli import transfer as transfer_module
from tests.faults.conftest import (
    IMAGE_URL,
    add_create,
    ledger_ids,
    leftovers,
    poll_url,
    posts,
)
from tests.helpers import FakeTime, png_bytes, run_cli

PNG = png_bytes(96, 64)


def add_finished(httpx_mock: HTTPXMock, task_id: str) -> None:
    """Create and a poll answer that already has the image URL."""
    add_create(httpx_mock, task_id)
    httpx_mock.add_response(
        method="GET",
        url=poll_url(task_id),
        json={"id": task_id, "status": "completed", "images": [{"url": IMAGE_URL}]},
        is_reusable=True,
        is_optional=True,
    )


def gen(out: Path, *extra: str) -> list[str]:
    return ["gen", "a red fox", "-o", f"{out}/", *extra]


def test_row22_short_body_every_time_is_exit8_no_partial_file(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path
) -> None:
    add_finished(httpx_mock, "t22")
    httpx_mock.add_response(
        method="GET",
        url=IMAGE_URL,
        content=PNG[:100],
        headers={"Content-Length": str(len(PNG)), "Content-Type": "image/png"},
        is_reusable=True,
    )
    out = tmp_path / "out"
    result = run_cli(gen(out))
    assert result.exit_code == 8
    assert "shorter" in result.stderr
    assert "flux2 download t22" in result.stderr
    assert leftovers(out) == []
    assert posts(httpx_mock) == 1
    assert ledger_ids() == ["t22"]


def test_row22_short_body_then_range_resume_saves_the_whole_image(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path
) -> None:
    add_finished(httpx_mock, "t22")
    half = len(PNG) // 2
    httpx_mock.add_response(
        method="GET",
        url=IMAGE_URL,
        content=PNG[:half],
        headers={"Content-Length": str(len(PNG)), "Accept-Ranges": "bytes"},
    )
    httpx_mock.add_response(
        method="GET",
        url=IMAGE_URL,
        status_code=206,
        content=PNG[half:],
        headers={"Content-Range": f"bytes {half}-{len(PNG) - 1}/{len(PNG)}"},
        match_headers={"Range": f"bytes={half}-"},
    )
    out = tmp_path / "out"
    result = run_cli(gen(out, "--no-sidecar"))
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()).read_bytes() == PNG
    assert len(leftovers(out)) == 1


def test_row23_cut_body_without_length_is_not_saved(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path
) -> None:
    add_finished(httpx_mock, "t23")

    def cut() -> Iterator[bytes]:
        yield PNG[: len(PNG) - 40]

    for _ in range(5):
        httpx_mock.add_response(method="GET", url=IMAGE_URL, stream=IteratorStream(cut()))
    out = tmp_path / "out"
    result = run_cli(gen(out))
    assert result.exit_code == 8
    assert leftovers(out) == []


def test_row25_html_instead_of_an_image_is_never_saved_exit8_expired(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path
) -> None:
    add_finished(httpx_mock, "t25")
    httpx_mock.add_response(
        method="GET",
        url=IMAGE_URL,
        text="<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>",
        headers={"Content-Type": "application/xml"},
        is_reusable=True,
    )
    out = tmp_path / "out"
    result = run_cli(gen(out))
    assert result.exit_code == 8
    assert "expired" in result.stderr.lower()
    assert leftovers(out) == []
    # one fresh status look-up for new URLs after the refusal, no more
    polls = httpx_mock.get_requests(url=poll_url("t25"))
    assert len(polls) == 2


@pytest.mark.parametrize("status", [403, 404, 410])
def test_row26_old_url_refused_is_exit8_url_expired(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path, status: int
) -> None:
    add_finished(httpx_mock, "t26")
    httpx_mock.add_response(method="GET", url=IMAGE_URL, status_code=status, is_reusable=True)
    out = tmp_path / "out"
    result = run_cli(gen(out))
    assert result.exit_code == 8
    assert "expired" in result.stderr.lower() and "issued" in result.stderr.lower()
    assert leftovers(out) == []


def test_row29_redirect_to_a_cdn_is_followed_without_the_key(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path, api_key: str
) -> None:
    add_finished(httpx_mock, "t29")
    cdn = "https://cdn.elsewhere.example/fox.png"
    httpx_mock.add_response(method="GET", url=IMAGE_URL, status_code=302, headers={"Location": cdn})
    httpx_mock.add_response(method="GET", url=cdn, content=PNG)
    result = run_cli(gen(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    cdn_requests = httpx_mock.get_requests(url=cdn)
    assert len(cdn_requests) == 1
    for request in [*httpx_mock.get_requests(url=IMAGE_URL), *cdn_requests]:
        assert "authorization" not in {key.lower() for key in request.headers}
        assert all(api_key not in value for value in request.headers.values())


def test_row31_ctrl_c_during_a_download_is_130_temp_removed_destination_untouched(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    existing = out / "cover.png"
    existing.write_bytes(b"the user's own picture")
    add_finished(httpx_mock, "t31")

    def interrupted() -> Iterator[bytes]:
        yield PNG[:50]
        raise errors.InterruptSignal()

    httpx_mock.add_response(
        method="GET",
        url=IMAGE_URL,
        stream=IteratorStream(interrupted()),
        headers={"Content-Length": str(len(PNG))},
    )
    result = run_cli(["gen", "a red fox", "-o", str(existing)])
    assert result.exit_code == 130
    assert "flux2 download t31" in result.stderr
    assert leftovers(out) == ["cover.png"]  # no temp file
    assert existing.read_bytes() == b"the user's own picture"
    assert ledger_ids() == ["t31"]


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS], ids=["read-only", "ro-fs"])
def test_row34_read_only_folder_is_exit8_cannot_write_and_recoverable(
    httpx_mock: HTTPXMock,
    clock: FakeTime,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
) -> None:
    add_finished(httpx_mock, "t34")
    out = tmp_path / "out"
    out.mkdir()
    real_open = os.open

    def refusing_open(path: object, flags: int, *args: object, **kwargs: object) -> int:
        # what a read-only folder answers (root ignores chmod, so the refusal is injected)
        if str(path).startswith(str(out)):
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(download_module.os, "open", refusing_open)
    result = run_cli(gen(out))
    monkeypatch.setattr(download_module.os, "open", real_open)
    assert result.exit_code == 8
    assert "cannot write" in result.stderr and os.strerror(code) in result.stderr
    assert "flux2 download t34" in result.stderr
    assert leftovers(out) == []
    assert ledger_ids() == ["t34"]


def test_row34_disk_full_is_exit8_temp_removed(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_finished(httpx_mock, "t34")
    httpx_mock.add_response(method="GET", url=IMAGE_URL, content=PNG)

    def full(fh: object, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(transfer_module, "write_chunk", full)
    out = tmp_path / "out"
    result = run_cli(gen(out))
    assert result.exit_code == 8
    assert "cannot write" in result.stderr and "No space left" in result.stderr
    assert "flux2 download t34" in result.stderr
    assert leftovers(out) == []
    assert ledger_ids() == ["t34"]


def test_row34_missing_output_folder_is_exit8_cannot_write(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path
) -> None:
    # The folder is gone by the time the images come (gen itself refuses a missing folder
    # before paying, see the next test): a paid result stays recoverable.
    add_finished(httpx_mock, "t34")
    assert run_cli(["gen", "a red fox", "--no-wait"]).exit_code == 0
    target = tmp_path / "no" / "such" / "cover.png"
    result = run_cli(["download", "t34", "-o", str(target)])
    assert result.exit_code == 8
    assert "cannot write" in result.stderr and "flux2 download t34" in result.stderr
    assert not (tmp_path / "no").exists()
    assert ledger_ids() == ["t34"]


def test_row34_gen_refuses_a_missing_output_folder_before_paying(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    result = run_cli(["gen", "a red fox", "-o", str(tmp_path / "no" / "cover.png")])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    assert httpx_mock.get_requests() == []


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root ignores file modes")
def test_row34_real_read_only_folder(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path
) -> None:  # pragma: no cover - runs only as a normal user
    add_finished(httpx_mock, "t34")
    assert run_cli(["gen", "a red fox", "--no-wait"]).exit_code == 0
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        result = run_cli(["download", "t34", "-o", f"{out}/"])
    finally:
        out.chmod(0o755)
    assert result.exit_code == 8
    assert "cannot write" in result.stderr and "flux2 download t34" in result.stderr
    assert leftovers(out) == []


def test_row35_hostile_names_never_leave_the_folder(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path
) -> None:
    hostile_url = "https://cdn.apiin.one/..%2f..%2f/../../.bashrc?name=../../x"
    add_create(httpx_mock, "CON")
    httpx_mock.add_response(
        method="GET",
        url=poll_url("CON"),
        json={"id": "CON", "status": "completed", "images": [{"url": hostile_url}]},
    )
    httpx_mock.add_response(method="GET", url=httpx.URL(hostile_url), content=PNG)
    out = tmp_path / "out"
    result = run_cli(
        ["gen", "../../.bashrc " + "x" * 300, "-o", f"{out}/", "--name", "{task_id}-{slug}"]
    )
    assert result.exit_code == 0, result.output
    saved = Path(result.stdout.strip())
    assert saved.parent == out
    assert not saved.name.upper().startswith("CON.")
    assert len(saved.name.encode()) <= 255 and ".." not in saved.name
    assert not (tmp_path / ".bashrc").exists()
    outside = [p for p in tmp_path.rglob("*") if out not in p.parents and p != out]
    assert all("flux2-home" in str(p) for p in outside), outside


def test_row68_a_second_download_of_a_saved_task_leaves_exactly_one_file(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path
) -> None:
    add_finished(httpx_mock, "t66")
    httpx_mock.add_response(method="GET", url=IMAGE_URL, content=PNG, is_reusable=True)
    out = tmp_path / "out"
    first = run_cli(gen(out))
    assert first.exit_code == 0, first.output
    for _ in range(2):
        again = run_cli(["download", "t66", "-o", f"{out}/"])
        assert again.exit_code == 0, again.output
        assert again.stdout == first.stdout  # the same path, reused
    assert leftovers(out) == ["a-red-fox-t66.json", "a-red-fox-t66.png"]  # no -1, no temp
