"""A real client in the suite: BFL's official Python SDK (``blackforest``) on ``sandbox serve``.

Submit, poll and download for FLUX.2 [pro] and [flex], and the SDK's errors for 401, 402, 422
and 429. blackforest 0.1.x ships no FLUX.2 models: its source (blackforest/client.py) looks a
model up in ``BFLClient.model_input_registry`` (the module-level ``MODEL_INPUT_REGISTRY``
dict) and posts ``input_cls(**inputs).model_dump(exclude_none=True)`` to ``/v1/{model}``, so
the test registers pydantic input models for ``flux-2-pro`` and ``flux-2-flex`` there, for the
length of each test. Every error of the SDK is ``BFLError``; the HTTP status is on its cause
(``requests.HTTPError``), and its message is the body's ``message`` when there is one.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from flux2_cli.sandbox.settings import BROKE_KEY, INVALID_KEY
from tests.e2e.conftest import SandboxServer

blackforest = pytest.importorskip("blackforest", reason="BFL's SDK is in the dev extra")
pydantic = pytest.importorskip("pydantic")
requests = pytest.importorskip("requests")

from blackforest import BFLClient, BFLError  # noqa: E402
from blackforest.types.general.client_config import ClientConfig  # noqa: E402

pytestmark = pytest.mark.e2e

Server = Callable[..., SandboxServer]
KEY = "sdk-test-key"
POLL = ClientConfig(sync=False, polling_interval=0.1, max_retries=300, timeout=60)


class Flux2Inputs(pydantic.BaseModel):  # type: ignore[misc]
    """FLUX.2's request body (BFL's OpenAPI schema, as wire-contracts.md summarises it).

    No client-side limits: the server's validation (422) is what the test exercises.
    """

    prompt: str
    width: int | None = None
    height: int | None = None
    seed: int | None = None
    safety_tolerance: int | None = None
    output_format: str | None = None
    input_image: str | None = None
    webhook_url: str | None = None


class Flux2ProInputs(Flux2Inputs):
    """[pro]: ``disable_pup`` turns prompt upsampling off."""

    disable_pup: bool | None = None


class Flux2FlexInputs(Flux2Inputs):
    """[flex]: steps, guidance and ``prompt_upsampling``."""

    steps: int | None = None
    guidance: float | None = None
    prompt_upsampling: bool | None = None


@pytest.fixture(autouse=True)
def flux2_models(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Register the FLUX.2 models in the SDK's registry, undone after the test."""
    registry = BFLClient.model_input_registry
    monkeypatch.setitem(registry, "flux-2-pro", Flux2ProInputs)
    monkeypatch.setitem(registry, "flux-2-flex", Flux2FlexInputs)
    yield


def sdk(server: SandboxServer, key: str = KEY) -> Any:
    client = BFLClient(api_key=key, base_url=server.url, timeout=30)
    client.session.trust_env = False  # no proxy from the environment for 127.0.0.1
    return client


def status_of(error: BaseException) -> int:
    cause = error.__cause__
    assert isinstance(cause, requests.HTTPError), repr(cause)
    assert cause.response is not None
    return int(cause.response.status_code)


@pytest.mark.parametrize(
    ("model", "extra"),
    [("flux-2-pro", {"disable_pup": True}), ("flux-2-flex", {"steps": 20, "guidance": 4.5})],
)
def test_sdk_submits_polls_and_downloads(
    sandbox_server: Server, model: str, extra: dict[str, Any]
) -> None:
    from PIL import Image

    server = sandbox_server(latency=0.3)
    client = sdk(server)
    inputs = {"prompt": "a lighthouse at dusk", "width": 1024, "height": 768, "seed": 42, **extra}
    submitted = client.generate(model, inputs, config=POLL)
    assert submitted.id in server.task_ids()
    assert submitted.polling_url.startswith(server.url)
    result = client.get_polling_result(submitted.id, POLL)
    assert result["seed"] == 42 and result["prompt"] == "a lighthouse at dusk"
    image = requests.get(result["sample"], timeout=30)
    assert image.status_code == 200
    with Image.open(io.BytesIO(image.content)) as picture:
        assert picture.size == (1024, 768)
        assert picture.format == "JPEG"
    status = client.get_task_status(submitted.id)
    assert status.status == "Ready"


def test_sdk_sync_mode_and_a_seed_it_did_not_send(sandbox_server: Server) -> None:
    server = sandbox_server(latency=0.3)
    sync = ClientConfig(sync=True, polling_interval=0.1, max_retries=300, timeout=60)
    answer = sdk(server).generate("flux-2-pro", {"prompt": "a red fox"}, config=sync)
    assert isinstance(answer.result["seed"], int)  # always a number, never null
    assert answer.result["sample"].startswith(server.url)


@pytest.mark.parametrize(
    ("key", "inputs", "status"),
    [
        (INVALID_KEY, {"prompt": "a red fox"}, 401),
        (BROKE_KEY, {"prompt": "a red fox"}, 402),
        (KEY, {"prompt": "a red fox", "width": 100, "height": 64}, 422),
    ],
    ids=["401", "402", "422"],
)
def test_sdk_errors_for_refused_requests(
    sandbox_server: Server, key: str, inputs: dict[str, Any], status: int
) -> None:
    server = sandbox_server(latency=0.3)
    with pytest.raises(BFLError) as caught:
        sdk(server, key).generate("flux-2-pro", inputs, config=POLL)
    assert status_of(caught.value) == status
    assert "API request failed" in str(caught.value)
    assert server.tasks_created() == 0


def test_sdk_error_for_429_carries_bfls_message(sandbox_server: Server) -> None:
    server = sandbox_server(latency=0.3)
    client = sdk(server)
    with pytest.raises(BFLError) as caught:
        client.generate("flux-2-flex", {"prompt": "[sandbox:429] a red fox"}, config=POLL)
    assert status_of(caught.value) == 429
    assert "Too many concurrent requests" in str(caught.value)
    body = caught.value.__cause__.response.json()  # type: ignore[union-attr]
    assert body["retry_after"] == 1
    # The next try goes through, as the SDK's callers retry a 429.
    again = client.generate("flux-2-flex", {"prompt": "[sandbox:429] a red fox"}, config=POLL)
    assert again.id in server.task_ids()
