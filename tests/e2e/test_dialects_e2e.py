"""End to end, happy paths: the installed flux2 against ``sandbox serve`` in each dialect.

The plain-HTTP-client side of the same server (urllib through create → poll → image in the four
dialects) is tests/sandbox/test_serve.py::test_four_dialects_over_real_http.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
from PIL import Image

from tests.e2e.conftest import SandboxServer, account

pytestmark = pytest.mark.e2e

Run = Callable[..., CompletedProcess[str]]
Server = Callable[..., SandboxServer]

FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


def saved_image(result: CompletedProcess[str], cwd: Path) -> Path:
    """The one path a successful command printed on stdout, checked to exist."""
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    path = Path(lines[0])
    path = path if path.is_absolute() else cwd / path
    assert path.is_file(), path
    return path


def image_size(path: Path) -> tuple[int, int]:
    """The size in the image's header; its format must match its extension."""
    with Image.open(path) as image:
        assert image.format == FORMATS[path.suffix.lower()], (image.format, path)
        image.verify()
        width, height = image.size
        return int(width), int(height)


@pytest.mark.parametrize(
    ("provider", "flags", "size"),
    [
        ("apiinone", [], (1440, 1440)),
        ("apiinone", ["--ratio", "16:9", "--res", "2K"], (2048, 1152)),
        ("apimart", ["--ratio", "16:9", "--res", "2K"], (2048, 1152)),
        ("vtrix", ["--width", "1024", "--height", "768"], (1024, 768)),
        ("bfl", ["--width", "1024", "--height", "768"], (1024, 768)),
    ],
    ids=["apiinone-1k", "apiinone-16x9-2k", "apimart-16x9-2k", "vtrix-wh", "bfl-wh"],
)
def test_each_dialect_saves_an_image_of_the_requested_size(
    provider: str,
    flags: list[str],
    size: tuple[int, int],
    sandbox_server: Server,
    run_flux2: Run,
    tmp_path: Path,
) -> None:
    server = sandbox_server(latency=0.3)
    out = tmp_path / "out"
    out.mkdir()
    result = run_flux2(
        "gen", "a lighthouse at dusk", *flags, *account(provider, server), "-o", str(out)
    )
    path = saved_image(result, tmp_path)
    assert path.parent == out
    assert image_size(path) == size
    sidecar = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    assert sidecar["provider"] == provider
    assert sidecar["task_id"] in server.task_ids()
    assert server.tasks_created() == 1


@pytest.mark.parametrize(
    ("flags", "size"),
    [([], (1440, 1440)), (["--ratio", "16:9", "--res", "2K"], (2048, 1152))],
    ids=["default", "16x9-2k"],
)
def test_embedded_sandbox_needs_no_key_and_no_server(
    flags: list[str], size: tuple[int, int], run_flux2: Run, tmp_path: Path
) -> None:
    # A dead proxy in the environment: any real network request would fail.
    dead = "http://127.0.0.1:9"
    result = run_flux2(
        "gen",
        "a lighthouse at dusk",
        "--provider",
        "sandbox",
        *flags,
        env={"HTTP_PROXY": dead, "HTTPS_PROXY": dead, "ALL_PROXY": dead, "NO_PROXY": None},
    )
    path = saved_image(result, tmp_path)
    assert path.suffix == ".png"
    assert image_size(path) == size


def test_submit_status_download_in_three_processes(
    sandbox_server: Server, run_flux2: Run, tmp_path: Path
) -> None:
    server = sandbox_server(latency=0.5)
    flags = account("apimart", server)

    submitted = run_flux2("gen", "a red fox in the snow", "--ratio", "3:2", "--no-wait", *flags)
    assert submitted.returncode == 0, submitted.stderr
    task_id = submitted.stdout.strip()
    assert re.fullmatch(r"\S+", task_id), submitted.stdout

    status = run_flux2("status", task_id, "--wait", "--json", *flags)
    assert status.returncode == 0, status.stderr
    record: dict[str, Any] = json.loads(status.stdout)
    assert (record["task_id"], record["status"]) == (task_id, "succeeded")
    assert record["images"] and record["images"][0]["url"].startswith(server.url)

    folder = tmp_path / "downloads"
    folder.mkdir()
    downloaded = run_flux2("download", task_id, "-o", str(folder), *flags)
    path = saved_image(downloaded, tmp_path)
    assert path.parent == folder
    assert image_size(path) == (1728, 1152)
    assert server.task_ids() == {task_id}
