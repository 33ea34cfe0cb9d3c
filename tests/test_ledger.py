"""Tests for the SQLite ledger: round trips, queries, intents, concurrency and bad files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from flux2_cli.errors import Flux2Error
from flux2_cli.ledger import SCHEMA_VERSION, Ledger, LedgerError
from flux2_cli.task import Cost, ImageResult, Task, TaskError, TaskStatus

REPO_ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 21, 10, 0, 0, tzinfo=timezone.utc)


class Clock:
    """A hand-driven clock: each call returns the current time, then steps one second."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        moment = self.now
        self.now += timedelta(seconds=1)
        return moment


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(tmp_path: Path, clock: Clock) -> Iterator[Ledger]:
    with Ledger(tmp_path / "ledger.sqlite3", clock=clock) as opened:
        yield opened


def full_task(task_id: str = "task-1", **changes: object) -> Task:
    task = Task(
        task_id=task_id,
        provider="apiinone",
        status=TaskStatus.SUCCEEDED,
        raw_status="SUCCESS",
        unknown_status=None,
        model="flux-2",
        created_at=datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=timezone.utc),
        expires_at=datetime(2026, 11, 22, 12, 0, 0, tzinfo=timezone(timedelta(hours=2))),
        images=(
            ImageResult(
                url="https://cdn.example/a.png?sig=1",
                path="/data/out/red-fox-3f9a1c2e.png",
                bytes=123456,
                sha256="ab" * 32,
                width=1920,
                height=1080,
                format="png",
            ),
            ImageResult(url="https://cdn.example/b.png?sig=1"),
        ),
        cost=Cost(credits=5, usd=0.05),
        error=None,
        request={
            "prompt": "a red fox — 狐",
            "ratio": "16:9",
            "res": "1K",
            "mode": "pro",
            "seed": 7,
        },
        poll_url="https://api.example/v1/tasks/task-1",
        base_url="https://api.example",
        extra={"queue_position": 3},
    )
    return task.evolve(**changes)


def test_round_trip_of_a_full_task(ledger: Ledger) -> None:
    task = full_task()
    ledger.record_submit(task, profile="work", fingerprint="fp1", batch_key="m.jsonl#3")

    entry = ledger.get("task-1")

    assert entry is not None
    assert entry.task == task
    assert entry.task.to_json() == task.to_json()
    assert (entry.task.poll_url, entry.task.base_url, entry.task.raw_status) == (
        task.poll_url,
        task.base_url,
        "SUCCESS",
    )
    assert entry.profile == "work"
    assert entry.fingerprint == "fp1"
    assert entry.batch_key == "m.jsonl#3"
    assert entry.submitted_at == T0
    assert entry.downloaded is False  # the second image has no path yet


def test_round_trip_of_a_failed_task_with_nulls(ledger: Ledger) -> None:
    task = Task(
        task_id="t-fail",
        provider="bfl",
        status=TaskStatus.FAILED,
        unknown_status="Content Moderated",
        error=TaskError(code=None, message="moderated"),
        cost=Cost(credits=None, usd=0.125),
    )
    ledger.record_submit(task)

    entry = ledger.get("t-fail", "bfl")

    assert entry is not None
    assert entry.task == task
    assert entry.task.to_json()["error"] == {"code": None, "message": "moderated"}


def test_record_submit_is_idempotent_and_keeps_the_first_submit_time(ledger: Ledger) -> None:
    queued = Task(task_id="t", provider="apiinone", request={"prompt": "abc"})
    ledger.record_submit(queued, fingerprint="fp")
    ledger.record_submit(queued.evolve(status=TaskStatus.RUNNING), profile="p")

    entries = ledger.history(limit=None)

    assert len(entries) == 1
    assert entries[0].task.status is TaskStatus.RUNNING
    assert entries[0].submitted_at == T0
    assert entries[0].updated_at > T0
    assert (entries[0].fingerprint, entries[0].profile) == ("fp", "p")


def test_update_then_get_merges_the_new_look_up(ledger: Ledger) -> None:
    ledger.record_submit(
        Task(task_id="t", provider="apiinone", model="flux-2", request={"prompt": "abc"})
    )
    poll = Task(
        task_id="t",
        provider="apiinone",
        status=TaskStatus.SUCCEEDED,
        raw_status="done",
        expires_at=T0 + timedelta(hours=24),
        images=(ImageResult(url="https://cdn/x.png"),),
        cost=Cost(credits=2),
    )
    ledger.update(poll)

    entry = ledger.get("t")

    assert entry is not None
    assert entry.task.status is TaskStatus.SUCCEEDED
    assert entry.task.raw_status == "done"
    assert entry.task.images == (ImageResult(url="https://cdn/x.png"),)
    assert entry.task.cost == Cost(credits=2)
    assert entry.task.expires_at == T0 + timedelta(hours=24)
    # facts the poll did not carry survive
    assert entry.task.request == {"prompt": "abc"}
    assert entry.task.model == "flux-2"


