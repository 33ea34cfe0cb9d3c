"""The batch run state: lock file v2, its journal, stable keys, endpoints, the run lock."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from flux2_cli.batch.lock import (
    FINISHED,
    SANDBOX_ENDPOINT,
    SUBMITTED,
    LockFile,
    LockWriteError,
    endpoint_id,
    file_sha256,
    hold_path,
    hold_run,
    journal_path,
    lock_path,
    run_lock_path,
)
from flux2_cli.batch.manifest import ManifestError, Problems, read_manifest
from flux2_cli.batch.plan import plan_entries, preflight
from flux2_cli.build import FLAG, Layer
from flux2_cli.context import Context
from tests.helpers import png_bytes

HERE = "apiinone https://api.example.com"


def make_ctx(**values: object) -> Context:
    return Context.create({"provider": "apiinone", **values})


def plan(manifest: Path, ctx: Context | None = None, **flags: object) -> list:  # type: ignore[type-arg]
    ctx = ctx or make_ctx()
    problems = Problems(manifest.name)
    entries = read_manifest(manifest, problems=problems)
    return plan_entries(ctx, ctx.provider(), manifest, entries, Layer(FLAG, flags), problems)


def finished(path: str, sha: str | None, fingerprint: str = "ab", endpoint: str = HERE) -> dict:  # type: ignore[type-arg]
    return {
        "state": FINISHED,
        "fingerprint": fingerprint,
        "endpoint": endpoint,
        "provider": "apiinone",
        "model": "flux-2",
        "task_id": "t1",
        "outputs": [{"path": path, "sha256": sha}],
    }


# --------------------------------------------------------------------------- lock file


def test_lock_file_round_trip_problems_and_sorted_stable_text(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    image = tmp_path / "out" / "fox.png"
    image.parent.mkdir()
    image.write_bytes(b"png bytes")
    lock = LockFile.load(lock_path(manifest))
    assert lock.path.name == "m.jsonl.lock.json"
    assert lock.problem("fox", "ab", HERE) == "new"
    lock.put("whale", finished("out/whale.png", "00", fingerprint="cd"))
    lock.put("fox", finished(lock.relative(str(image)), file_sha256(image)))
    assert not lock.path.exists() and lock.journal.exists()  # journal only until the fold
    lock.fold()
    assert not lock.journal.exists()
    data = json.loads(lock.path.read_text())
    assert data["version"] == 2 and list(data["entries"]) == ["fox", "whale"]  # sorted
    assert data["entries"]["fox"]["outputs"][0]["path"] == "out/fox.png"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    text = lock.path.read_text()

    again = LockFile.load(lock.path)
    assert again.problem("fox", "ab", HERE) is None
    assert again.problem("fox", "zz", HERE) == "changed"
    assert again.problem("renamed", "ab", HERE) is None  # found by its fingerprint
    assert again.problem("fox", "ab", SANDBOX_ENDPOINT) == (
        "stale: made on apiinone at https://api.example.com"
    )
    again.fold()
    assert lock.path.read_text() == text  # nothing changed: the same bytes
    image.write_bytes(b"edited")
    assert again.problem("fox", "ab", HERE) == "stale: out/fox.png has changed"
    image.unlink()
    assert again.problem("fox", "ab", HERE) == "missing: out/fox.png"


def test_a_sandbox_record_is_stale_for_a_real_endpoint(tmp_path: Path) -> None:
    lock = LockFile.load(tmp_path / "m.txt.lock.json")
    image = tmp_path / "a.png"
    image.write_bytes(b"x")
    lock.put("a", finished("a.png", file_sha256(image), endpoint=SANDBOX_ENDPOINT))
    assert lock.problem("a", "ab", SANDBOX_ENDPOINT) is None
    assert lock.problem("a", "ab", HERE) == "stale: made on the sandbox"


def test_endpoint_is_provider_and_origin_or_sandbox() -> None:
    assert endpoint_id("bfl", "https://api.bfl.ai/v1/") == "bfl https://api.bfl.ai"
    assert endpoint_id("bfl", "http://sandbox.flux2.invalid") == SANDBOX_ENDPOINT
    assert endpoint_id("sandbox", "http://127.0.0.1:9") == SANDBOX_ENDPOINT
    assert endpoint_id("apiinone", "http://127.0.0.1:8123") == "apiinone http://127.0.0.1:8123"


def test_unfinished_states_are_stale_with_their_reason(tmp_path: Path) -> None:
    lock = LockFile.load(tmp_path / "m.txt.lock.json")
    lock.put("a", {"state": SUBMITTED, "fingerprint": "ab", "endpoint": HERE, "task_id": "t9"})
    lock.put("b", {"state": "submitting", "fingerprint": "cd", "endpoint": HERE})
    assert lock.problem("a", "ab", HERE) == "stale: submitted as task t9, not finished"
    assert lock.problem("b", "cd", HERE) == "stale: outcome unknown (a POST got no answer)"


def test_damaged_lock_file_is_ignored_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl.lock.json"
    path.write_text("{not json")
    warnings: list[str] = []
    lock = LockFile.load(path, warn=warnings.append)
    assert lock.records == {} and "cannot be read" in warnings[0]


def test_version_1_lock_is_read_and_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "m.txt.lock.json"
    image = tmp_path / "out.png"
    image.write_bytes(b"x")
    old = {
        "version": 1,
        "entries": {
            "#1": {"line": 1, "fingerprint": "ab", "provider": "apiinone", "task_id": "t1",
                   "outputs": [{"path": "out.png", "sha256": file_sha256(image)}]},
            "#2": {"line": 2, "fingerprint": "cd", "provider": "apiinone",
                   "task_id": "sbx0123_flux2", "outputs": []},
        },
    }  # fmt: skip
    path.write_text(json.dumps(old))
    lock = LockFile.load(path)
    # Matched by fingerprint under its new key; a v1 record counts as made here, unless its
    # task was the sandbox's.
    assert lock.problem("a-red-fox-12345678", "ab", HERE) is None
    assert lock.problem("x", "cd", HERE) == "stale: made on the sandbox"
    lock.keep_only(["#1"])
    lock.fold()
    data = json.loads(path.read_text())
    assert data["version"] == 2
    assert data["entries"]["#1"]["state"] == FINISHED and "line" not in data["entries"]["#1"]


def test_lock_file_is_shareable_not_private(tmp_path: Path) -> None:
    """Regression: mkstemp's 0600 made the lock file, meant to be committed, private."""
    lock = LockFile.load(tmp_path / "m.txt.lock.json")
    lock.put("a", {"fingerprint": "ab", "outputs": []})
    lock.fold()
    assert stat.S_IMODE(lock.path.stat().st_mode) == 0o644
    lock.path.chmod(0o664)
    lock.put("b", {"fingerprint": "cd", "outputs": []})
    assert stat.S_IMODE(lock.journal.stat().st_mode) & 0o077 == 0o044  # shared, like the lock
    lock.fold()
    assert stat.S_IMODE(lock.path.stat().st_mode) == 0o664  # an existing mode is kept


