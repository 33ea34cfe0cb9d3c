"""End to end: the installed flux2 against ``sandbox serve`` speaking the providers as they are
today (issue 14): each BFL polling behaviour, BFL's models and prices, APIMart's idempotency
keys (reliability row 66), Vtrix's wrapped body and integer safety.

The sandbox's prompt markers force the server-side behaviour (``flux2 sandbox --help``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest

from flux2_cli.task import parse_time
from tests.e2e.conftest import SandboxServer, account

pytestmark = pytest.mark.e2e

Run = Callable[..., CompletedProcess[str]]
Server = Callable[..., SandboxServer]
DEAD_HOOK = "http://127.0.0.1:9/hook"  # nothing listens: the sandbox's webhook call fails fast


def gen_json(run: Run, server: SandboxServer, provider: str, prompt: str, *flags: str) -> Any:
    result = run("gen", prompt, *account(provider, server), "--no-download", "--json", *flags)
    return result, (json.loads(result.stdout) if result.stdout.strip() else None)


# --- BFL polling ---------------------------------------------------------------------------


def test_row67_transient_task_not_found_is_polled_through(
    sandbox_server: Server, run_flux2: Run
) -> None:
    server = sandbox_server(latency=0.3)
    result, task = gen_json(run_flux2, server, "bfl", "[sandbox:lost] a fox")
    assert result.returncode == 0, result.stderr
    assert task["status"] == "succeeded"
    assert server.tasks_created() == 1


def test_row67_poll_422_with_a_task_body_is_a_failed_task(
    sandbox_server: Server, run_flux2: Run
) -> None:
    server = sandbox_server(latency=0.3)
    result, task = gen_json(run_flux2, server, "bfl", "[sandbox:fail422] a fox")
    assert result.returncode == 5, result.stderr
    assert task["status"] == "failed"
    assert "generation failed" in result.stderr


def test_without_polling_url_the_task_is_polled_on_its_own_host(
    sandbox_server: Server, run_flux2: Run
) -> None:
    # A webhook_url makes BFL's submit answer leave out polling_url.
    server = sandbox_server(latency=0.3)
    result, task = gen_json(run_flux2, server, "bfl", "a fox", "--callback-url", DEAD_HOOK)
    assert result.returncode == 0, result.stderr
    assert task["status"] == "succeeded"
    assert task["images"][0]["url"].startswith(server.url)


def test_polling_url_without_an_id_gets_it(sandbox_server: Server, run_flux2: Run) -> None:
    server = sandbox_server(latency=0.3)
    result, task = gen_json(run_flux2, server, "bfl", "[sandbox:bare_poll] a fox")
    assert result.returncode == 0, result.stderr
    assert task["status"] == "succeeded"


def test_expiry_comes_from_the_signed_se_parameter(sandbox_server: Server, run_flux2: Run) -> None:
    server = sandbox_server(latency=0.3)
    result, task = gen_json(run_flux2, server, "bfl", "a fox")
    assert result.returncode == 0, result.stderr
    expires = parse_time(task["expires_at"])
    assert expires is not None
    # The sandbox signs BFL URLs for its BFL TTL (600 s), and flux2 takes the URL's word.
    left = expires - datetime.now(timezone.utc)
    assert timedelta(minutes=8) < left <= timedelta(minutes=10, seconds=5)


def test_bfl_429_body_retry_after_is_honoured(sandbox_server: Server, run_flux2: Run) -> None:
    server = sandbox_server(latency=0.3)
    result, task = gen_json(run_flux2, server, "bfl", "[sandbox:429] a fox")
    assert result.returncode == 0, result.stderr
    assert task["status"] == "succeeded"
    assert server.tasks_created() == 1


def test_request_moderated_is_exit5_with_its_reasons(
    sandbox_server: Server, run_flux2: Run
) -> None:
    server = sandbox_server(latency=0.3)
    result, task = gen_json(run_flux2, server, "bfl", "[sandbox:moderate_request] a fox")
    assert result.returncode == 5, result.stderr
    assert "Request Moderated" in result.stderr and "Moderation Reasons" in result.stderr
    assert task["error"]["code"] == "moderated"


# --- BFL models ----------------------------------------------------------------------------


def test_a_mistyped_model_is_an_unknown_model(sandbox_server: Server, run_flux2: Run) -> None:
    server = sandbox_server(latency=0.3)
    result = run_flux2("gen", "a fox", *account("bfl", server), "--model", "flux-2-prox")
    assert result.returncode == 2, result.stderr
    assert "unknown model 'flux-2-prox'" in result.stderr
    assert server.tasks_created() == 0


@pytest.mark.parametrize(
    ("model", "cost"),
    [("flux-2-klein-4b", 1.4), ("flux-2-klein-9b-preview", 1.5), ("flux-2-pro-preview", 3.0)],
)
def test_klein_and_preview_models_with_bfl_prices(
    sandbox_server: Server, run_flux2: Run, model: str, cost: float
) -> None:
    server = sandbox_server(latency=0.3)
    result, task = gen_json(
        run_flux2, server, "bfl", "a fox", "--model", model, "--width", "992", "--height", "992"
    )
    assert result.returncode == 0, result.stderr
    assert task["model"] == model
    assert task["cost"]["credits"] == cost


def test_no_upsample_end_to_end(sandbox_server: Server, run_flux2: Run, tmp_path: Path) -> None:
    server = sandbox_server(latency=0.3)
    result = run_flux2(
        "gen", "a fox", *account("bfl", server), "--mode", "flex", "--no-upsample", "-o", "out/"
    )
    assert result.returncode == 0, result.stderr
    (sidecar,) = (tmp_path / "out").glob("*.json")
    assert json.loads(sidecar.read_text(encoding="utf-8"))["request"]["upsample"] is False


# --- APIMart -------------------------------------------------------------------------------


def test_row66_apimart_lost_answer_is_sent_again_and_replayed(
    sandbox_server: Server, run_flux2: Run
) -> None:
    server = sandbox_server(latency=0.3)
    result, task = gen_json(run_flux2, server, "apimart", "[sandbox:lose_answer] a fox")
    assert result.returncode == 0, result.stderr
    assert task["status"] == "succeeded"
    assert "outcome unknown" not in result.stderr
    assert server.tasks_created() == 1  # one task, charged once


def test_row66_without_idempotency_a_lost_answer_stays_outcome_unknown(
    sandbox_server: Server, run_flux2: Run
) -> None:
    server = sandbox_server(latency=0.3)
    result = run_flux2("gen", "[sandbox:lose_answer] a fox", *account("apiinone", server))
    assert result.returncode == 7, result.stderr
    assert "outcome unknown" in result.stderr
    assert server.tasks_created() == 1


# --- Vtrix ---------------------------------------------------------------------------------


def test_vtrix_wrapped_body_and_integer_safety(sandbox_server: Server, run_flux2: Run) -> None:
    server = sandbox_server(latency=0.3)
    result, task = gen_json(run_flux2, server, "vtrix", "a fox", "--safety", "3", "--seed", "7")
    assert result.returncode == 0, result.stderr
    assert task["status"] == "succeeded"


def test_row67_batch_polls_a_transient_task_not_found_through(
    sandbox_server: Server, run_flux2: Run, tmp_path: Path
) -> None:
    server = sandbox_server(latency=0.3)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"prompt": "[sandbox:lost] a fox"}\n{"prompt": "a plain fox"}\n')
    result = run_flux2("batch", str(manifest), *account("bfl", server), "-o", "out/")
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "out").glob("*.jpg"))) == 2
    assert server.tasks_created() == 2


# --- row 62: absurd expiry values from a server on 127.0.0.1 --------------------------------


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("far-expiry", "9999-12-31T23:59:59Z"), ("negative-expiry", None)],
)
def test_row62_absurd_expiry_is_far_future_or_absent_never_a_crash(
    hostile: Callable[[str], str], run_flux2: Run, mode: str, expected: str | None
) -> None:
    url = hostile(mode)
    flags = ["--provider", "apiinone", "--base-url", url, "--api-key", "k-e2e-1234"]
    result = run_flux2("gen", "a lighthouse", *flags, "--no-download", "--json", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "This is a bug" not in result.stderr
    task = json.loads(result.stdout)
    assert task["status"] == "succeeded"
    if expected is not None:
        assert task["expires_at"] == expected
    else:  # absent: API in One's own 24 hours apply
        expires = parse_time(task["expires_at"])
        assert expires is not None and expires > datetime.now(timezone.utc)
    for command in (["history", "--json"], ["status", task["task_id"], "--json", *flags]):
        again = run_flux2(*command, timeout=60)
        assert again.returncode == 0, again.stderr
        assert "Traceback" not in again.stderr