def test_update_never_turns_a_final_status_back(ledger: Ledger) -> None:
    ledger.record_submit(Task(task_id="t", provider="p", status=TaskStatus.SUCCEEDED))
    ledger.update(Task(task_id="t", provider="p", status=TaskStatus.RUNNING))

    entry = ledger.get("t")

    assert entry is not None
    assert entry.task.status is TaskStatus.SUCCEEDED


def test_mark_downloaded_stores_paths_and_they_survive_resigned_urls(ledger: Ledger) -> None:
    task = full_task(images=(ImageResult(url="https://cdn/a.png?sig=1"),))
    ledger.record_submit(task)
    saved = ImageResult(
        url="https://cdn/a.png?sig=1",
        path="/out/a.png",
        bytes=10,
        sha256="cd" * 32,
        width=4,
        height=3,
        format="png",
    )
    ledger.mark_downloaded(task.evolve(images=(saved,)))
    ledger.update(task.evolve(images=(ImageResult(url="https://cdn/a.png?sig=2"),)))

    entry = ledger.get("task-1")

    assert entry is not None
    assert entry.downloaded is True
    (image,) = entry.task.images
    assert image.url == "https://cdn/a.png?sig=2"
    assert (image.path, image.sha256, image.bytes) == ("/out/a.png", "cd" * 32, 10)


def test_get_unknown_and_newest_when_ids_clash(ledger: Ledger) -> None:
    assert ledger.get("nope") is None
    ledger.record_submit(Task(task_id="same", provider="apiinone"))
    ledger.record_submit(Task(task_id="same", provider="bfl"))

    newest = ledger.get("same")
    older = ledger.get("same", "apiinone")

    assert newest is not None and newest.task.provider == "bfl"
    assert older is not None and older.task.provider == "apiinone"


def test_history_is_newest_first_and_limited(ledger: Ledger) -> None:
    for n in range(5):
        ledger.record_submit(Task(task_id=f"t{n}", provider="p"))

    assert [e.task.task_id for e in ledger.history(limit=3)] == ["t4", "t3", "t2"]
    assert len(ledger.history(limit=None)) == 5
    assert ledger.history(limit=0) == []


def test_history_pending_only(ledger: Ledger) -> None:
    now = T0 + timedelta(hours=1)
    later = now + timedelta(hours=1)
    earlier = now - timedelta(minutes=1)
    url = (ImageResult(url="https://cdn/x.png"),)
    saved = (ImageResult(url="https://cdn/x.png", path="x.png"),)
    cases = {
        "queued": Task(task_id="queued", provider="p"),
        "running": Task(task_id="running", provider="p", status=TaskStatus.RUNNING),
        "ready": Task(
            task_id="ready", provider="p", status=TaskStatus.SUCCEEDED, images=url, expires_at=later
        ),
        "no-expiry": Task(
            task_id="no-expiry", provider="p", status=TaskStatus.SUCCEEDED, images=url
        ),
        "saved": Task(task_id="saved", provider="p", status=TaskStatus.SUCCEEDED, images=saved),
        "stale": Task(
            task_id="stale",
            provider="p",
            status=TaskStatus.SUCCEEDED,
            images=url,
            expires_at=earlier,
        ),
        "failed": Task(task_id="failed", provider="p", status=TaskStatus.FAILED),
        "expired": Task(task_id="expired", provider="p", status=TaskStatus.EXPIRED),
    }
    for task in cases.values():
        ledger.record_submit(task)

    pending = ledger.history(limit=None, pending_only=True, now=now)

    assert [e.task.task_id for e in pending] == ["no-expiry", "ready", "running", "queued"]


def test_downloadable_excludes_expired_downloaded_and_unfinished(ledger: Ledger) -> None:
    now = T0 + timedelta(hours=1)
    url = (ImageResult(url="https://cdn/x.png"),)
    ledger.record_submit(Task(task_id="running", provider="p", status=TaskStatus.RUNNING))
    ledger.record_submit(
        Task(
            task_id="ok",
            provider="p",
            status=TaskStatus.SUCCEEDED,
            images=url,
            expires_at=now + timedelta(seconds=1),
        )
    )
    ledger.record_submit(
        Task(
            task_id="at-expiry",
            provider="p",
            status=TaskStatus.SUCCEEDED,
            images=url,
            expires_at=now,
        )
    )
    ledger.record_submit(
        Task(task_id="no-expiry", provider="p", status=TaskStatus.SUCCEEDED, images=url)
    )
    done = Task(task_id="done", provider="p", status=TaskStatus.SUCCEEDED, images=url)
    ledger.record_submit(done)
    ledger.mark_downloaded(done.evolve(images=(ImageResult(url="https://cdn/x.png", path="x"),)))

    ids = [e.task.task_id for e in ledger.downloadable(now=now)]

    assert ids == ["no-expiry", "ok"]


