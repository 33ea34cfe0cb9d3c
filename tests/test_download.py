"""Tests of flux2_cli.download: names, streaming, verification, retries, atomic placement."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import random
import socket
import stat
import struct
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from pytest_httpx import HTTPXMock, IteratorStream

from flux2_cli import transfer
from flux2_cli.client import RetryPolicy
from flux2_cli.download import DownloadOptions, download_images
from flux2_cli.errors import DownloadError, UrlExpiredError
from flux2_cli.metadata import write_sidecar
from flux2_cli.naming import safe_filename
from flux2_cli.task import Cost, ImageResult, Task, TaskStatus

URL = "https://img.example.com/results/abc.png?X-Amz-Signature=SECRETSIG&X-Amz-Expires=86400"
URL2 = "https://img.example.com/results/def.png?X-Amz-Signature=SECRETSIG2"
FRESH_URL = "https://img.example.com/results/abc.png?X-Amz-Signature=FRESHSIG"
TASK_ID = "3f9a1c2e-7b7b-4c4c-9d9d-0123456789ab"
CREATED = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)
NOW = datetime(2026, 11, 21, 10, 5, 6, tzinfo=timezone.utc)
SENTINEL_KEY = "sk-SENTINEL-0123456789"


# --------------------------------------------------------------------------- helpers


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (64, 48), seed: int = 1) -> bytes:
    """A small noisy image (noise keeps it from compressing to a few bytes)."""
    noise = random.Random(seed).randbytes(size[0] * size[1] * 3)
    image = Image.frombytes("RGB", size, noise)
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


PNG = image_bytes("PNG")
JPEG = image_bytes("JPEG", (80, 60))
WEBP = image_bytes("WEBP", (40, 30))


def make_task(
    *,
    task_id: str = TASK_ID,
    prompt: str = "A red fox in the snow",
    urls: tuple[str, ...] = (URL,),
    request: dict[str, Any] | None = None,
) -> Task:
    return Task(
        task_id=task_id,
        provider="apiinone",
        status=TaskStatus.SUCCEEDED,
        model="flux-2",
        created_at=CREATED,
        images=tuple(ImageResult(url=url) for url in urls),
        cost=Cost(credits=5, usd=0.05),
        request=request
        if request is not None
        else {"prompt": prompt, "ratio": "16:9", "res": "1K", "mode": "pro", "seed": 42},
    )


class Recorder:
    """Collects what download_images reports through its injected callables."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.notes: list[str] = []


def run(
    task: Task,
    folder: Path | str | None,
    recorder: Recorder | None = None,
    **kwargs: Any,
) -> Task:
    rec = recorder or Recorder()
    extra = {
        key: kwargs.pop(key)
        for key in ("refresh", "stdout", "on_bytes", "transport")
        if key in kwargs
    }
    output = kwargs.pop("output", None)
    if output is None and folder is not None:
        output = f"{folder}/"
    options = DownloadOptions(output=output, **kwargs)
    return download_images(
        task,
        options,
        sleep=rec.sleeps.append,
        notify=rec.notes.append,
        clock=lambda: NOW,
        **extra,
    )


def names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def no_temp_files(folder: Path) -> bool:
    return not [name for name in names(folder) if ".part-" in name]


def assert_backoff(sleeps: list[float], count: int) -> None:
    """``count`` waits, each a full-jitter draw under the core policy's doubling ceiling."""
    policy = RetryPolicy()
    assert len(sleeps) == count
    for attempt, seconds in enumerate(sleeps, start=1):
        ceiling = min(policy.backoff_cap, policy.backoff_start * 2 ** (attempt - 1))
        assert 0 <= seconds <= ceiling


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def png_headers(body: bytes, **extra: str) -> dict[str, str]:
    return {"Content-Type": "image/png", "Content-Length": str(len(body)), **extra}


def assert_no_auth(request: httpx.Request) -> None:
    lowered = {key.lower() for key in request.headers}
    assert "authorization" not in lowered
    assert "x-key" not in lowered
    assert "x-api-key" not in lowered


# --------------------------------------------------------------------------- happy paths


