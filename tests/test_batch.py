"""Batch units: manifest parsing (each bad input with its line), planning, shards, lock file."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from flux2_cli.batch.manifest import (
    ManifestError,
    Problems,
    parse_manifest,
    read_manifest,
    sniff_kind,
)
from flux2_cli.batch.plan import parse_shard, plan_entries, select_shard
from flux2_cli.batch.runner import RateGate
from flux2_cli.build import FLAG, Layer
from flux2_cli.context import Context
from flux2_cli.errors import UsageError
from tests.helpers import FakeTime


def jsonl(*objects: object) -> bytes:
    return "\n".join(json.dumps(item) for item in objects).encode()


def make_ctx(**values: object) -> Context:
    return Context.create({"provider": "apiinone", **values})


def plan(manifest: Path, ctx: Context | None = None, **flags: object) -> list:  # type: ignore[type-arg]
    ctx = ctx or make_ctx()
    problems = Problems(manifest.name)
    entries = read_manifest(manifest, problems=problems)
    return plan_entries(ctx, ctx.provider(), manifest, entries, Layer(FLAG, flags), problems)


# --------------------------------------------------------------------------- parsing


def test_jsonl_with_bom_crlf_and_blank_lines_keeps_real_line_numbers() -> None:
    data = (
        b"\xef\xbb\xbf"
        + b'{"prompt": "a red fox"}\r\n\r\n\n{"prompt": "a blue whale", "seed": 7}\r\n'
    )
    entries = parse_manifest(data, kind="jsonl")
    assert [(e.number, e.line) for e in entries] == [(1, 1), (2, 4)]
    assert entries[0].values == {"prompt": "a red fox"}
    assert entries[1].values == {"prompt": "a blue whale", "seed": 7}


def test_jsonl_types_aliases_and_nulls() -> None:
    data = jsonl(
        {
            "prompt": "a red fox",
            "ref": "https://x.test/a.png",
            "refs": ["https://x.test/b.png"],
            "callback-url": "https://hook.test/x",
            "params": {"steps": 30, "style": "raw"},
            "param": ["guidance=4"],
            "width": "1024",
            "height": 768,
            "seed": None,
        }
    )
    (entry,) = parse_manifest(data, kind="jsonl")
    assert entry.values["refs"] == ("https://x.test/a.png", "https://x.test/b.png")
    assert entry.values["callback_url"] == "https://hook.test/x"
    assert entry.values["params"] == ("steps=30", 'style="raw"', "guidance=4")
    # Values stay as written: the request builder checks and converts them (one road).
    assert entry.values["width"] == "1024" and entry.values["height"] == 768
    assert "seed" not in entry.values


@pytest.mark.parametrize(
    ("data", "kind", "line", "words"),
    [
        (b'{"prompt": "ok fox"}\n{"prompt": "x\xff\xfe"}\n', "jsonl", 2, "UTF-8"),
        (b"fine prompt\n\nbad \xc3\x28 bytes\n", "text", 3, "UTF-8"),
        (b'{"prompt": "ok fox"}\n\n{"promt": "typo"}\n', "jsonl", 3, "did you mean 'prompt'"),
        (b'{"prompt": "ok fox"}\n{"prompt": "a", "sede": 3}\n', "jsonl", 2, "'seed'"),
        (b'{"prompt": "ok fox"}\r\n{"prompt": "fox",}\r\n', "jsonl", 2, "not valid JSON"),
        (b'{"prompt": "ok fox"}\n[1, 2]\n', "jsonl", 2, "JSON object"),
        (b'{"seed": 3}\n', "jsonl", 1, "no 'prompt'"),
        (b"prompt,ratoi\nfox,1:1\n", "csv", 1, "did you mean 'ratio'"),
        (b"\n\nprompt,seed\nfox,1\nfox,2,3\n", "csv", 5, "3 cells"),
        (b"seed,ratio\n1,1:1\n", "csv", 1, "no 'prompt' column"),
    ],
)
def test_row46_each_bad_input_is_a_line_numbered_error(
    data: bytes, kind: str, line: int, words: str
) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(data, kind=kind, source="m")
    assert f"m line {line}: " in caught.value.message
    assert words in caught.value.message
    assert caught.value.exit_code == 2


def test_row46_a_huge_line_is_refused_with_its_number() -> None:
    data = b'{"prompt": "ok fox"}\n' + b'{"prompt": "' + b"x" * 1_000_001 + b'"}\n'
    with pytest.raises(ManifestError, match=r"line 2: .*over the 1,000,000-byte limit"):
        parse_manifest(data, kind="jsonl")


def test_an_empty_manifest_is_an_error() -> None:
    with pytest.raises(ManifestError, match="no entries"):
        parse_manifest(b"\xef\xbb\xbf\r\n\n# only a comment\n", kind="text")


def test_text_manifest_one_prompt_a_line_comments_skipped() -> None:
    entries = parse_manifest(b"# assets\r\na red fox\r\n\r\n  a blue whale  \r\n", kind="text")
    assert [(e.line, e.values["prompt"]) for e in entries] == [
        (2, "a red fox"),
        (4, "a blue whale"),
    ]


def test_csv_header_quoted_cells_refs_and_line_numbers() -> None:
    data = (
        b"\xef\xbb\xbfPrompt,Ratio,seed,refs,name\r\n"
        b'"a fox, in snow",16:9,42,https://x.test/a.png https://x.test/b.png,hero\r\n'
        b",,,,\r\n"
        b'"a whale\r\nat dawn",1:1,,,\r\n'
        b"a frog,,,,\r\n"
    )
    entries = parse_manifest(data, kind="csv")
    assert [e.line for e in entries] == [2, 4, 6]
    assert entries[0].values == {
        "prompt": "a fox, in snow",
        "ratio": "16:9",
        "seed": "42",
        "refs": ("https://x.test/a.png", "https://x.test/b.png"),
        "name": "hero",
    }
    assert entries[1].values == {"prompt": "a whale\nat dawn", "ratio": "1:1"}
    assert entries[2].values == {"prompt": "a frog"}


def test_kind_from_extension_then_content(tmp_path: Path) -> None:
    assert sniff_kind(['{"prompt": "x"}']) == "jsonl"
    assert sniff_kind(["", "prompt,seed", "a,1"]) == "csv"
    assert sniff_kind(["a fox, running, in snow"]) == "text"
    unknown = tmp_path / "assets.manifest"
    unknown.write_text('{"prompt": "a red fox"}\n')
    assert read_manifest(unknown)[0].values == {"prompt": "a red fox"}
    as_text = tmp_path / "prompts.txt"
    as_text.write_text('{"prompt": "a red fox"}\n')
    # A line of JSON is never sent as a prompt, whatever the extension says.
    with pytest.raises(ManifestError, match=r"prompts\.txt line 1: this line is JSON"):
        read_manifest(as_text)


def test_missing_manifest_is_exit2(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file"):
        read_manifest(tmp_path / "nope.jsonl")


# --------------------------------------------------------------------------- planning


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ({"prompt": "a red fox", "ratio": "5:4"}, "ratio: '5:4' is not supported"),
        ({"prompt": "ab"}, "prompt: the prompt is too short"),
        ({"prompt": "a red fox", "width": 1024}, "width: width and height go together"),
        ({"prompt": "a red fox", "ratio": "1:1", "width": 1024, "height": 1024}, "not both"),
        ({"prompt": "a red fox", "name": "{nope}"}, "unknown field {nope}"),
        ({"prompt": "a red fox", "params": {"x": None}}, "params: x: null values"),
        ({"prompt": "a red fox", "output": "-"}, "output: cannot be -"),
        ({"prompt": "a red fox", "seed": "abc"}, "seed: 'abc' is not an integer"),
        ({"prompt": "a red fox", "seed": True}, "seed: True is not an integer"),
        ({"prompt": "a red fox", "ratio": 16}, "ratio: 16 is not one of"),
    ],
)
def test_bad_values_carry_the_request_error_prefixed_with_the_line(
    tmp_path: Path, entry: dict[str, object], words: str
) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(jsonl({"prompt": "a fine fox"}, entry))
    with pytest.raises(UsageError) as caught:
        plan(manifest)
    assert caught.value.message.startswith("m.jsonl line 2: ")
    assert words in caught.value.message


def test_entries_override_command_defaults(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(
        jsonl(
            {"prompt": "a red fox"},
            {"prompt": "a red fox", "ratio": "16:9", "mode": "flex", "res": "2k", "name": "hero"},
            {"prompt": "a red fox", "output": "art/", "name": "{slug}-{ratio}"},
        )
    )
    ctx = make_ctx(output_dir="out")
    first, second, third = plan(manifest, ctx, ratio="3:2")
    assert (first.request.ratio, first.request.mode) == ("3:2", "pro")
    assert first.key.startswith("a-red-fox-")  # from the entry's content, not its line
    assert first.output == "out/" and first.name_template == "{slug}-{id8}"
    assert (second.request.ratio, second.request.res, second.request.mode) == ("16:9", "2K", "flex")
    assert second.key == "hero" and second.name_template == "hero"
    assert third.output == str(tmp_path / "art") + "/" and third.key.startswith("a-red-fox-")
    assert third.key != first.key
    assert len({first.fingerprint, second.fingerprint, third.fingerprint}) == 3
    assert second.estimate is not None and second.estimate.credits == 24


def test_identical_entries_get_distinct_fingerprints_and_duplicate_names_are_refused(
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(jsonl({"prompt": "a red fox"}, {"prompt": "a red fox"}))
    one, two = plan(manifest)
    assert one.fingerprint != two.fingerprint
    manifest.write_bytes(
        jsonl({"prompt": "a red fox", "name": "x"}, {"prompt": "b c d", "name": "x"})
    )
    with pytest.raises(UsageError, match="line 2: name 'x' is already used on line 1"):
        plan(manifest)


def test_fingerprints_are_stable_across_runs(tmp_path: Path) -> None:
    manifest = tmp_path / "m.txt"
    manifest.write_text("a red fox\na blue whale\n")
    assert [e.fingerprint for e in plan(manifest)] == [e.fingerprint for e in plan(manifest)]


# --------------------------------------------------------------------------- shards


def test_shards_partition_the_entries_stably(tmp_path: Path) -> None:
    manifest = tmp_path / "m.txt"
    manifest.write_text("".join(f"prompt number {n}\n" for n in range(40)))
    planned = plan(manifest)
    shards = [select_shard(planned, k, 3) for k in (1, 2, 3)]
    keys = [[entry.key for entry in shard] for shard in shards]
    assert sorted(key for shard in keys for key in shard) == sorted(e.key for e in planned)
    # Each share keeps manifest order.
    assert all([e.line for e in shard] == sorted(e.line for e in shard) for shard in shards)
    # Adding entries moves at most N-1 existing entries across a cut.
    manifest.write_text("".join(f"prompt number {n}\n" for n in range(41)))
    bigger = plan(manifest)
    moved = 0
    for k, shard in zip((1, 2, 3), shards, strict=True):
        again = {entry.fingerprint for entry in select_shard(bigger, k, 3)}
        moved += len({entry.fingerprint for entry in shard} - again)
    assert moved <= 2


@pytest.mark.parametrize(("count", "n"), [(20, 4), (20, 3), (7, 3), (2, 3), (1, 1), (0, 2)])
def test_shard_sizes_differ_by_at_most_one(tmp_path: Path, count: int, n: int) -> None:
    manifest = tmp_path / "m.txt"
    manifest.write_text("".join(f"asset number {i}\n" for i in range(count)))
    planned = plan(manifest) if count else []
    sizes = [len(select_shard(planned, k, n)) for k in range(1, n + 1)]
    assert sum(sizes) == count
    assert max(sizes) - min(sizes) <= 1


def test_shards_do_not_depend_on_line_order(tmp_path: Path) -> None:
    manifest = tmp_path / "m.txt"
    prompts = [f"asset number {i}" for i in range(12)]
    manifest.write_text("".join(f"{p}\n" for p in prompts))
    before = [{e.fingerprint for e in select_shard(plan(manifest), k, 3)} for k in (1, 2, 3)]
    manifest.write_text("".join(f"{p}\n" for p in reversed(prompts)))
    after = [{e.fingerprint for e in select_shard(plan(manifest), k, 3)} for k in (1, 2, 3)]
    assert before == after


def test_shards_do_not_depend_on_the_command_line_defaults(tmp_path: Path) -> None:
    manifest = tmp_path / "m.txt"
    manifest.write_text("".join(f"asset number {i}\n" for i in range(12)))
    square = [[e.key for e in select_shard(plan(manifest), k, 3)] for k in (1, 2, 3)]
    from flux2_cli.build import FLAG, Layer

    ctx = make_ctx()
    flags = Layer(FLAG, {"ratio": "16:9"})
    wide = plan_entries(ctx, ctx.provider(), manifest, read_manifest(manifest), flags)
    assert wide[0].request.ratio == "16:9"
    assert [[e.key for e in select_shard(wide, k, 3)] for k in (1, 2, 3)] == square


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "3"}, (1, 3)),  # GitLab counts from 1
        ({"CI_NODE_INDEX": "3", "CI_NODE_TOTAL": "3"}, (3, 3)),
        ({"CIRCLE_NODE_INDEX": "0", "CIRCLE_NODE_TOTAL": "4"}, (1, 4)),
        ({"BUILDKITE_PARALLEL_JOB": "2", "BUILDKITE_PARALLEL_JOB_COUNT": "3"}, (3, 3)),
        ({"JOB_COMPLETION_INDEX": "4", "FLUX2_SHARD_TOTAL": "5"}, (5, 5)),
    ],
)
def test_shard_auto_reads_each_cis_variables(
    env: dict[str, str], expected: tuple[int, int]
) -> None:
    assert parse_shard("auto", env) == expected


def test_shard_auto_with_nothing_set_names_every_variable() -> None:
    with pytest.raises(UsageError) as caught:
        parse_shard("auto", {"CI": "true"})
    for name in (
        "CI_NODE_INDEX",
        "CI_NODE_TOTAL",
        "CIRCLE_NODE_INDEX",
        "BUILDKITE_PARALLEL_JOB_COUNT",
        "JOB_COMPLETION_INDEX",
        "FLUX2_SHARD_TOTAL",
    ):
        assert name in caught.value.message


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"JOB_COMPLETION_INDEX": "0"}, "FLUX2_SHARD_TOTAL"),
        ({"CI_NODE_INDEX": "0", "CI_NODE_TOTAL": "3"}, "CI_NODE_INDEX"),
        ({"CIRCLE_NODE_INDEX": "4", "CIRCLE_NODE_TOTAL": "4"}, "CIRCLE_NODE_INDEX"),
        ({"BUILDKITE_PARALLEL_JOB": "x", "BUILDKITE_PARALLEL_JOB_COUNT": "2"}, "BUILDKITE"),
    ],
)
def test_shard_auto_with_a_bad_or_half_set_pair_names_it(env: dict[str, str], named: str) -> None:
    with pytest.raises(UsageError, match=named):
        parse_shard("auto", env)


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "x", "1-3", "a/b", "/"])
def test_bad_shard_is_exit2(text: str) -> None:
    with pytest.raises(UsageError, match="--shard"):
        parse_shard(text)


def test_shard_parses() -> None:
    assert parse_shard("2/4") == (2, 4)


# --------------------------------------------------------------------------- rate gate


def test_rate_gate_pauses_every_caller_until_the_shared_moment() -> None:
    fake = FakeTime()
    gate = RateGate(fake.monotonic, fake.sleep)
    gate.wait()
    assert fake.sleeps == []
    gate.slow_down(5.0)
    gate.slow_down(2.0)  # never pulls the moment earlier
    gate.wait()
    assert fake.sleeps == [5.0]
    gate.wait()
    assert fake.sleeps == [5.0] and gate.pauses == 2


def test_durations_aim_just_past_the_running_bound_and_below_the_finished_one() -> None:
    from flux2_cli.batch.runner import Durations

    durations = Durations(window=3)
    assert durations.estimate() is None and durations.ceiling() is None
    durations.learn(1.8, 2.05)  # the sentinel: running at 1.8 s, found finished at 2.05 s
    assert durations.learned.is_set()
    assert durations.estimate() == pytest.approx(1.825)  # a quarter fine step past 1.8 s
    durations.first_look(1.83, finished=False)  # lower bound: it takes more than 1.83 s
    assert durations.estimate() == pytest.approx(1.855)
    durations.learn(1.99, 2.03)  # that task's last running moment, capped by "finished" ones
    assert durations.estimate() == pytest.approx(2.015)
    durations.learn(2.6, 2.7)  # a slow task cannot lift the aim past the lowest finish (2.03)
    assert durations.estimate() == pytest.approx(2.03)
    assert durations.ceiling() == pytest.approx(2.03)
    durations.first_look(2.04, finished=True)  # upper bound: a little earlier next time
    assert 2.02 < (durations.estimate() or 0) < 2.03


class _FakeClockCtx:
    """Just what Runner needs of a Context: sleep, clock, settings."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.settings = type("S", (), {"timeout": 600.0, "poll_interval": 1.0})()

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def _runner(ctx: Any) -> Any:
    from flux2_cli.batch.runner import BatchOptions, Runner

    return Runner(ctx, provider=None, options=BatchOptions(manifest=Path("m.txt"), concurrency=4))  # type: ignore[arg-type]