def test_find_by_fingerprint_returns_the_newest(ledger: Ledger) -> None:
    assert ledger.find_by_fingerprint("fp") is None
    ledger.record_submit(Task(task_id="a", provider="p"), fingerprint="fp", batch_key="m#1")
    ledger.record_submit(Task(task_id="b", provider="p"), fingerprint="other")
    ledger.record_submit(Task(task_id="c", provider="p"), fingerprint="fp", batch_key="m#1")

    found = ledger.find_by_fingerprint("fp")
    by_key = ledger.find_by_batch_key("m#1")

    assert found is not None and found.task.task_id == "c"
    assert by_key is not None and by_key.task.task_id == "c"


def test_intents_stay_open_until_a_submit_or_close(ledger: Ledger) -> None:
    args = {"provider": "apiinone", "base_url": "https://api.example", "batch_key": "m#1"}
    first = ledger.record_intent("fp", request={"prompt": "abc"}, **args)
    second = ledger.record_intent("fp", request={"prompt": "abc"}, **args)
    third = ledger.record_intent("fp", request={"prompt": "abc"}, **args)
    ledger.record_intent("other", request={"prompt": "xyz"}, **args)

    assert ledger.open_intents("fp") == [first, second, third]

    ledger.record_submit(Task(task_id="t", provider="apiinone"), fingerprint="fp", intent_id=first)
    ledger.close_intent(third)

    assert ledger.open_intents("fp") == [second]
    assert ledger.open_intents("unknown") == []