# --------------------------------------------------------------------------- journal


def test_put_appends_one_journal_line_and_leaves_the_lock_file_alone(tmp_path: Path) -> None:
    lock = LockFile.load(tmp_path / "m.txt.lock.json")
    lock.put("a", {"fingerprint": "ab"})
    lock.fold()
    before = lock.path.read_bytes()
    for n in range(50):
        lock.put(f"k{n}", {"fingerprint": f"f{n}"})
    lock.put("k3", {"fingerprint": "f3"})  # unchanged: not written again
    assert lock.path.read_bytes() == before
    assert len(lock.journal.read_text().splitlines()) == 50


def test_a_killed_run_leaves_a_journal_that_the_next_load_applies(tmp_path: Path) -> None:
    lock = LockFile.load(tmp_path / "m.txt.lock.json")
    lock.put("a", {"fingerprint": "ab", "state": FINISHED})
    lock.fold()
    lock.put("b", {"fingerprint": "cd", "state": SUBMITTED, "task_id": "t2"})
    lock.put("a", {"fingerprint": "ab", "state": "failed"})
    lock.close()  # no fold: as after SIGKILL
    with journal_path(lock.path).open("a") as handle:
        handle.write('{"key": "c", "rec')  # a line torn by the kill
    again = LockFile.load(lock.path)
    assert again.records["b"]["task_id"] == "t2"
    assert again.records["a"]["state"] == "failed"
    assert "c" not in again.records
    again.fold()
    assert not again.journal.exists()
    assert json.loads(again.path.read_text())["entries"]["b"]["state"] == SUBMITTED


