"""The embedded transport and the settings it reads from the environment."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from flux2_cli.errors import UsageError
from flux2_cli.providers.sandbox import SANDBOX_BASE_URL
from flux2_cli.sandbox.embedded import transport
from flux2_cli.sandbox.settings import DEFAULT_LATENCY, SandboxSettings
from tests.sandbox.conftest import BEARER, Sandbox


def test_settings_from_the_environment(tmp_path: Path) -> None:
    settings = SandboxSettings.from_env(
        {
            "FLUX2_SANDBOX_LATENCY": "0.5",
            "FLUX2_SANDBOX_FAULTS": "429=#2,seed=3",
            "FLUX2_SANDBOX_DIR": str(tmp_path),
        }
    )
    assert settings.latency == 0.5
    assert settings.faults.counts == {"429": 2}
    assert settings.faults.seed == 3
    assert settings.resolved_state_dir() == tmp_path


def test_default_settings_use_the_cache_dir(tmp_path: Path) -> None:
    settings = SandboxSettings.from_env({"FLUX2_CACHE_DIR": str(tmp_path)})
    assert settings.latency == DEFAULT_LATENCY
    assert not settings.faults.active
    assert settings.resolved_state_dir() == tmp_path / "sandbox"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FLUX2_SANDBOX_LATENCY", "soon"),
        ("FLUX2_SANDBOX_LATENCY", "-1"),
        ("FLUX2_SANDBOX_FAULTS", "x=1"),
    ],
)
def test_bad_environment_values_are_usage_errors(name: str, value: str) -> None:
    with pytest.raises(UsageError, match=name):
        SandboxSettings.from_env({name: value})


def test_any_host_is_routed_and_image_urls_follow_the_request_host(sbx: Sandbox) -> None:
    client = httpx.Client(transport=sbx.transport, base_url="https://elsewhere.test:8443")
    created = client.post("/api/v1/images/generations", json={"prompt": "abc"}, headers=BEARER)
    task_id = created.json()["data"]["task_id"]
    sbx.finish()
    url = client.get(f"/api/v1/tasks/{task_id}", headers=BEARER).json()["data"]["images"][0]["url"]
    assert url.startswith("https://elsewhere.test:8443/files/")
    assert client.get(url).status_code == 200


def test_works_when_called_inside_a_running_event_loop(sbx: Sandbox) -> None:
    async def inside() -> int:
        return sbx.client.get("/").status_code

    assert asyncio.run(inside()) == 200


def test_unknown_paths_are_404(sbx: Sandbox) -> None:
    assert sbx.client.get("/nope").status_code == 404
    assert sbx.client.get("/api/v1/images/generations").status_code == 405


def test_an_application_error_is_a_500(sbx: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr(sbx.transport.app.state.sandbox.store, "load_task", broken)
    answer = sbx.client.get("/api/v1/tasks/abc", headers=BEARER)
    assert answer.status_code == 500


def test_transport_without_settings_reads_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLUX2_SANDBOX_DIR", str(tmp_path / "env-state"))
    monkeypatch.setenv("FLUX2_SANDBOX_LATENCY", "0")
    monkeypatch.delenv("FLUX2_SANDBOX_FAULTS", raising=False)
    with httpx.Client(transport=transport(), base_url=SANDBOX_BASE_URL) as client:
        created = client.post("/api/v1/images/generations", json={"prompt": "abc"}, headers=BEARER)
        task_id = created.json()["data"]["task_id"]
        data = client.get(f"/api/v1/tasks/{task_id}", headers=BEARER).json()["data"]
    assert data["status"] == "COMPLETED"
    assert (tmp_path / "env-state" / "tasks" / f"{task_id}.json").is_file()
