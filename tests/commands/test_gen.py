"""``flux2 gen`` end to end in-process: CliRunner with pytest-httpx, fake clock, real files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from pytest_httpx import HTTPXMock

from tests.helpers import FakeTime, install_fake_time, png_bytes, run_cli

BASE = "https://apiin.one"
CREATE_URL = f"{BASE}/api/v1/images/generations"
IMAGE_URL = "https://cdn.apiin.one/out/fox.png?X-Amz-Signature=abc123secret"
TASK_KEYS = {
    "task_id",
    "provider",
    "model",
    "status",
    "created_at",
    "expires_at",
    "images",
    "cost",
    "error",
    "request",
    "sandbox",
}
IMAGE_KEYS = {"url", "path", "bytes", "sha256", "width", "height", "format"}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    return install_fake_time(monkeypatch)


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch, sentinel_key: str) -> str:
    monkeypatch.setenv("FLUX2_API_KEY", sentinel_key)
    return sentinel_key


def poll_url(task_id: str = "n41xxxx_flux2") -> str:
    return f"{BASE}/api/v1/tasks/{task_id}"


def add_happy_path(httpx_mock: HTTPXMock, image: bytes, task_id: str = "n41xxxx_flux2") -> None:
    httpx_mock.add_response(
        method="POST",
        url=CREATE_URL,
        json={
            "code": 200,
            "message": "success",
            "data": {"task_id": task_id, "status": "IN_PROGRESS"},
        },
    )
    httpx_mock.add_response(
        method="GET",
        url=poll_url(task_id),
        json={"code": 200, "data": {"task_id": task_id, "status": "IN_PROGRESS"}},
    )
    httpx_mock.add_response(
        method="GET",
        url=poll_url(task_id),
        json={
            "code": 200,
            "data": {"task_id": task_id, "status": "COMPLETED", "images": [{"url": IMAGE_URL}]},
        },
    )
    httpx_mock.add_response(
        method="GET", url=IMAGE_URL, content=image, headers={"Content-Type": "image/png"}
    )


def assert_no_key(result: object, key: str) -> None:
    for stream in ("stdout", "stderr", "output"):
        assert key not in getattr(result, stream, ""), stream


def test_gen_sends_one_post_polls_downloads_and_prints_path(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: FakeTime, api_key: str
) -> None:
    image = png_bytes(160, 90)
    add_happy_path(httpx_mock, image)
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli(
        ["gen", "a red fox in the snow", "--ratio", "16:9", "--res", "2K", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    posts = httpx_mock.get_requests(method="POST")
    assert len(posts) == 1
    body = json.loads(posts[0].content)
    assert body == {
        "model": "flux-2",
        "prompt": "a red fox in the snow",
        "aspect_ratio": "16:9",
        "resolution": "2K",
        "type": "pro",
    }
    assert posts[0].headers["Authorization"] == f"Bearer {api_key}"
    image_request = httpx_mock.get_requests(url=IMAGE_URL)[0]
    assert "Authorization" not in image_request.headers
    printed = result.stdout.strip().splitlines()
    assert len(printed) == 1
    saved = Path(printed[0])
    assert saved.parent == out
    assert re.fullmatch(
        r"a-red-fox-in-the-snow-n41xxxx_?\w*\.png", saved.name
    ) or saved.name.startswith("a-red-fox-in-the-snow-")
    assert saved.read_bytes() == image
    sidecar = json.loads(saved.with_suffix(".json").read_text())
    assert sidecar["task_id"] == "n41xxxx_flux2"
    assert api_key not in saved.with_suffix(".json").read_text()
    assert "abc123secret" not in result.stderr
    assert_no_key(result, api_key)


def test_gen_json_has_every_key(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: FakeTime, api_key: str
) -> None:
    add_happy_path(httpx_mock, png_bytes(40, 30))
    result = run_cli(["gen", "a red fox", "--json", "-o", str(tmp_path) + "/"])
    assert result.exit_code == 0, result.output
    task = json.loads(result.stdout)
    assert set(task) == TASK_KEYS
    assert task["status"] == "succeeded"
    assert task["provider"] == "apiinone" and task["model"] == "flux-2"
    assert task["cost"] == {"credits": 5, "usd": 0.05}
    assert task["request"]["ratio"] == "1:1"
    assert len(task["images"]) == 1 and set(task["images"][0]) == IMAGE_KEYS
    assert task["images"][0]["width"] == 40 and task["images"][0]["format"] == "png"
    assert task["expires_at"] is not None
    assert_no_key(result, api_key)


def test_no_wait_then_status_then_download_as_separate_invocations(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: FakeTime
) -> None:
    image = png_bytes()
    httpx_mock.add_response(
        method="POST",
        url=CREATE_URL,
        json={
            "id": "task_abc123",
            "status": "pending",
            "model": "flux-2",
            "created_at": "2026-02-24T12:00:00Z",
        },
    )
    first = run_cli(["gen", "a lighthouse", "--no-wait"])
    assert first.exit_code == 0, first.output
    assert first.stdout.strip() == "task_abc123"
    assert len(httpx_mock.get_requests(method="GET")) == 0

    done = {
        "code": 200,
        "data": {"id": "task_abc123", "status": "completed", "images": [{"url": IMAGE_URL}]},
    }
    httpx_mock.add_response(method="GET", url=poll_url("task_abc123"), json=done)
    second = run_cli(["status", "task_abc123", "--json"])
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["status"] == "succeeded"

    httpx_mock.add_response(method="GET", url=IMAGE_URL, content=image)
    out = tmp_path / "dl"
    third = run_cli(["download", "task_abc123", "-o", str(out) + "/"])
    assert third.exit_code == 0, third.output
    assert Path(third.stdout.strip()).read_bytes() == image
    assert len(httpx_mock.get_requests(method="POST")) == 1


def test_exit2_invalid_ratio_sends_nothing(httpx_mock: HTTPXMock) -> None:
    result = run_cli(["gen", "a red fox", "--ratio", "5:4"])
    assert result.exit_code == 2
    assert "--ratio" in result.stderr
    assert httpx_mock.get_requests() == []


@pytest.mark.parametrize(
    "args",
    [
        ["gen", "ab"],
        ["gen", "   "],
        ["gen", "x" * 5001],
        ["gen", "a fox", "--seed", "3"],
        ["gen", "a fox", "--width", "1024"],
        ["gen", "a fox", "--width", "1024", "--height", "768"],
        ["gen", "a fox", "--format", "webp"],
        ["gen", "a fox", "--safety", "2"],
        ["gen", "a fox", "--mode", "turbo"],
        ["gen", "a fox", "--res", "4K"],
        ["gen", "a fox", "--ref", "/no/such/file.png"],
        ["gen", "a fox", "--param", "novalue"],
        ["gen", "a fox", *[arg for n in range(9) for arg in ("--ref", f"https://x.test/{n}.png")]],
    ],
)
def test_exit2_bad_input_before_any_request(httpx_mock: HTTPXMock, args: list[str]) -> None:
    result = run_cli(args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error:")
    assert httpx_mock.get_requests() == []


def test_unsupported_option_names_provider_and_option(httpx_mock: HTTPXMock) -> None:
    result = run_cli(["gen", "a fox", "--seed", "3"])
    assert "--seed" in result.stderr and "apiinone" in result.stderr


def test_prompt_from_stdin(httpx_mock: HTTPXMock, clock: FakeTime) -> None:
    httpx_mock.add_response(method="POST", url=CREATE_URL, json={"id": "t-stdin"})
    result = run_cli(["gen", "-", "--no-wait"], input="a fox from stdin\n")
    assert result.exit_code == 0, result.output
    assert json.loads(httpx_mock.get_requests()[0].content)["prompt"] == "a fox from stdin"


def test_exit3_no_key_names_variable_and_config_command(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLUX2_API_KEY")
    result = run_cli(["gen", "a red fox"])
    assert result.exit_code == 3
    assert "FLUX2_API_KEY" in result.stderr and "flux2 config set api_key -" in result.stderr
    assert httpx_mock.get_requests() == []


def test_exit3_key_refused(httpx_mock: HTTPXMock, api_key: str) -> None:
    httpx_mock.add_response(
        method="POST",
        url=CREATE_URL,
        status_code=401,
        json={"error": {"code": 401, "message": "Invalid API key", "type": "auth"}},
    )
    result = run_cli(["gen", "a red fox", "--verbose"])
    assert result.exit_code == 3
    assert "Invalid API key" in result.stderr
    assert_no_key(result, api_key)


def test_exit4_payment_required(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        method="POST", url=CREATE_URL, status_code=402, json={"message": "insufficient credits"}
    )
    assert run_cli(["gen", "a red fox"]).exit_code == 4


def test_exit5_task_failed_no_download(httpx_mock: HTTPXMock, clock: FakeTime) -> None:
    httpx_mock.add_response(
        method="POST", url=CREATE_URL, json={"data": {"task_id": "t5"}, "code": 200}
    )
    httpx_mock.add_response(
        method="GET",
        url=poll_url("t5"),
        json={
            "code": 200,
            "data": {
                "task_id": "t5",
                "status": "FAILED",
                "error": {"code": "NSFW", "message": "moderated"},
            },
        },
    )
    result = run_cli(["gen", "a red fox"])
    assert result.exit_code == 5
    assert "NSFW" in result.stderr and "moderated" in result.stderr and "t5" in result.stderr


def test_exit6_timeout_prints_id_and_resume(httpx_mock: HTTPXMock, clock: FakeTime) -> None:
    httpx_mock.add_response(method="POST", url=CREATE_URL, json={"id": "t6"})
    httpx_mock.add_response(
        method="GET",
        url=poll_url("t6"),
        json={"id": "t6", "status": "processing"},
        is_reusable=True,
    )
    result = run_cli(["gen", "a red fox", "--timeout", "30"])
    assert result.exit_code == 6
    assert (
        "t6" in result.stderr
        and "flux2 status t6 --wait" in result.stderr
        and "flux2 download t6" in result.stderr
    )
    # intervals grow from the first one up to the cap
    assert clock.sleeps[0] < clock.sleeps[3]
    assert max(clock.sleeps) <= 11


def test_exit6_unknown_status_is_named(httpx_mock: HTTPXMock, clock: FakeTime) -> None:
    httpx_mock.add_response(method="POST", url=CREATE_URL, json={"id": "t19"})
    httpx_mock.add_response(
        method="GET",
        url=poll_url("t19"),
        json={"id": "t19", "status": "WIBBLING"},
        is_reusable=True,
    )
    result = run_cli(["gen", "a red fox", "--timeout", "20"])
    assert result.exit_code == 6
    assert "WIBBLING" in result.stderr


def test_exit7_service_unreachable(httpx_mock: HTTPXMock, clock: FakeTime) -> None:
    for _ in range(5):
        httpx_mock.add_exception(httpx.ConnectError("refused"))
    result = run_cli(["gen", "a red fox"])
    assert result.exit_code == 7
    assert "apiin.one" in result.stderr


def test_exit8_expired_image_url(httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path) -> None:
    httpx_mock.add_response(method="POST", url=CREATE_URL, json={"id": "t8"})
    done = {"id": "t8", "status": "completed", "images": [{"url": IMAGE_URL}]}
    httpx_mock.add_response(method="GET", url=poll_url("t8"), json=done, is_reusable=True)
    httpx_mock.add_response(
        method="GET",
        url=IMAGE_URL,
        status_code=403,
        text="<Error><Code>AccessDenied</Code></Error>",
        headers={"Content-Type": "application/xml"},
        is_reusable=True,
    )
    result = run_cli(["gen", "a red fox", "-o", str(tmp_path) + "/"])
    assert result.exit_code == 8
    assert "expired" in result.stderr.lower()
    assert list(tmp_path.glob("*.png")) == []


def test_exit1_unexpected_response_no_traceback(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(method="POST", url=CREATE_URL, json={"hello": "world"})
    result = run_cli(["gen", "a red fox"])
    assert result.exit_code == 1
    assert "unexpected response" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("signal_exc", "code"), [("KeyboardInterrupt", 130), ("TerminatedSignal", 143)]
)
def test_interrupt_while_polling_prints_id_and_resume(
    httpx_mock: HTTPXMock, monkeypatch: pytest.MonkeyPatch, signal_exc: str, code: int
) -> None:
    from flux2_cli import errors

    exc_type = KeyboardInterrupt if signal_exc == "KeyboardInterrupt" else errors.TerminatedSignal
    fake = install_fake_time(monkeypatch)

    def interrupted_sleep(seconds: float) -> None:
        raise exc_type()

    fake.sleep = interrupted_sleep  # type: ignore[method-assign]
    httpx_mock.add_response(method="POST", url=CREATE_URL, json={"id": "t130"})
    result = run_cli(["gen", "a red fox"])
    assert result.exit_code == code
    assert "t130" in result.stderr and "still running" in result.stderr
    assert "flux2 status t130 --wait" in result.stderr and "flux2 download t130" in result.stderr
    history = run_cli(["history", "--json"])
    assert [task["task_id"] for task in json.loads(history.stdout)] == ["t130"]


def test_no_download_prints_urls(httpx_mock: HTTPXMock, clock: FakeTime) -> None:
    httpx_mock.add_response(method="POST", url=CREATE_URL, json={"id": "tu"})
    httpx_mock.add_response(
        method="GET",
        url=poll_url("tu"),
        json={"id": "tu", "status": "success", "output": [IMAGE_URL]},
    )
    result = run_cli(["gen", "a red fox", "--no-download"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == IMAGE_URL


def test_dry_run_shows_request_redacted_and_price(httpx_mock: HTTPXMock, api_key: str) -> None:
    result = run_cli(
        ["gen", "a red fox", "--res", "2k", "--mode", "flex", "--dry-run", "--verbose"]
    )
    assert result.exit_code == 0, result.output
    assert httpx_mock.get_requests() == []
    assert "POST https://apiin.one/api/v1/images/generations" in result.stdout
    assert "Authorization: ***" in result.stdout
    assert '"resolution": "2K"' in result.stdout
    assert "24 credits" in result.stderr
    assert_no_key(result, api_key)


def test_dry_run_json(httpx_mock: HTTPXMock) -> None:
    result = run_cli(["gen", "a red fox", "--dry-run", "--json"])
    data = json.loads(result.stdout)
    assert data["method"] == "POST" and data["body"]["model"] == "flux-2"
    assert data["estimated_cost"] == {"credits": 5, "usd": 0.05}


def test_output_dash_writes_image_bytes_to_stdout(httpx_mock: HTTPXMock, clock: FakeTime) -> None:
    image = png_bytes(20, 20)
    add_happy_path(httpx_mock, image)
    result = run_cli(["gen", "a red fox", "-o", "-"])
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == image


def test_quiet_prints_only_results(httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path) -> None:
    add_happy_path(httpx_mock, png_bytes())
    result = run_cli(["gen", "a red fox", "-q", "-o", str(tmp_path) + "/"])
    assert result.exit_code == 0
    assert result.stderr == ""
    assert result.stdout.strip().endswith(".png")


def test_import_of_cli_loads_neither_httpx_nor_sqlite3() -> None:
    import subprocess
    import sys

    heavy = "('httpx', 'sqlite3', 'rich', 'PIL', 'starlette', 'uvicorn')"
    code = f"import sys, flux2_cli.cli; print([m for m in {heavy} if m in sys.modules])"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert "httpx" not in loaded and "sqlite3" not in loaded, loaded


def test_bad_name_template_is_exit2_before_paying(httpx_mock: HTTPXMock) -> None:
    result = run_cli(["gen", "a red fox", "--name", "{slug}-{bogus}"])
    assert result.exit_code == 2
    assert httpx_mock.get_requests() == []


def test_json_failed_task_still_prints_task_with_error(
    httpx_mock: HTTPXMock, clock: FakeTime
) -> None:
    httpx_mock.add_response(method="POST", url=CREATE_URL, json={"id": "tf"})
    failed = {
        "id": "tf",
        "status": "failed",
        "error": {"code": "002014001", "message": "generation failed"},
    }
    httpx_mock.add_response(method="GET", url=poll_url("tf"), json=failed)
    result = run_cli(["gen", "a red fox", "--json"])
    assert result.exit_code == 5
    task = json.loads(result.stdout)
    assert set(task) == TASK_KEYS
    assert task["status"] == "failed"
    assert task["error"] == {"code": "002014001", "message": "generation failed"}


def test_sandbox_never_receives_a_configured_real_key(
    monkeypatch: pytest.MonkeyPatch, api_key: str, tmp_path: Path
) -> None:
    from flux2_cli.context import SANDBOX_KEY, Context

    ctx = Context.create({}, sandbox=True)
    provider = ctx.provider()
    assert ctx.api_key(provider, ctx.base_url(provider)) == SANDBOX_KEY
    explicit = Context.create({"api_key": "sandbox-invalid-key"}, sandbox=True)
    assert explicit.api_key(provider, explicit.base_url(provider)) == "sandbox-invalid-key"


def test_explicit_base_url_outranks_the_one_saved_in_the_ledger(
    httpx_mock: HTTPXMock, clock: FakeTime
) -> None:
    httpx_mock.add_response(method="POST", url=CREATE_URL, json={"id": "moved"})
    assert run_cli(["gen", "a red fox", "--no-wait"]).exit_code == 0
    moved = "https://new-host.example/api/v1/tasks/moved"
    httpx_mock.add_response(method="GET", url=moved, json={"id": "moved", "status": "processing"})
    result = run_cli(["status", "moved", "--base-url", "https://new-host.example"])
    assert result.exit_code == 0, result.output
    assert [str(r.url) for r in httpx_mock.get_requests(method="GET")] == [moved]


def test_row17_not_found_inside_a_200_envelope_is_exit5(
    httpx_mock: HTTPXMock, clock: FakeTime
) -> None:
    httpx_mock.add_response(method="POST", url=CREATE_URL, json={"id": "gone"})
    httpx_mock.add_response(
        method="GET",
        url=poll_url("gone"),
        json={"code": 404, "message": "Task not found", "data": None},
    )
    result = run_cli(["gen", "a red fox"])
    assert result.exit_code == 5, result.output
    assert "not found or expired" in result.stderr
    assert len(httpx_mock.get_requests(method="POST")) == 1


def test_output_in_a_missing_folder_is_exit2_before_paying(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    result = run_cli(["gen", "a red fox", "-o", str(tmp_path / "nope" / "fox.png")])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr and "end -o with /" in result.stderr
    assert httpx_mock.get_requests() == []


def test_output_folder_ending_in_slash_is_created(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path
) -> None:
    add_happy_path(httpx_mock, png_bytes())
    result = run_cli(["gen", "a red fox", "-o", str(tmp_path / "new" / "deep") + "/"])
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()).parent == tmp_path / "new" / "deep"


def test_verbose_logs_the_image_download_with_its_query_redacted(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path
) -> None:
    add_happy_path(httpx_mock, png_bytes())
    result = run_cli(["gen", "a red fox", "-v", "-o", str(tmp_path) + "/"])
    assert result.exit_code == 0, result.output
    assert "-> GET https://cdn.apiin.one/out/fox.png?X-Amz-Signature=***" in result.stderr
    assert "abc123secret" not in result.stderr
    assert "<- 200 OK (image/png" in result.stderr


def test_a_post_that_got_no_answer_is_where_the_hint_points_flux2_history(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path
) -> None:
    # "A task may exist: check `flux2 history`", but history listed nothing: the POST got no
    # task id, so it was only an open intent in the ledger. history now names it (stderr).
    httpx_mock.add_exception(httpx.RemoteProtocolError("closed"), method="POST", url=CREATE_URL)
    sent = run_cli(["gen", "a fox that may exist"])
    assert sent.exit_code == 7
    assert "check `flux2 history`" in sent.stderr

    shown = run_cli(["history"])

    assert shown.exit_code == 0 and shown.stdout == ""
    assert "1 submission got no answer" in shown.stderr
    assert "apiinone" in shown.stderr and "a fox that may exist" in shown.stderr
    assert run_cli(["history", "--json"]).stdout.strip() == "[]"  # the JSON keeps its shape
    assert "no answer" not in run_cli(["history", "--provider", "bfl"]).stderr
    # Sending the same request again is allowed, and said: it may pay for a second task.
    add_happy_path(httpx_mock, png_bytes(64, 64), task_id="t2")
    again = run_cli(["gen", "a fox that may exist", "-o", str(tmp_path / "fox.png")])
    assert again.exit_code == 0, again.stderr
    assert "sent 1 time before without an answer" in again.stderr


def test_json_gives_the_task_object_when_its_download_fails(
    httpx_mock: HTTPXMock, tmp_path: Path, clock: FakeTime
) -> None:
    # `gen --json` printed nothing when the download failed (exit 8), while a failed or
    # timed-out task gives its object: a script lost the id of a task it had paid for.
    task_id = "n41xxxx_flux2"
    httpx_mock.add_response(
        method="POST", url=CREATE_URL, json={"code": 200, "data": {"task_id": task_id}}
    )
    httpx_mock.add_response(
        method="GET",
        url=poll_url(task_id),
        json={
            "code": 200,
            "data": {"task_id": task_id, "status": "COMPLETED", "images": [{"url": IMAGE_URL}]},
        },
        is_reusable=True,  # looked up again for a fresh URL after the 410
    )
    httpx_mock.add_response(method="GET", url=IMAGE_URL, status_code=410, is_reusable=True)

    result = run_cli(["gen", "a red fox", "--json", "-o", str(tmp_path) + "/"])

    assert result.exit_code == 8, result.stderr
    task = json.loads(result.stdout)
    assert task["task_id"] == task_id and task["status"] == "succeeded"
    assert task["images"][0]["path"] is None and task["images"][0]["url"]