def test_sentinel_polls_at_a_tenth_of_elapsed_and_teaches_the_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flux2_cli import jobs
    from flux2_cli.task import Task, TaskStatus

    ctx = _FakeClockCtx()
    runner = _runner(ctx)
    finish_at = 3.0

    def refresh(_ctx: Any, task: Task, *, deadline: float | None = None) -> Task:
        assert deadline is not None  # every look-up is bounded by the entry's timeout
        done = ctx.now >= finish_at
        return task.evolve(status=TaskStatus.SUCCEEDED if done else TaskStatus.RUNNING)

    monkeypatch.setattr(jobs, "refresh", refresh)
    task = Task(task_id="t", provider="apiinone", status=TaskStatus.QUEUED)
    result = runner._wait(task, resumed=False, submitted_at=0.0)
    assert not runner._claim_sentinel()  # one sentinel per run, taken by that task
    assert result.status is TaskStatus.SUCCEEDED
    # 0.25 s steps while a tenth of the elapsed time is smaller, then 10 % of it
    assert ctx.sleeps[:4] == [0.25, 0.25, 0.25, 0.25]
    assert all(step <= max(0.25, 0.1 * finish_at) + 1e-9 for step in ctx.sleeps)
    assert ctx.now - finish_at < 0.35  # found within one fine step of the end
    assert runner.durations.learned.is_set()
    assert 2.5 <= (runner.durations.estimate() or 0) < finish_at


