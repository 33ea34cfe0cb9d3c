"""The sandbox application: each dialect's create → poll → image, errors, expiry, credits."""

from __future__ import annotations

import io
from typing import Any

import httpx
import pytest
from PIL import Image

from flux2_cli.providers.sandbox import SANDBOX_BASE_URL, SandboxProvider
from flux2_cli.request import GenerationRequest
from flux2_cli.sandbox.settings import BROKE_KEY, INVALID_KEY
from flux2_cli.task import TaskStatus
from tests.sandbox.conftest import BEARER, XKEY, Sandbox

PROMPT = "a lighthouse at dusk"


def image_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        return int(width), int(height)


def image_format(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        return str(image.format)


def apiinone_create(sbx: Sandbox, **body: Any) -> str:
    answer = sbx.client.post(
        "/api/v1/images/generations",
        json={"model": "flux-2", "prompt": PROMPT, **body},
        headers=BEARER,
    )
    assert answer.status_code == 200, answer.text
    task_id: str = answer.json()["data"]["task_id"]
    return task_id


def apiinone_poll(sbx: Sandbox, task_id: str) -> dict[str, Any]:
    answer = sbx.client.get(f"/api/v1/tasks/{task_id}", headers=BEARER)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


# -- apiinone ------------------------------------------------------------------------------


def test_apiinone_create_answers_the_documented_envelope(sbx: Sandbox) -> None:
    answer = sbx.client.post(
        "/api/v1/images/generations", json={"prompt": PROMPT}, headers=BEARER
    ).json()
    assert answer["code"] == 200
    assert answer["message"] == "success"
    assert answer["data"]["status"] == "IN_PROGRESS"
    assert answer["data"]["task_id"]


def test_apiinone_task_moves_queued_running_completed_with_the_clock(sbx: Sandbox) -> None:
    task_id = apiinone_create(sbx)
    assert apiinone_poll(sbx, task_id)["status"] == "IN_PROGRESS"
    sbx.clock.advance(1.0)
    running = apiinone_poll(sbx, task_id)
    assert running["status"] == "IN_PROGRESS"
    assert running["images"] == []
    sbx.finish()
    done = apiinone_poll(sbx, task_id)
    assert done["status"] == "COMPLETED"
    assert done["error"] is None
    assert done["expires_at"].endswith("Z") and done["created_at"].endswith("Z")
    url = done["images"][0]["url"]
    assert url.startswith(SANDBOX_BASE_URL + "/files/")
    image = sbx.client.get(url)
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert int(image.headers["content-length"]) == len(image.content)
    assert image_size(image.content) == (1440, 1440)


def test_sandbox_provider_reads_every_answer(sbx: Sandbox) -> None:
    """The real translator for ``--provider sandbox`` understands the sandbox's answers."""
    provider = SandboxProvider()
    request = GenerationRequest(prompt=PROMPT, ratio="16:9", res="2K")
    call = provider.build_create(request)
    assert call.json is not None and "seed" not in call.json
    created = sbx.client.post(call.url, json=call.json, headers=provider.auth_headers("k"))
    task = provider.parse_create(created.json(), request, SANDBOX_BASE_URL)
    assert task.status in (TaskStatus.QUEUED, TaskStatus.RUNNING)
    sbx.finish()
    poll = provider.build_poll(task)
    task = provider.parse_poll(
        sbx.client.get(poll.url, headers=provider.auth_headers("k")).json(), task
    )
    assert task.status is TaskStatus.SUCCEEDED
    assert task.expires_at is not None
    image = sbx.client.get(task.images[0].url)
    assert image_size(image.content) == (2048, 1152)


@pytest.mark.parametrize(
    ("ratio", "res", "size"),
    [("1:1", "1K", (1440, 1440)), ("16:9", "2K", (2048, 1152)), ("9:16", "1K", (1080, 1920))],
)
def test_apiinone_sizes_follow_the_size_table(
    sbx: Sandbox, ratio: str, res: str, size: tuple[int, int]
) -> None:
    task_id = apiinone_create(sbx, aspect_ratio=ratio, resolution=res)
    sbx.finish()
    url = apiinone_poll(sbx, task_id)["images"][0]["url"]
    assert image_size(sbx.client.get(url).content) == size


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": "ab"},
        {"prompt": PROMPT, "aspect_ratio": "5:4"},
        {"prompt": PROMPT, "resolution": "4K"},
        {"prompt": PROMPT, "type": "max"},
        {"prompt": PROMPT, "model": "flux-1"},
        {"prompt": PROMPT, "input_urls": ["https://x/1.png"] * 9},
        {"prompt": PROMPT, "callback_url": "ftp://x"},
        {"prompt": PROMPT, "seed": "7"},
    ],
)
def test_apiinone_refuses_bad_bodies_with_400(sbx: Sandbox, body: dict[str, Any]) -> None:
    answer = sbx.client.post("/api/v1/images/generations", json=body, headers=BEARER)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == 400
    assert answer.json()["error"]["message"]


