"""``flux2 batch`` in-process: a fake API in One behind pytest-httpx, per-thread fake clocks."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from tests.helpers import png_bytes, run_cli

BASE = "https://apiin.one"
CREATE_URL = f"{BASE}/api/v1/images/generations"
CDN = "https://cdn.apiin.one/out"


class ThreadClock:
    """A fake clock per thread: each worker's sleeps advance only its own time.

    install_fake_time's one shared clock lets one worker's sleeps eat another's --timeout, which
    would make these tests depend on thread scheduling; separate timelines keep them exact.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self.sleeps: list[float] = []

    def _now(self) -> float:
        return float(getattr(self._local, "now", 1000.0))

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self._local.now = self._now() + seconds

    def monotonic(self) -> float:
        return self._now()

    def time(self) -> float:
        return self._now()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ThreadClock:
    fake = ThreadClock()
    monkeypatch.setattr("flux2_cli.context.time", fake)
    return fake


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch, sentinel_key: str) -> str:
    monkeypatch.setenv("FLUX2_API_KEY", sentinel_key)
    return sentinel_key


@dataclass
class FakeApi:
    """API in One as far as batch needs it, thread-safe, counting what it is asked.

    Prompts steer it: "reject" answers 400, "explode" 500, "forever" never finishes. A task
    completes on its ``polls_to_finish``-th poll. With ``limit`` set, a create while ``limit``
    tasks are in flight answers 429 (a server-side concurrency cap).
    """

    polls_to_finish: int = 2
    limit: int | None = None
    hold_until_429: bool = False
    refuse_first_creates: int = 0
    retry_after: str | None = None
    image: bytes = field(default_factory=lambda: png_bytes(32, 24))
    lock: threading.Lock = field(default_factory=threading.Lock)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    creates: int = 0
    polls: int = 0
    images: int = 0
    rejected_429: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    saw_429: threading.Event = field(default_factory=threading.Event)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return self._create(request)
        url = str(request.url)
        if url.startswith(CDN):
            with self.lock:
                self.images += 1
            return httpx.Response(200, content=self.image, headers={"Content-Type": "image/png"})
        return self._poll(url.rsplit("/", 1)[-1])

    def _create(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        with self.lock:
            if "reject" in body["prompt"]:
                return httpx.Response(400, json={"code": 400, "message": "prompt refused"})
            if "explode" in body["prompt"]:
                return httpx.Response(500, json={"code": 500, "message": "internal error"})
            over = self.limit is not None and self.in_flight >= self.limit
            if over or self.refuse_first_creates > 0:
                self.refuse_first_creates -= 1
                self.rejected_429 += 1
                self.saw_429.set()
                headers = {"Retry-After": self.retry_after} if self.retry_after else {}
                return httpx.Response(
                    429, json={"code": 429, "message": "too many tasks"}, headers=headers
                )
            self.creates += 1
            task_id = f"task{self.creates:04d}_flux2"
            self.tasks[task_id] = {"prompt": body["prompt"], "polls": 0, "done": False}
            # A task that never finishes is abandoned by the client at --timeout (its slot is
            # rightly reused) but would stay "in flight" here forever: it is not counted.
            if "forever" not in body["prompt"]:
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
        return httpx.Response(
            200, json={"code": 200, "data": {"task_id": task_id, "status": "IN_PROGRESS"}}
        )

    def _poll(self, task_id: str) -> httpx.Response:
        if self.hold_until_429:
            # Tasks may not finish before the cap has bitten once (bounded: a safety net only).
            self.saw_429.wait(timeout=10)
        with self.lock:
            self.polls += 1
            task = self.tasks.get(task_id)
            if task is None:
                return httpx.Response(404, json={"code": 404, "message": "Task not found"})
            task["polls"] += 1
            finished = "forever" not in task["prompt"] and task["polls"] >= self.polls_to_finish
            if finished and not task["done"]:
                task["done"] = True
                self.in_flight -= 1
        if not finished:
            return httpx.Response(
                200, json={"code": 200, "data": {"task_id": task_id, "status": "IN_PROGRESS"}}
            )
        data = {"task_id": task_id, "status": "COMPLETED", "images": [{"url": f"{CDN}/{task_id}"}]}
        return httpx.Response(200, json={"code": 200, "data": data})


def serve(httpx_mock: HTTPXMock, api: FakeApi) -> FakeApi:
    httpx_mock.add_callback(api, is_reusable=True, is_optional=True)
    return api


def write_manifest(path: Path, prompts: list[str] | list[dict[str, Any]]) -> Path:
    lines = [json.dumps(p if isinstance(p, dict) else {"prompt": p}) for p in prompts]
    path.write_text("\n".join(lines) + "\n")
    return path


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def batch(*args: str) -> Any:
    return run_cli(["batch", *args, "--provider", "apiinone"])


def images_in(folder: Path) -> list[Path]:
    return sorted(path for path in folder.glob("*.png") if not path.name.startswith("."))


# --------------------------------------------------------------------------- reliability rows


def test_row47_batch_of_100_one_400_one_timeout_rest_finish_exit5_rerun_skips_finished(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: ThreadClock, api_key: str
) -> None:
    api = serve(httpx_mock, FakeApi())
    prompts = [f"asset number {n}" for n in range(100)]
    prompts[10] = "please reject this one"
    prompts[20] = "runs forever and ever"
    manifest = write_manifest(tmp_path / "assets.jsonl", prompts)
    out = tmp_path / "out"
    args = [str(manifest), "-o", str(out), "--json", "-c", "8", "--timeout", "30"]

    result = batch(*args)

    assert result.exit_code == 5, result.stderr
    lines = json_lines(result.stdout)
    entries, summary = lines[:-1], lines[-1]
    assert sorted(line["entry"] for line in entries) == list(range(1, 101))
    states = {line["entry"]: line for line in entries}
    assert states[11]["status"] == "failed" and states[11]["task"] is None
    assert (
        states[11]["error"]["exit_code"] == 2 and "prompt refused" in states[11]["error"]["message"]
    )
    # A timeout is counted as timed out, not failed: the task goes on and resumes next time.
    assert states[21]["status"] == "timed_out" and states[21]["error"]["code"] == "timeout"
    assert states[21]["task"]["status"] == "running"
    done = [line for line in entries if line["status"] == "done"]
    assert len(done) == 98
    assert all(line["task"]["status"] == "succeeded" and line["error"] is None for line in done)
    assert summary == {
        "summary": True,
        "total": 100,
        "done": 98,
        "reused": 0,
        "skipped": 0,
        "failed": 1,
        "timed_out": 1,
        "unknown": 0,
        "credits": 98 * 5,
        "wall_seconds": summary["wall_seconds"],
        "failed_entries": [states[11]["key"], states[21]["key"]],  # by line
        "sandbox": False,
    }
    assert "2 of 100 entries did not succeed (1 failed, 1 timed out)" in result.stderr
    assert "(line 11)" in result.stderr and "(line 21)" in result.stderr
    assert len(images_in(out)) == 98
    assert api.creates == 99 and api.max_in_flight <= 8
    assert api_key not in result.stdout + result.stderr

    # Re-run: the 98 finished are skipped with no request; the timed-out task is polled,
    # not submitted again; only the refused entry is sent again.
    creates_before, polls_before = api.creates, api.polls
    posts_before = len(httpx_mock.get_requests(method="POST"))
    again = batch(*args)
    assert again.exit_code == 5
    states = {line["entry"]: line for line in json_lines(again.stdout)[:-1]}
    assert sum(1 for line in states.values() if line["status"] == "skipped") == 98
    assert states[21]["status"] == "timed_out" and states[21]["source"] == "ledger"
    assert len(httpx_mock.get_requests(method="POST")) == posts_before + 1
    assert api.creates == creates_before
    assert api.polls > polls_before  # the running task was polled again
    assert len(images_in(out)) == 98


def test_row48_server_429s_above_n_in_flight_client_limit_holds_no_entry_dropped(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: ThreadClock
) -> None:
    api = serve(httpx_mock, FakeApi(limit=2, hold_until_429=True))
    manifest = write_manifest(tmp_path / "m.jsonl", [f"a small fox {n}" for n in range(9)])
    out = tmp_path / "out"

    result = batch(str(manifest), "-o", str(out), "-c", "3", "--json")

    assert result.exit_code == 0, result.stderr
    assert api.rejected_429 > 0
    assert api.max_in_flight <= 3
    assert api.creates == 9
    statuses = [line.get("status") for line in json_lines(result.stdout)[:-1]]
    assert statuses == ["done"] * 9
    assert len(images_in(out)) == 9


def test_a_429_that_outlasts_the_client_retries_pauses_the_run_instead_of_failing_the_entry(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: ThreadClock
) -> None:
    from flux2_cli.client import MAX_ATTEMPTS
    from flux2_cli.ledger import Ledger

    api = serve(httpx_mock, FakeApi(refuse_first_creates=MAX_ATTEMPTS, retry_after="7"))
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox", "a blue whale"])

    result = batch(str(manifest), "-o", str(tmp_path / "out"), "-c", "1", "--json")

    assert result.exit_code == 0, result.stderr
    assert api.rejected_429 == MAX_ATTEMPTS and api.creates == 2
    # The client waited Retry-After between its own tries, then the shared gate did, under
    # the same policy, before resubmitting.
    assert clock.sleeps.count(7.0) == MAX_ATTEMPTS
    fingerprints = [line["fingerprint"] for line in json_lines(result.stdout)[:-1]]
    with Ledger() as ledger:  # the refused POSTs left no "outcome unknown" trace
        assert all(ledger.open_intents(fp) == [] for fp in fingerprints)


def test_a_429_asking_for_a_day_is_not_waited_out_by_the_batch_gate(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: ThreadClock
) -> None:
    # The gate follows the client's policy: a Retry-After past the cap ends the entry at once.
    api = serve(httpx_mock, FakeApi(refuse_first_creates=1000, retry_after="86400"))
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox"])

    result = batch(str(manifest), "-o", str(tmp_path / "out"), "-c", "1", "--json")

    assert result.exit_code != 0
    assert "longer than flux2 waits" in result.stderr
    assert api.rejected_429 == 1 and api.creates == 0
    assert all(seconds < 86400 for seconds in clock.sleeps)


# --------------------------------------------------------------------------- resume and lock


def test_second_run_of_an_unchanged_manifest_sends_nothing_at_all(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: ThreadClock
) -> None:
    api = serve(httpx_mock, FakeApi())
    manifest = write_manifest(
        tmp_path / "m.jsonl", ["a red fox", {"prompt": "a blue whale", "name": "whale"}]
    )
    first = batch(str(manifest), "-o", str(tmp_path / "out"))
    assert first.exit_code == 0, first.stderr
    saved = first.stdout.split()
    assert len(saved) == 2 and any(path.endswith("/whale.png") for path in saved)
    lock = json.loads((tmp_path / "m.jsonl.lock.json").read_text())
    assert lock["version"] == 2 and len(lock["entries"]) == 2
    assert next(iter(lock["entries"])).startswith("a-red-fox-")  # sorted, from the content
    assert lock["entries"]["whale"]["outputs"] == [
        {"path": "out/whale.png", "sha256": lock["entries"]["whale"]["outputs"][0]["sha256"]}
    ]
    requests = len(httpx_mock.get_requests())

    second = batch(str(manifest), "-o", str(tmp_path / "out"))

    assert second.exit_code == 0, second.stderr
    assert len(httpx_mock.get_requests()) == requests  # no POST, no GET
    assert sorted(second.stdout.split()) == sorted(saved)
    assert "skipped" in second.stderr and api.creates == 2


def test_resume_from_the_ledger_polls_a_submitted_task_instead_of_paying_again(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: ThreadClock
) -> None:
    from flux2_cli.ledger import Ledger
    from flux2_cli.task import Task, TaskStatus

    api = serve(httpx_mock, FakeApi())
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox", "a blue whale"])
    plan = json_lines(batch(str(manifest), "--dry-run", "--json").stdout)
    assert [line["action"] for line in plan[:-1]] == ["submit", "submit"]
    # A previous run was killed after submitting entry 1: its task is in the ledger.
    api.tasks["task0999_flux2"] = {"prompt": "a red fox", "polls": 0, "done": False}
    api.in_flight += 1
    with Ledger() as ledger:
        ledger.record_submit(
            Task(
                task_id="task0999_flux2",
                provider="apiinone",
                status=TaskStatus.RUNNING,
                model="flux-2",
                request={"prompt": "a red fox", "ratio": "1:1", "res": "1K", "mode": "pro"},
                base_url=BASE,
            ),
            fingerprint=plan[0]["fingerprint"],
        )
    replan = json_lines(batch(str(manifest), "--dry-run", "--json").stdout)
    assert [line["action"] for line in replan[:-1]] == ["poll", "submit"]
    assert replan[-1]["estimated_credits"] == 5

    result = batch(str(manifest), "-o", str(tmp_path / "out"), "--json")

    assert result.exit_code == 0, result.stderr
    lines = {line["entry"]: line for line in json_lines(result.stdout)[:-1]}
    assert lines[1]["task"]["task_id"] == "task0999_flux2" and lines[1]["source"] == "ledger"
    assert lines[2]["source"] == "submitted"
    assert api.creates == 1
    assert len(httpx_mock.get_requests(method="POST")) == 1


def test_an_unanswered_post_is_outcome_unknown_until_resubmit_unknown(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: ThreadClock
) -> None:
    from flux2_cli.ledger import Ledger

    api = serve(httpx_mock, FakeApi())
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox"])
    (planned,) = json_lines(batch(str(manifest), "--dry-run", "--json").stdout)[:-1]
    with Ledger() as ledger:
        ledger.record_intent(
            planned["fingerprint"],
            provider="apiinone",
            base_url=BASE,
            request=planned["request"],
            batch_key=None,
        )

    result = batch(str(manifest), "-o", str(tmp_path / "out"))

    assert result.exit_code == 5
    assert "outcome unknown" in result.stderr and "--resubmit-unknown" in result.stderr
    assert httpx_mock.get_requests() == []

    again = batch(str(manifest), "-o", str(tmp_path / "out"), "--resubmit-unknown")

    assert again.exit_code == 0, again.stderr
    assert api.creates == 1
    with Ledger() as ledger:
        assert ledger.open_intents(planned["fingerprint"]) == []


def test_check_names_missing_changed_and_stale_entries_and_sends_nothing(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: ThreadClock
) -> None:
    serve(httpx_mock, FakeApi())
    manifest = write_manifest(
        tmp_path / "m.jsonl",
        [{"prompt": "a red fox", "name": "fox"}, {"prompt": "a blue whale", "name": "whale"}],
    )
    assert batch(str(manifest), "-o", str(tmp_path / "out")).exit_code == 0
    count = len(httpx_mock.get_requests())
    ok = run_cli(["batch", str(manifest), "--check"])
    assert ok.exit_code == 0, ok.stderr
    assert "up to date" in ok.stderr

    write_manifest(
        manifest,
        [
            {"prompt": "a red fox", "name": "fox"},
            {"prompt": "a blue whale at dawn", "name": "whale"},
            {"prompt": "a green frog", "name": "frog"},
        ],
    )
    (tmp_path / "out" / "fox.png").write_bytes(b"edited by hand")
    result = run_cli(["batch", str(manifest), "--check"])

    assert result.exit_code == 5
    assert "stale\tfox\tline 1" in result.stdout
    assert "changed\twhale\tline 2" in result.stdout
    assert "new\tfrog\tline 3" in result.stdout  # a new entry is "new", not "changed"
    # Each line says its state once: "new\tfrog\tline 3\tnew" repeated it.
    lines = result.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["stale", "changed", "new"]
    assert all(line.split("\t")[1:].count(line.split("\t")[0]) == 0 for line in lines)
    assert lines[0] == "stale\tfox\tline 1\tout/fox.png has changed"
    assert "3 of 3 entries are out of date" in result.stderr
    as_json = json_lines(run_cli(["batch", str(manifest), "--check", "--json"]).stdout)
    assert as_json[-1] == {
        "summary": True,
        "check": True,
        "ok": 0,
        "new": 1,
        "missing": 0,
        "changed": 1,
        "stale": 1,
    }
    assert len(httpx_mock.get_requests()) == count


# --------------------------------------------------------------------------- plan and limits


def test_max_cost_is_refused_before_the_first_post(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: ThreadClock
) -> None:
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox", "a blue whale", "a frog hops"])
    result = batch(str(manifest), "--max-cost", "14")
    assert result.exit_code == 2
    assert "15 credits" in result.stderr and "--max-cost 14" in result.stderr
    assert httpx_mock.get_requests() == []


def test_max_cost_within_budget_runs(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: ThreadClock
) -> None:
    serve(httpx_mock, FakeApi())
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox", "a blue whale"])
    result = batch(str(manifest), "--max-cost", "10", "-o", str(tmp_path / "out"))
    assert result.exit_code == 0, result.stderr


def test_dry_run_prints_the_plan_with_per_entry_and_total_cost_and_sends_nothing(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: ThreadClock
) -> None:
    manifest = write_manifest(
        tmp_path / "m.jsonl",
        ["a red fox", {"prompt": "a blue whale", "mode": "flex", "res": "2K", "name": "whale"}],
    )
    human = batch(str(manifest), "--dry-run")
    assert human.exit_code == 0, human.stderr
    assert "whale" in human.stdout and "24" in human.stdout
    assert "estimated cost 29 credits" in human.stderr and "Nothing was sent" in human.stderr
    lines = json_lines(batch(str(manifest), "--dry-run", "--json").stdout)
    assert [line["estimated_cost"]["credits"] for line in lines[:-1]] == [5, 24]
    assert lines[-1]["estimated_credits"] == 29 and lines[-1]["to_submit"] == 2
    assert httpx_mock.get_requests() == []


def test_issue15_a_piped_plan_is_one_tab_separated_line_per_entry(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: ThreadClock
) -> None:
    # Plain rows, not a Rich table: a 20,000-entry plan spent most of its time in Rich.
    manifest = write_manifest(
        tmp_path / "m.jsonl",
        ["a red fox", {"prompt": "a blue whale", "mode": "flex", "res": "2K", "name": "whale"}],
    )
    human = batch(str(manifest), "--dry-run")
    assert human.exit_code == 0, human.stderr
    rows = [line.split("\t") for line in human.stdout.splitlines()]
    assert [row[1:] for row in rows] == [
        ["1", "submit", "a red fox", "5"],
        ["2", "submit", "a blue whale", "24"],
    ]
    assert rows[1][0] == "whale"


def test_shards_split_the_manifest_evenly_stably_and_completely(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: ThreadClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = tmp_path / "m.txt"
    manifest.write_text("\n".join(f"prompt number {n}" for n in range(20)) + "\n")

    def keys(shard: str) -> list[str]:
        result = batch(str(manifest), "--shard", shard, "--dry-run", "--json")
        assert result.exit_code == 0, result.stderr
        return [line["key"] for line in json_lines(result.stdout)[:-1]]

    shares = [keys(f"{k}/4") for k in (1, 2, 3, 4)]
    every = json_lines(batch(str(manifest), "--dry-run", "--json").stdout)[:-1]
    assert sorted(key for share in shares for key in share) == sorted(e["key"] for e in every)
    assert [len(share) for share in shares] == [5, 5, 5, 5]  # was 8/5/3/4
    assert keys("2/4") == shares[1]
    assert batch(str(manifest), "--shard", "5/4").exit_code == 2
    # --shard auto: GitLab's CI_NODE_INDEX counts from 1.
    monkeypatch.setenv("CI_NODE_INDEX", "2")
    monkeypatch.setenv("CI_NODE_TOTAL", "4")
    assert keys("auto") == shares[1]


def test_shard_auto_outside_a_parallel_ci_job_is_exit2_naming_the_variables(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox"])
    result = batch(str(manifest), "--shard", "auto")
    assert result.exit_code == 2
    assert "CI_NODE_INDEX/CI_NODE_TOTAL" in result.stderr
    assert "JOB_COMPLETION_INDEX/FLUX2_SHARD_TOTAL" in result.stderr
    assert httpx_mock.get_requests() == []


def test_row46_a_bad_manifest_is_exit2_with_the_line_and_nothing_is_sent(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: ThreadClock
) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(
        b'\xef\xbb\xbf{"prompt": "a red fox"}\r\n\r\n{"prompt": "a fox", "ratio": "5:4"}\r\n'
    )
    result = batch(str(manifest))
    assert result.exit_code == 2
    assert "m.jsonl line 3: ratio: '5:4' is not supported" in result.stderr
    manifest.write_bytes(b'{"prompt": "a red fox"}\n{"prompt": "caf\xe9"}\n')
    result = batch(str(manifest))
    assert result.exit_code == 2 and "line 2: not valid UTF-8" in result.stderr
    assert httpx_mock.get_requests() == []


def test_entry_name_and_output_override_the_command_options(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: ThreadClock
) -> None:
    serve(httpx_mock, FakeApi())
    manifest = tmp_path / "assets" / "m.csv"
    manifest.parent.mkdir()
    manifest.write_text(
        "prompt,name,output\r\n"
        "a red fox,hero,\r\n"
        "a blue whale,,img/\r\n"
        "a green frog,{slug}-{ratio},\r\n"
        "a grey owl,,owl.png\r\n"
    )
    result = batch(str(manifest), "-o", str(tmp_path / "out"), "--no-sidecar")
    assert result.exit_code == 0, result.stderr
    saved = {Path(line) for line in result.stdout.split()}
    assert tmp_path / "out" / "hero.png" in saved
    assert tmp_path / "out" / "a-green-frog-1x1.png" in saved
    assert tmp_path / "assets" / "owl.png" in saved
    assert any(path.parent == tmp_path / "assets" / "img" for path in saved)
    assert not list((tmp_path / "out").glob("*.json"))


def test_a_refused_key_stops_the_whole_run_with_exit3(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: ThreadClock
) -> None:
    calls: list[int] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(401, json={"code": 401, "message": "invalid api key"})

    httpx_mock.add_callback(refuse, is_reusable=True)
    manifest = write_manifest(tmp_path / "m.jsonl", [f"a red fox {n}" for n in range(6)])
    result = batch(str(manifest), "-c", "1")
    assert result.exit_code == 3
    assert len(calls) == 1


def test_human_mode_prints_paths_on_stdout_and_a_summary_on_stderr(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: ThreadClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    serve(httpx_mock, FakeApi())
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox", "please reject it"])
    result = batch(str(manifest), "-o", str(tmp_path / "out"))
    assert result.exit_code == 5
    (path,) = result.stdout.split()
    assert Path(path).is_file()
    assert "[1/2]" in result.stderr and "[2/2]" in result.stderr
    header = next(line for line in result.stderr.splitlines() if "wall time" in line)
    assert header.split()[:4] == ["done", "skipped", "failed", "credits"]
    assert "1 of 2 entries failed: please-reject-it-" in result.stderr
    assert "(line 2)" in result.stderr
    assert "prompt refused" in result.stderr


def test_a_manifest_from_stdin_needs_its_format_and_takes_paths_from_the_current_folder(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    refused = run_cli(["batch", "-", "--provider", "sandbox", "--dry-run"], input="a red fox\n")
    assert refused.exit_code == 2 and "--format jsonl|json|csv|tsv|txt" in refused.stderr
    lines = '{"prompt": "a red fox", "ratio": "16:9"}\n{"prompt": "a blue whale"}\n'
    args = ["batch", "-", "--format", "jsonl", "--provider", "sandbox", "--dry-run", "--json"]
    result = run_cli(args, input=lines)
    assert result.exit_code == 0, result.output
    plan = json_lines(result.stdout)
    assert [line.get("line") for line in plan[:-1]] == [1, 2]
    # The images' format and the manifest's go together, --format given twice.
    both = run_cli([*args, "--format", "webp", "--provider", "bfl"], input=lines)
    assert both.exit_code == 0, both.output
    assert all(line["request"]["format"] == "webp" for line in json_lines(both.stdout)[:-1])
    assert httpx_mock.get_requests() == []


def test_a_json_array_manifest_runs_as_entries_never_as_one_raw_prompt(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    manifest = tmp_path / "arr.json"
    manifest.write_text('[{"prompt": "a red fox"}, {"prompt": "a blue whale", "ratio": "16:9"}]')
    result = run_cli(["batch", str(manifest), "--provider", "sandbox", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    prompts = [line["request"]["prompt"] for line in json_lines(result.stdout)[:-1]]
    assert prompts == ["a red fox", "a blue whale"]


def test_a_run_killed_between_saving_and_recording_leaves_one_copy_after_the_rerun(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: ThreadClock, isolated_environment: Path
) -> None:
    api = serve(httpx_mock, FakeApi())
    manifest = write_manifest(tmp_path / "m.jsonl", [{"prompt": "a red fox", "name": "fox"}])
    out = tmp_path / "out"
    first = batch(str(manifest), "-o", f"{out}/")
    assert first.exit_code == 0, first.stderr
    # The kill: the image was renamed into place, but neither the lock file nor the ledger
    # recorded it, so the re-run makes the entry again and gets the very same bytes.
    (tmp_path / "m.jsonl.lock.json").unlink()
    for path in (isolated_environment / "data").glob("ledger.sqlite3*"):
        path.unlink()
    second = batch(str(manifest), "-o", f"{out}/")
    assert second.exit_code == 0, second.stderr
    assert api.creates == 2
    assert [path.name for path in images_in(out)] == ["fox.png"]


@pytest.mark.parametrize("fresh_machine", [False, True], ids=["same-machine", "fresh-machine"])
def test_row66_apimart_rerun_after_lost_answers_sends_the_same_key_and_gets_one_task(
    httpx_mock: HTTPXMock,
    tmp_path: Path,
    clock: ThreadClock,
    monkeypatch: pytest.MonkeyPatch,
    fresh_machine: bool,
) -> None:
    # APIMart replays a duplicate Idempotency-Key instead of billing it (apimart-ai/
    # apimart-skills, api-contract.md): a POST whose answers were all lost is no "outcome
    # unknown" on this provider; the re-run sends it again with the key it had.
    create = "https://api.apimart.ai/v1/images/generations"
    image = "https://upload.apimart.ai/f/image/r66_0.png"
    manifest = write_manifest(tmp_path / "m.jsonl", ["a red fox"])
    args = ["batch", str(manifest), "-o", str(tmp_path / "out"), "--provider", "apimart"]
    for _ in range(5):
        httpx_mock.add_exception(httpx.ReadTimeout("answer lost"), method="POST", url=create)

    first = run_cli(args)

    assert first.exit_code != 0
    lost_keys = {r.headers["Idempotency-Key"] for r in httpx_mock.get_requests(method="POST")}
    assert len(lost_keys) == 1
    if fresh_machine:  # a new CI runner: only the manifest and its lock file are left
        monkeypatch.setenv("FLUX2_DATA_DIR", str(tmp_path / "fresh-data"))
    httpx_mock.add_response(
        method="POST",
        url=create,
        json={"code": 200, "data": {"id": "task_01R66", "status": "submitted"}},
        headers={"idempotency-replayed": "true"},
    )
    httpx_mock.add_response(
        method="GET",
        url="https://api.apimart.ai/v1/tasks/task_01R66",
        json={
            "code": 200,
            "data": {
                "id": "task_01R66",
                "status": "completed",
                "result": {"images": [{"url": image}]},
            },
        },
    )
    httpx_mock.add_response(
        method="GET", url=image, content=png_bytes(), headers={"Content-Type": "image/png"}
    )

    again = run_cli(args)

    assert again.exit_code == 0, again.stderr
    assert "outcome unknown" not in again.stderr
    posts = httpx_mock.get_requests(method="POST")
    assert len(posts) == 6 and posts[-1].headers["Idempotency-Key"] in lost_keys
    assert len(images_in(tmp_path / "out")) == 1