def test_a_waiting_worker_wakes_when_the_duration_is_learned() -> None:
    import time as real_time

    from flux2_cli.batch.runner import _Learned

    ctx = _FakeClockCtx()
    ctx.sleep = real_time.sleep  # type: ignore[method-assign]
    runner = _runner(ctx)
    timer = threading.Timer(0.05, runner.durations.learn, args=(1.9, 2.0))
    timer.start()
    # Without the wake-up this sleeps the full 30 s and returns instead of raising.
    with pytest.raises(_Learned):
        runner.sleep_until_learned(30.0)
    timer.join()


def _run_tasks_of_fixed_duration(
    monkeypatch: pytest.MonkeyPatch, durations: list[float]
) -> tuple[Any, list[int], list[float]]:
    """One worker waits for tasks of the given durations in turn, on the injected clock.

    Returns the runner, the status look-ups each task cost, and how late each was found.
    """
    from flux2_cli import jobs
    from flux2_cli.task import Task, TaskStatus

    ctx = _FakeClockCtx()
    runner = _runner(ctx)
    current: dict[str, float] = {}
    calls: list[int] = []

    def refresh(_ctx: Any, task: Task, *, deadline: float | None = None) -> Task:
        calls[-1] += 1
        ctx.now += 0.01  # the answer takes 10 ms; the server decides when asked
        done = ctx.now - 0.01 - current["submitted"] >= current["duration"]
        return task.evolve(status=TaskStatus.SUCCEEDED if done else TaskStatus.RUNNING)

    monkeypatch.setattr(jobs, "refresh", refresh)
    late: list[float] = []
    for index, duration in enumerate(durations):
        ctx.now += 0.5  # the next submit
        current.update(submitted=ctx.now, duration=duration)
        calls.append(0)
        task = Task(task_id=f"t{index}", provider="apiinone", status=TaskStatus.QUEUED)
        result = runner._wait(task, resumed=False, submitted_at=ctx.now)
        assert result.status is TaskStatus.SUCCEEDED
        late.append(ctx.now - current["submitted"] - duration)
    return runner, calls, late