def test_non_json_body_is_a_400(sbx: Sandbox) -> None:
    answer = sbx.client.post("/api/v1/images/generations", content=b"{nope", headers=BEARER)
    assert answer.status_code == 400


def test_unknown_task_is_404(sbx: Sandbox) -> None:
    answer = sbx.client.get("/api/v1/tasks/nope", headers=BEARER)
    assert answer.status_code == 404
    assert "not found" in answer.json()["error"]["message"].lower()
    assert sbx.client.get("/api/v1/tasks/..%2F..%2Fetc", headers=BEARER).status_code == 404


def test_a_task_is_not_found_on_another_dialects_path(sbx: Sandbox) -> None:
    task_id = apiinone_create(sbx)
    assert sbx.client.get(f"/v1/tasks/{task_id}", headers=BEARER).status_code == 404


# -- apimart -------------------------------------------------------------------------------


def test_apimart_create_poll_image(sbx: Sandbox) -> None:
    created = sbx.client.post(
        "/v1/images/generations",
        json={"model": "flux-2-flex", "prompt": PROMPT, "size": "16:9", "resolution": "2k"},
        headers=BEARER,
    ).json()
    assert created["code"] == 200
    assert created["data"][0]["status"] == "submitted"
    task_id = created["data"][0]["task_id"]
    first = sbx.client.get(f"/v1/tasks/{task_id}", headers=BEARER).json()["data"]
    assert first["status"] == "submitted"
    assert first["progress"] == 0
    sbx.clock.advance(1.0)
    assert sbx.client.get(f"/v1/tasks/{task_id}", headers=BEARER).json()["data"]["status"] == (
        "processing"
    )
    sbx.finish()
    done = sbx.client.get(f"/v1/tasks/{task_id}", headers=BEARER).json()
    assert done["code"] == 200
    data = done["data"]
    assert data["status"] == "completed"
    assert data["progress"] == 100
    assert isinstance(data["created"], int) and isinstance(data["completed"], int)
    picture = data["result"]["images"][0]
    assert isinstance(picture["url"], list)
    assert picture["expires_at"] == pytest.approx(sbx.clock.now + 86400, abs=2)
    assert image_size(sbx.client.get(picture["url"][0]).content) == (2048, 1152)


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": PROMPT, "size": "1024x1024"},
        {"prompt": PROMPT, "model": "flux-2-max"},
        {"prompt": PROMPT, "image_urls": ["data:image/png;base64,AAAA"]},
    ],
)
def test_apimart_refuses_bad_bodies(sbx: Sandbox, body: dict[str, Any]) -> None:
    answer = sbx.client.post("/v1/images/generations", json=body, headers=BEARER)
    assert answer.status_code == 400
    assert answer.json()["error"]["message"]


# -- vtrix ---------------------------------------------------------------------------------


def vtrix_create(sbx: Sandbox, **body: Any) -> httpx.Response:
    return sbx.client.post(
        "/model/v1/generation",
        json={"model": "flux_2_pro", "prompt": PROMPT, **body},
        headers=BEARER,
    )


def test_vtrix_create_poll_image_jpeg_by_default(sbx: Sandbox) -> None:
    created = vtrix_create(sbx, width=1088, height=1920, seed=5)
    assert created.status_code == 200
    task_id = created.json()["id"]
    assert created.json()["status"] == "in_progress"
    sbx.finish()
    done = sbx.client.get(f"/model/v1/generation/task/{task_id}", headers=BEARER).json()
    assert done["status"] == "completed"
    assert done["usage"] == {"cost": "0.05", "discount": 0}
    content = done["output"][0]["content"][0]
    assert content["type"] == "image"
    image = sbx.client.get(content["url"])
    assert image.headers["content-type"] == "image/jpeg"
    assert image_format(image.content) == "JPEG"
    assert image_size(image.content) == (1088, 1920)