def test_journal_puts_from_many_threads_are_all_kept(tmp_path: Path) -> None:
    lock = LockFile.load(tmp_path / "m.txt.lock.json")

    def work(n: int) -> None:
        for i in range(20):
            lock.put(f"t{n}-{i}", {"fingerprint": f"{n}-{i}"})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lock.close()
    assert len(LockFile.load(lock.path).records) == 160


def test_issue15_puts_waiting_together_share_one_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At 64 workers each put queued behind the others' fsyncs under the lock's thread lock.
    lock = LockFile.load(tmp_path / "m.txt.lock.json")
    workers = 8
    synced: list[int] = []
    real_fsync = os.fsync

    def lines() -> int:
        return len(lock.journal.read_text().splitlines()) if lock.journal.exists() else 0

    def slow_first_fsync(fd: int) -> None:
        if not synced:
            # Hold the first fsync until every worker has written its line (bounded wait).
            waited = threading.Event()
            for _ in range(500):
                if lines() >= workers:
                    break
                waited.wait(0.01)
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_first_fsync)
    threads = [
        threading.Thread(target=lock.put, args=(f"k{n}", {"fingerprint": f"f{n}"}))
        for n in range(workers)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert lines() == workers
    assert len(synced) <= 2  # the first fsync, and one that covers every line behind it
    lock.close()
    assert len(LockFile.load(lock.path).records) == workers


def test_a_journal_that_cannot_be_synced_is_a_lock_write_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = LockFile.load(tmp_path / "m.txt.lock.json")

    def refuse(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", refuse)
    with pytest.raises(LockWriteError, match="No space left"):
        lock.put("a", {"fingerprint": "ab"})
    lock.close()


# --------------------------------------------------------------------------- keys


def test_keys_come_from_name_or_content_never_the_line(tmp_path: Path) -> None:
    """Regression: keys were line numbers; one inserted line rewrote every key."""
    manifest = tmp_path / "m.jsonl"
    lines = [{"prompt": "a red fox"}, {"prompt": "a blue whale", "name": "whale"}]
    lines += [{"prompt": f"tile {n}"} for n in range(18)]
    manifest.write_text("\n".join(json.dumps(line) for line in lines))
    before = {entry.fingerprint: entry.key for entry in plan(manifest)}
    manifest.write_text("\n".join(json.dumps(line) for line in [{"prompt": "new"}, *lines[::-1]]))
    after = plan(manifest)
    assert {entry.fingerprint: entry.key for entry in after if entry.key in before.values()} == (
        before
    )
    assert "whale" in before.values()


def test_identical_unnamed_lines_get_distinct_stable_keys(tmp_path: Path) -> None:
    manifest = tmp_path / "m.txt"
    manifest.write_text("a red fox\na red fox\nowl\n")
    first, second, third = plan(manifest)
    assert second.key == first.key + "-2" and third.key.startswith("owl-")


def test_a_command_line_default_changes_the_fingerprint_not_the_key(tmp_path: Path) -> None:
    manifest = tmp_path / "m.txt"
    manifest.write_text("a red fox\n")
    (square,) = plan(manifest, ratio="1:1")
    (wide,) = plan(manifest, ratio="16:9")
    assert square.key == wide.key and square.fingerprint != wide.fingerprint


# --------------------------------------------------------------------------- preflight


def test_preflight_creates_output_folders_before_anything_is_sent(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps({"prompt": "a red fox", "output": "deep/er/"})
        + "\n"
        + json.dumps({"prompt": "a blue whale", "output": "flat.png"})
        + "\n"
    )
    (tmp_path / "taken").write_text("a file where a folder should be")
    planned = plan(manifest, make_ctx(output_dir=str(tmp_path / "taken" / "out") + "/"))
    assert not (tmp_path / "deep").exists()
    preflight(planned[:2], manifest.name, create=True)
    assert (tmp_path / "deep" / "er").is_dir()


def test_preflight_names_an_output_that_cannot_be_a_folder(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where a folder should be")
    manifest = tmp_path / "m.txt"
    manifest.write_text("a red fox\n")
    planned = plan(manifest, make_ctx(output_dir=str(tmp_path / "taken" / "out") + "/"))
    with pytest.raises(ManifestError) as caught:
        preflight(planned, manifest.name, create=True)
    assert "line 1" in caught.value.message and "Nothing was sent" in caught.value.message


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="POSIX modes; root ignores them")
def test_preflight_refuses_a_read_only_output_folder(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    manifest = tmp_path / "m.txt"
    manifest.write_text("a red fox\n")
    planned = plan(manifest, make_ctx(output_dir=str(locked / "sub")))
    try:
        with pytest.raises(ManifestError, match=r"cannot be created|not writable"):
            preflight(planned, manifest.name, create=True)
    finally:
        locked.chmod(0o755)


def test_preflight_dry_run_creates_nothing(tmp_path: Path) -> None:
    manifest = tmp_path / "m.txt"
    manifest.write_text("a red fox\n")
    planned = plan(manifest, make_ctx(output_dir=str(tmp_path / "later")))
    preflight(planned, manifest.name, create=False)
    assert not (tmp_path / "later").exists()


# --------------------------------------------------------------------------- run lock


@pytest.mark.parametrize("stdin", [False, True], ids=["file", "stdin-with-lock"])
def test_the_run_lock_makes_a_second_run_wait_with_a_notice(tmp_path: Path, stdin: bool) -> None:
    manifest = tmp_path / "m.txt"
    manifest.write_text("a\n")
    # `batch - --lock PATH`: the guard sits beside the named lock file; the notice said "of -".
    lock = tmp_path / "state.lock.json" if stdin else None
    held = hold_path(Path("-"), lock) if stdin else run_lock_path(manifest)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, filelock; lock = filelock.FileLock(sys.argv[1]); lock.acquire();"
            " print('held', flush=True); sys.stdin.read()",
            str(held),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        notices: list[str] = []
        entered = threading.Event()

        def second() -> None:
            with hold_run(Path("-") if stdin else manifest, notices.append, path=held):
                entered.set()

        thread = threading.Thread(target=second, daemon=True)
        thread.start()
        assert not entered.wait(0.5)  # waiting, not running
        name = "the same lock file" if stdin else "m.txt"
        assert notices and f"another flux2 batch of {name} is running" in notices[0]
        assert holder.stdin is not None
        holder.stdin.close()  # the first run ends
        assert entered.wait(10)
        thread.join(10)
    finally:
        holder.kill()
        holder.wait()


def test_keys_and_fingerprints_are_the_same_in_another_checkout(tmp_path: Path) -> None:
    """A CI runner checks the workspace out elsewhere: relative refs and outputs become other
    absolute paths, and neither the key nor the fingerprint may change with them."""
    for where in ("one", "two"):
        folder = tmp_path / where
        (folder / "refs").mkdir(parents=True)
        (folder / "refs" / "a.png").write_bytes(png_bytes(color=(1, 2, 3)))
        (folder / "m.jsonl").write_text(
            json.dumps({"prompt": "a red fox", "refs": ["refs/a.png"], "output": "art/"}) + "\n"
        )
    (one,) = plan(tmp_path / "one" / "m.jsonl", make_ctx(provider="bfl"))
    (two,) = plan(tmp_path / "two" / "m.jsonl", make_ctx(provider="bfl"))
    assert one.request.refs != two.request.refs  # absolute, from each manifest's folder
    assert (one.key, one.fingerprint) == (two.key, two.fingerprint)
    (tmp_path / "two" / "refs" / "a.png").write_bytes(png_bytes(color=(9, 9, 9)))
    (changed,) = plan(tmp_path / "two" / "m.jsonl", make_ctx(provider="bfl"))
    assert changed.key == one.key and changed.fingerprint != one.fingerprint


# --------------------------------------------------------------------------- stopping


def test_a_stop_waits_for_the_answer_of_a_post_in_flight_to_be_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM leaves the files complete: a POST already sent gets its answer written down."""
    from flux2_cli import jobs
    from flux2_cli.batch.decide import Action, Decision
    from flux2_cli.batch.runner import BatchOptions, Runner
    from flux2_cli.task import Task, TaskStatus

    manifest = tmp_path / "m.txt"
    manifest.write_text("a red fox\n")
    ctx = make_ctx()
    (entry,) = plan(manifest, ctx)
    lock = LockFile.load(lock_path(manifest))
    runner = Runner(ctx, ctx.provider(), BatchOptions(manifest=manifest), lock=lock, endpoint=HERE)
    sent, answer = threading.Event(), threading.Event()

    def slow_submit(*args: object, **kwargs: object) -> Task:
        sent.set()
        assert answer.wait(10)
        return Task(task_id="t42", provider="apiinone", status=TaskStatus.RUNNING)

    monkeypatch.setattr(jobs, "submit", slow_submit)
    worker = threading.Thread(target=runner._submit, args=(Decision(entry, Action.SUBMIT),))
    worker.start()
    assert sent.wait(10)
    assert lock.records[entry.key]["state"] == "submitting"
    runner.stop.set()
    assert not runner.drain(grace=0)  # the answer is not in yet
    answer.set()
    assert runner.drain(grace=10)
    worker.join(10)
    assert lock.records[entry.key]["state"] == SUBMITTED
    assert lock.records[entry.key]["task_id"] == "t42"
    ctx.close()


def test_the_lock_file_text_is_sorted_with_the_version_first(tmp_path: Path) -> None:
    lock = LockFile.load(tmp_path / "m.txt.lock.json")
    lock.put(
        "b", {"state": FINISHED, "fingerprint": "cd", "outputs": [{"sha256": "x", "path": "p"}]}
    )
    lock.put("a", {"fingerprint": "ab", "state": FINISHED})
    lock.fold()
    text = lock.path.read_text()
    assert text.splitlines()[1] == '  "version": 2,'
    assert text.index('"a"') < text.index('"b"')
    b = text[text.index('"b"') :]
    assert b.index('"fingerprint": "cd"') < b.index('"outputs"') < b.index('"state"')
    assert b.index('"path": "p"') < b.index('"sha256": "x"')


def test_lookup_by_fingerprint_follows_every_change(tmp_path: Path) -> None:
    lock = LockFile.load(tmp_path / "m.txt.lock.json")
    lock.put("old-name", {"fingerprint": "ab", "state": FINISHED})
    assert lock.lookup("new-name", "ab") == ("old-name", {"fingerprint": "ab", "state": FINISHED})
    lock.put("other", {"fingerprint": "cd", "state": FINISHED})
    assert lock.lookup("new-name", "cd") is not None  # the index saw the new record
    lock.keep_only(["other"])
    assert lock.lookup("new-name", "ab") is None
    lock.replace({"z": {"fingerprint": "ef"}})
    assert lock.lookup("y", "ef") == ("z", {"fingerprint": "ef"})
    assert lock.lookup("y", "cd") is None