def test_tasks_of_one_duration_cost_about_one_status_look_up_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The old schedule looked first one fine step before the last "seen running" moment, so
    # every task was still running there and cost two or three look-ups (2.0+ per task).
    _, calls, late = _run_tasks_of_fixed_duration(monkeypatch, [2.0] * 80)
    steady = calls[8:]  # after the sentinel and the first few tasks have taught the run
    assert sum(steady) / len(steady) <= 1.2
    assert max(late[8:]) < 0.1  # never a whole fine step late
    assert sum(late[8:]) / len(late[8:]) < 0.05


def test_the_aim_follows_tasks_that_become_slower_and_faster(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    durations = [2.0] * 30 + [2.4] * 40 + [1.8] * 200
    runner, calls, late = _run_tasks_of_fixed_duration(monkeypatch, durations)
    slow = calls[40:70]  # ten tasks after the change to 2.4 s
    assert sum(slow) / len(slow) <= 1.3
    assert max(late[40:70]) < 0.1
    # Faster again: first looks then find tasks finished, each pulls the aim down a little.
    assert (runner.durations.estimate() or 0) < 1.9
    assert sum(calls[-100:]) / 100 <= 1.2


# --------------------------------------------------------------------------- manifests (issue 13)


def test_every_problem_of_a_manifest_is_reported_in_one_pass(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(
        jsonl(
            {"prompt": "a red fox", "ratio": "5:4"},
            {"prompt": "ab"},
            {"prompt": "a blue whale", "sede": 3},
            {"prompt": "a green frog", "res": "8K", "seed": "x"},
            {"prompt": "a grey owl", "mode": "turbo"},
        )
    )
    with pytest.raises(ManifestError) as caught:
        plan(manifest)
    assert caught.value.problems == [
        "m.jsonl line 1: ratio: '5:4' is not supported; choose one of "
        "1:1, 4:3, 3:4, 16:9, 9:16, 3:2, 2:3.",
        "m.jsonl line 2: prompt: the prompt is too short: at least 3 characters.",
        "m.jsonl line 3: unknown key 'sede'; did you mean 'seed'?",
        "m.jsonl line 4: res: '8K' is not supported; choose one of 1K, 2K.",
        "m.jsonl line 4: seed: 'x' is not an integer.",
        "m.jsonl line 5: mode: 'turbo' is not supported; choose one of pro, flex.",
    ]
    assert len(caught.value.problems) == 6
    assert caught.value.message.startswith("6 problems in the manifest:\n")
    assert "--" not in caught.value.message  # the manifest's keys, never the flags


def test_manifest_problems_are_capped_at_twenty(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(jsonl(*({"prompt": "a fox", "ratio": "0:0"} for _ in range(30))))
    with pytest.raises(ManifestError) as caught:
        plan(manifest)
    assert len(caught.value.problems) == 30
    assert caught.value.message.count("\n  m.jsonl line") == 20
    assert caught.value.message.endswith("… and 10 more")


def test_a_json_array_manifest_keeps_each_entrys_line() -> None:
    data = (
        b'[\n  {"prompt": "a red fox"},\n  "a blue whale",\n\n  {"prompt": "ab", "ratio": 1}\n]\n'
    )
    entries = parse_manifest(data, kind="json")
    assert [(e.line, e.values["prompt"]) for e in entries] == [
        (2, "a red fox"),
        (3, "a blue whale"),
        (5, "ab"),
    ]
    assert sniff_kind(['[{"prompt": "x"}]']) == "json"
    with pytest.raises(ManifestError, match=r"m line 3: expected a JSON object"):
        parse_manifest(b'[\n {"prompt": "a fox"},\n 5\n]', kind="json", source="m")
    with pytest.raises(ManifestError, match=r"m line 2: not valid JSON"):
        parse_manifest(b'[\n {"prompt": "a fox",}\n]', kind="json", source="m")


def test_a_tsv_header_is_never_a_prompt(tmp_path: Path) -> None:
    manifest = tmp_path / "m.tsv"
    manifest.write_text("prompt\tratio\na red fox, at dawn\t16:9\n")
    (entry,) = read_manifest(manifest)
    assert entry.values == {"prompt": "a red fox, at dawn", "ratio": "16:9"}
    sniffed = tmp_path / "m.list"
    sniffed.write_text("prompt\tseed\na red fox\t3\n")
    assert read_manifest(sniffed)[0].values == {"prompt": "a red fox", "seed": "3"}
    as_text = tmp_path / "m.txt"
    as_text.write_text("prompt\tratio\na red fox\n")
    with pytest.raises(ManifestError, match=r"m\.txt line 1: this line is a CSV header"):
        read_manifest(as_text)


def test_relative_refs_and_outputs_are_taken_from_the_manifests_folder(tmp_path: Path) -> None:
    folder = tmp_path / "assets"
    folder.mkdir()
    manifest = folder / "m.jsonl"
    manifest.write_bytes(
        jsonl(
            {
                "prompt": "a red fox",
                "refs": ["refs/a.png", "https://x.test/b.png", str(tmp_path / "c.png")],
                "output": "out/",
            }
        )
    )
    (entry,) = read_manifest(manifest)
    assert entry.values["refs"] == (
        str(folder / "refs" / "a.png"),
        "https://x.test/b.png",
        str(tmp_path / "c.png"),
    )
    assert entry.values["output"] == str(folder / "out") + "/"


def test_a_json_file_of_one_object_a_line_is_read_as_json_lines(tmp_path: Path) -> None:
    manifest = tmp_path / "m.json"
    manifest.write_text('{"prompt": "a red fox"}\n{"prompt": "a blue whale"}\n')
    assert [e.values["prompt"] for e in read_manifest(manifest)] == ["a red fox", "a blue whale"]


def test_an_entry_output_too_long_for_the_file_system_is_a_line_problem(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(jsonl({"prompt": "a red fox", "output": "o" * 300 + ".png"}))
    with pytest.raises(ManifestError, match=r"m\.jsonl line 1: output: .* longer than the file"):
        plan(manifest)


def test_a_missing_local_ref_is_found_before_anything_is_sent(tmp_path: Path) -> None:
    from tests.helpers import png_bytes

    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "ok.png").write_bytes(png_bytes())
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(
        jsonl(
            {"prompt": "a red fox", "refs": ["refs/ok.png"]},
            {"prompt": "a blue whale", "refs": ["refs/gone.png"]},
        )
    )
    ctx = make_ctx(provider="bfl")
    with pytest.raises(ManifestError) as caught:
        plan(manifest, ctx)
    (problem,) = caught.value.problems
    assert problem.startswith("m.jsonl line 2: refs: ") and "gone.png" in problem
    assert "no such file" in problem