def test_vtrix_png_and_2k_price(sbx: Sandbox) -> None:
    task_id = vtrix_create(sbx, width=2048, height=1152, output_format="png").json()["id"]
    sbx.finish()
    done = sbx.client.get(f"/model/v1/generation/task/{task_id}", headers=BEARER).json()
    assert done["usage"]["cost"] == "0.07"
    image = sbx.client.get(done["output"][0]["content"][0]["url"])
    assert image_format(image.content) == "PNG"


@pytest.mark.parametrize(
    "body",
    [
        {"width": 1080, "height": 1920},
        {"width": 32, "height": 64},
        {"width": 1024, "height": 1024, "output_format": "webp"},
        {"width": 1024, "height": 1024, "safety_tolerance": 7},
        {"width": 1024, "height": 1024, "model": "flux_1"},
        {"width": 1024, "height": 1024, "input_image_9": "https://x/9.png"},
    ],
)
def test_vtrix_refuses_bad_bodies_with_400(sbx: Sandbox, body: dict[str, Any]) -> None:
    answer = vtrix_create(sbx, **body)
    assert answer.status_code == 400
    # What Vtrix's CLI reads from an error answer: ``message`` (VtrixAI/vtrix-cli client.go).
    assert answer.json()["code"] == "400"
    assert answer.json()["message"]


def test_vtrix_failed_task_shape(sbx: Sandbox) -> None:
    task_id = vtrix_create(sbx, prompt="[sandbox:fail] a lighthouse").json()["id"]
    sbx.finish()
    done = sbx.client.get(f"/model/v1/generation/task/{task_id}", headers=BEARER).json()
    assert done["status"] == "failed"
    assert done["error"] == {"code": "002014001", "message": "generation failed"}
    assert "output" not in done


# -- bfl -----------------------------------------------------------------------------------


# BFL's prices for 1024×768 = 0.786432 MP (MP = 10^6): the first megapixel, charged whole.
@pytest.mark.parametrize(("mode", "cost"), [("pro", 3.0), ("flex", 6.0), ("max", 7.0)])
def test_bfl_submit_poll_image(sbx: Sandbox, mode: str, cost: float) -> None:
    created = sbx.client.post(
        f"/v1/flux-2-{mode}",
        json={"prompt": PROMPT, "width": 1024, "height": 768, "seed": 42},
        headers=XKEY,
    ).json()
    task_id = created["id"]
    assert created["cost"] == cost
    assert created["polling_url"] == f"{SANDBOX_BASE_URL}/v1/get_result?id={task_id}"
    pending = sbx.client.get(created["polling_url"], headers=XKEY).json()
    assert pending["status"] == "Pending"
    sbx.finish()
    ready = sbx.client.get(created["polling_url"], headers=XKEY).json()
    assert ready["status"] == "Ready"
    assert ready["result"]["prompt"] == PROMPT
    assert ready["result"]["seed"] == 42
    image = sbx.client.get(ready["result"]["sample"])
    assert image_format(image.content) == "JPEG"
    assert image_size(image.content) == (1024, 768)


def test_bfl_webp_output(sbx: Sandbox) -> None:
    created = sbx.client.post(
        "/v1/flux-2-pro", json={"prompt": PROMPT, "output_format": "webp"}, headers=XKEY
    ).json()
    sbx.finish()
    sample = sbx.client.get(created["polling_url"], headers=XKEY).json()["result"]["sample"]
    image = sbx.client.get(sample)
    assert image.headers["content-type"] == "image/webp"
    assert image_format(image.content) == "WEBP"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": PROMPT, "width": 1000, "height": 1024}, "width"),
        ({"prompt": PROMPT, "width": 1024, "height": 40}, "height"),
        ({"prompt": PROMPT, "width": 4096, "height": 4096}, "width"),
        ({"prompt": PROMPT, "safety_tolerance": 6}, "safety_tolerance"),
        ({"prompt": PROMPT, "output_format": "gif"}, "output_format"),
        ({"width": 1024}, "prompt"),
    ],
)
def test_bfl_validation_is_fastapi_422(sbx: Sandbox, body: dict[str, Any], field: str) -> None:
    answer = sbx.client.post("/v1/flux-2-pro", json=body, headers=XKEY)
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert detail[0]["loc"] == ["body", field]
    assert detail[0]["msg"] and detail[0]["type"]