def test_wal_mode_is_on(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    Ledger(path).close()

    conn = sqlite3.connect(path)
    try:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()

    assert mode == "wal"
    assert version == SCHEMA_VERSION


def test_default_path_is_in_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX2_DATA_DIR", str(tmp_path / "data" / "nested"))

    with Ledger() as ledger:
        ledger.record_submit(Task(task_id="t", provider="p"))

    assert (tmp_path / "data" / "nested" / "ledger.sqlite3").is_file()


def test_reopening_keeps_rows(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    with Ledger(path) as ledger:
        ledger.record_submit(full_task())
    with Ledger(path) as ledger:
        entry = ledger.get("task-1")

    assert entry is not None and entry.task == full_task()


def test_closed_ledger_raises_a_clear_error(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    ledger.close()
    ledger.close()

    with pytest.raises(LedgerError, match="closed"):
        ledger.get("x")


def test_corrupted_file_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    path.write_bytes(b"this is not a database, just some bytes\n" * 200)

    with pytest.raises(Flux2Error) as caught:
        Ledger(path)

    assert isinstance(caught.value, LedgerError)
    assert str(path) in caught.value.message
    assert caught.value.hints  # tells the user what to do


def test_foreign_sqlite_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (name TEXT)")
    conn.commit()
    conn.close()

    with pytest.raises(LedgerError, match="not a flux2 ledger"):
        Ledger(path)

    conn = sqlite3.connect(path)
    try:
        tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master")]
    finally:
        conn.close()
    assert tables == ["photos"]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    Ledger(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()

    with pytest.raises(LedgerError, match="newer flux2"):
        Ledger(path)


def test_a_lock_held_too_long_gives_a_clear_error(ledger: Ledger) -> None:
    assert ledger._conn is not None
    ledger._conn.execute("PRAGMA busy_timeout = 0")  # fail at once instead of after 10 s
    other = sqlite3.connect(ledger.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(LedgerError, match="locked by another process"):
            ledger.record_submit(Task(task_id="t", provider="p"))
        other.execute("ROLLBACK")
    finally:
        other.close()

    ledger.record_submit(Task(task_id="t", provider="p"))  # usable again once released
    assert ledger.get("t") is not None


def test_threads_share_one_ledger(ledger: Ledger) -> None:
    def write(prefix: str) -> Callable[[], None]:
        def run() -> None:
            for n in range(25):
                ledger.record_submit(Task(task_id=f"{prefix}-{n}", provider="p"))
                ledger.update(
                    Task(task_id=f"{prefix}-{n}", provider="p", status=TaskStatus.RUNNING)
                )

        return run

    threads = [threading.Thread(target=write(f"w{k}")) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    entries = ledger.history(limit=None)
    assert len(entries) == 100
    assert {e.task.status for e in entries} == {TaskStatus.RUNNING}


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from flux2_cli.ledger import Ledger
    from flux2_cli.task import Task, TaskStatus

    path, tag = Path(sys.argv[1]), sys.argv[2]
    with Ledger(path) as ledger:
        print("ready", flush=True)
        sys.stdin.readline()  # the barrier: both writers start together
        for n in range(50):
            task = Task(task_id=f"{tag}-{n}", provider="sandbox")
            ledger.record_submit(task, fingerprint=tag)
            ledger.update(task.evolve(status=TaskStatus.RUNNING))
    print("done", flush=True)
    """
)


def test_row50_two_processes_share_the_ledger(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), tag],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for tag in ("a", "b")
    ]
    try:
        for writer in writers:
            assert writer.stdout is not None
            assert writer.stderr is not None
            line = writer.stdout.readline()
            assert line.strip() == "ready", writer.stderr.read()
        for writer in writers:  # release both before waiting on either
            assert writer.stdin is not None
            writer.stdin.write("go\n")
            writer.stdin.flush()
        outcomes = [writer.communicate(timeout=60) for writer in writers]
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()

    for writer, (out, err) in zip(writers, outcomes, strict=True):
        assert writer.returncode == 0, err
        assert "done" in out
    with Ledger(path) as ledger:
        entries = ledger.history(limit=None)
    ids = {e.task.task_id for e in entries}
    assert ids == {f"{tag}-{n}" for tag in ("a", "b") for n in range(50)}
    assert {e.task.status for e in entries} == {TaskStatus.RUNNING}


@pytest.mark.skipif(os.name == "nt", reason="POSIX file modes")
def test_a_new_ledger_is_private_to_its_user(tmp_path: Path) -> None:
    # It holds signed image URLs (secrets until they expire) and every prompt.
    old_umask = os.umask(0o022)
    try:
        folder = tmp_path / "data" / "flux2"
        with Ledger(folder / "ledger.sqlite3") as opened:
            opened.record_submit(full_task())
            files = [path for path in folder.iterdir() if path.name.startswith("ledger.sqlite3")]
            assert any(path.name.endswith("-wal") for path in files)
            for path in files:
                assert path.stat().st_mode & 0o077 == 0, (path.name, oct(path.stat().st_mode))
        assert folder.stat().st_mode & 0o077 == 0
    finally:
        os.umask(old_umask)


def test_resolve_takes_exact_ids_prefixes_short_ids_and_last(tmp_path: Path) -> None:
    from flux2_cli.errors import UsageError

    with Ledger(tmp_path / "l.sqlite3") as ledger:
        for task_id in (
            "sbx6e208ca2a1_flux2",
            "sbx6e2ff84e0c_flux2",
            "task_01KFG5BBFNK1YQDTJDZY0P0QT2",
        ):
            ledger.record_submit(Task(task_id=task_id, provider="apiinone"))

        def resolved(ref: str) -> str | None:
            entry = ledger.resolve(ref)
            return entry.task.task_id if entry else None

        assert resolved("sbx6e208ca2a1_flux2") == "sbx6e208ca2a1_flux2"
        assert resolved("sbx6e208") == "sbx6e208ca2a1_flux2"
        assert resolved("6e2ff84e") == "sbx6e2ff84e0c_flux2"  # the short form's prefix
        assert resolved("K1YQDTJD") == "task_01KFG5BBFNK1YQDTJDZY0P0QT2"  # any case
        assert resolved("last") == "task_01KFG5BBFNK1YQDTJDZY0P0QT2"
        assert resolved("zzzzzzzz") is None
        with pytest.raises(UsageError, match="matches 2 tasks"):
            ledger.resolve("sbx6e2")
        with pytest.raises(UsageError, match="at least 6"):
            ledger.resolve("sbx6e")
        assert ledger.near_ids("sbx6e208ca2a1_flux3")[0] == "sbx6e208ca2a1_flux2"
        assert ledger.near_ids("sbx6e208cb")[0] == "sbx6e208ca2a1_flux2"  # a mistyped prefix
        assert ledger.near_ids("k1yqdtjx")[0] == "task_01KFG5BBFNK1YQDTJDZY0P0QT2"  # short id


def test_mark_gone_leaves_a_task_out_of_downloadable(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.sqlite3") as ledger:
        task = Task(
            task_id="t1",
            provider="apiinone",
            status=TaskStatus.SUCCEEDED,
            images=(ImageResult(url="https://x/a.png"),),
        )
        ledger.record_submit(task)
        assert [e.task.task_id for e in ledger.downloadable()] == ["t1"]
        ledger.mark_gone(task)
        assert ledger.downloadable() == []
        # a later look-up saying "succeeded" again does not bring it back
        ledger.update(task)
        assert ledger.downloadable() == []
