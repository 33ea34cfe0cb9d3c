"""APIMart (api.apimart.ai): ``flux-2-pro``/``-flex``, ``size`` (the ratio!) and ``resolution``."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from flux2_cli.env import PROVIDER_KEY_VARS
from flux2_cli.providers import parsing
from flux2_cli.providers.base import BaseProvider, Capabilities, HttpCall
from flux2_cli.request import GenerationRequest
from flux2_cli.task import Cost, TaskStatus

PROVIDER_ID = "apimart"
# APIMart's own client (apimart-ai/apimart-skills, skills/apimart-generate-media/scripts/
# apimart-media.mjs and references/api-contract.md): generation requests carry an
# Idempotency-Key (a duplicate is replayed, answer header ``idempotency-replayed: true``, not
# billed) and ask for the response version in which ``data`` is an object.
IDEMPOTENCY_HEADER = "Idempotency-Key"
RESPONSE_VERSION_HEADER = "X-APIMart-Response-Version"
RESPONSE_VERSION = "2026-07-27"

# The documented vocabulary of GET /v1/tasks/{id} (docs.apimart.ai …/tasks/status).
STATUS_WORDS: dict[str, TaskStatus] = {
    "submitted": TaskStatus.QUEUED,
    "pending": TaskStatus.QUEUED,
    "processing": TaskStatus.RUNNING,
    "completed": TaskStatus.SUCCEEDED,
    "failed": TaskStatus.FAILED,
    "cancelled": TaskStatus.FAILED,
}

CAPABILITIES = Capabilities(
    id=PROVIDER_ID,
    name="APIMart",
    base_url="https://api.apimart.ai",
    env_var=PROVIDER_KEY_VARS[PROVIDER_ID],
    docs_url="https://docs.apimart.ai/en/api-reference/images/flux-2/generation",
    models={"pro": "flux-2-pro", "flex": "flux-2-flex"},
    # Sizes are the seven ratios at 1K/2K only: no --width/--height (size_rule None).
    size_rule=None,
    max_refs=8,
    inline_refs=False,  # "Must be publicly accessible URL … Base64 format not supported"
    formats=(),
    default_format="png",
    safety_range=None,
    takes_seed=False,  # undocumented: refused, with the hint to send it through --param
    takes_callback=False,
    takes_webhook_secret=False,
    # "Media URLs ... are valid for 72 hours" when no expires_at is given (api-contract.md).
    url_lifetime=timedelta(hours=72),
    prices="priced by resolution (1K/2K); each task reports its cost and credits_cost",
    auth_header="Authorization: Bearer",
    idempotent_create=True,
)


class ApiMartProvider(BaseProvider):
    """Translator for APIMart's ``/v1/images/generations`` and ``/v1/tasks/{id}``."""

    capabilities = CAPABILITIES
    create_path = "/v1/images/generations"
    poll_path = "/v1/tasks/{id}"
    image_url_paths = ("result.images[].url",)
    status_words = STATUS_WORDS

    def build_create(self, request: GenerationRequest) -> HttpCall:
        """The documented body: ``size`` holds the ratio, ``resolution`` the canonical 1K/2K."""
        body: dict[str, Any] = {
            "model": self.model_for(request),
            "prompt": request.prompt,
            "size": request.ratio,
            "resolution": request.res.upper(),
        }
        if request.refs:
            body["image_urls"] = list(request.refs)
        body.update(request.params)
        return HttpCall(
            "POST",
            self.create_path,
            json=body,
            paid=True,
            headers={RESPONSE_VERSION_HEADER: RESPONSE_VERSION},
        )

    def with_idempotency_key(self, call: HttpCall, key: str) -> HttpCall:
        """The create call with ``Idempotency-Key``: safe to send again when its answer is lost."""
        headers = {**(call.headers or {}), IDEMPOTENCY_HEADER: key}
        return dataclasses.replace(call, headers=headers, idempotent=True)

    def cost_from(self, data: dict[str, Any]) -> Cost | None:
        """``cost`` (US dollars) and ``credits_cost`` (credits) from the task data."""
        usd = parsing.amount(data.get("cost"))
        credits = parsing.amount(data.get("credits_cost"))
        if usd is None and credits is None:
            return None
        return Cost(credits=credits, usd=usd)
