"""``gen -n N`` (N tasks of one prompt) and ``gen --from`` (an earlier request again)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock

from tests.helpers import png_bytes, run_cli

SANDBOX = ["--provider", "sandbox"]
# BFL's dialect on the sandbox: a provider that takes seeds (API in One, and so the sandbox's
# own provider, does not).
SEEDED = ["--sandbox", "--provider", "bfl"]


def gen(tmp_path: Path, *args: str) -> object:
    return run_cli(["gen", *args, "-o", f"{tmp_path / 'out'}/"])


# -- -n ---------------------------------------------------------------------------------------


def test_n_makes_n_tasks_with_consecutive_seeds_and_numbered_names(tmp_path: Path) -> None:
    result = run_cli(
        [
            "gen",
            "a red fox",
            *SEEDED,
            "--format",
            "png",
            "-n",
            "3",
            "--seed",
            "7",
            "--name",
            "fox-{n}-{seed}",
            "-o",
            f"{tmp_path / 'out'}/",
            "--json",
        ]
    )
    assert result.exit_code == 0, result.stderr
    tasks = json.loads(result.stdout)
    assert isinstance(tasks, list) and len(tasks) == 3  # --json: an array
    assert [task["request"]["seed"] for task in tasks] == [7, 8, 9]
    assert len({task["task_id"] for task in tasks}) == 3
    names = [Path(task["images"][0]["path"]).name for task in tasks]
    assert names == ["fox-1-7.png", "fox-2-8.png", "fox-3-9.png"]
    assert result.stderr.count("Submitted task") == 3


def test_n_without_a_seed_lets_the_provider_draw_each(tmp_path: Path) -> None:
    result = run_cli(["gen", "a red fox", *SANDBOX, "-n", "2", "--no-wait", "--json"])
    tasks = json.loads(result.stdout)
    assert [task["request"].get("seed") for task in tasks] == [None, None]


def test_n_1_is_still_one_object(tmp_path: Path) -> None:
    result = run_cli(["gen", "a red fox", *SANDBOX, "--no-wait", "--json"])
    assert isinstance(json.loads(result.stdout), dict)


def test_dry_run_and_max_cost_count_all_n() -> None:
    dry = run_cli(["gen", "a red fox", *SEEDED, "-n", "4", "--seed", "1", "--dry-run", "--json"])
    document = json.loads(dry.stdout)
    assert document["count"] == 4
    one = document["estimated_cost"]
    assert document["estimated_total"]["credits"] == pytest.approx(4 * one["credits"])
    assert document["body"]["seed"] == 1  # the first request is shown
    text = run_cli(["gen", "a red fox", *SEEDED, "-n", "4", "--seed", "1", "--dry-run"])
    assert "× 4 tasks = " in text.stderr and "(seeds 1…4)" in text.stderr
    # API in One's table (the sandbox's provider): 5 credits for pro 1K, so 20 for four.
    over = run_cli(["gen", "a red fox", *SANDBOX, "-n", "4", "--max-cost", "19"])
    assert over.exit_code == 2
    assert "20 credits, is over --max-cost 19" in over.stderr
    assert "fewer images (-n)" in over.stderr
    within = run_cli(["gen", "a red fox", *SANDBOX, "-n", "4", "--max-cost", "20", "--no-wait"])
    assert within.exit_code == 0


def test_max_cost_without_a_published_price_sends_nothing(
    monkeypatch: pytest.MonkeyPatch, sentinel_key: str
) -> None:
    monkeypatch.setenv("APIMART_API_KEY", sentinel_key)
    result = run_cli(["gen", "a red fox", "--provider", "apimart", "-n", "2", "--max-cost", "9"])
    assert result.exit_code == 2
    assert "publishes no price" in result.stderr


def test_n_with_one_file_name_is_refused(tmp_path: Path) -> None:
    result = run_cli(["gen", "a red fox", *SANDBOX, "-n", "2", "-o", str(tmp_path / "fox.png")])
    assert result.exit_code == 2
    assert "names one file, but -n 2 makes 2 images" in result.stderr


def test_n_bounds() -> None:
    assert run_cli(["gen", "a red fox", *SANDBOX, "-n", "0"]).exit_code == 2


BASE = "https://apiin.one"


def test_one_of_n_failing_keeps_the_others_and_exits_5(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch, sentinel_key: str, tmp_path: Path
) -> None:
    monkeypatch.setenv("FLUX2_API_KEY", sentinel_key)
    monkeypatch.setattr("flux2_cli.context.time", _NoSleep())
    for task_id in ("t-one", "t-two"):
        httpx_mock.add_response(
            method="POST",
            url=f"{BASE}/api/v1/images/generations",
            json={"code": 200, "data": {"task_id": task_id, "status": "IN_PROGRESS"}},
        )
    image_url = "https://cdn.apiin.one/out/one.png"
    httpx_mock.add_response(
        url=f"{BASE}/api/v1/tasks/t-one",
        json={
            "code": 200,
            "data": {"task_id": "t-one", "status": "COMPLETED", "images": [{"url": image_url}]},
        },
    )
    httpx_mock.add_response(
        url=f"{BASE}/api/v1/tasks/t-two",
        json={
            "code": 200,
            "data": {
                "task_id": "t-two",
                "status": "FAILED",
                "error": {"code": "nsfw", "message": "refused"},
            },
        },
    )
    httpx_mock.add_response(
        url=image_url, content=png_bytes(), headers={"Content-Type": "image/png"}
    )
    result = run_cli(["gen", "a red fox", "-n", "2", "-o", f"{tmp_path / 'out'}/", "--json"])
    assert result.exit_code == 5
    tasks = json.loads(result.stdout)
    assert [task["status"] for task in tasks] == ["succeeded", "failed"]
    assert Path(tasks[0]["images"][0]["path"]).is_file()
    assert "refused" in result.stderr


class _NoSleep:
    now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now


# -- --from -----------------------------------------------------------------------------------


def made(tmp_path: Path, *args: str) -> dict[str, object]:
    """Make one image on the sandbox in BFL's dialect (it takes seeds); its --json task."""
    result = run_cli(
        ["gen", *args, *SEEDED, "--format", "png", "-o", f"{tmp_path / 'first'}/", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    task: dict[str, object] = json.loads(result.stdout)
    return task


def first_path(task: dict[str, object]) -> Path:
    images = task["images"]
    assert isinstance(images, list)
    return Path(images[0]["path"])


def again(*args: str) -> dict[str, object]:
    result = run_cli(["gen", *args, "--dry-run", "--json"])
    assert result.exit_code == 0, result.stderr
    document: dict[str, object] = json.loads(result.stdout)
    return document


def test_from_a_sidecar_repeats_the_request(tmp_path: Path) -> None:
    task = made(tmp_path, "a lighthouse at dusk", "--ratio", "16:9", "--res", "2K", "--seed", "5")
    sidecar = first_path(task).with_suffix(".json")
    document = again("--from", str(sidecar))
    assert document["request"] == task["request"]
    assert str(document["url"]) == "http://sandbox.flux2.invalid/v1/flux-2-pro"  # sandbox again


def test_flags_override_single_fields(tmp_path: Path) -> None:
    task = made(tmp_path, "a lighthouse at dusk", "--ratio", "16:9", "--seed", "5")
    document = again("--from", str(first_path(task).with_suffix(".json")), "--seed", "8")
    request = document["request"]
    assert isinstance(request, dict)
    assert (request["seed"], request["ratio"], request["prompt"]) == (
        8,
        "16:9",
        "a lighthouse at dusk",
    )


def test_from_an_image_with_embedded_metadata_and_another_provider(tmp_path: Path) -> None:
    task = made(tmp_path, "a lighthouse at dusk", "--seed", "5", "--embed-metadata", "--no-sidecar")
    image = first_path(task)
    assert not image.with_suffix(".json").exists()
    result = run_cli(["gen", "--from", str(image), "--provider", "sandbox", "--dry-run", "--json"])
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert str(document["url"]).endswith("/api/v1/images/generations")
    body = document["body"]
    assert body["prompt"] == "a lighthouse at dusk" and "seed" not in body
    # API in One takes no seed: the earlier one is left out, and said so.
    assert "seed = 5 does not apply to provider sandbox; not sent" in result.stderr


def test_from_a_task_id_in_the_ledger(tmp_path: Path) -> None:
    task = made(tmp_path, "a lighthouse at dusk", "--mode", "flex")
    by_id = again("--from", str(task["task_id"]))
    assert by_id["request"] == task["request"]
    assert again("--from", "last")["request"] == task["request"]


def test_from_needs_no_prompt_and_really_runs(tmp_path: Path) -> None:
    task = made(tmp_path, "a lighthouse at dusk", "--seed", "3")
    result = gen(tmp_path, "--from", str(first_path(task)))
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    saved = Path(result.stdout.strip())  # type: ignore[attr-defined]
    assert saved.read_bytes() == first_path(task).read_bytes()  # same request, same picture
    assert "Repeating the request of" in result.stderr  # type: ignore[attr-defined]


def test_a_bad_value_in_the_source_names_it(tmp_path: Path) -> None:
    sidecar = tmp_path / "old.json"
    sidecar.write_text(
        json.dumps({"provider": "sandbox", "request": {"prompt": "a fox", "ratio": "5:4"}})
    )
    result = run_cli(["gen", "--from", str(sidecar), "--dry-run"])
    assert result.exit_code == 2
    assert f"--from {sidecar}: ratio" in result.stderr
    fixed = run_cli(["gen", "--from", str(sidecar), "--ratio", "1:1", "--dry-run"])
    assert fixed.exit_code == 0, fixed.stderr


def test_neither_prompt_nor_from_is_exit_2() -> None:
    result = run_cli(["gen"])
    assert result.exit_code == 2
    assert "--from PATH|ID" in result.stderr


def test_a_task_made_on_the_sandbox_is_repeated_there(tmp_path: Path) -> None:
    result = run_cli(
        ["gen", "a lighthouse at dusk", "--provider", "bfl", "--sandbox", "--no-wait", "--json"]
    )
    task_id = json.loads(result.stdout)["task_id"]
    document = again("--from", task_id)  # no key for bfl is set: only the sandbox can answer
    assert str(document["url"]).startswith("http://sandbox.flux2.invalid/v1/flux-2-pro")
    sidecar = tmp_path / "old.json"
    sidecar.write_text(
        json.dumps({"provider": "bfl", "sandbox": True, "request": {"prompt": "a lighthouse"}})
    )
    assert str(again("--from", str(sidecar))["url"]).startswith("http://sandbox.flux2.invalid/")
