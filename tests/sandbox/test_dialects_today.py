"""The sandbox speaks each provider as it is today (issue 14; wire-contracts.md, "Updates").

BFL: its seven model paths, klein's limits, prices by BFL's formula with inputs counted, a seed
always a number, no polling_url with a webhook, Request Moderated, the signed ``se=`` expiry,
FastAPI's 404, "Task not found" as a 200, and the markers for the transient polling faults.
APIMart: Idempotency-Key replays and the newer response version. Vtrix: both body shapes, an
integer safety of 1-5, errors as its CLI reads them.
"""

from __future__ import annotations

import base64
import io
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import Image

from flux2_cli.providers.bfl import MODEL_SPECS
from flux2_cli.task import parse_time
from tests.sandbox.conftest import BEARER, XKEY, Sandbox

PROMPT = "a lighthouse at dusk"


def bfl_create(sbx: Sandbox, model: str = "flux-2-pro", **body: Any) -> Any:
    return sbx.client.post(f"/v1/{model}", json={"prompt": PROMPT, **body}, headers=XKEY)


def bfl_poll(sbx: Sandbox, task_id: str) -> Any:
    return sbx.client.get(f"/v1/get_result?id={task_id}", headers=XKEY)


def png_b64(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


# -- BFL -----------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [spec.id for spec in MODEL_SPECS])
def test_every_bfl_model_path_exists(sbx: Sandbox, model: str) -> None:
    answer = bfl_create(sbx, model, width=1024, height=1024)
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"]


def test_unknown_paths_answer_fastapi_json_404(sbx: Sandbox) -> None:
    answer = sbx.client.post("/v1/flux-2-prox", json={"prompt": PROMPT}, headers=XKEY)
    assert answer.status_code == 404
    assert answer.json() == {"detail": "Not Found"}


@pytest.mark.parametrize("model", ["flux-2-klein-4b", "flux-2-klein-9b", "flux-2-klein-9b-preview"])
def test_klein_takes_four_references_and_jpeg_or_png(sbx: Sandbox, model: str) -> None:
    refs = {f"input_image_{n}": f"https://refs.example/{n}.png" for n in range(2, 6)}
    four = {key: value for key, value in refs.items() if key != "input_image_5"}
    ok = bfl_create(sbx, model, input_image="https://refs.example/1.png", **four)
    assert ok.status_code == 200
    five = bfl_create(sbx, model, input_image="https://refs.example/1.png", **refs)
    assert five.status_code == 422
    assert five.json()["detail"][0]["loc"] == ["body", "input_image_5"]
    webp = bfl_create(sbx, model, output_format="webp")
    assert webp.status_code == 422


def test_seed_is_always_a_number(sbx: Sandbox) -> None:
    task_id = bfl_create(sbx).json()["id"]
    sbx.finish()
    seed = bfl_poll(sbx, task_id).json()["result"]["seed"]
    assert isinstance(seed, int) and not isinstance(seed, bool)


def test_cost_follows_bfl_prices_with_inputs_counted(sbx: Sandbox) -> None:
    # pro: 3 for the first MP + 1.5 per extra MP, input images at 1.5 per MP (MP = 10^6).
    plain = bfl_create(sbx, width=2000, height=1008).json()  # 2.016 MP
    assert plain["cost"] == pytest.approx(4.524) and plain["input_mp"] == 0.0
    edited = bfl_create(sbx, width=1008, height=992, input_image=png_b64(1000, 1000)).json()
    assert edited["input_mp"] == 1.0  # 1008×992 = 0.999936 MP out: the first MP, + 1 MP in
    assert edited["cost"] == 4.5
    flex = bfl_create(sbx, "flux-2-flex", width=2048, height=1152).json()
    assert flex["cost"] == pytest.approx(14.156)


def test_size_is_optional(sbx: Sandbox) -> None:
    created = bfl_create(sbx).json()
    assert created["output_mp"] == 1.05  # the model's own 1024×1024


def test_no_polling_url_with_a_webhook(sbx: Sandbox) -> None:
    created = bfl_create(sbx, webhook_url="https://hooks.example.test/x").json()
    assert "polling_url" not in created
    plain = bfl_create(sbx).json()
    assert plain["polling_url"].endswith(f"/v1/get_result?id={plain['id']}")


def test_prompts_past_five_thousand_characters_are_taken(sbx: Sandbox) -> None:
    assert bfl_create(sbx, prompt="x" * 20000).status_code == 200
    too_long = sbx.client.post(
        "/api/v1/images/generations", json={"prompt": "x" * 5001}, headers=BEARER
    )
    assert too_long.status_code == 400  # API in One's own 3-5,000


def test_upsampling_switches_per_model(sbx: Sandbox) -> None:
    assert bfl_create(sbx, disable_pup=True).status_code == 200
    assert bfl_create(sbx, "flux-2-flex", prompt_upsampling=False).status_code == 200
    assert bfl_create(sbx, disable_pup="yes").status_code == 422


def test_request_moderated_with_reasons(sbx: Sandbox) -> None:
    task_id = bfl_create(sbx, prompt="[sandbox:moderate_request] a fox").json()["id"]
    sbx.finish()
    answer = bfl_poll(sbx, task_id).json()
    assert answer["status"] == "Request Moderated"
    assert answer["details"]["Moderation Reasons"]


def test_content_moderated_with_reasons(sbx: Sandbox) -> None:
    task_id = bfl_create(sbx, prompt="[sandbox:moderate] a fox").json()["id"]
    sbx.finish()
    answer = bfl_poll(sbx, task_id).json()
    assert answer["status"] == "Content Moderated"
    assert answer["details"]["Moderation Reasons"]


def test_result_url_carries_a_signed_expiry(sbx: Sandbox) -> None:
    task_id = bfl_create(sbx).json()["id"]
    sbx.finish()
    sample = bfl_poll(sbx, task_id).json()["result"]["sample"]
    (se,) = parse_qs(urlsplit(sample).query)["se"]
    expiry = parse_time(se)
    assert expiry is not None
    assert expiry.timestamp() == pytest.approx(sbx.clock() + 600, abs=5)  # the BFL TTL
    assert sbx.client.get(sample).status_code == 200


def test_marker_lost_answers_task_not_found_twice(sbx: Sandbox) -> None:
    task_id = bfl_create(sbx, prompt="[sandbox:lost] a fox").json()["id"]
    statuses = [bfl_poll(sbx, task_id).json()["status"] for _ in range(3)]
    assert statuses == ["Task not found", "Task not found", "Pending"]


def test_marker_fail422_answers_422_with_the_task_body(sbx: Sandbox) -> None:
    task_id = bfl_create(sbx, prompt="[sandbox:fail422] a fox").json()["id"]
    sbx.finish()
    answer = bfl_poll(sbx, task_id)
    assert answer.status_code == 422
    assert answer.json()["status"] == "Error"


def test_marker_bare_poll_gives_a_polling_url_without_the_id(sbx: Sandbox) -> None:
    created = bfl_create(sbx, prompt="[sandbox:bare_poll] a fox").json()
    assert created["polling_url"].endswith("/v1/get_result")
    assert sbx.client.get(created["polling_url"], headers=XKEY).status_code == 422


# -- APIMart -------------------------------------------------------------------------------

APIMART = "/v1/images/generations"


def test_apimart_idempotency_key_replays_without_charging(make_sandbox: Any) -> None:
    sbx: Sandbox = make_sandbox(credits=5)  # one pro 1K task and no more
    headers = {**BEARER, "Idempotency-Key": "flux2-abc"}
    first = sbx.client.post(APIMART, json={"prompt": PROMPT}, headers=headers)
    again = sbx.client.post(APIMART, json={"prompt": PROMPT}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["idempotency-replayed"] == "true"
    assert "idempotency-replayed" not in first.headers
    assert first.json() == again.json()
    other = sbx.client.post(APIMART, json={"prompt": "another"}, headers=headers)
    assert other.status_code == 422  # the same key for another request
    fresh = sbx.client.post(
        APIMART, json={"prompt": PROMPT}, headers={**BEARER, "Idempotency-Key": "flux2-def"}
    )
    assert fresh.status_code == 402  # the replay cost nothing; a new key pays again


def test_apimart_response_version_makes_data_an_object(sbx: Sandbox) -> None:
    headers = {**BEARER, "X-APIMart-Response-Version": "2026-07-27"}
    answer = sbx.client.post(APIMART, json={"prompt": PROMPT}, headers=headers)
    data = answer.json()["data"]
    assert isinstance(data, dict) and data["id"].startswith("task_")
    assert answer.headers["x-apimart-response-version"] == "2026-07-27"
    plain = sbx.client.post(APIMART, json={"prompt": PROMPT}, headers=BEARER).json()
    assert isinstance(plain["data"], list)


def test_apimart_task_reports_cost_and_credits_cost(sbx: Sandbox) -> None:
    task_id = sbx.client.post(APIMART, json={"prompt": PROMPT}, headers=BEARER).json()["data"][0][
        "task_id"
    ]
    sbx.finish()
    data = sbx.client.get(f"/v1/tasks/{task_id}", headers=BEARER).json()["data"]
    assert data["credits_cost"] == 5 and data["cost"] == 0.05


# -- Vtrix ---------------------------------------------------------------------------------

VTRIX = "/model/v1/generation"


def test_vtrix_accepts_the_wrapped_shape_of_its_cli(sbx: Sandbox) -> None:
    body = {"model": "flux_2_pro", "input": [{"params": {"prompt": PROMPT, "seed": 3}}]}
    created = sbx.client.post(VTRIX, json=body, headers=BEARER)
    assert created.status_code == 200, created.text
    flat = sbx.client.post(VTRIX, json={"model": "flux_2_pro", "prompt": PROMPT}, headers=BEARER)
    assert flat.status_code == 200


def test_vtrix_wrapped_failure_is_a_string_its_cli_reads(sbx: Sandbox) -> None:
    body = {"model": "flux_2_pro", "input": [{"params": {"prompt": "[sandbox:fail] a fox"}}]}
    task_id = sbx.client.post(VTRIX, json=body, headers=BEARER).json()["id"]
    sbx.finish()
    done = sbx.client.get(f"{VTRIX}/task/{task_id}", headers=BEARER).json()
    assert done["status"] == "failed"
    assert done["error"] == "generation failed"  # VtrixAI/vtrix-cli: Error *string


@pytest.mark.parametrize(
    "params",
    [
        {"prompt": PROMPT, "safety_tolerance": "2"},
        {"prompt": PROMPT, "safety_tolerance": 0},
        {"prompt": PROMPT, "safety_tolerance": 6},
        {"prompt": PROMPT, "webhook_url": "https://hooks.example.test/x"},
    ],
)
def test_vtrix_refuses_what_flux2_does_not_send(sbx: Sandbox, params: dict[str, Any]) -> None:
    body = {"model": "flux_2_pro", "input": [{"params": params}]}
    answer = sbx.client.post(VTRIX, json=body, headers=BEARER)
    assert answer.status_code == 400
    assert answer.json()["message"]


@pytest.mark.parametrize("safety", [1, 5])
def test_vtrix_takes_integer_safety_one_to_five(sbx: Sandbox, safety: int) -> None:
    body = {
        "model": "flux_2_pro",
        "input": [{"params": {"prompt": PROMPT, "safety_tolerance": safety}}],
    }
    assert sbx.client.post(VTRIX, json=body, headers=BEARER).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"model": "flux_2_pro", "input": []},
        {"model": "flux_2_pro", "input": [{"prompt": PROMPT}]},
        {"model": "flux_2_pro", "input": [{"params": {"prompt": PROMPT}}], "prompt": PROMPT},
    ],
)
def test_vtrix_malformed_wrapping_is_refused(sbx: Sandbox, body: dict[str, Any]) -> None:
    assert sbx.client.post(VTRIX, json=body, headers=BEARER).status_code == 400


def test_vtrix_models_are_the_documented_ones(sbx: Sandbox) -> None:
    from flux2_cli.providers.vtrix import CAPABILITIES

    for model in CAPABILITIES.known_models():
        answer = sbx.client.post(VTRIX, json={"model": model, "prompt": PROMPT}, headers=BEARER)
        assert answer.status_code == 200, (model, answer.text)
    flex = sbx.client.post(VTRIX, json={"model": "flux_2_flex", "prompt": PROMPT}, headers=BEARER)
    assert flex.status_code == 400
