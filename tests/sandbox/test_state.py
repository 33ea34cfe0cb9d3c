"""State on disk: atomic task files, balances under a lock, and sharing between processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from flux2_cli.providers.sandbox import SANDBOX_BASE_URL
from flux2_cli.sandbox.embedded import SandboxTransport, transport
from flux2_cli.sandbox.settings import SandboxSettings
from flux2_cli.sandbox.state import StateStore, key_fingerprint, safe_name
from tests.sandbox.conftest import BEARER, Clock

ROOT = Path(__file__).resolve().parents[2]


def test_tasks_round_trip_and_unsafe_ids_are_refused(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save_task({"id": "abc_1", "x": 1})
    assert store.load_task("abc_1") == {"id": "abc_1", "x": 1}
    assert store.load_task("missing") is None
    assert store.load_task("../abc_1") is None
    assert store.task_ids() == ["abc_1"]
    assert not any(p.name.endswith(".tmp") for p in (tmp_path / "tasks").iterdir())
    assert not safe_name("..") and not safe_name("a/b") and safe_name("task-1_0.png")


def test_a_corrupt_task_file_reads_as_unknown(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "bad.json").write_text("{not json")
    assert store.load_task("bad") is None


def test_charge_and_balance(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    who = key_fingerprint("k")
    assert store.balance(who, 10) == 10
    assert store.charge(who, 7, 10) == (True, 3)
    assert store.charge(who, 7, 10) == (False, 3)
    assert store.balance(who, 10) == 3
    assert "k" not in json.loads((tmp_path / "balances.json").read_text())


def test_first_time_tokens(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    assert store.first_time("t", 1.0)
    assert not store.first_time("t", 2.0)
    assert StateStore(tmp_path).first_time("u", 3.0)


def test_another_transport_on_the_same_folder_sees_the_task(tmp_path: Path) -> None:
    clock = Clock()
    settings = SandboxSettings(latency=1.0, state_dir=tmp_path, clock=clock)
    one = httpx.Client(transport=SandboxTransport(settings), base_url=SANDBOX_BASE_URL)
    two = httpx.Client(transport=SandboxTransport(settings), base_url=SANDBOX_BASE_URL)
    created = one.post("/api/v1/images/generations", json={"prompt": "abc"}, headers=BEARER)
    task_id = created.json()["data"]["task_id"]
    clock.advance(2)
    data = two.get(f"/api/v1/tasks/{task_id}", headers=BEARER).json()["data"]
    assert data["status"] == "COMPLETED"
    assert one.get(data["images"][0]["url"]).content == two.get(data["images"][0]["url"]).content


CREATE_IN_A_CHILD = textwrap.dedent(
    """
    import httpx, sys
    from flux2_cli.sandbox.embedded import transport
    client = httpx.Client(transport=transport(), base_url="http://sandbox.flux2.invalid")
    answer = client.post("/api/v1/images/generations", json={"prompt": "from a child"},
                         headers={"Authorization": "Bearer child"})
    print(answer.json()["data"]["task_id"])
    """
)


def _child_env(state: Path) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.update(
        FLUX2_SANDBOX_DIR=str(state),
        FLUX2_SANDBOX_LATENCY="0",
        FLUX2_SANDBOX_FAULTS="",
        PYTHONPATH=str(ROOT),
    )
    return env


def test_a_task_made_by_another_process_is_polled_and_downloaded_here(tmp_path: Path) -> None:
    child = subprocess.run(
        [sys.executable, "-c", CREATE_IN_A_CHILD],
        env=_child_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    task_id = child.stdout.strip().splitlines()[-1]
    settings = SandboxSettings(latency=0, state_dir=tmp_path)  # the child said latency 0
    client = httpx.Client(transport=transport(settings), base_url=SANDBOX_BASE_URL)
    data = client.get(f"/api/v1/tasks/{task_id}", headers=BEARER).json()["data"]
    assert data["status"] == "COMPLETED"
    assert client.get(data["images"][0]["url"]).content.startswith(b"\x89PNG")


CHARGE_IN_A_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from flux2_cli.sandbox.state import StateStore
    store = StateStore(Path(sys.argv[1]))
    for _ in range(40):
        store.charge("shared", 1, 1000)
    """
)


def test_balances_survive_concurrent_processes(tmp_path: Path) -> None:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHARGE_IN_A_CHILD, str(tmp_path)], env=_child_env(tmp_path)
        )
        for _ in range(4)
    ]
    try:
        for child in children:
            assert child.wait(timeout=60) == 0
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    assert StateStore(tmp_path).balance("shared", 1000) == 1000 - 4 * 40


def test_issue15_state_writes_are_atomic_without_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fsync (file and folder) was a third of the server's work per task, on its event loop.
    synced: list[int] = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    store = StateStore(tmp_path)
    store.save_task({"id": "t1", "prompt": "a"})
    store.charge("fp", 5, 100)
    store.write_image("t1.png", b"\x89PNG")
    assert synced == []
    assert store.load_task("t1") == {"id": "t1", "prompt": "a"}
    assert store.read_image("t1.png") == b"\x89PNG"

    def refuse(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError):
        store.save_task({"id": "t1", "prompt": "b"})
    assert store.load_task("t1") == {"id": "t1", "prompt": "a"}
    assert sorted(path.name for path in (tmp_path / "tasks").iterdir()) == ["t1.json"]
