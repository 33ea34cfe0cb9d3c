"""Manifest entries with ``n`` (N tasks of one entry) and ``from`` (an earlier request)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import run_cli


def write(tmp_path: Path, *entries: dict[str, object]) -> Path:
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    return path


# BFL's dialect on the sandbox: a provider that takes seeds (the sandbox's own does not).
SEEDED = ["--sandbox", "--provider", "bfl", "--format", "png"]


def batch(manifest: Path, *args: str, account: tuple[str, ...] = tuple(SEEDED)) -> object:
    return run_cli(["batch", str(manifest), *account, "-o", f"{manifest.parent / 'out'}/", *args])


def lines(result: object) -> list[dict[str, object]]:
    return [json.loads(line) for line in result.stdout.splitlines()]  # type: ignore[attr-defined]


def test_n_expands_an_entry_into_n_tasks_with_seeds_and_names(tmp_path: Path) -> None:
    manifest = write(tmp_path, {"name": "hero", "prompt": "a red fox", "seed": 10, "n": 3})
    result = batch(manifest, "--json")
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    entries = [line for line in lines(result) if not line.get("summary")]
    assert sorted(str(line["key"]) for line in entries) == ["hero-1", "hero-2", "hero-3"]
    seeds = {line["key"]: line["task"]["request"]["seed"] for line in entries}  # type: ignore[index]
    assert seeds == {"hero-1": 10, "hero-2": 11, "hero-3": 12}
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [
        "hero-1.png",
        "hero-2.png",
        "hero-3.png",
    ]
    again = batch(manifest, "--json")
    assert [line["status"] for line in lines(again) if not line.get("summary")] == ["skipped"] * 3


def test_dry_run_and_max_cost_count_every_task(tmp_path: Path) -> None:
    manifest = write(tmp_path, {"prompt": "a red fox", "n": 4}, {"prompt": "a heron"})
    sandbox = ("--provider", "sandbox")  # API in One's table: 5 credits for pro 1K
    plan = batch(manifest, "--dry-run", "--json", account=sandbox)
    summary = lines(plan)[-1]
    assert (summary["to_submit"], summary["estimated_credits"]) == (5, 25)
    over = batch(manifest, "--max-cost", "24", account=sandbox)
    assert over.exit_code == 2  # type: ignore[attr-defined]
    assert "25 credits, is over --max-cost 24" in over.stderr  # type: ignore[attr-defined]


def test_from_takes_the_request_and_the_entry_overrides(tmp_path: Path) -> None:
    made = run_cli(
        [
            "gen",
            "a lighthouse at dusk",
            *SEEDED,
            "--seed",
            "4",
            "--ratio",
            "3:2",
            "-o",
            f"{tmp_path / 'first'}/",
            "--json",
        ]
    )
    sidecar = Path(json.loads(made.stdout)["images"][0]["path"]).with_suffix(".json")
    manifest = write(
        tmp_path,
        {"name": "same", "from": f"first/{sidecar.name}"},  # relative to the manifest
        {"name": "wide", "from": str(sidecar), "ratio": "16:9"},
        {"name": "by-id", "from": json.loads(made.stdout)["task_id"], "seed": 5},
    )
    plan = lines(batch(manifest, "--dry-run", "--json"))
    requests = {line["key"]: line["request"] for line in plan if not line.get("summary")}
    assert requests["same"] == json.loads(made.stdout)["request"]
    assert requests["same"]["seed"] == 4 and requests["same"]["ratio"] == "3:2"  # type: ignore[index]
    assert requests["wide"]["ratio"] == "16:9" and requests["wide"]["seed"] == 4  # type: ignore[index]
    assert requests["by-id"]["seed"] == 5  # type: ignore[index]


def test_bad_n_and_from_are_reported_by_line_before_anything_is_sent(tmp_path: Path) -> None:
    manifest = write(
        tmp_path,
        {"prompt": "a red fox", "n": 0},
        {"from": "missing.json"},
        {"from": "last"},
        {"seed": 3},
    )
    result = batch(manifest)
    assert result.exit_code == 2  # type: ignore[attr-defined]
    stderr = result.stderr  # type: ignore[attr-defined]
    assert "line 1" in stderr and "n: must be a whole number from 1 to 100" in stderr
    assert "line 2" in stderr and "from missing.json: no such file" in stderr
    assert "'last' names a different task on every run" in stderr
    assert "no 'prompt' (nor 'from')" in stderr
    assert not (tmp_path / "m.jsonl.lock.json").exists()
