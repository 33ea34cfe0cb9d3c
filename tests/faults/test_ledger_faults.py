"""Row 55: ``flux2 gen`` with a ledger it cannot write sends nothing, or shows the paid task.

The intent is recorded before the paid POST: a ledger that is locked by another program past
the busy timeout, read-only or damaged stops the command before anything is sent. When only
the answer cannot be recorded, the task id and the commands that resume it are printed.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock

from flux2_cli import ledger as ledger_module
from flux2_cli.env import data_dir
from tests.helpers import install_fake_time, run_cli

BASE = "https://apiin.one"
CREATE_URL = f"{BASE}/api/v1/images/generations"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch, sentinel_key: str) -> None:
    monkeypatch.setenv("FLUX2_API_KEY", sentinel_key)
    install_fake_time(monkeypatch)


def ledger_file() -> Path:
    path = data_dir() / ledger_module.LEDGER_FILENAME
    with ledger_module.Ledger(path):
        pass  # a real, current ledger to break
    return path


def gen(tmp_path: Path) -> object:
    return run_cli(["gen", "a red fox", "--provider", "apiinone", "-o", str(tmp_path) + "/"])


def test_row55_ledger_locked_by_another_program_sends_nothing(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = ledger_file()
    monkeypatch.setattr(ledger_module, "BUSY_TIMEOUT_SECONDS", 0.05)
    holder = sqlite3.connect(str(path), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another program holds the write lock
    try:
        result = gen(tmp_path)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 1, result.stderr  # type: ignore[attr-defined]
    stderr = result.stderr  # type: ignore[attr-defined]
    assert str(path) in stderr and "locked" in stderr and "Nothing was sent" in stderr
    assert "FLUX2_DATA_DIR" in stderr  # the fix
    assert httpx_mock.get_requests() == []


def test_row55_read_only_ledger_sends_nothing(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = ledger_file()
    real_connect = sqlite3.connect

    def read_only(*args: object, **kwargs: object) -> sqlite3.Connection:
        # As a file mode would (root ignores modes): SQLite refuses every write.
        conn = real_connect(*args, **kwargs)  # type: ignore[arg-type]
        conn.execute("PRAGMA query_only = 1")
        return conn

    monkeypatch.setattr(ledger_module.sqlite3, "connect", read_only)
    result = gen(tmp_path)
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.exit_code == 1, stderr  # type: ignore[attr-defined]
    assert str(path) in stderr and "read-only" in stderr and "Nothing was sent" in stderr
    assert "writable" in stderr
    assert httpx_mock.get_requests() == []


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="POSIX modes; root ignores them")
def test_row55_ledger_file_without_write_permission_sends_nothing(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    path = ledger_file()
    path.chmod(0o400)
    try:
        result = gen(tmp_path)
    finally:
        path.chmod(0o600)
    assert result.exit_code == 1  # type: ignore[attr-defined]
    assert "Nothing was sent" in result.stderr  # type: ignore[attr-defined]
    assert httpx_mock.get_requests() == []


def test_row55_damaged_ledger_sends_nothing(httpx_mock: HTTPXMock, tmp_path: Path) -> None:
    path = data_dir() / ledger_module.LEDGER_FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"this is not a database, it was damaged" * 200)
    result = gen(tmp_path)
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.exit_code == 1, stderr  # type: ignore[attr-defined]
    assert str(path) in stderr and "Nothing was sent" in stderr and "move it aside" in stderr
    assert httpx_mock.get_requests() == []


def test_row55_answer_not_recorded_prints_the_task_id_and_resume_commands(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger_file()
    httpx_mock.add_response(
        method="POST",
        url=CREATE_URL,
        json={"code": 200, "data": {"task_id": "task7777_flux2", "status": "IN_PROGRESS"}},
    )

    def locked(self: object, *args: object, **kwargs: object) -> None:
        raise ledger_module.LedgerError("The ledger at X is locked by another process.")

    monkeypatch.setattr(ledger_module.Ledger, "record_submit", locked)
    result = gen(tmp_path)
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.exit_code == 1, stderr  # type: ignore[attr-defined]
    assert "task task7777_flux2 was created" in stderr
    assert "flux2 status task7777_flux2 --wait --provider apiinone" in stderr
    assert "flux2 download task7777_flux2 --provider apiinone" in stderr
    assert len(httpx_mock.get_requests(method="POST")) == 1


def test_row55_answer_not_recorded_still_gives_json_readers_the_task(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    ledger_file()
    httpx_mock.add_response(
        method="POST",
        url=CREATE_URL,
        json={"code": 200, "data": {"task_id": "task7778_flux2", "status": "IN_PROGRESS"}},
    )

    def locked(self: object, *args: object, **kwargs: object) -> None:
        raise ledger_module.LedgerError("The ledger at X is locked by another process.")

    monkeypatch.setattr(ledger_module.Ledger, "record_submit", locked)
    result = run_cli(
        ["gen", "a red fox", "--provider", "apiinone", "-o", str(tmp_path) + "/", "--json"]
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout)["task_id"] == "task7778_flux2"
