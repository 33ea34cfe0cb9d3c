"""Faults: parsing, the injector, every fault kind through the app, and every prompt marker."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from flux2_cli.sandbox.faults import FaultInjector, markers_in, parse_faults
from tests.sandbox.conftest import BEARER, XKEY, Sandbox
from tests.sandbox.test_app import apiinone_create, apiinone_poll

EXAMPLE = (
    "429=0.2,500=0.1,drop=0.05,slow=0.1,truncate=0.1,html=0.05,fail=0.1,moderate=0.05,retry_after=2"
)


# -- parsing and drawing --------------------------------------------------------------------


def test_parse_the_documented_example() -> None:
    settings = parse_faults(EXAMPLE)
    assert settings.rates == {
        "429": 0.2,
        "500": 0.1,
        "drop": 0.05,
        "slow": 0.1,
        "truncate": 0.1,
        "html": 0.05,
        "fail": 0.1,
        "moderate": 0.05,
    }
    assert settings.retry_after == 2
    assert settings.counts == {}
    assert settings.active


def test_parse_counts_seed_and_override() -> None:
    settings = parse_faults(" 429=#3 , 503=#1, seed=9 ")
    assert settings.counts == {"429": 3, "503": 1}
    assert settings.seed == 9
    assert parse_faults("seed=9", seed=4).seed == 4
    assert not parse_faults("").active
    assert parse_faults("500=#1").describe() == "500=#1"


@pytest.mark.parametrize(
    "text", ["bogus=0.1", "429=2", "429=-0.1", "429", "500=#x", "retry_after=soon", "seed=x"]
)
def test_parse_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError):
        parse_faults(text)


def test_counts_fire_for_the_first_n_requests_only() -> None:
    injector = FaultInjector(parse_faults("429=#3"))
    fired = [injector.draw(("429", "500")) for _ in range(6)]
    assert fired == ["429", "429", "429", None, None, None]


def test_rates_one_and_zero() -> None:
    always = FaultInjector(parse_faults("500=1"))
    never = FaultInjector(parse_faults("500=0"))
    assert all(always.draw(("500",)) == "500" for _ in range(20))
    assert all(never.draw(("500",)) is None for _ in range(20))


def test_a_seed_makes_the_sequence_repeatable() -> None:
    def sequence(seed: int) -> list[str | None]:
        injector = FaultInjector(parse_faults("429=0.3,500=0.3", seed=seed))
        return [injector.draw(("429", "500")) for _ in range(50)]

    assert sequence(1) == sequence(1)
    assert sequence(1) != sequence(2)
    assert {"429", "500", None} == set(sequence(1))


def test_markers_are_found_case_insensitively() -> None:
    assert markers_in("x [Sandbox:FAIL] y [sandbox:slow] [sandbox:unknown]") == {"fail", "slow"}
    assert markers_in("no markers") == frozenset()


# -- fault kinds through the application ----------------------------------------------------


def test_429_fault_with_retry_after_in_the_dialect_shape(make_sandbox: Any) -> None:
    sbx: Sandbox = make_sandbox("429=1,retry_after=2")
    answer = sbx.client.post("/v1/flux-2-pro", json={"prompt": "a cat"}, headers=XKEY)
    assert answer.status_code == 429
    assert answer.headers["x-sandbox-fault"] == "429"
    # BFL's documented 429 (black-forest-labs/skills, rate-limiting.md): the wait in the body.
    assert answer.json() == {
        "error": "rate_limit_exceeded",
        "message": "Too many concurrent requests",
        "retry_after": 2,
    }
    other = sbx.client.post("/api/v1/images/generations", json={"prompt": "a cat"}, headers=BEARER)
    assert other.status_code == 429
    assert other.headers["retry-after"] == "2"


def test_a_counted_500_fails_the_first_create_only_and_creates_nothing(
    make_sandbox: Any,
) -> None:
    sbx: Sandbox = make_sandbox("500=#1", credits=5)
    first = sbx.client.post("/api/v1/images/generations", json={"prompt": "a cat"}, headers=BEARER)
    assert first.status_code == 500
    assert first.json()["error"]["code"] == 500
    # Nothing was charged: the one affordable task still goes through.
    apiinone_create(sbx)
    state = sbx.settings.state_dir
    assert state is not None
    assert len(list((state / "tasks").glob("*.json"))) == 1


@pytest.mark.parametrize("status", [502, 503])
def test_gateway_faults_answer_an_html_page(make_sandbox: Any, status: int) -> None:
    sbx: Sandbox = make_sandbox(f"{status}=1")
    answer = sbx.client.post("/api/v1/images/generations", json={"prompt": "a cat"}, headers=BEARER)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")
    assert f"<h1>{status}" in answer.text


def test_poll_faults_apply_to_polls(make_sandbox: Any) -> None:
    sbx: Sandbox = make_sandbox("503=#1")
    # The create takes the one 503; the poll after it is clean.
    assert (
        sbx.client.post("/api/v1/images/generations", json={"prompt": "a cat"}, headers=BEARER)
    ).status_code == 503
    task_id = apiinone_create(sbx)
    assert apiinone_poll(sbx, task_id)["status"] == "IN_PROGRESS"


def test_drop_fault_cuts_the_poll_connection(make_sandbox: Any) -> None:
    sbx: Sandbox = make_sandbox("drop=#1")
    task_id = apiinone_create(sbx)
    with pytest.raises(httpx.RemoteProtocolError):
        sbx.client.get(f"/api/v1/tasks/{task_id}", headers=BEARER)
    assert apiinone_poll(sbx, task_id)["status"] == "IN_PROGRESS"


def _finished_image_url(sbx: Sandbox, prompt: str = "a lighthouse") -> str:
    task_id = apiinone_create(sbx, prompt=prompt)
    sbx.finish()
    url: str = apiinone_poll(sbx, task_id)["images"][0]["url"]
    return url


def test_truncate_fault_sends_less_than_content_length(make_sandbox: Any) -> None:
    sbx: Sandbox = make_sandbox("truncate=#1")
    url = _finished_image_url(sbx)
    received = b""
    with sbx.client.stream("GET", url) as answer:
        declared = int(answer.headers["content-length"])
        with pytest.raises(httpx.RemoteProtocolError):
            for chunk in answer.iter_raw():
                received += chunk
    assert 0 < len(received) < declared
    whole = sbx.client.get(url)
    assert len(whole.content) == declared


def test_html_fault_answers_a_page_instead_of_the_image(make_sandbox: Any) -> None:
    sbx: Sandbox = make_sandbox("html=#1")
    url = _finished_image_url(sbx)
    answer = sbx.client.get(url)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.content.startswith(b"<!DOCTYPE html>")
    assert sbx.client.get(url).headers["content-type"] == "image/png"


def test_expired_fault_answers_access_denied(make_sandbox: Any) -> None:
    sbx: Sandbox = make_sandbox("expired=#1")
    url = _finished_image_url(sbx)
    answer = sbx.client.get(url)
    assert answer.status_code == 403
    assert "AccessDenied" in answer.text


def test_drop_fault_on_a_download(sbx: Sandbox) -> None:
    url = _finished_image_url(sbx)
    # Counts are shared by polls and downloads: switch faults on once the URL is known.
    sbx.transport.app.state.sandbox.faults = FaultInjector(parse_faults("drop=#1"))
    with pytest.raises(httpx.RemoteProtocolError):
        sbx.client.get(url)
    assert sbx.client.get(url).status_code == 200


def test_slow_fault_paces_the_download_and_sends_it_whole(make_sandbox: Any) -> None:
    sbx: Sandbox = make_sandbox("slow=1")
    url = _finished_image_url(sbx)
    answer = sbx.client.get(url)
    assert answer.headers["x-sandbox-fault"] == "slow"
    assert len(answer.content) == int(answer.headers["content-length"])
    assert sbx.sleeps.calls == [sbx.settings.slow_delay] * sbx.settings.slow_chunks


@pytest.mark.parametrize(("fault", "word"), [("fail", "FAILED"), ("moderate", "FAILED")])
def test_outcome_faults(make_sandbox: Any, fault: str, word: str) -> None:
    sbx: Sandbox = make_sandbox(f"{fault}=1")
    task_id = apiinone_create(sbx)
    sbx.finish()
    data = apiinone_poll(sbx, task_id)
    assert data["status"] == word
    assert data["images"] == []
    expected = "content_moderated" if fault == "moderate" else "generation_failed"
    assert data["error"]["code"] == expected


# -- prompt markers -------------------------------------------------------------------------


def test_marker_fail(sbx: Sandbox) -> None:
    task_id = apiinone_create(sbx, prompt="[sandbox:fail] a lighthouse")
    sbx.finish()
    data = apiinone_poll(sbx, task_id)
    assert data["status"] == "FAILED"
    assert data["error"]["message"] == "generation failed"


def test_marker_moderate_in_bfl_says_content_moderated(sbx: Sandbox) -> None:
    created = sbx.client.post(
        "/v1/flux-2-pro", json={"prompt": "a lighthouse [sandbox:moderate]"}, headers=XKEY
    ).json()
    sbx.finish()
    answer = sbx.client.get(created["polling_url"], headers=XKEY).json()
    assert answer["status"] == "Content Moderated"
    assert answer["result"] is None


def test_marker_slow_takes_five_times_the_latency(sbx: Sandbox) -> None:
    task_id = apiinone_create(sbx, prompt="[sandbox:slow] a lighthouse")
    sbx.clock.advance(9.9)
    assert apiinone_poll(sbx, task_id)["status"] == "IN_PROGRESS"
    sbx.clock.advance(0.2)
    assert apiinone_poll(sbx, task_id)["status"] == "COMPLETED"


def test_marker_never(sbx: Sandbox) -> None:
    task_id = apiinone_create(sbx, prompt="[sandbox:never] a lighthouse")
    sbx.clock.advance(10**7)
    assert apiinone_poll(sbx, task_id)["status"] == "IN_PROGRESS"
    created = sbx.client.post(
        "/v1/images/generations", json={"prompt": "[sandbox:never] abc"}, headers=BEARER
    ).json()
    sbx.clock.advance(10**7)
    task = created["data"][0]["task_id"]
    data = sbx.client.get(f"/v1/tasks/{task}", headers=BEARER).json()["data"]
    assert data["status"] == "processing"
    assert data["progress"] == 99


def test_marker_429_answers_the_first_create_only(sbx: Sandbox) -> None:
    body = {"prompt": "[sandbox:429] a lighthouse"}
    first = sbx.client.post("/api/v1/images/generations", json=body, headers=BEARER)
    assert first.status_code == 429
    assert first.headers["retry-after"] == "1"
    second = sbx.client.post("/api/v1/images/generations", json=body, headers=BEARER)
    assert second.status_code == 200


def test_marker_500_answers_the_first_create_only(sbx: Sandbox) -> None:
    body = {"prompt": "[sandbox:500] a lighthouse", "width": 64, "height": 64}
    first = sbx.client.post("/model/v1/generation", json=body, headers=BEARER)
    assert first.status_code == 500
    assert first.json()["code"] == "500"
    assert sbx.client.post("/model/v1/generation", json=body, headers=BEARER).status_code == 200


def test_marker_drop_drops_the_first_poll_only(sbx: Sandbox) -> None:
    task_id = apiinone_create(sbx, prompt="[sandbox:drop] a lighthouse")
    with pytest.raises(httpx.RemoteProtocolError):
        sbx.client.get(f"/api/v1/tasks/{task_id}", headers=BEARER)
    assert apiinone_poll(sbx, task_id)["status"] == "IN_PROGRESS"
    assert apiinone_poll(sbx, task_id)["status"] == "IN_PROGRESS"


def test_marker_html(sbx: Sandbox) -> None:
    url = _finished_image_url(sbx, "[sandbox:html] a lighthouse")
    for _ in range(2):
        answer = sbx.client.get(url)
        assert answer.headers["content-type"].startswith("text/html")


def test_marker_truncate(sbx: Sandbox) -> None:
    url = _finished_image_url(sbx, "[sandbox:truncate] a lighthouse")
    with pytest.raises(httpx.RemoteProtocolError):
        sbx.client.get(url)


def test_marker_expired(sbx: Sandbox) -> None:
    url = _finished_image_url(sbx, "[sandbox:expired] a lighthouse")
    answer = sbx.client.get(url)
    assert answer.status_code == 403
    assert "Request has expired" in answer.text