def test_bfl_unknown_id_says_task_not_found(sbx: Sandbox) -> None:
    # BFL documents an unknown id as a 200 with the status word "Task not found".
    answer = sbx.client.get("/v1/get_result?id=nope", headers=XKEY)
    assert answer.status_code == 200
    assert answer.json() == {"id": "nope", "status": "Task not found", "result": None}
    missing = sbx.client.get("/v1/get_result", headers=XKEY)
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["query", "id"]


def test_bfl_urls_expire_after_the_bfl_ttl(sbx: Sandbox) -> None:
    created = sbx.client.post("/v1/flux-2-pro", json={"prompt": PROMPT}, headers=XKEY).json()
    sbx.finish()
    sample = sbx.client.get(created["polling_url"], headers=XKEY).json()["result"]["sample"]
    sbx.clock.advance(590)
    assert sbx.client.get(sample).status_code == 200
    sbx.clock.advance(20)
    assert sbx.client.get(sample).status_code == 403


# -- shared behaviour ----------------------------------------------------------------------


DIALECT_CREATES = [
    ("/api/v1/images/generations", "Authorization", {"prompt": PROMPT}),
    ("/v1/images/generations", "Authorization", {"prompt": PROMPT}),
    ("/model/v1/generation", "Authorization", {"prompt": PROMPT, "width": 64, "height": 64}),
    ("/v1/flux-2-pro", "x-key", {"prompt": PROMPT}),
]


REFUSED_BEARER = [None, "", "Bearer ", "Bearer    ", "Basic abc", f"Bearer {INVALID_KEY}"]
REFUSED_XKEY = [None, "", "   ", INVALID_KEY]


@pytest.mark.parametrize(
    ("path", "header", "body", "value"),
    [
        (path, header, body, value)
        for path, header, body in DIALECT_CREATES
        for value in (REFUSED_XKEY if header == "x-key" else REFUSED_BEARER)
    ],
)
def test_missing_empty_or_refused_key_is_401(
    sbx: Sandbox, path: str, header: str, body: dict[str, Any], value: str | None
) -> None:
    headers = {} if value is None else {header: value}
    answer = sbx.client.post(path, json=body, headers=headers)
    assert answer.status_code == 401
    assert "key" in answer.text.lower()
    assert INVALID_KEY not in answer.text


def test_polls_need_the_key_too(sbx: Sandbox) -> None:
    task_id = apiinone_create(sbx)
    assert sbx.client.get(f"/api/v1/tasks/{task_id}").status_code == 401
    assert sbx.client.get(f"/v1/get_result?id={task_id}").status_code == 401


@pytest.mark.parametrize(
    ("path", "header", "body", "status", "word"),
    [
        ("/api/v1/images/generations", "Authorization", {"prompt": PROMPT}, 402, "credits"),
        ("/v1/images/generations", "Authorization", {"prompt": PROMPT}, 402, "credits"),
        ("/model/v1/generation", "Authorization", {"prompt": PROMPT}, 403, "insufficient balance"),
        ("/v1/flux-2-pro", "x-key", {"prompt": PROMPT}, 402, "credits"),
    ],
)
def test_the_broke_key_gets_each_dialects_out_of_credits_answer(
    sbx: Sandbox, path: str, header: str, body: dict[str, Any], status: int, word: str
) -> None:
    value = f"Bearer {BROKE_KEY}" if header == "Authorization" else BROKE_KEY
    answer = sbx.client.post(path, json=body, headers={header: value})
    assert answer.status_code == status
    assert word in answer.text.lower()


def test_vtrix_out_of_balance_body_is_exact(sbx: Sandbox) -> None:
    answer = sbx.client.post(
        "/model/v1/generation",
        json={"prompt": PROMPT},
        headers={"Authorization": f"Bearer {BROKE_KEY}"},
    )
    assert answer.status_code == 403
    assert answer.json() == {"code": "403", "message": "insufficient balance"}