def test_saved_image_is_not_executable(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    """Regression: os.open's default mode 0o777 left saved images executable."""
    httpx_mock.add_response(url=URL, content=PNG, headers=png_headers(PNG))
    old = os.umask(0o022)
    try:
        result = run(make_task(), tmp_path)
    finally:
        os.umask(old)
    assert result.images[0].path is not None
    assert stat.S_IMODE(Path(result.images[0].path).stat().st_mode) == 0o644


def test_downloads_png_with_checksum_size_and_sidecar(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    httpx_mock.add_response(url=URL, content=PNG, headers=png_headers(PNG))
    progress: list[tuple[int, int | None]] = []

    result = run(make_task(), tmp_path, on_bytes=lambda done, total: progress.append((done, total)))

    image = result.images[0]
    path = tmp_path / "a-red-fox-in-the-snow-3f9a1c2e.png"
    assert image.path == str(path)
    assert path.read_bytes() == PNG  # byte-exact without --embed-metadata
    assert image.bytes == len(PNG)
    assert image.sha256 == sha(PNG)
    assert (image.width, image.height, image.format) == (64, 48, "png")
    assert image.url == URL
    assert progress[-1] == (len(PNG), len(PNG))
    assert names(tmp_path) == ["a-red-fox-in-the-snow-3f9a1c2e.json", path.name]
    sidecar = json.loads((tmp_path / "a-red-fox-in-the-snow-3f9a1c2e.json").read_text())
    assert sidecar["task_id"] == TASK_ID
    assert sidecar["sha256"] == sha(PNG)
    assert sidecar["seed"] == 42
    assert sidecar["source_url"] == "https://img.example.com/results/abc.png"
    assert sidecar["cost"] == {"credits": 5, "usd": 0.05}
    assert sidecar["request"]["prompt"] == "A red fox in the snow"
    assert {"provider", "model", "created_at", "downloaded_at", "bytes", "width", "height"} <= set(
        sidecar
    )
    assert_no_auth(httpx_mock.get_requests()[0])


@pytest.mark.parametrize(
    ("body", "ext", "fmt", "size"),
    [(JPEG, "jpg", "jpeg", (80, 60)), (WEBP, "webp", "webp", (40, 30))],
)
def test_extension_comes_from_the_image_not_the_url(
    httpx_mock: HTTPXMock, tmp_path: Path, body: bytes, ext: str, fmt: str, size: tuple[int, int]
) -> None:
    httpx_mock.add_response(content=body, headers={"Content-Type": "application/octet-stream"})
    result = run(make_task(), tmp_path, sidecar=False)
    assert names(tmp_path) == [f"a-red-fox-in-the-snow-3f9a1c2e.{ext}"]
    assert result.images[0].format == fmt
    assert (result.images[0].width, result.images[0].height) == size


def test_several_images_get_numbered_names(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    httpx_mock.add_response(url=URL, content=PNG)
    httpx_mock.add_response(url=URL2, content=JPEG)
    result = run(make_task(urls=(URL, URL2)), tmp_path, sidecar=False)
    assert names(tmp_path) == [
        "a-red-fox-in-the-snow-3f9a1c2e-1.png",
        "a-red-fox-in-the-snow-3f9a1c2e-2.jpg",
    ]
    assert [image.format for image in result.images] == ["png", "jpeg"]


def test_output_file_name(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    httpx_mock.add_response(content=PNG)
    result = run(make_task(), None, output=str(tmp_path / "cover.png"))
    assert result.images[0].path == str(tmp_path / "cover.png")
    assert names(tmp_path) == ["cover.json", "cover.png"]


def test_output_file_name_with_wrong_extension_is_corrected(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    httpx_mock.add_response(content=JPEG)
    recorder = Recorder()
    run(make_task(), None, recorder, output=str(tmp_path / "cover.png"), sidecar=False)
    assert names(tmp_path) == ["cover.jpg"]
    assert any("JPG" in note for note in recorder.notes)


def test_output_file_name_with_several_images(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    httpx_mock.add_response(url=URL, content=PNG)
    httpx_mock.add_response(url=URL2, content=PNG)
    run(make_task(urls=(URL, URL2)), None, output=str(tmp_path / "cover"), sidecar=False)
    assert names(tmp_path) == ["cover-1.png", "cover-2.png"]


def test_output_folder_ending_in_slash_is_created(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    httpx_mock.add_response(content=PNG)
    result = run(make_task(), None, output=f"{tmp_path}/new/deeper/", sidecar=False)
    assert Path(str(result.images[0].path)).parent == tmp_path / "new" / "deeper"


def test_default_output_is_the_current_folder(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    httpx_mock.add_response(content=PNG)
    result = run(make_task(), None, sidecar=False)
    assert result.images[0].path == "a-red-fox-in-the-snow-3f9a1c2e.png"
    assert names(tmp_path) == ["a-red-fox-in-the-snow-3f9a1c2e.png"]


def test_output_dash_writes_verified_bytes_to_stdout(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    httpx_mock.add_response(content=PNG)
    out = io.BytesIO()
    result = run(make_task(), None, output="-", stdout=out)
    assert out.getvalue() == PNG
    assert result.images[0].path == "-"
    assert result.images[0].sha256 == sha(PNG)
    assert names(tmp_path) == []  # no sidecar, no temp file


def test_output_dash_does_not_write_a_broken_image(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    httpx_mock.add_response(content=PNG[: len(PNG) // 2], is_reusable=True)
    out = io.BytesIO()
    with pytest.raises(DownloadError):
        run(make_task(), None, output="-", stdout=out, retries=1)
    assert out.getvalue() == b""


def test_output_dash_with_several_images_keeps_the_others_on_disk(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    httpx_mock.add_response(url=URL, content=PNG)
    httpx_mock.add_response(url=URL2, content=JPEG)
    out = io.BytesIO()
    recorder = Recorder()
    result = run(make_task(urls=(URL, URL2)), None, recorder, output="-", stdout=out)
    assert out.getvalue() == PNG
    assert [image.path for image in result.images] == [
        "-",
        "a-red-fox-in-the-snow-3f9a1c2e-2.jpg",
    ]
    assert (tmp_path / "a-red-fox-in-the-snow-3f9a1c2e-2.jpg").read_bytes() == JPEG
    assert any("only the first went to stdout" in note for note in recorder.notes)


def test_no_sidecar(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    httpx_mock.add_response(content=PNG)
    run(make_task(), tmp_path, sidecar=False)
    assert names(tmp_path) == ["a-red-fox-in-the-snow-3f9a1c2e.png"]


def test_write_sidecar_scrubs_keys(tmp_path: Path) -> None:
    task = make_task(
        request={"prompt": "fox", "params": {"api_key": SENTINEL_KEY, "steps": 4}},
    )
    image = ImageResult(url=URL, sha256="ab", bytes=3, width=1, height=1, format="png")
    path = write_sidecar(tmp_path / "fox.png", task, image)
    text = path.read_text()
    assert path == tmp_path / "fox.json"
    assert SENTINEL_KEY not in text
    assert "SECRETSIG" not in text
    assert json.loads(text)["request"]["params"]["steps"] == 4
    assert names(tmp_path) == ["fox.json"]


# --------------------------------------------------------------------------- embed metadata


def test_embed_metadata_png_text_chunk(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    httpx_mock.add_response(content=PNG)
    result = run(make_task(), tmp_path, embed_metadata=True, sidecar=False)
    saved = Path(str(result.images[0].path)).read_bytes()
    assert saved != PNG
    assert result.images[0].sha256 == sha(saved)
    assert result.images[0].bytes == len(saved)
    with Image.open(io.BytesIO(saved)) as image:
        image.load()
        meta = json.loads(image.text["flux2"])
        assert image.tobytes() == Image.open(io.BytesIO(PNG)).tobytes()
    assert meta["task_id"] == TASK_ID
    assert meta["request"]["prompt"] == "A red fox in the snow"


def test_embed_metadata_jpeg_comment(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    httpx_mock.add_response(content=JPEG)
    result = run(make_task(), tmp_path, embed_metadata=True, sidecar=False)
    saved = Path(str(result.images[0].path)).read_bytes()
    assert result.images[0].sha256 == sha(saved)
    with Image.open(io.BytesIO(saved)) as image:
        image.load()
        meta = json.loads(image.info["comment"])
    assert meta["task_id"] == TASK_ID
    # The comment, the Exif UserComment and the XMP segment are inserted, nothing re-encoded.
    assert without_app1_and_comments(saved) == without_app1_and_comments(JPEG) == JPEG


def without_app1_and_comments(data: bytes) -> bytes:
    """A JPEG without its APP1 (Exif, XMP) and COM segments."""
    kept, position = data[:2], 2
    while data[position] == 0xFF and (
        0xE0 <= data[position + 1] <= 0xEF or data[position + 1] == 0xFE
    ):
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        if data[position + 1] not in (0xE1, 0xFE):
            kept += data[position : position + 2 + length]
        position += 2 + length
    return kept + data[position:]


def test_embed_metadata_webp_is_skipped_with_a_notice(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    httpx_mock.add_response(content=WEBP)
    recorder = Recorder()
    result = run(make_task(), tmp_path, recorder, embed_metadata=True, sidecar=False)
    assert Path(str(result.images[0].path)).read_bytes() == WEBP
    assert any("WebP" in note for note in recorder.notes)


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_status_is_retried_with_backoff(
    httpx_mock: HTTPXMock, tmp_path: Path, status: int
) -> None:
    httpx_mock.add_response(status_code=status)
    httpx_mock.add_response(status_code=status)
    httpx_mock.add_response(content=PNG)
    recorder = Recorder()
    run(make_task(), tmp_path, recorder, sidecar=False)
    # The core's policy: full jitter under 0.5 s, then under 1 s.
    assert len(recorder.sleeps) == 2
    assert 0 <= recorder.sleeps[0] <= 0.5 and 0 <= recorder.sleeps[1] <= 1.0
    assert names(tmp_path) == ["a-red-fox-in-the-snow-3f9a1c2e.png"]


def test_connection_errors_exhaust_the_budget(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    httpx_mock.add_exception(httpx.ConnectError("Connection refused"), is_reusable=True)
    recorder = Recorder()
    with pytest.raises(DownloadError) as caught:
        run(make_task(), tmp_path, recorder, retries=6)
    error = caught.value
    assert error.exit_code == 8
    assert "img.example.com" in error.message
    assert "SECRETSIG" not in error.message
    assert_backoff(recorder.sleeps, 6)  # full jitter under a doubling ceiling
    assert len(httpx_mock.get_requests()) == 7
    assert any(f"flux2 download {TASK_ID}" in hint for hint in error.hints)
    assert names(tmp_path) == []


def test_retry_after_is_honoured_within_a_cap(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    httpx_mock.add_response(status_code=429, headers={"Retry-After": "3"})
    httpx_mock.add_response(content=PNG)
    recorder = Recorder()
    run(make_task(), tmp_path, recorder, sidecar=False)
    assert recorder.sleeps == [3.0]


def test_retry_after_as_http_date_is_honoured(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    # The one retry policy of the HTTP core: downloads read HTTP dates as API calls do.
    moment = datetime.now(timezone.utc) + timedelta(seconds=30)
    httpx_mock.add_response(status_code=503, headers={"Retry-After": format_datetime(moment)})
    httpx_mock.add_response(content=PNG)
    recorder = Recorder()
    run(make_task(), tmp_path, recorder, sidecar=False)
    assert len(recorder.sleeps) == 1 and 25 <= recorder.sleeps[0] <= 30


def test_retry_after_past_the_cap_fails_at_once(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    httpx_mock.add_response(status_code=429, headers={"Retry-After": "86400"})
    recorder = Recorder()
    with pytest.raises(DownloadError) as caught:
        run(make_task(), tmp_path, recorder, sidecar=False)
    assert "longer than flux2 waits" in caught.value.message
    assert recorder.sleeps == []
    assert any(f"flux2 download {TASK_ID}" in hint for hint in caught.value.hints)


def test_other_client_errors_are_not_retried(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    httpx_mock.add_response(status_code=400)
    recorder = Recorder()
    with pytest.raises(DownloadError) as caught:
        run(make_task(), tmp_path, recorder)
    assert "400" in caught.value.message
    assert recorder.sleeps == []
    assert names(tmp_path) == []


def test_row22_short_body_resumes_with_range(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    half = len(PNG) // 2
    httpx_mock.add_response(
        content=PNG[:half], headers=png_headers(PNG, **{"Accept-Ranges": "bytes"})
    )
    httpx_mock.add_response(
        status_code=206,
        content=PNG[half:],
        headers={
            "Content-Type": "image/png",
            "Content-Range": f"bytes {half}-{len(PNG) - 1}/{len(PNG)}",
            "Content-Length": str(len(PNG) - half),
        },
        match_headers={"Range": f"bytes={half}-"},
    )
    result = run(make_task(), tmp_path, sidecar=False)
    path = Path(str(result.images[0].path))
    assert path.read_bytes() == PNG
    assert result.images[0].sha256 == sha(PNG)  # hashed across both parts
    assert "range" not in {key.lower() for key in httpx_mock.get_requests()[0].headers}
    assert no_temp_files(tmp_path)


def test_row22_short_body_without_ranges_restarts_from_zero(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    httpx_mock.add_response(content=PNG[:100], headers=png_headers(PNG))
    httpx_mock.add_response(content=PNG, headers=png_headers(PNG))
    result = run(make_task(), tmp_path, sidecar=False)
    assert Path(str(result.images[0].path)).read_bytes() == PNG
    second = httpx_mock.get_requests()[1]
    assert "range" not in {key.lower() for key in second.headers}


def test_row22_short_body_every_time_exit_8_nothing_saved(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    httpx_mock.add_response(content=PNG[:100], headers=png_headers(PNG), is_reusable=True)
    recorder = Recorder()
    with pytest.raises(DownloadError) as caught:
        run(make_task(), tmp_path, recorder)
    assert caught.value.exit_code == 8
    assert "shorter" in caught.value.message
    assert_backoff(recorder.sleeps, 4)
    assert names(tmp_path) == []  # no partial file, no temp, no sidecar


def test_row22_stream_breaking_mid_body_is_resumed(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    half = len(PNG) // 2

    def broken() -> Iterator[bytes]:
        yield PNG[:half]
        raise httpx.ReadError("connection reset by peer")

    httpx_mock.add_response(
        stream=IteratorStream(broken()), headers=png_headers(PNG, **{"Accept-Ranges": "bytes"})
    )
    httpx_mock.add_response(
        status_code=206,
        content=PNG[half:],
        headers={"Content-Range": f"bytes {half}-{len(PNG) - 1}/{len(PNG)}"},
        match_headers={"Range": f"bytes={half}-"},
    )
    result = run(make_task(), tmp_path, sidecar=False)
    assert Path(str(result.images[0].path)).read_bytes() == PNG


@pytest.mark.parametrize("body", [PNG, JPEG], ids=["png", "jpeg"])
def test_row23_no_content_length_body_cut_is_not_saved(
    httpx_mock: HTTPXMock, tmp_path: Path, body: bytes
) -> None:
    cut = body[: len(body) * 2 // 3]
    httpx_mock.add_response(stream=IteratorStream([cut]), is_reusable=True)
    recorder = Recorder()
    with pytest.raises(DownloadError) as caught:
        run(make_task(), tmp_path, recorder, retries=2)
    assert "decode" in caught.value.message
    assert len(recorder.sleeps) == 2
    assert names(tmp_path) == []


def test_row23_body_cut_then_whole_is_saved(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    httpx_mock.add_response(stream=IteratorStream([JPEG[:500]]))
    httpx_mock.add_response(stream=IteratorStream([JPEG[:1000], JPEG[1000:]]))
    result = run(make_task(), tmp_path, sidecar=False)
    assert Path(str(result.images[0].path)).read_bytes() == JPEG


def test_row24_server_ignoring_range_restarts_from_zero(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    half = len(PNG) // 2
    httpx_mock.add_response(
        content=PNG[:half], headers=png_headers(PNG, **{"Accept-Ranges": "bytes"})
    )
    httpx_mock.add_response(content=PNG, headers=png_headers(PNG))  # 200: whole body again
    result = run(make_task(), tmp_path, sidecar=False)
    assert httpx_mock.get_requests()[1].headers["Range"] == f"bytes={half}-"
    assert Path(str(result.images[0].path)).read_bytes() == PNG  # not PNG[:half] + PNG
    assert result.images[0].sha256 == sha(PNG)


def test_wrong_content_range_restarts_from_zero(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    half = len(PNG) // 2
    httpx_mock.add_response(
        content=PNG[:half], headers=png_headers(PNG, **{"Accept-Ranges": "bytes"})
    )
    httpx_mock.add_response(
        status_code=206,
        content=PNG[10:],
        headers={"Content-Range": f"bytes 10-{len(PNG) - 1}/{len(PNG)}"},
    )
    httpx_mock.add_response(content=PNG, headers=png_headers(PNG))
    result = run(make_task(), tmp_path, sidecar=False)
    assert "range" not in {key.lower() for key in httpx_mock.get_requests()[2].headers}
    assert Path(str(result.images[0].path)).read_bytes() == PNG


# --------------------------------------------------------------------------- expired URLs


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/html", b"<!DOCTYPE html><html><body>Sign in</body></html>"),
        (
            "application/xml",
            b'<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>',
        ),
        (
            "application/octet-stream",  # a lying content type: the body gives it away
            b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
        ),
    ],
)
def test_row25_markup_body_refreshes_once_then_saves(
    httpx_mock: HTTPXMock, tmp_path: Path, content_type: str, body: bytes
) -> None:
    httpx_mock.add_response(url=URL, content=body, headers={"Content-Type": content_type})
    httpx_mock.add_response(url=FRESH_URL, content=PNG)
    calls: list[int] = []

    def refresh() -> Task:
        calls.append(1)
        return make_task(urls=(FRESH_URL,))

    result = run(make_task(), tmp_path, refresh=refresh, sidecar=False)
    assert calls == [1]
    assert result.images[0].url == FRESH_URL
    assert names(tmp_path) == ["a-red-fox-in-the-snow-3f9a1c2e.png"]
    assert Path(str(result.images[0].path)).read_bytes() == PNG


def test_row25_markup_again_after_refresh_is_exit_8_expired(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    denied = b"<Error><Code>AccessDenied</Code></Error>"
    httpx_mock.add_response(content=denied, headers={"Content-Type": "application/xml"})
    httpx_mock.add_response(content=denied, headers={"Content-Type": "application/xml"})
    calls: list[int] = []

    def refresh() -> Task:
        calls.append(1)
        return make_task(urls=(FRESH_URL, URL2))

    with pytest.raises(UrlExpiredError) as caught:
        run(make_task(urls=(URL, URL2)), tmp_path, refresh=refresh)
    assert calls == [1]  # at most once per task
    assert caught.value.exit_code == 8
    assert "expired" in caught.value.message
    assert names(tmp_path) == []  # nothing saved under an image name


def test_refresh_is_called_at_most_once_per_task(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    httpx_mock.add_response(url=URL, status_code=403)
    httpx_mock.add_response(url=FRESH_URL, content=PNG)
    httpx_mock.add_response(url=URL2, status_code=403)
    calls: list[int] = []

    def refresh() -> Task:
        calls.append(1)
        return make_task(urls=(FRESH_URL, URL2))

    with pytest.raises(UrlExpiredError):
        run(make_task(urls=(URL, URL2)), tmp_path, refresh=refresh, sidecar=False)
    assert calls == [1]


@pytest.mark.parametrize("status", [403, 404, 410])
def test_row26_old_url_is_exit_8_url_expired_with_issue_time(
    httpx_mock: HTTPXMock, tmp_path: Path, status: int
) -> None:
    httpx_mock.add_response(status_code=status, text="gone")
    recorder = Recorder()
    with pytest.raises(UrlExpiredError) as caught:
        run(make_task(), tmp_path, recorder)
    message = caught.value.message
    assert caught.value.exit_code == 8
    assert "image URL expired (issued 2026-11-21T10:00:00Z)" in message
    assert "SECRETSIG" not in message
    assert recorder.sleeps == []
    assert len(httpx_mock.get_requests()) == 1
    assert names(tmp_path) == []


# --------------------------------------------------------------------------- size cap


def test_row27_declared_oversized_body_is_refused(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    httpx_mock.add_response(content=PNG, headers=png_headers(PNG))
    with pytest.raises(DownloadError) as caught:
        run(make_task(), tmp_path, max_bytes=1000)
    assert caught.value.exit_code == 8
    assert "limit" in caught.value.message
    assert names(tmp_path) == []


def test_row27_undeclared_oversized_body_is_aborted_while_streaming(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    sent: list[int] = []

    def endless() -> Iterator[bytes]:
        yield PNG[:1024]
        while True:
            sent.append(1)
            yield b"\0" * 1024

    httpx_mock.add_response(stream=IteratorStream(endless()))
    with pytest.raises(DownloadError) as caught:
        run(make_task(), tmp_path, max_bytes=64 * 1024)
    assert "limit" in caught.value.message
    assert len(sent) < 100  # stopped reading soon after the cap
    assert names(tmp_path) == []


# --------------------------------------------------------------------------- timeouts


def test_row28_read_timeouts_are_retried_then_exit_8(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("timed out"), is_reusable=True)
    recorder = Recorder()
    with pytest.raises(DownloadError) as caught:
        run(make_task(), tmp_path, recorder, retries=2)
    assert "timed out" in caught.value.message
    assert len(httpx_mock.get_requests()) == 3
    assert_backoff(recorder.sleeps, 2)


def test_row28_timeout_mid_body_then_success(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    def stalls() -> Iterator[bytes]:
        yield PNG[:100]
        raise httpx.ReadTimeout("timed out")

    httpx_mock.add_response(stream=IteratorStream(stalls()), headers=png_headers(PNG))
    httpx_mock.add_response(content=PNG, headers=png_headers(PNG))
    result = run(make_task(), tmp_path, sidecar=False)
    assert Path(str(result.images[0].path)).read_bytes() == PNG


# --------------------------------------------------------------------------- redirects


def test_row29_redirect_to_cdn_is_followed_without_auth(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    cdn = "https://cdn.other-host.net/blob/abc.png?token=CDNSIG"
    httpx_mock.add_response(url=URL, status_code=302, headers={"Location": cdn})
    httpx_mock.add_response(url=cdn, status_code=307, headers={"Location": "/blob/final.png"})
    httpx_mock.add_response(url="https://cdn.other-host.net/blob/final.png", content=PNG)
    result = run(make_task(), tmp_path, sidecar=False)
    assert Path(str(result.images[0].path)).read_bytes() == PNG
    requests = httpx_mock.get_requests()
    assert [request.url.host for request in requests] == [
        "img.example.com",
        "cdn.other-host.net",
        "cdn.other-host.net",
    ]
    for request in requests:
        assert_no_auth(request)


@pytest.mark.parametrize(
    "location", ["ftp://files.example.com/a.png", "file:///etc/passwd", "javascript:alert(1)"]
)
def test_row30_redirect_to_other_scheme_is_refused(
    httpx_mock: HTTPXMock, tmp_path: Path, location: str
) -> None:
    httpx_mock.add_response(status_code=302, headers={"Location": location})
    recorder = Recorder()
    with pytest.raises(DownloadError) as caught:
        run(make_task(), tmp_path, recorder)
    assert caught.value.exit_code == 8
    assert "only http and https" in caught.value.message
    assert recorder.sleeps == []
    assert names(tmp_path) == []


def test_non_http_image_url_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DownloadError):
        run(make_task(urls=("file:///etc/passwd",)), tmp_path)
    assert names(tmp_path) == []


def test_redirect_loop_stops(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    httpx_mock.add_response(status_code=302, headers={"Location": URL}, is_reusable=True)
    with pytest.raises(DownloadError) as caught:
        run(make_task(), tmp_path)
    assert "too many redirects" in caught.value.message
    assert len(httpx_mock.get_requests()) == transfer.MAX_REDIRECTS + 1


# --------------------------------------------------------------------------- interrupts, clashes


def test_row31_ctrl_c_mid_download_leaves_nothing(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    existing = tmp_path / "a-red-fox-in-the-snow-3f9a1c2e.png"
    existing.write_bytes(b"precious")

    def interrupted() -> Iterator[bytes]:
        yield PNG[:100]
        raise KeyboardInterrupt

    httpx_mock.add_response(stream=IteratorStream(interrupted()), headers=png_headers(PNG))
    with pytest.raises(KeyboardInterrupt):
        run(make_task(), tmp_path, overwrite=True)
    assert names(tmp_path) == [existing.name]
    assert existing.read_bytes() == b"precious"


def test_row32_existing_file_gets_a_suffix_and_a_notice(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    existing = tmp_path / "a-red-fox-in-the-snow-3f9a1c2e.png"
    existing.write_bytes(b"precious")
    (tmp_path / "a-red-fox-in-the-snow-3f9a1c2e-1.png").write_bytes(b"also precious")
    httpx_mock.add_response(content=PNG)
    recorder = Recorder()
    result = run(make_task(), tmp_path, recorder)
    saved = tmp_path / "a-red-fox-in-the-snow-3f9a1c2e-2.png"
    assert result.images[0].path == str(saved)
    assert saved.read_bytes() == PNG
    assert existing.read_bytes() == b"precious"
    assert (tmp_path / "a-red-fox-in-the-snow-3f9a1c2e-1.png").read_bytes() == b"also precious"
    assert (tmp_path / "a-red-fox-in-the-snow-3f9a1c2e-2.json").exists()
    assert any("saved as a-red-fox-in-the-snow-3f9a1c2e-2.png" in note for note in recorder.notes)


def test_row32_overwrite_replaces(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    existing = tmp_path / "a-red-fox-in-the-snow-3f9a1c2e.png"
    existing.write_bytes(b"old")
    httpx_mock.add_response(content=PNG)
    run(make_task(), tmp_path, overwrite=True, sidecar=False)
    assert names(tmp_path) == [existing.name]
    assert existing.read_bytes() == PNG


def _concurrent_runs(tmp_path: Path, bodies: list[bytes]) -> list[str]:
    """One download per body, all started at once into one folder; the saved paths."""
    barrier = threading.Barrier(len(bodies))
    paths: list[str] = []
    errors: list[BaseException] = []

    def one(body: bytes) -> None:
        def handler(request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, content=body, headers=png_headers(body))

        try:
            barrier.wait(timeout=10)
            result = run(
                make_task(), tmp_path, transport=httpx.MockTransport(handler), sidecar=False
            )
            paths.append(str(result.images[0].path))
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(body,)) for body in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    return paths


def test_row33_concurrent_runs_never_share_a_name(tmp_path: Path) -> None:
    bodies = [image_bytes("PNG", seed=n) for n in range(8)]
    paths = _concurrent_runs(tmp_path, bodies)
    assert len(set(paths)) == len(bodies)
    assert len(names(tmp_path)) == len(bodies)
    assert sorted(Path(path).read_bytes() for path in paths) == sorted(bodies)


def test_concurrent_runs_saving_the_same_bytes_keep_whole_files(tmp_path: Path) -> None:
    # Identical bytes may share one file (an idempotent save) or get -N names, never a mix.
    paths = _concurrent_runs(tmp_path, [PNG] * 8)
    assert no_temp_files(tmp_path)
    for path in paths:
        assert Path(path).read_bytes() == PNG


def test_a_second_download_of_the_same_image_reuses_the_file(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    httpx_mock.add_response(content=PNG, headers=png_headers(PNG), is_reusable=True)
    first = run(make_task(), tmp_path)
    second = run(make_task(), tmp_path)
    assert first.images[0].path == second.images[0].path
    assert names(tmp_path) == [
        "a-red-fox-in-the-snow-3f9a1c2e.json",
        "a-red-fox-in-the-snow-3f9a1c2e.png",
    ]
    assert second.images[0].sha256 == sha(PNG)


def test_different_bytes_under_a_taken_name_still_get_a_suffix(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    other = image_bytes("PNG", seed=7)
    httpx_mock.add_response(content=PNG, headers=png_headers(PNG))
    httpx_mock.add_response(content=other, headers=png_headers(other))
    run(make_task(), tmp_path, sidecar=False)
    second = run(make_task(), tmp_path, sidecar=False)
    assert Path(str(second.images[0].path)).name == "a-red-fox-in-the-snow-3f9a1c2e-1.png"
    assert Path(str(second.images[0].path)).read_bytes() == other


# --------------------------------------------------------------------------- unwritable


def test_row34_missing_output_folder_is_exit_8_cannot_write(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "cover.png"
    with pytest.raises(DownloadError) as caught:
        run(make_task(), None, output=str(target))  # fails before any request
    error = caught.value
    assert error.exit_code == 8
    assert error.message.startswith("cannot write")
    assert any(f"flux2 download {TASK_ID}" in hint for hint in error.hints)
    assert names(tmp_path) == []


def test_row34_disk_full_is_exit_8_and_temp_removed(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fh: Any, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(transfer, "write_chunk", full)
    httpx_mock.add_response(content=PNG)
    recorder = Recorder()
    with pytest.raises(DownloadError) as caught:
        run(make_task(), tmp_path, recorder)
    error = caught.value
    assert error.exit_code == 8
    assert "cannot write" in error.message
    assert "No space left on device" in error.message
    assert any(f"flux2 download {TASK_ID}" in hint for hint in error.hints)
    assert recorder.sleeps == []  # writing is not retried
    assert names(tmp_path) == []


def test_row34_output_path_under_a_file_is_exit_8(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x")
    with pytest.raises(DownloadError) as caught:
        run(make_task(), None, output=f"{tmp_path}/plain/sub/")
    assert "cannot write" in caught.value.message


def test_task_without_images_is_a_download_error(tmp_path: Path) -> None:
    with pytest.raises(DownloadError):
        run(make_task(urls=()), tmp_path)


# --------------------------------------------------------------------------- hostile names


@pytest.mark.parametrize(
    ("task_id", "prompt", "template"),
    [
        ("../../.bashrc", "fox", "{task_id}"),
        ("..%2f..%2f.bashrc", "fox", "{task_id}"),
        ("a\0b", "fox", "{task_id}-{slug}"),
        ("CON", "x" * 300, "{task_id}"),
        ("abc", "CON " + "word " * 60, "{slug}"),
        ("/etc/passwd", "fox", "{task_id}/{slug}/../../x"),
    ],
)
def test_row35_names_never_escape_the_folder(
    httpx_mock: HTTPXMock, tmp_path: Path, task_id: str, prompt: str, template: str
) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    httpx_mock.add_response(content=PNG)
    result = run(
        make_task(task_id=task_id, prompt=prompt), folder, name_template=template, sidecar=True
    )
    path = Path(str(result.images[0].path))
    assert path.resolve().parent == folder.resolve()
    assert path.name == safe_filename(path.name)
    assert len(path.name.encode()) <= 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert len(names(folder)) == 2  # the image and its sidecar, nothing else


def test_row35_url_path_never_names_the_file(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    hostile = "https://evil.example.com/..%2f..%2f.bashrc?name=../../x"
    httpx_mock.add_response(content=PNG, headers={"Content-Disposition": 'filename="../../x"'})
    result = run(make_task(urls=(hostile,)), tmp_path, sidecar=False)
    assert names(tmp_path) == ["a-red-fox-in-the-snow-3f9a1c2e.png"]
    assert result.images[0].url == hostile


# --------------------------------------------------------------------------- raw sockets


Handler = Callable[[socket.socket, bytes, threading.Event], None]


@pytest.fixture
def raw_server() -> Iterator[Callable[[list[Handler]], tuple[str, list[bytes]]]]:
    """A tiny HTTP server on 127.0.0.1 answering connection N with handlers[N]."""
    started: list[tuple[socket.socket, threading.Event, threading.Thread]] = []

    def start(handlers: list[Handler]) -> tuple[str, list[bytes]]:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(0.05)
        stop = threading.Event()
        seen: list[bytes] = []

        def serve() -> None:
            count = 0
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                with conn:
                    conn.settimeout(5)
                    request = b""
                    while b"\r\n\r\n" not in request:
                        data = conn.recv(4096)
                        if not data:
                            break
                        request += data
                    seen.append(request)
                    handler = handlers[min(count, len(handlers) - 1)]
                    count += 1
                    with contextlib.suppress(OSError):
                        handler(conn, request, stop)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        started.append((listener, stop, thread))
        port = listener.getsockname()[1]
        return f"http://127.0.0.1:{port}/image.png?sig=SECRETSIG", seen

    yield start
    for listener, stop, thread in started:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def _head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


def test_row22_raw_socket_truncated_body_resumes_with_range(
    raw_server: Callable[[list[Handler]], tuple[str, list[bytes]]], tmp_path: Path
) -> None:
    half = len(PNG) // 2

    def truncated(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        headers = {"Content-Length": str(len(PNG)), "Accept-Ranges": "bytes"}
        conn.sendall(_head("200 OK", headers) + PNG[:half])

    def rest(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        headers = {
            "Content-Length": str(len(PNG) - half),
            "Content-Range": f"bytes {half}-{len(PNG) - 1}/{len(PNG)}",
            "Connection": "close",
        }
        conn.sendall(_head("206 Partial Content", headers) + PNG[half:])

    url, seen = raw_server([truncated, rest])
    result = run(make_task(urls=(url,)), tmp_path, transport=httpx.HTTPTransport(), sidecar=False)
    assert Path(str(result.images[0].path)).read_bytes() == PNG
    assert f"range: bytes={half}-".encode() in seen[1].lower()


def test_row22_raw_socket_truncated_every_time_is_exit_8(
    raw_server: Callable[[list[Handler]], tuple[str, list[bytes]]], tmp_path: Path
) -> None:
    def truncated(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        conn.sendall(_head("200 OK", {"Content-Length": str(len(PNG))}) + PNG[:300])

    url, seen = raw_server([truncated])
    with pytest.raises(DownloadError) as caught:
        run(make_task(urls=(url,)), tmp_path, transport=httpx.HTTPTransport(), retries=2)
    assert caught.value.exit_code == 8
    assert "127.0.0.1" in caught.value.message
    assert "SECRETSIG" not in caught.value.message
    assert len(seen) == 3
    assert names(tmp_path) == []


def test_row28_raw_socket_slow_drip_times_out_and_is_exit_8(
    raw_server: Callable[[list[Handler]], tuple[str, list[bytes]]], tmp_path: Path
) -> None:
    def drip(conn: socket.socket, request: bytes, stop: threading.Event) -> None:
        conn.sendall(_head("200 OK", {"Content-Length": str(len(PNG))}) + PNG[:16])
        stop.wait(10)  # then nothing more until the test ends

    url, _seen = raw_server([drip])
    recorder = Recorder()
    with pytest.raises(DownloadError) as caught:
        run(
            make_task(urls=(url,)),
            tmp_path,
            recorder,
            transport=httpx.HTTPTransport(),
            timeout=0.2,
            retries=1,
        )
    assert "timed out" in caught.value.message
    assert_backoff(recorder.sleeps, 1)
    assert names(tmp_path) == []


# --------------------------------------------------------------------------- review findings


def test_image_with_a_content_encoding_that_does_not_decode_is_retried_not_a_crash(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    # Accept-Encoding: identity was asked for; a server sending gzip anyway must not crash
    # flux2 with a raw httpx error (exit 1) when the body is not gzip.
    httpx_mock.add_response(
        url=URL, headers={"Content-Encoding": "gzip", "Content-Type": "image/png"}, content=b"junk"
    )
    httpx_mock.add_response(url=URL, headers=png_headers(PNG), content=PNG)
    rec = Recorder()
    done = run(make_task(), tmp_path, rec)
    assert Path(str(done.images[0].path)).read_bytes() == PNG
    assert rec.notes and "retrying" in rec.notes[0]
    assert no_temp_files(tmp_path)


def test_image_that_never_decodes_its_content_encoding_is_exit8(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    for _ in range(3):
        httpx_mock.add_response(url=URL, headers={"Content-Encoding": "gzip"}, content=b"junk")
    with pytest.raises(DownloadError) as info:
        run(make_task(), tmp_path, retries=2)
    assert info.value.exit_code == 8
    assert names(tmp_path) == []


def test_sidecar_never_overwrites_an_existing_json_beside_a_new_image(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    # fox.jpg (an earlier JPEG) and its sidecar fox.json exist; a PNG named "fox" must not
    # replace fox.json: the new image takes the next free name for both files.
    (tmp_path / "fox.jpg").write_bytes(JPEG)
    (tmp_path / "fox.json").write_text("precious", encoding="utf-8")
    httpx_mock.add_response(url=URL, headers=png_headers(PNG), content=PNG)
    rec = Recorder()
    done = run(make_task(), tmp_path, rec, name_template="fox")
    assert (tmp_path / "fox.json").read_text(encoding="utf-8") == "precious"
    saved = Path(str(done.images[0].path))
    assert saved.name == "fox-1.png"
    assert json.loads((tmp_path / "fox-1.json").read_text(encoding="utf-8"))["file"] == "fox-1.png"
    assert not (tmp_path / "fox.png").exists()


def test_without_sidecar_an_existing_json_does_not_move_the_image(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    (tmp_path / "fox.json").write_text("unrelated", encoding="utf-8")
    httpx_mock.add_response(url=URL, headers=png_headers(PNG), content=PNG)
    done = run(make_task(), tmp_path, name_template="fox", sidecar=False)
    assert Path(str(done.images[0].path)).name == "fox.png"


def test_streamed_image_whose_content_encoding_does_not_decode_is_retried(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    httpx_mock.add_response(
        url=URL,
        headers={"Content-Encoding": "gzip", "Content-Type": "image/png"},
        stream=IteratorStream([b"junk", b"more junk"]),
    )
    httpx_mock.add_response(url=URL, headers=png_headers(PNG), content=PNG)
    done = run(make_task(), tmp_path)
    assert Path(str(done.images[0].path)).read_bytes() == PNG
    assert no_temp_files(tmp_path)
