"""Issue 14 through the command: the providers as they really are today.

Sources (cited in the modules too): BFL's OpenAPI schema and black-forest-labs/skills, APIMart's
own client (apimart-ai/apimart-skills), Vtrix's CLI (VtrixAI/vtrix-cli); summarised at the end
of wire-contracts.md ("Updates since the first release").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from flux2_cli.request import GenerationRequest
from tests.helpers import FakeTime, install_fake_time, png_bytes, run_cli

BFL = "https://api.bfl.ai"
APIMART = "https://api.apimart.ai"


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLUX2_API_KEY", "test-key-1234")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    return install_fake_time(monkeypatch)


def dry_run(*args: str) -> dict[str, Any]:
    result = run_cli(["gen", "a red fox", *args, "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    plan: dict[str, Any] = json.loads(result.stdout)
    return plan


# --- BFL -----------------------------------------------------------------------------------


def test_providers_json_lists_every_bfl_model_with_limits_and_prices() -> None:
    result = run_cli(["providers", "--json"])
    assert result.exit_code == 0, result.output
    bfl = next(p for p in json.loads(result.stdout) if p["id"] == "bfl")
    models = {m["id"]: m for m in bfl["model_details"]}
    assert set(models) == {
        "flux-2-pro",
        "flux-2-flex",
        "flux-2-max",
        "flux-2-klein-4b",
        "flux-2-klein-9b",
        "flux-2-pro-preview",
        "flux-2-klein-9b-preview",
    }
    for model in models.values():
        assert model["max_refs"] in (4, 8)
        assert model["formats"]
        assert model["price_first_mp_cents"] is not None
    assert models["flux-2-klein-4b"]["max_refs"] == 4
    assert bfl["prompt_chars"] == [3, None]


def test_providers_table_shows_the_bfl_models() -> None:
    result = run_cli(["providers"])
    assert result.exit_code == 0, result.output
    assert "flux-2-klein-9b-preview (" in result.stdout


def test_bfl_size_is_sent_only_when_asked_for(tmp_path: Path) -> None:
    plain = dry_run("--provider", "bfl")
    assert "width" not in plain["body"] and "height" not in plain["body"]
    asked = dry_run("--provider", "bfl", "--ratio", "16:9")
    assert (asked["body"]["width"], asked["body"]["height"]) == (1920, 1088)
    assert run_cli(["config", "set", "res", "2K"]).exit_code == 0
    configured = dry_run("--provider", "bfl")
    assert (configured["body"]["width"], configured["body"]["height"]) == (1536, 1536)


@pytest.mark.parametrize(
    ("args", "field", "value"),
    [
        ((), "disable_pup", True),
        (("--model", "flux-2-max"), "disable_pup", True),
        (("--mode", "flex"), "prompt_upsampling", False),
    ],
)
def test_no_upsample_is_one_flag_mapped_per_model(
    args: tuple[str, ...], field: str, value: bool
) -> None:
    plan = dry_run("--provider", "bfl", "--no-upsample", *args)
    assert plan["body"][field] is value


@pytest.mark.parametrize(
    "args", [("--provider", "bfl", "--model", "flux-2-klein-4b"), ("--provider", "apiinone")]
)
def test_no_upsample_is_refused_where_nothing_can_turn_it_off(
    httpx_mock: HTTPXMock, args: tuple[str, ...]
) -> None:
    result = run_cli(["gen", "a red fox", "--no-upsample", *args])
    assert result.exit_code == 2
    assert "--no-upsample" in result.stderr
    assert httpx_mock.get_requests() == []


def test_no_upsample_is_recorded_in_the_sidecar_and_the_ledger(
    httpx_mock: HTTPXMock, clock: FakeTime, tmp_path: Path
) -> None:
    sample = "https://delivery.bfl.ai/up/sample.png"
    httpx_mock.add_response(method="POST", url=f"{BFL}/v1/flux-2-pro", json={"id": "up1"})
    httpx_mock.add_response(
        method="GET",
        url=f"{BFL}/v1/get_result?id=up1",
        json={"id": "up1", "status": "Ready", "result": {"sample": sample, "seed": 1}},
    )
    httpx_mock.add_response(
        method="GET", url=sample, content=png_bytes(), headers={"Content-Type": "image/png"}
    )
    out = tmp_path / "out"
    result = run_cli(["gen", "a red fox", "--provider", "bfl", "--no-upsample", "-o", f"{out}/"])
    assert result.exit_code == 0, result.output
    sent = json.loads(httpx_mock.get_requests(method="POST")[0].content)
    assert sent["disable_pup"] is True
    (sidecar,) = out.glob("*.json")
    recorded = json.loads(sidecar.read_text())["request"]
    assert recorded["upsample"] is False
    # No size was sent (BFL's model chose it), so none is recorded.
    assert (recorded["ratio"], recorded["res"], recorded["default_size"]) == (None, None, True)
    history = json.loads(run_cli(["history", "--json"]).stdout)
    assert history[0]["request"]["upsample"] is False


def test_no_upsample_changes_the_batch_fingerprint() -> None:
    plain = GenerationRequest("a red fox").fingerprint("bfl", "flux-2-pro")
    exact = GenerationRequest("a red fox", upsample=False).fingerprint("bfl", "flux-2-pro")
    assert plain != exact


def test_a_mistyped_model_is_an_unknown_model_not_a_lost_task(
    httpx_mock: HTTPXMock, clock: FakeTime
) -> None:
    httpx_mock.add_response(
        method="POST", url=f"{BFL}/v1/flux-2-prox", status_code=404, json={"detail": "Not Found"}
    )
    result = run_cli(["gen", "a red fox", "--provider", "bfl", "--model", "flux-2-prox"])
    assert result.exit_code == 2, result.output
    assert "unknown model 'flux-2-prox'" in result.stderr
    assert "flux-2-pro" in result.stderr
    assert "task not found" not in result.stderr
    assert json.loads(run_cli(["history", "--json"]).stdout) == []


def test_klein_fifth_reference_is_refused_before_sending(httpx_mock: HTTPXMock) -> None:
    refs = [arg for n in range(5) for arg in ("--ref", f"https://refs.example/{n}.png")]
    result = run_cli(["gen", "a red fox", "--provider", "bfl", "--model", "flux-2-klein-4b", *refs])
    assert result.exit_code == 2
    assert "at most 4" in result.stderr and "flux-2-klein-4b" in result.stderr
    assert httpx_mock.get_requests() == []


def test_bfl_takes_prompts_past_five_thousand_characters() -> None:
    plan = dry_run("--provider", "bfl", "--param", "extra=1")
    assert plan["body"]["prompt"] == "a red fox"
    result = run_cli(["gen", "x" * 9000, "--provider", "bfl", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    refused = run_cli(["gen", "x" * 9000, "--provider", "apiinone", "--dry-run"])
    assert refused.exit_code == 2 and "apiinone" in refused.stderr


def test_bfl_estimate_follows_the_published_formula() -> None:
    plan = dry_run("--provider", "bfl", "--mode", "flex", "--ratio", "16:9", "--res", "2K")
    # 2048×1152 = 2.36 MP at 6 c/MP (MP = 10^6): about 14.16, not 15 in whole 2^20 steps.
    assert plan["estimated_cost"]["credits"] == pytest.approx(14.156)


# --- APIMart -------------------------------------------------------------------------------


def test_row66_apimart_post_whose_answer_was_lost_is_sent_again_with_the_same_key(
    httpx_mock: HTTPXMock, clock: FakeTime
) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("answer lost"), method="POST")
    httpx_mock.add_response(
        method="POST",
        url=f"{APIMART}/v1/images/generations",
        json={"code": 200, "data": {"id": "task_01R", "status": "submitted"}},
        headers={"idempotency-replayed": "true"},
    )
    result = run_cli(["gen", "a red fox", "--provider", "apimart", "--no-wait"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "task_01R"
    posts = httpx_mock.get_requests(method="POST")
    assert len(posts) == 2
    keys = {post.headers["Idempotency-Key"] for post in posts}
    assert len(keys) == 1 and next(iter(keys)).startswith("flux2-")
    assert "outcome unknown" not in result.stderr


def test_apimart_each_gen_is_a_new_attempt_with_a_new_key(httpx_mock: HTTPXMock) -> None:
    for task_id in ("task_01A", "task_01B"):
        httpx_mock.add_response(
            method="POST",
            url=f"{APIMART}/v1/images/generations",
            json={"code": 200, "data": [{"task_id": task_id}]},
        )
    for _ in range(2):
        assert run_cli(["gen", "a red fox", "--provider", "apimart", "--no-wait"]).exit_code == 0
    keys = [post.headers["Idempotency-Key"] for post in httpx_mock.get_requests(method="POST")]
    assert len(set(keys)) == 2


def test_apimart_success_false_is_a_refusal_with_its_message(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        method="POST",
        url=f"{APIMART}/v1/images/generations",
        json={"success": False, "message": "model flux-2-pro is under maintenance"},
    )
    result = run_cli(["gen", "a red fox", "--provider", "apimart", "--no-wait"])
    assert result.exit_code == 2
    assert "under maintenance" in result.stderr
    assert "unexpected response" not in result.stderr


# --- Vtrix ---------------------------------------------------------------------------------


def test_vtrix_safety_is_an_integer_in_one_range() -> None:
    plan = dry_run("--provider", "vtrix", "--safety", "3")
    assert plan["body"]["input"][0]["params"]["safety_tolerance"] == 3
    for bad in ("0", "6"):
        result = run_cli(["gen", "a red fox", "--provider", "vtrix", "--safety", bad])
        assert result.exit_code == 2 and "1–5" in result.stderr


def test_vtrix_callback_url_is_refused() -> None:
    result = run_cli(
        ["gen", "a red fox", "--provider", "vtrix", "--callback-url", "https://hook.example/x"]
    )
    assert result.exit_code == 2
    assert "--callback-url" in result.stderr and "vtrix" in result.stderr


def test_a_manifest_entry_takes_upsample_false_and_it_changes_the_fingerprint(
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"prompt": "a red fox", "upsample": false}\n{"prompt": "a red fox"}\n')
    result = run_cli(["batch", str(manifest), "--provider", "bfl", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    exact, plain = [json.loads(line) for line in result.stdout.splitlines()][:2]
    assert exact["request"]["upsample"] is False and "upsample" not in plain["request"]
    assert exact["fingerprint"] != plain["fingerprint"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a red fox", "upsample": "no"}\n')
    refused = run_cli(["batch", str(bad), "--provider", "bfl", "--dry-run"])
    assert refused.exit_code == 2 and "bad.jsonl line 1: upsample" in refused.stderr


# --- each provider's dry-run body, as its source shows it -----------------------------------


@pytest.mark.parametrize(
    ("provider", "args", "url", "body"),
    [
        # API in One's flux-2 page (apiin.one; shared/seeds): model flux-2, type, aspect_ratio,
        # resolution, input_urls.
        (
            "apiinone",
            ["--ratio", "16:9", "--ref", "https://r.example/a.png"],
            "https://apiin.one/api/v1/images/generations",
            {
                "model": "flux-2",
                "prompt": "a red fox",
                "aspect_ratio": "16:9",
                "resolution": "1K",
                "type": "pro",
                "input_urls": ["https://r.example/a.png"],
            },
        ),
        # APIMart's FLUX.2 page: size is the ratio, resolution upper case, image_urls.
        (
            "apimart",
            ["--ratio", "3:2", "--res", "2k", "--mode", "flex"],
            "https://api.apimart.ai/v1/images/generations",
            {"model": "flux-2-flex", "prompt": "a red fox", "size": "3:2", "resolution": "2K"},
        ),
        # Vtrix's official CLI (VtrixAI/vtrix-cli client.go): wrapped params; the flux-2-pro
        # page's names; safety_tolerance an integer.
        (
            "vtrix",
            ["--width", "1024", "--height", "768", "--seed", "7", "--safety", "2"],
            "https://cloud.vtrix.ai/model/v1/generation",
            {
                "model": "flux_2_pro",
                "input": [
                    {
                        "params": {
                            "prompt": "a red fox",
                            "width": 1024,
                            "height": 768,
                            "seed": 7,
                            "safety_tolerance": 2,
                        }
                    }
                ],
            },
        ),
        # BFL's schema (black-forest-labs/skills endpoints.md): the model in the path, width and
        # height optional, disable_pup for pro.
        (
            "bfl",
            ["--no-upsample", "--seed", "7", "--format", "png"],
            "https://api.bfl.ai/v1/flux-2-pro",
            {"prompt": "a red fox", "seed": 7, "output_format": "png", "disable_pup": True},
        ),
        (
            "bfl",
            ["--model", "flux-2-klein-9b", "--width", "1024", "--height", "1024"],
            "https://api.bfl.ai/v1/flux-2-klein-9b",
            {"prompt": "a red fox", "width": 1024, "height": 1024},
        ),
    ],
    ids=["apiinone", "apimart", "vtrix", "bfl-pro", "bfl-klein"],
)
def test_dry_run_bodies_match_the_sources(
    provider: str, args: list[str], url: str, body: dict[str, Any]
) -> None:
    plan = dry_run("--provider", provider, *args)
    assert (plan["method"], plan["url"]) == ("POST", url)
    assert plan["body"] == body


# --- polling through the command (pytest-httpx) ---------------------------------------------


def test_without_polling_url_the_regional_host_that_made_the_task_is_polled(
    httpx_mock: HTTPXMock, clock: FakeTime
) -> None:
    eu = "https://api.eu.bfl.ai"
    httpx_mock.add_response(method="POST", url=f"{eu}/v1/flux-2-pro", json={"id": "eu1"})
    sample = "https://delivery-eu1.bfl.ai/eu1/sample.png"
    httpx_mock.add_response(
        method="GET",
        url=f"{eu}/v1/get_result?id=eu1",
        json={"id": "eu1", "status": "Ready", "result": {"sample": sample}},
    )
    result = run_cli(["gen", "a red fox", "--provider", "bfl", "--region", "eu", "--no-download"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == sample


def test_a_polling_url_without_an_id_is_polled_with_it(
    httpx_mock: HTTPXMock, clock: FakeTime
) -> None:
    httpx_mock.add_response(
        method="POST",
        url=f"{BFL}/v1/flux-2-pro",
        json={"id": "b9", "polling_url": "https://api.us2.bfl.ai/v1/get_result"},
    )
    sample = "https://delivery-us1.bfl.ai/b9/sample.png"
    httpx_mock.add_response(
        method="GET",
        url="https://api.us2.bfl.ai/v1/get_result?id=b9",
        json={"id": "b9", "status": "Ready", "result": {"sample": sample}},
    )
    result = run_cli(["gen", "a red fox", "--provider", "bfl", "--no-download"])
    assert result.exit_code == 0, result.output


def test_the_signed_se_expiry_is_the_tasks_expiry(httpx_mock: HTTPXMock, clock: FakeTime) -> None:
    httpx_mock.add_response(method="POST", url=f"{BFL}/v1/flux-2-pro", json={"id": "se1"})
    sample = "https://delivery-eu1.bfl.ai/se1/sample.png?se=2099-01-02T03%3A04%3A05Z&sig=x"
    httpx_mock.add_response(
        method="GET",
        url=f"{BFL}/v1/get_result?id=se1",
        json={"id": "se1", "status": "Ready", "result": {"sample": sample}},
    )
    result = run_cli(["gen", "a red fox", "--provider", "bfl", "--no-download", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["expires_at"] == "2099-01-02T03:04:05Z"


def test_providers_lists_each_bfl_model_with_limits_and_prices() -> None:
    result = run_cli(["providers"])
    assert result.exit_code == 0, result.output
    (bfl,) = [line for line in result.stdout.splitlines() if line.startswith("bfl\t")]
    assert "flux-2-klein-4b (4 refs; jpeg/png; 1.4 + 0.1 per extra MP ¢)" in bfl
    assert "flux-2-flex (8 refs; jpeg/png/webp; 6 per MP ¢; --no-upsample" in bfl
    assert "flux-2-pro-preview (8 refs; jpeg/png/webp; 3 + 1.5 per extra MP ¢" in bfl