def test_credits_are_charged_by_the_price_table_until_they_run_out(make_sandbox: Any) -> None:
    sbx = make_sandbox(credits=20)
    # pro 1K = 5, flex 1K = 14: 5 + 14 = 19 leaves 1, not enough for anything.
    apiinone_create(sbx)
    apiinone_create(sbx, type="flex")
    answer = sbx.client.post("/api/v1/images/generations", json={"prompt": PROMPT}, headers=BEARER)
    assert answer.status_code == 402
    other = sbx.client.post(
        "/api/v1/images/generations",
        json={"prompt": PROMPT},
        headers={"Authorization": "Bearer someone-else"},
    )
    assert other.status_code == 200


def test_the_key_is_never_written_to_the_state_folder(sbx: Sandbox) -> None:
    apiinone_create(sbx)
    state = sbx.settings.state_dir
    assert state is not None
    for path in state.rglob("*"):
        if path.is_file():
            assert b"test-key" not in path.read_bytes()


def test_same_request_gives_the_same_bytes(sbx: Sandbox) -> None:
    first = apiinone_create(sbx, seed=11)
    second = apiinone_create(sbx, seed=11)
    other = apiinone_create(sbx, seed=12)
    sbx.finish()
    data = [
        sbx.client.get(apiinone_poll(sbx, task)["images"][0]["url"]).content
        for task in (first, second, other)
    ]
    assert data[0] == data[1]
    assert data[0] != data[2]


def test_image_urls_expire_with_an_xml_access_denied(sbx: Sandbox) -> None:
    task_id = apiinone_create(sbx)
    sbx.finish()
    url = apiinone_poll(sbx, task_id)["images"][0]["url"]
    sbx.clock.advance(86400 - 5)
    assert sbx.client.get(url).status_code == 200
    sbx.clock.advance(10)
    expired = sbx.client.get(url)
    assert expired.status_code == 403
    assert expired.headers["content-type"].startswith("application/xml")
    assert expired.text.startswith("<?xml")
    assert "<Code>AccessDenied</Code>" in expired.text
    assert "<Message>Request has expired</Message>" in expired.text


def test_ttl_is_settable(make_sandbox: Any) -> None:
    sbx = make_sandbox(ttl_seconds=30)
    task_id = apiinone_create(sbx)
    sbx.finish()
    url = apiinone_poll(sbx, task_id)["images"][0]["url"]
    sbx.clock.advance(31)
    assert sbx.client.get(url).status_code == 403


def test_image_before_the_task_ends_or_unknown_is_404_xml(sbx: Sandbox) -> None:
    task_id = apiinone_create(sbx)
    early = sbx.client.get(f"/files/{task_id}_0.png")
    assert early.status_code == 404
    assert "NoSuchKey" in early.text
    assert sbx.client.get("/files/..%2Fsecret_0.png").status_code == 404
    assert sbx.client.get("/files/nothing").status_code == 404


def test_ranges_are_served(sbx: Sandbox) -> None:
    task_id = apiinone_create(sbx)
    sbx.finish()
    url = apiinone_poll(sbx, task_id)["images"][0]["url"]
    whole = sbx.client.get(url)
    assert whole.headers["accept-ranges"] == "bytes"
    size = len(whole.content)
    part = sbx.client.get(url, headers={"Range": "bytes=100-"})
    assert part.status_code == 206
    assert part.content == whole.content[100:]
    assert part.headers["content-range"] == f"bytes 100-{size - 1}/{size}"
    assert int(part.headers["content-length"]) == size - 100
    head = sbx.client.get(url, headers={"Range": "bytes=0-9"})
    assert head.content == whole.content[:10]
    tail = sbx.client.get(url, headers={"Range": "bytes=-4"})
    assert tail.content == whole.content[-4:]
    bad = sbx.client.get(url, headers={"Range": f"bytes={size}-"})
    assert bad.status_code == 416
    assert bad.headers["content-range"] == f"bytes */{size}"


def test_head_request_on_an_image(sbx: Sandbox) -> None:
    task_id = apiinone_create(sbx)
    sbx.finish()
    url = apiinone_poll(sbx, task_id)["images"][0]["url"]
    head = sbx.client.head(url)
    assert head.status_code == 200
    assert int(head.headers["content-length"]) > 0


def test_index_describes_the_sandbox(sbx: Sandbox) -> None:
    info = sbx.client.get("/").json()
    assert info["dialects"] == ["apiinone", "apimart", "bfl", "vtrix"]
    assert INVALID_KEY in info["keys"] and BROKE_KEY in info["keys"]
