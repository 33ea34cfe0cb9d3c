"""Rows 36–43 of reliability.md: keys, config, unexpected errors, verbose logging; no leak."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock

from tests.faults.conftest import (
    CREATE_URL,
    IMAGE_URL,
    add_create,
    add_done,
    ledger_ids,
)
from tests.helpers import FakeTime, png_bytes, run_cli

POSIX = pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
GEN = ["gen", "a red fox in the snow", "--no-wait"]
CREATE_URLS = {
    "apiinone": CREATE_URL,
    "apimart": "https://api.apimart.ai/v1/images/generations",
    "vtrix": "https://cloud.vtrix.ai/model/v1/generation",
    "bfl": "https://api.bfl.ai/v1/flux-2-pro",
}


@pytest.fixture
def config_file() -> Path:
    return Path(os.environ["FLUX2_CONFIG"])


# --- 36: no key ---------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["apiinone", "apimart", "vtrix", "bfl"])
def test_row36_no_api_key_is_exit3_before_any_request(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    monkeypatch.delenv("FLUX2_API_KEY")
    result = run_cli(["gen", "a red fox", "--provider", provider])
    assert result.exit_code == 3
    assert "FLUX2_API_KEY" in result.stderr
    assert "flux2 config set api_key -" in result.stderr
    assert httpx_mock.get_requests() == []


@pytest.mark.parametrize("command", [["status", "t36"], ["download", "t36"]])
def test_row36_no_key_for_status_and_download_is_exit3_too(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    monkeypatch.delenv("FLUX2_API_KEY")
    result = run_cli(command)
    assert result.exit_code == 3
    assert "FLUX2_API_KEY" in result.stderr
    assert httpx_mock.get_requests() == []


# --- 37: env beats config ------------------------------------------------------------------


def test_row37_key_in_env_and_config_env_wins_config_unchanged(
    httpx_mock: HTTPXMock, clock: FakeTime, api_key: str, config_file: Path
) -> None:
    stored = "cfg-key-from-the-file-0000"
    assert run_cli(["config", "set", "api_key", "-"], input=stored).exit_code == 0
    before = config_file.read_bytes()
    before_mtime = config_file.stat().st_mtime_ns
    add_create(httpx_mock, "t37")
    result = run_cli(GEN)
    assert result.exit_code == 0, result.output
    sent = httpx_mock.get_requests(method="POST")[0].headers["Authorization"]
    assert sent == f"Bearer {api_key}"
    assert config_file.read_bytes() == before
    assert config_file.stat().st_mtime_ns == before_mtime


# --- 38: a config readable by others ---------------------------------------------------------


@POSIX
def test_row38_readable_config_warns_still_works_next_write_locks_it(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "xdg" / "flux2"
    folder.mkdir(parents=True)
    path = folder / "config.toml"
    path.write_text('ratio = "16:9"\n')
    os.chmod(path, 0o644)
    os.chmod(folder, 0o755)
    monkeypatch.setenv("FLUX2_CONFIG", str(path))
    add_create(httpx_mock, "t38")
    result = run_cli(GEN)
    assert result.exit_code == 0, result.output
    assert "readable by other users" in result.stderr and "chmod 600" in result.stderr
    sent = httpx_mock.get_requests(method="POST")[0]
    assert b'"aspect_ratio":"16:9"' in sent.content.replace(b" ", b"")  # the file was used
    assert run_cli(["config", "set", "res", "2K"]).exit_code == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert "readable" not in run_cli(["config", "list"]).stderr


# --- 39: corrupt TOML -------------------------------------------------------------------------


CORRUPT = b'provider = "apiinone"\nratio = "16:9\napi_key = "x"\n garbage [[[\n'


@pytest.mark.parametrize(
    "command",
    [
        ["gen", "a red fox"],
        ["config", "set", "ratio", "4:3"],
        ["config", "unset", "ratio"],
        ["config", "list"],
    ],
)
def test_row39_corrupt_toml_is_exit2_with_path_and_line_never_rewritten(
    httpx_mock: HTTPXMock, config_file: Path, command: list[str]
) -> None:
    config_file.parent.mkdir(parents=True, exist_ok=True)
    data = CORRUPT
    config_file.write_bytes(data)
    result = run_cli(command)
    assert result.exit_code == 2, result.output
    assert str(config_file) in result.stderr
    assert "line 2" in result.stderr
    assert config_file.read_bytes() == data  # every byte kept
    assert sorted(os.listdir(config_file.parent)) == ["config.toml"]
    assert httpx_mock.get_requests() == []


# --- 40: interrupted write ----------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["ctrl-c", "disk-full"])
def test_row40_interrupted_config_write_keeps_the_old_file(
    config_file: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    assert run_cli(["config", "set", "ratio", "4:3"]).exit_code == 0
    before = config_file.read_bytes()

    def broken_fsync(fd: int) -> None:
        raise KeyboardInterrupt

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    if fault == "ctrl-c":
        monkeypatch.setattr(os, "fsync", broken_fsync)
    else:
        monkeypatch.setattr(os, "replace", broken_replace)
    result = run_cli(["config", "set", "ratio", "16:9"])
    monkeypatch.undo()
    assert result.exit_code == (130 if fault == "ctrl-c" else 2)
    if fault == "disk-full":
        assert "old file is intact" in result.stderr
    assert config_file.read_bytes() == before
    assert os.listdir(config_file.parent) == ["config.toml"]  # no temp left


# --- 41: pasted keys ----------------------------------------------------------------------


@pytest.mark.parametrize("pasted", ["  {key}\n", "{key}\r\n", "\t{key}  \n\n"])
def test_row41_key_pasted_with_whitespace_is_stripped(
    httpx_mock: HTTPXMock, clock: FakeTime, monkeypatch: pytest.MonkeyPatch, pasted: str
) -> None:
    key = "pasted-key-0123456789"
    monkeypatch.delenv("FLUX2_API_KEY")
    result = run_cli(["config", "set", "api_key", "-"], input=pasted.format(key=key))
    assert result.exit_code == 0, result.output
    assert key not in result.output
    add_create(httpx_mock, "t41")
    assert run_cli(GEN).exit_code == 0
    assert httpx_mock.get_requests()[0].headers["Authorization"] == f"Bearer {key}"


def test_row41_env_key_with_trailing_newline_is_stripped(
    httpx_mock: HTTPXMock, clock: FakeTime, monkeypatch: pytest.MonkeyPatch, api_key: str
) -> None:
    monkeypatch.setenv("FLUX2_API_KEY", f"{api_key}\n  ")
    add_create(httpx_mock, "t41")
    assert run_cli(GEN).exit_code == 0
    assert httpx_mock.get_requests()[0].headers["Authorization"] == f"Bearer {api_key}"


@pytest.mark.parametrize("inside", ["\x1b[31m", "\x00", "\x7f", "\u200b"])
def test_row41_control_characters_refused_without_echo(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch, config_file: Path, inside: str
) -> None:
    secret_half = "SECRETHALF1234"
    bad = f"abcdefgh{inside}{secret_half}"
    monkeypatch.delenv("FLUX2_API_KEY")
    stored = run_cli(["config", "set", "api_key", "-"], input=bad + "\n")
    assert stored.exit_code == 2
    assert "not shown" in stored.stderr
    assert secret_half not in stored.output and "abcdefgh" not in stored.output
    assert not config_file.exists()
    if inside != "\x00":  # the environment cannot hold a NUL
        monkeypatch.setenv("FLUX2_API_KEY", bad)
        result = run_cli(GEN)
        assert result.exit_code == 2
        assert secret_half not in result.output
    assert httpx_mock.get_requests() == []


# --- 42: unexpected exceptions ------------------------------------------------------------


def _explode(message: str):  # type: ignore[no-untyped-def]
    def submit(*args: object, **kwargs: object) -> None:
        local_secret = "LOCAL-VALUE-IN-A-FRAME-42"  # must not be printed: no locals
        raise RuntimeError(message + local_secret[:0])

    return submit


def test_row42_unexpected_exception_is_one_line_and_a_hint(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flux2_cli.jobs.submit", _explode("the flux capacitor broke"))
    result = run_cli(["gen", "a red fox"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "error: unexpected error: RuntimeError: the flux capacitor broke"
    assert len(lines) == 2 and "re-run with --verbose" in lines[1]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_row42_verbose_shows_the_traceback_without_locals(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flux2_cli.jobs.submit", _explode("the flux capacitor broke"))
    result = run_cli(["gen", "a red fox", "--verbose"])
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "the flux capacitor broke" in result.stderr
    assert "LOCAL-VALUE-IN-A-FRAME-42" not in result.stderr  # no frame locals dumped
    assert "api_key = " not in result.stderr and "settings = " not in result.stderr


@pytest.mark.parametrize("verbose", [False, True])
def test_row42_a_key_inside_an_exception_message_is_scrubbed(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch, api_key: str, verbose: bool
) -> None:
    monkeypatch.setattr(
        "flux2_cli.jobs.submit", _explode(f"bad header Authorization: Bearer {api_key} x={api_key}")
    )
    result = run_cli(["gen", "a red fox", *(["--verbose"] if verbose else [])])
    assert result.exit_code == 1
    assert api_key not in result.stderr and api_key not in result.stdout
    assert "***" in result.stderr


# --- 43: --verbose logging ----------------------------------------------------------------


def test_row43_verbose_http_log_redacts_key_and_signed_urls(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path, api_key: str
) -> None:
    add_create(httpx_mock, "t43")
    add_done(httpx_mock, "t43", png_bytes())
    result = run_cli(["gen", "a red fox", "--verbose", "-o", f"{tmp_path}/out/"])
    assert result.exit_code == 0, result.output
    assert "-> POST https://apiin.one/api/v1/images/generations" in result.stderr
    assert "authorization: ***" in result.stderr.lower()
    assert api_key not in result.stderr
    assert "abc123secret" not in result.stderr  # the signed query string of the image URL
    assert IMAGE_URL not in result.stdout + result.stderr
    assert ledger_ids() == ["t43"]


def test_row43_bfl_x_key_header_is_redacted(
    httpx_mock: HTTPXMock, clock: FakeTime, api_key: str
) -> None:
    httpx_mock.add_response(method="POST", url=CREATE_URLS["bfl"], json={"id": "b43"})
    result = run_cli([*GEN, "--provider", "bfl", "--verbose"])
    assert result.exit_code == 0, result.output
    assert "x-key: ***" in result.stderr.lower()
    assert api_key not in result.stderr
